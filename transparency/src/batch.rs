//! One `batch_set`: akd's records split by table, the last record of each key kept, written in one transaction.
//!
//! akd commits an epoch as one `batch_set` of every changed node and value state with the
//! azks last. Here all of it is one Postgres transaction: a reader sees the whole epoch or
//! none of it, and a crash leaves the previous epoch whole. Records are sorted by primary
//! key, so two writers lock rows in the same order and cannot deadlock each other. A key
//! given twice keeps its last record, as akd's in-memory storage does (and as one
//! `INSERT ... ON CONFLICT` statement needs: it may not touch a row twice).

use crate::error::database;
use crate::{azks, nodes, states};
use akd::Azks;
use akd::errors::StorageError;
use akd::storage::types::{DbRecord, ValueState};
use akd::tree_node::TreeNodeWithPreviousValue;
use sqlx::PgPool;
use std::collections::BTreeMap;
use tracing::instrument;

/// The records of one `batch_set`, by table, each key once, in key order.
pub(crate) struct Batch {
    azks: Option<Azks>,
    nodes: Vec<TreeNodeWithPreviousValue>,
    states: Vec<ValueState>,
}

impl Batch {
    pub(crate) fn new(records: Vec<DbRecord>) -> Batch {
        let mut azks = None;
        let mut nodes = BTreeMap::new();
        let mut states = BTreeMap::new();
        for record in records {
            match record {
                DbRecord::Azks(record) => azks = Some(record),
                DbRecord::TreeNode(node) => {
                    nodes.insert((node.label.label_len, node.label.label_val), node);
                }
                DbRecord::ValueState(state) => {
                    states.insert((state.username.0.clone(), state.epoch), state);
                }
            }
        }
        Batch { azks, nodes: nodes.into_values().collect(), states: states.into_values().collect() }
    }

    /// Writes every record in one transaction: nodes, value states, then the azks. A
    /// `commit` (akd's commit of an epoch) writes its azks only over an earlier epoch's
    /// ([`azks::advance`]): the same epoch committed twice fails whole.
    #[instrument(level = "debug", skip_all, fields(nodes = self.nodes.len(), states = self.states.len()))]
    pub(crate) async fn write(self, pool: &PgPool, commit: bool) -> Result<(), StorageError> {
        let mut tx = pool.begin().await.map_err(database)?;
        nodes::put_many(&mut tx, &self.nodes).await?;
        states::put_many(&mut tx, &self.states).await?;
        match &self.azks {
            Some(azks) if commit => azks::advance(&mut tx, azks).await?,
            Some(azks) => azks::put(&mut tx, azks).await?,
            None => {}
        }
        // Dropped without a commit (any error above), the transaction rolls back.
        tx.commit().await.map_err(database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use akd::storage::types::DbRecord;
    use akd::{AkdLabel, AkdValue, NodeLabel};

    fn state(name: &str, epoch: u64, value: &str) -> DbRecord {
        DbRecord::ValueState(ValueState {
            value: AkdValue::from(value),
            version: epoch,
            label: NodeLabel::new([1; 32], 256),
            epoch,
            username: AkdLabel::from(name),
        })
    }

    #[test]
    fn the_last_record_of_a_key_wins_and_keys_come_sorted() {
        let batch = Batch::new(vec![
            state("bob", 2, "first"),
            DbRecord::Azks(Azks { latest_epoch: 1, num_nodes: 3 }),
            state("alice", 1, "a"),
            state("bob", 2, "second"),
            DbRecord::Azks(Azks { latest_epoch: 2, num_nodes: 5 }),
            state("bob", 1, "b"),
        ]);
        let keys: Vec<(String, u64, String)> = batch
            .states
            .iter()
            .map(|s| (String::from_utf8_lossy(&s.username).into(), s.epoch, String::from_utf8_lossy(&s.value).into()))
            .collect();
        assert_eq!(
            keys,
            [("alice".into(), 1, "a".into()), ("bob".into(), 1, "b".into()), ("bob".into(), 2, "second".into())]
        );
        assert_eq!(batch.azks.map(|a| (a.latest_epoch, a.num_nodes)), Some((2, 5)));
        assert!(batch.nodes.is_empty());
    }
}
