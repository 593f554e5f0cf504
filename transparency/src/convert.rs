//! akd's field types to and from the columns of the transparency migration, checked both ways.
//!
//! akd's integers are `u64` and `u32`, Postgres has signed ones: a value that does not fit
//! is refused on the way in, a negative or out-of-range one on the way out. A label or
//! hash read back must have exactly its 32 bytes. Nothing here panics on stored data.

use crate::error::{corrupt, unstorable};
use akd::NodeLabel;
use akd::errors::StorageError;
use akd::storage::types::ValueStateRetrievalFlag;
use akd::tree_node::TreeNodeType;

/// The most bits a node label has (a leaf's label: `akd::LEAF_LEN`).
const MAX_LABEL_LEN: u32 = akd::LEAF_LEN;

/// An epoch, version or count for a bigint column.
pub(crate) fn to_bigint(value: u64, column: &str) -> Result<i64, StorageError> {
    i64::try_from(value).map_err(|_| unstorable(column, format_args!("{value} is beyond bigint")))
}

/// A bigint column back to akd's `u64`.
pub(crate) fn from_bigint(value: i64, column: &str) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| corrupt(column, format_args!("is negative ({value})")))
}

/// A label's bit length for an integer column.
pub(crate) fn to_label_len(len: u32, column: &str) -> Result<i32, StorageError> {
    i32::try_from(len)
        .ok()
        .filter(|_| len <= MAX_LABEL_LEN)
        .ok_or_else(|| unstorable(column, format_args!("a label of {len} bits")))
}

/// A node label from its two columns: `len` bits (0 to 256) in exactly 32 bytes.
pub(crate) fn label(len: i32, val: &[u8], column: &str) -> Result<NodeLabel, StorageError> {
    let len = u32::try_from(len)
        .ok()
        .filter(|len| *len <= MAX_LABEL_LEN)
        .ok_or_else(|| corrupt(column, format_args!("has a length of {len} bits")))?;
    Ok(NodeLabel::new(bytes32(val, column)?, len))
}

/// An optional node label (a child) from its two nullable columns: both or neither.
pub(crate) fn optional_label(
    len: Option<i32>,
    val: Option<&[u8]>,
    column: &str,
) -> Result<Option<NodeLabel>, StorageError> {
    match (len, val) {
        (Some(len), Some(val)) => label(len, val, column).map(Some),
        (None, None) => Ok(None),
        _ => Err(corrupt(column, "has a length without bytes or bytes without a length")),
    }
}

/// A hash or label value: exactly 32 bytes.
pub(crate) fn bytes32(val: &[u8], column: &str) -> Result<[u8; 32], StorageError> {
    <[u8; 32]>::try_from(val).map_err(|_| corrupt(column, format_args!("is {} bytes, not 32", val.len())))
}

/// akd's node type as the column stores it (akd's own numbering).
pub(crate) fn node_type_code(node_type: TreeNodeType) -> i16 {
    match node_type {
        TreeNodeType::Leaf => 1,
        TreeNodeType::Root => 2,
        TreeNodeType::Interior => 3,
    }
}

/// A stored node type. akd's own decoder makes anything unknown a leaf; here it is an error.
pub(crate) fn node_type(code: i16, column: &str) -> Result<TreeNodeType, StorageError> {
    match code {
        1 => Ok(TreeNodeType::Leaf),
        2 => Ok(TreeNodeType::Root),
        3 => Ok(TreeNodeType::Interior),
        other => Err(corrupt(column, format_args!("is {other}, not a node type"))),
    }
}

/// Which of a label's value states a retrieval flag asks for: the oldest or the newest in an
/// epoch range, optionally of one version. One shape for every flag, so that one query
/// (for one label or many) serves them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Selection {
    /// The first epoch to consider.
    pub from_epoch: i64,
    /// The last epoch to consider.
    pub to_epoch: i64,
    /// Only states of this version.
    pub version: Option<i64>,
    /// The newest state in the range, rather than the oldest.
    pub newest: bool,
}

