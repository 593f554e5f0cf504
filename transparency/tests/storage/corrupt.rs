//! Damaged rows (a hand edit, a broken restore) give akd a typed error, never a panic or a wrong record.
//!
//! The schema's CHECK constraints refuse such rows, so each case drops the constraint that
//! guards its column first, as a damaged database would not have it either.

use crate::helpers::{migrated_pool, open_directory};
use akd::errors::{AkdError, StorageError};
use akd::storage::Database;
use akd::storage::types::{ValueState, ValueStateRetrievalFlag};
use akd::tree_node::{NodeKey, TreeNodeWithPreviousValue};
use akd::{AkdLabel, AkdValue};
use keyward_transparency::{PgDatabase, akd};
use sqlx::{AssertSqlSafe, Executor, PgPool};

/// What a case reads after damaging the table.
#[derive(Debug, Clone, Copy)]
enum Read {
    RootNode,
    LatestState,
    Azks,
}

/// A directory with two epochs (so the root has a previous state) on a fresh database.
async fn published() -> PgPool {
    let pool = migrated_pool().await;
    let directory = open_directory(&pool).await.expect("new directory");
    for value in ["v1", "v2"] {
        let updates = vec![(AkdLabel::from("alice@example.test"), AkdValue::from(value))];
        directory.publish(updates).await.expect("publishes");
    }
    pool
}

/// What reading `what` gives once damaged.
async fn read(pool: &PgPool, what: Read) -> Result<(), StorageError> {
    let db = PgDatabase::new(pool.clone());
    match what {
        Read::RootNode => db.get::<TreeNodeWithPreviousValue>(&NodeKey(akd::ROOT_LABEL)).await.map(drop),
        Read::LatestState => {
            db.get_user_state(&AkdLabel::from("alice@example.test"), ValueStateRetrievalFlag::MaxEpoch).await.map(drop)
        }
        Read::Azks => db.get::<akd::Azks>(&akd::append_only_zks::DEFAULT_AZKS_KEY).await.map(drop),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_rows_are_typed_errors_naming_the_column() {
    let root = "WHERE label_len = 0";
    let cases = [
        (
            "akd_tree_nodes_values",
            format!("UPDATE akd_tree_nodes SET hash = substring(hash for 31) {root}"),
            Read::RootNode,
            "akd_tree_nodes.hash is 31 bytes, not 32",
        ),
        (
            "akd_tree_nodes_values",
            format!("UPDATE akd_tree_nodes SET node_type = 9 {root}"),
            Read::RootNode,
            "akd_tree_nodes.node_type is 9",
        ),
        (
            "akd_tree_nodes_labels",
            format!("UPDATE akd_tree_nodes SET parent_label_val = '\\x00' {root}"),
            Read::RootNode,
            "akd_tree_nodes.parent_label is 1 bytes",
        ),
        (
            "akd_tree_nodes_values",
            format!("UPDATE akd_tree_nodes SET p_hash = ''::bytea {root}"),
            Read::RootNode,
            "akd_tree_nodes.p_hash is 0 bytes",
        ),
        (
            "akd_tree_nodes_previous_whole",
            format!("UPDATE akd_tree_nodes SET p_node_type = NULL {root}"),
            Read::RootNode,
            "previous state with missing fields",
        ),
        (
            "akd_tree_nodes_children",
            format!("UPDATE akd_tree_nodes SET left_child_val = NULL {root}"),
            Read::RootNode,
            "akd_tree_nodes.left_child has a length without bytes",
        ),
        (
            "akd_value_states_label",
            "UPDATE akd_value_states SET label_len = 300".into(),
            Read::LatestState,
            "akd_value_states.label has a length of 300 bits",
        ),
        (
            "akd_value_states_numbers",
            "UPDATE akd_value_states SET version = -1".into(),
            Read::LatestState,
            "akd_value_states.version is negative",
        ),
        (
            "akd_azks_counts",
            "UPDATE akd_azks SET latest_epoch = -2".into(),
            Read::Azks,
            "akd_azks.latest_epoch is negative",
        ),
    ];
    for (constraint, damage, what, expected) in cases {
        let pool = published().await;
        assert_eq!(read(&pool, what).await, Ok(()), "{damage}: reads before the damage");
        let table = damage.split_whitespace().nth(1).expect("UPDATE <table>");
        let unguard = format!("ALTER TABLE {table} DROP CONSTRAINT {constraint}");
        pool.execute(AssertSqlSafe(unguard)).await.expect("drops the constraint");
        let changed = pool.execute(AssertSqlSafe(damage.clone())).await.expect("damages").rows_affected();
        assert!(changed > 0, "{damage}: changed nothing");
        match read(&pool, what).await {
            Err(StorageError::Other(message)) => assert!(message.contains(expected), "{damage}: {message}"),
            other => panic!("{damage}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_directory_fails_to_load_and_to_prove_instead_of_starting_afresh() {
    // A damaged azks is not a missing one: akd would create a new, empty directory on NotFound.
    let pool = published().await;
    pool.execute("ALTER TABLE akd_azks DROP CONSTRAINT akd_azks_counts").await.expect("drops");
    pool.execute("UPDATE akd_azks SET num_nodes = -1").await.expect("damages");
    let loaded = open_directory(&pool).await.map(drop);
    assert!(matches!(loaded, Err(AkdError::Storage(StorageError::Other(_)))), "{loaded:?}");
    let (epoch,): (i64,) = sqlx::query_as("SELECT latest_epoch FROM akd_azks").fetch_one(&pool).await.expect("reads");
    assert_eq!(epoch, 2, "the azks was left as it was");

    // A damaged leaf: the lookup fails with the storage error.
    let pool = published().await;
    let directory = open_directory(&pool).await.expect("loads");
    pool.execute("ALTER TABLE akd_tree_nodes DROP CONSTRAINT akd_tree_nodes_values").await.expect("drops");
    pool.execute("UPDATE akd_tree_nodes SET hash = substring(hash for 16) WHERE node_type = 1").await.expect("damages");
    let lookup = directory.lookup(AkdLabel::from("alice@example.test")).await.map(drop);
    assert!(matches!(lookup, Err(AkdError::Storage(StorageError::Other(ref m))) if m.contains("hash")), "{lookup:?}");
    let state = PgDatabase::new(pool.clone())
        .get::<ValueState>(&akd::storage::types::ValueStateKey(b"alice@example.test".to_vec(), 2))
        .await;
    assert!(state.is_ok(), "the value states are intact: {state:?}");
}
