//! akd's own storage conformance suite (`public_tests`), run against Postgres, and what it leaves out.

use crate::helpers::migrated_pool;
use akd::errors::StorageError;
use akd::storage::types::{DbRecord, ValueState, ValueStateKey, ValueStateRetrievalFlag};
use akd::storage::{Database, DbSetState};
use akd::tree_node::{NodeKey, TreeNode, TreeNodeType, TreeNodeWithPreviousValue};
use akd::{AkdLabel, AkdValue, Azks, AzksValue, NodeLabel};
use keyward_transparency::{PgDatabase, akd};
use std::time::Instant;

/// `run_test_cases_for_storage_impl` runs akd's cases in turn, each asserting (a failure
/// panics): get and set of each record type, a label's data and each retrieval flag,
/// batch get and the batch version lookups, commits through akd's `StorageManager`
/// transaction, and tombstoning.
#[tokio::test]
async fn akds_storage_conformance_suite_passes() {
    let db = PgDatabase::new(migrated_pool().await);
    akd::storage::tests::run_test_cases_for_storage_impl(db).await;
}

fn node(label: NodeLabel, epoch: u64, previous: bool) -> TreeNodeWithPreviousValue {
    let latest = TreeNode {
        label,
        last_epoch: epoch,
        min_descendant_epoch: 1,
        parent: NodeLabel::new([0; 32], 0),
        node_type: TreeNodeType::Interior,
        left_child: Some(NodeLabel::new([1; 32], 255)),
        right_child: None,
        hash: AzksValue([epoch as u8; 32]),
    };
    let previous_node =
        previous.then(|| TreeNode { last_epoch: epoch - 1, right_child: Some(label), ..latest.clone() });
    TreeNodeWithPreviousValue { label, latest_node: latest, previous_node }
}

fn state(name: &str, epoch: u64, version: u64) -> ValueState {
    ValueState {
        value: AkdValue(format!("{name} {version}").into_bytes()),
        version,
        label: NodeLabel::new([version as u8; 32], 256),
        epoch,
        username: AkdLabel::from(name),
    }
}

#[tokio::test]
async fn nodes_round_trip_with_every_field_and_an_epoch_of_ten_thousand_labels_is_one_batch() {
    let db = PgDatabase::new(migrated_pool().await);
    // 25,000 nodes (three statements of at most 10,000) and 10,000 value states, one batch.
    let mut records = Vec::new();
    for i in 0..25_000u32 {
        let mut val = [0u8; 32];
        val[..4].copy_from_slice(&i.to_be_bytes());
        records.push(DbRecord::TreeNode(node(NodeLabel::new(val, 32 + i % 200), 7, i % 2 == 0)));
    }
    for i in 0..10_000 {
        records.push(DbRecord::ValueState(state(&format!("user{i}@example.test"), 7, 1)));
    }
    records.push(DbRecord::Azks(Azks { latest_epoch: 7, num_nodes: 25_000 }));
    let started = Instant::now();
    db.batch_set(records.clone(), DbSetState::TransactionCommit).await.expect("stores");
    println!("batch_set of {} records: {:?}", records.len(), started.elapsed());

    let node_keys: Vec<NodeKey> = records
        .iter()
        .filter_map(|r| match r {
            DbRecord::TreeNode(n) => Some(NodeKey(n.label)),
            _ => None,
        })
        .collect();
    let started = Instant::now();
    let mut got = db.batch_get::<TreeNodeWithPreviousValue>(&node_keys).await.expect("reads");
    println!("batch_get of {} nodes: {:?}", node_keys.len(), started.elapsed());
    let mut expected: Vec<DbRecord> = records.iter().filter(|r| matches!(r, DbRecord::TreeNode(_))).cloned().collect();
    got.sort();
    expected.sort();
    assert!(got == expected, "the nodes read back differ from those written");
    // Rewriting an existing key replaces it.
    let replaced = node(node_keys[0].0, 8, true);
    db.set(DbRecord::TreeNode(replaced.clone())).await.expect("replaces");
    assert_eq!(db.get::<TreeNodeWithPreviousValue>(&node_keys[0]).await, Ok(DbRecord::TreeNode(replaced)));
}

