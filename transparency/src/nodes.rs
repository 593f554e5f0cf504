//! akd's tree node records (`TreeNodeWithPreviousValue`): the rows of `akd_tree_nodes`, by label.
//!
//! Many nodes go to and from Postgres in one statement: their fields as one array per
//! column, unnested in SQL, so an epoch of 10,000 updates (some 200,000 changed nodes) takes
//! a few round trips, not one per node.

use crate::convert::{
    bytes32, from_bigint, label as node_label, node_type, node_type_code, optional_label, to_bigint, to_label_len,
};
use crate::error::{corrupt, database, unstorable};
use akd::errors::StorageError;
use akd::tree_node::{TreeNode, TreeNodeWithPreviousValue};
use akd::{AzksValue, NodeLabel};
use sqlx::{PgConnection, PgPool};
use tracing::instrument;

/// One row of `akd_tree_nodes` as read.
struct Row {
    label_len: i32,
    label_val: Vec<u8>,
    last_epoch: i64,
    min_descendant_epoch: i64,
    parent_label_len: i32,
    parent_label_val: Vec<u8>,
    node_type: i16,
    left_child_len: Option<i32>,
    left_child_val: Option<Vec<u8>>,
    right_child_len: Option<i32>,
    right_child_val: Option<Vec<u8>>,
    hash: Vec<u8>,
    p_last_epoch: Option<i64>,
    p_min_descendant_epoch: Option<i64>,
    p_parent_label_len: Option<i32>,
    p_parent_label_val: Option<Vec<u8>>,
    p_node_type: Option<i16>,
    p_left_child_len: Option<i32>,
    p_left_child_val: Option<Vec<u8>>,
    p_right_child_len: Option<i32>,
    p_right_child_val: Option<Vec<u8>>,
    p_hash: Option<Vec<u8>>,
}

impl Row {
    /// The record, or an error naming the first column akd could not have written.
    fn into_record(self) -> Result<TreeNodeWithPreviousValue, StorageError> {
        let label = node_label(self.label_len, &self.label_val, "akd_tree_nodes.label")?;
        let latest_node = TreeNode {
            label,
            last_epoch: from_bigint(self.last_epoch, "akd_tree_nodes.last_epoch")?,
            min_descendant_epoch: from_bigint(self.min_descendant_epoch, "akd_tree_nodes.min_descendant_epoch")?,
            parent: node_label(self.parent_label_len, &self.parent_label_val, "akd_tree_nodes.parent_label")?,
            node_type: node_type(self.node_type, "akd_tree_nodes.node_type")?,
            left_child: optional_label(
                self.left_child_len,
                self.left_child_val.as_deref(),
                "akd_tree_nodes.left_child",
            )?,
            right_child: optional_label(
                self.right_child_len,
                self.right_child_val.as_deref(),
                "akd_tree_nodes.right_child",
            )?,
            hash: AzksValue(bytes32(&self.hash, "akd_tree_nodes.hash")?),
        };
        let previous = (
            self.p_last_epoch,
            self.p_min_descendant_epoch,
            self.p_parent_label_len,
            self.p_parent_label_val,
            self.p_node_type,
            self.p_hash,
        );
        let previous_node = match previous {
            (
                Some(last_epoch),
                Some(min_descendant_epoch),
                Some(parent_len),
                Some(parent_val),
                Some(code),
                Some(hash),
            ) => Some(TreeNode {
                label,
                last_epoch: from_bigint(last_epoch, "akd_tree_nodes.p_last_epoch")?,
                min_descendant_epoch: from_bigint(min_descendant_epoch, "akd_tree_nodes.p_min_descendant_epoch")?,
                parent: node_label(parent_len, &parent_val, "akd_tree_nodes.p_parent_label")?,
                node_type: node_type(code, "akd_tree_nodes.p_node_type")?,
                left_child: optional_label(
                    self.p_left_child_len,
                    self.p_left_child_val.as_deref(),
                    "akd_tree_nodes.p_left_child",
                )?,
                right_child: optional_label(
                    self.p_right_child_len,
                    self.p_right_child_val.as_deref(),
                    "akd_tree_nodes.p_right_child",
                )?,
                hash: AzksValue(bytes32(&hash, "akd_tree_nodes.p_hash")?),
            }),
            (None, None, None, None, None, None) => None,
            _ => return Err(corrupt("akd_tree_nodes.p_*", "has a previous state with missing fields")),
        };
        Ok(TreeNodeWithPreviousValue { label, latest_node, previous_node })
    }
}