impl Selection {
    /// The selection for `flag`; `None` when no stored state can match (an epoch or version
    /// beyond bigint was never stored).
    pub(crate) fn of(flag: ValueStateRetrievalFlag) -> Option<Selection> {
        let all = Selection { from_epoch: 0, to_epoch: i64::MAX, version: None, newest: false };
        Some(match flag {
            // The earliest epoch holding the version, as akd's in-memory storage answers.
            ValueStateRetrievalFlag::SpecificVersion(version) => {
                Selection { version: Some(i64::try_from(version).ok()?), ..all }
            }
            ValueStateRetrievalFlag::SpecificEpoch(epoch) => {
                let epoch = i64::try_from(epoch).ok()?;
                Selection { from_epoch: epoch, to_epoch: epoch, ..all }
            }
            ValueStateRetrievalFlag::LeqEpoch(epoch) => {
                Selection { to_epoch: i64::try_from(epoch).unwrap_or(i64::MAX), newest: true, ..all }
            }
            ValueStateRetrievalFlag::MaxEpoch => Selection { newest: true, ..all },
            ValueStateRetrievalFlag::MinEpoch => all,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // akd's StorageError has PartialEq only with its `public_tests` feature, so results are
    // compared through `.ok()` and errors by their message.

    /// The message of an `Other` error, or a panic.
    fn other<T: std::fmt::Debug>(result: Result<T, StorageError>) -> String {
        match result {
            Err(StorageError::Other(message)) => message,
            other => panic!("not StorageError::Other: {other:?}"),
        }
    }

    #[test]
    fn integers_beyond_the_columns_are_refused_both_ways() {
        assert_eq!(to_bigint(i64::MAX as u64, "t.c").ok(), Some(i64::MAX));
        assert!(other(to_bigint(i64::MAX as u64 + 1, "t.c")).contains("beyond bigint"));
        assert_eq!(from_bigint(7, "t.c").ok(), Some(7));
        assert!(other(from_bigint(-1, "t.c")).contains("t.c is negative"));
        assert_eq!(to_label_len(256, "t.c").ok(), Some(256));
        assert!(to_label_len(257, "t.c").is_err());
        assert!(to_label_len(u32::MAX, "t.c").is_err());
    }

    #[test]
    fn stored_labels_and_hashes_must_have_their_exact_shape() {
        let val = [7u8; 32];
        assert_eq!(label(256, &val, "t.c").ok(), Some(NodeLabel::new(val, 256)));
        assert_eq!(label(0, &val, "t.c").ok(), Some(NodeLabel::new(val, 0)));
        for (len, bytes) in [(257, &val[..]), (-1, &val[..]), (8, &val[..31]), (8, &[0u8; 33][..]), (8, &[][..])] {
            assert!(other(label(len, bytes, "t.c")).starts_with("corrupt row: t.c "), "{len} {}", bytes.len());
        }
        assert_eq!(optional_label(None, None, "t.c").ok(), Some(None));
        assert!(optional_label(Some(8), None, "t.c").is_err());
        assert!(optional_label(None, Some(&val), "t.c").is_err());
        assert_eq!(other(bytes32(&val[..31], "t.h")), "corrupt row: t.h is 31 bytes, not 32");
    }

    #[test]
    fn node_types_round_trip_and_unknown_codes_are_errors() {
        for node_type_value in [TreeNodeType::Leaf, TreeNodeType::Root, TreeNodeType::Interior] {
            assert_eq!(node_type(node_type_code(node_type_value), "t.c").ok(), Some(node_type_value));
        }
        for code in [0, 4, -1, i16::MAX] {
            assert!(node_type(code, "t.c").is_err(), "{code}");
        }
    }

    #[test]
    fn every_retrieval_flag_is_an_epoch_range_with_an_end() {
        use ValueStateRetrievalFlag as F;
        let all = Selection { from_epoch: 0, to_epoch: i64::MAX, version: None, newest: false };
        let cases = [
            (F::MinEpoch, Some(all)),
            (F::MaxEpoch, Some(Selection { newest: true, ..all })),
            (F::SpecificEpoch(5), Some(Selection { from_epoch: 5, to_epoch: 5, ..all })),
            (F::SpecificVersion(3), Some(Selection { version: Some(3), ..all })),
            (F::LeqEpoch(9), Some(Selection { to_epoch: 9, newest: true, ..all })),
            (F::LeqEpoch(u64::MAX), Some(Selection { newest: true, ..all })),
            (F::SpecificEpoch(u64::MAX), None),
            (F::SpecificVersion(u64::MAX), None),
        ];
        for (flag, expected) in cases {
            assert_eq!(Selection::of(flag), expected, "{flag:?}");
        }
    }
}