#[tokio::test]
async fn a_batch_that_fails_part_way_writes_nothing() {
    let db = PgDatabase::new(migrated_pool().await);
    db.set(DbRecord::Azks(Azks { latest_epoch: 1, num_nodes: 1 })).await.expect("stores");
    let label = NodeLabel::new([9; 32], 256);
    // The nodes go first, then the states: the second state's epoch is beyond bigint.
    let records = vec![
        DbRecord::TreeNode(node(label, 2, false)),
        DbRecord::ValueState(state("alice@example.test", 2, 1)),
        DbRecord::ValueState(state("bob@example.test", u64::MAX, 1)),
        DbRecord::Azks(Azks { latest_epoch: 2, num_nodes: 2 }),
    ];
    let err = db.batch_set(records, DbSetState::TransactionCommit).await.expect_err("refused");
    assert!(matches!(&err, StorageError::Other(m) if m.contains("akd_value_states.epoch")), "{err:?}");
    assert!(matches!(db.get::<TreeNodeWithPreviousValue>(&NodeKey(label)).await, Err(StorageError::NotFound(_))));
    let alice = ValueStateKey(b"alice@example.test".to_vec(), 2);
    assert!(matches!(db.get::<ValueState>(&alice).await, Err(StorageError::NotFound(_))));
    let azks = db.get::<Azks>(&akd::append_only_zks::DEFAULT_AZKS_KEY).await;
    assert!(matches!(azks, Ok(DbRecord::Azks(Azks { latest_epoch: 1, .. }))), "{azks:?}");
}

#[tokio::test]
async fn the_same_epoch_committed_twice_fails_whole_the_second_time() {
    let db = PgDatabase::new(migrated_pool().await);
    db.set(DbRecord::Azks(Azks { latest_epoch: 4, num_nodes: 1 })).await.expect("stores");
    let (first, second) = (NodeLabel::new([7; 32], 256), NodeLabel::new([8; 32], 256));
    let commit = |label, num_nodes| {
        vec![DbRecord::TreeNode(node(label, 5, false)), DbRecord::Azks(Azks { latest_epoch: 5, num_nodes })]
    };
    db.batch_set(commit(first, 2), DbSetState::TransactionCommit).await.expect("epoch 5 commits");
    // A second publisher's commit of epoch 5 (it read epoch 4 before the first committed).
    let err = db.batch_set(commit(second, 3), DbSetState::TransactionCommit).await.expect_err("refused");
    assert!(matches!(&err, StorageError::Other(m) if m.contains("akd_azks")), "{err:?}");
    assert!(matches!(db.get::<TreeNodeWithPreviousValue>(&NodeKey(second)).await, Err(StorageError::NotFound(_))));
    let azks = db.get::<Azks>(&akd::append_only_zks::DEFAULT_AZKS_KEY).await;
    assert!(matches!(azks, Ok(DbRecord::Azks(Azks { latest_epoch: 5, num_nodes: 2 }))), "{azks:?}");
    // A general write (akd's own bookkeeping, its conformance suite) is not a commit: not checked.
    db.set(DbRecord::Azks(Azks { latest_epoch: 1, num_nodes: 1 })).await.expect("a general write");
}

#[tokio::test]
async fn retrieval_flags_pick_the_state_akds_memory_storage_picks() {
    let db = PgDatabase::new(migrated_pool().await);
    let name = "alice@example.test";
    // Versions 1, 2, 3 in epochs 2, 5, 9; another label in between.
    let records = [(2, 1), (5, 2), (9, 3)].map(|(epoch, version)| DbRecord::ValueState(state(name, epoch, version)));
    db.batch_set(records.to_vec(), DbSetState::General).await.expect("stores");
    db.set(DbRecord::ValueState(state("bob@example.test", 4, 1))).await.expect("stores");
    let label = AkdLabel::from(name);
    use ValueStateRetrievalFlag as F;
    let cases = [
        (F::MinEpoch, Some(2)),
        (F::MaxEpoch, Some(9)),
        (F::SpecificEpoch(5), Some(5)),
        (F::SpecificEpoch(4), None),
        (F::SpecificVersion(3), Some(9)),
        (F::SpecificVersion(4), None),
        (F::LeqEpoch(1), None),
        (F::LeqEpoch(5), Some(5)),
        (F::LeqEpoch(8), Some(5)),
        (F::LeqEpoch(u64::MAX), Some(9)),
        (F::SpecificEpoch(u64::MAX), None),
    ];
    for (flag, epoch) in cases {
        let got = db.get_user_state(&label, flag).await;
        match epoch {
            Some(epoch) => assert_eq!(got.map(|s| s.epoch), Ok(epoch), "{flag:?}"),
            None => assert!(matches!(got, Err(StorageError::NotFound(_))), "{flag:?}: {got:?}"),
        }
        let versions =
            db.get_user_state_versions(&[label.clone(), AkdLabel::from("nobody")], flag).await.expect("reads versions");
        let expected = epoch.map(|e| match e {
            2 => 1,
            5 => 2,
            _ => 3,
        });
        assert_eq!(versions.get(&label).map(|(version, _)| *version), expected, "{flag:?}");
        assert_eq!(versions.len(), usize::from(expected.is_some()), "{flag:?}");
    }
    let nobody = db.get_user_data(&AkdLabel::from("nobody")).await;
    assert!(matches!(nobody, Err(StorageError::NotFound(_))), "{nobody:?}");
}