/// The nodes with these labels that exist, in no particular order.
#[instrument(level = "debug", skip_all, fields(labels = labels.len()))]
pub(crate) async fn get_many(
    pool: &PgPool,
    labels: &[NodeLabel],
) -> Result<Vec<TreeNodeWithPreviousValue>, StorageError> {
    let mut nodes = Vec::with_capacity(labels.len());
    for chunk in labels.chunks(crate::CHUNK) {
        let mut lens = Vec::with_capacity(chunk.len());
        let mut vals = Vec::with_capacity(chunk.len());
        for label in chunk {
            lens.push(to_label_len(label.label_len, "akd_tree_nodes.label_len")?);
            vals.push(label.label_val.to_vec());
        }
        let rows = sqlx::query_as!(
            Row,
            "SELECT label_len, label_val, last_epoch, min_descendant_epoch, parent_label_len, parent_label_val,
                    node_type, left_child_len, left_child_val, right_child_len, right_child_val, hash,
                    p_last_epoch, p_min_descendant_epoch, p_parent_label_len, p_parent_label_val, p_node_type,
                    p_left_child_len, p_left_child_val, p_right_child_len, p_right_child_val, p_hash
             FROM akd_tree_nodes
             WHERE (label_len, label_val) IN (SELECT * FROM UNNEST($1::integer[], $2::bytea[]))",
            &lens,
            &vals,
        )
        .fetch_all(pool)
        .await
        .map_err(database)?;
        for row in rows {
            nodes.push(row.into_record()?);
        }
    }
    Ok(nodes)
}

/// The columns of many nodes, one array each, for one `UNNEST`.
#[derive(Default)]
struct Columns {
    label_len: Vec<i32>,
    label_val: Vec<Vec<u8>>,
    last_epoch: Vec<i64>,
    min_descendant_epoch: Vec<i64>,
    parent_label_len: Vec<i32>,
    parent_label_val: Vec<Vec<u8>>,
    node_type: Vec<i16>,
    left_child_len: Vec<Option<i32>>,
    left_child_val: Vec<Option<Vec<u8>>>,
    right_child_len: Vec<Option<i32>>,
    right_child_val: Vec<Option<Vec<u8>>>,
    hash: Vec<Vec<u8>>,
    p_last_epoch: Vec<Option<i64>>,
    p_min_descendant_epoch: Vec<Option<i64>>,
    p_parent_label_len: Vec<Option<i32>>,
    p_parent_label_val: Vec<Option<Vec<u8>>>,
    p_node_type: Vec<Option<i16>>,
    p_left_child_len: Vec<Option<i32>>,
    p_left_child_val: Vec<Option<Vec<u8>>>,
    p_right_child_len: Vec<Option<i32>>,
    p_right_child_val: Vec<Option<Vec<u8>>>,
    p_hash: Vec<Option<Vec<u8>>>,
}

/// A child label's two nullable columns.
fn child(label: Option<NodeLabel>, column: &str) -> Result<(Option<i32>, Option<Vec<u8>>), StorageError> {
    match label {
        Some(label) => Ok((Some(to_label_len(label.label_len, column)?), Some(label.label_val.to_vec()))),
        None => Ok((None, None)),
    }
}

impl Columns {
    fn push(&mut self, node: &TreeNodeWithPreviousValue) -> Result<(), StorageError> {
        let latest = &node.latest_node;
        self.label_len.push(to_label_len(node.label.label_len, "akd_tree_nodes.label_len")?);
        self.label_val.push(node.label.label_val.to_vec());
        self.last_epoch.push(to_bigint(latest.last_epoch, "akd_tree_nodes.last_epoch")?);
        self.min_descendant_epoch.push(to_bigint(latest.min_descendant_epoch, "akd_tree_nodes.min_descendant_epoch")?);
        self.parent_label_len.push(to_label_len(latest.parent.label_len, "akd_tree_nodes.parent_label_len")?);
        self.parent_label_val.push(latest.parent.label_val.to_vec());
        self.node_type.push(node_type_code(latest.node_type));
        let (len, val) = child(latest.left_child, "akd_tree_nodes.left_child_len")?;
        self.left_child_len.push(len);
        self.left_child_val.push(val);
        let (len, val) = child(latest.right_child, "akd_tree_nodes.right_child_len")?;
        self.right_child_len.push(len);
        self.right_child_val.push(val);
        self.hash.push(latest.hash.0.to_vec());
        let previous = node.previous_node.as_ref();
        if previous.is_some_and(|p| p.label != node.label) {
            return Err(unstorable("akd_tree_nodes.p_*", "a previous state with another label"));
        }
        self.p_last_epoch.push(previous.map(|p| to_bigint(p.last_epoch, "akd_tree_nodes.p_last_epoch")).transpose()?);
        self.p_min_descendant_epoch.push(
            previous.map(|p| to_bigint(p.min_descendant_epoch, "akd_tree_nodes.p_min_descendant_epoch")).transpose()?,
        );
        self.p_parent_label_len
            .push(previous.map(|p| to_label_len(p.parent.label_len, "akd_tree_nodes.p_parent_label_len")).transpose()?);
        self.p_parent_label_val.push(previous.map(|p| p.parent.label_val.to_vec()));
        self.p_node_type.push(previous.map(|p| node_type_code(p.node_type)));
        let (len, val) = child(previous.and_then(|p| p.left_child), "akd_tree_nodes.p_left_child_len")?;
        self.p_left_child_len.push(len);
        self.p_left_child_val.push(val);
        let (len, val) = child(previous.and_then(|p| p.right_child), "akd_tree_nodes.p_right_child_len")?;
        self.p_right_child_len.push(len);
        self.p_right_child_val.push(val);
        self.p_hash.push(previous.map(|p| p.hash.0.to_vec()));
        Ok(())
    }
}

/// Inserts or replaces `nodes` (distinct labels) in the publishing transaction.
#[instrument(level = "debug", skip_all, fields(nodes = nodes.len()))]
pub(crate) async fn put_many(tx: &mut PgConnection, nodes: &[TreeNodeWithPreviousValue]) -> Result<(), StorageError> {
    for chunk in nodes.chunks(crate::CHUNK) {
        let mut c = Columns::default();
        for node in chunk {
            c.push(node)?;
        }
        // The arrays with NULL elements go `as _`: the macro's type check knows an array
        // parameter only as `Vec<T>`, not `Vec<Option<T>>`; the casts in the SQL type them.
        sqlx::query!(
            "INSERT INTO akd_tree_nodes (
                 label_len, label_val, last_epoch, min_descendant_epoch, parent_label_len, parent_label_val,
                 node_type, left_child_len, left_child_val, right_child_len, right_child_val, hash,
                 p_last_epoch, p_min_descendant_epoch, p_parent_label_len, p_parent_label_val, p_node_type,
                 p_left_child_len, p_left_child_val, p_right_child_len, p_right_child_val, p_hash)
             SELECT * FROM UNNEST(
                 $1::integer[], $2::bytea[], $3::bigint[], $4::bigint[], $5::integer[], $6::bytea[],
                 $7::smallint[], $8::integer[], $9::bytea[], $10::integer[], $11::bytea[], $12::bytea[],
                 $13::bigint[], $14::bigint[], $15::integer[], $16::bytea[], $17::smallint[],
                 $18::integer[], $19::bytea[], $20::integer[], $21::bytea[], $22::bytea[])
             ON CONFLICT (label_len, label_val) DO UPDATE SET
                 last_epoch = excluded.last_epoch,
                 min_descendant_epoch = excluded.min_descendant_epoch,
                 parent_label_len = excluded.parent_label_len,
                 parent_label_val = excluded.parent_label_val,
                 node_type = excluded.node_type,
                 left_child_len = excluded.left_child_len,
                 left_child_val = excluded.left_child_val,
                 right_child_len = excluded.right_child_len,
                 right_child_val = excluded.right_child_val,
                 hash = excluded.hash,
                 p_last_epoch = excluded.p_last_epoch,
                 p_min_descendant_epoch = excluded.p_min_descendant_epoch,
                 p_parent_label_len = excluded.p_parent_label_len,
                 p_parent_label_val = excluded.p_parent_label_val,
                 p_node_type = excluded.p_node_type,
                 p_left_child_len = excluded.p_left_child_len,
                 p_left_child_val = excluded.p_left_child_val,
                 p_right_child_len = excluded.p_right_child_len,
                 p_right_child_val = excluded.p_right_child_val,
                 p_hash = excluded.p_hash",
            &c.label_len,
            &c.label_val,
            &c.last_epoch,
            &c.min_descendant_epoch,
            &c.parent_label_len,
            &c.parent_label_val,
            &c.node_type,
            &c.left_child_len as _,
            &c.left_child_val as _,
            &c.right_child_len as _,
            &c.right_child_val as _,
            &c.hash,
            &c.p_last_epoch as _,
            &c.p_min_descendant_epoch as _,
            &c.p_parent_label_len as _,
            &c.p_parent_label_val as _,
            &c.p_node_type as _,
            &c.p_left_child_len as _,
            &c.p_left_child_val as _,
            &c.p_right_child_len as _,
            &c.p_right_child_val as _,
            &c.p_hash as _,
        )
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    }
    Ok(())
}
