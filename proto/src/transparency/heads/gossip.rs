//! The gossip form of a head: 45 bytes a client carries in the messages it seals, so that two
//! users who talk compare the heads their directories showed them.
//!
//! Layout: version `0x01` (1 byte), origin tag (4 bytes: `SHA-256(origin)[:4]`, so heads of
//! different directories are not compared), tree size (big-endian u64, 8 bytes), root hash
//! (32 bytes). Nothing in it is trusted: a summary only tells whether to fetch a consistency
//! proof, or that two signed heads disagree.

use super::checkpoint::Head;
use super::log::LogHash;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

/// The encoded length.
pub const GOSSIP_LEN: usize = 45;
/// The version byte of this layout.
pub const GOSSIP_VERSION: u8 = 0x01;

/// A head reduced to what two clients compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadSummary {
    /// `SHA-256(origin)[:4]`.
    pub origin_tag: [u8; 4],
    /// The log's size.
    pub size: u64,
    /// The log's root at that size.
    pub root: LogHash,
}

/// What a received summary says about one's own head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// The same head.
    Same,
    /// A head of another directory: nothing to compare.
    OtherDirectory,
    /// Mine is older: fetch a consistency proof from my size to theirs (then theirs is newest).
    MineOlder,
    /// Mine is newer: theirs should be proven consistent with mine (they will see it as
    /// `MineOlder` when they read my summary).
    MineNewer,
    /// Same size, different roots: the directory showed two logs. Keep both signed heads as
    /// evidence and alarm.
    Fork,
}

impl HeadSummary {
    /// The summary of a head.
    pub fn of(head: &Head) -> Self {
        Self { origin_tag: origin_tag(head.origin()), size: head.size(), root: *head.root() }
    }

    /// The 45 byte encoding.
    pub fn encode(&self) -> [u8; GOSSIP_LEN] {
        let mut out = [0u8; GOSSIP_LEN];
        out[0] = GOSSIP_VERSION;
        out[1..5].copy_from_slice(&self.origin_tag);
        out[5..13].copy_from_slice(&self.size.to_be_bytes());
        out[13..].copy_from_slice(&self.root);
        out
    }

    /// Parses the 45 byte encoding.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let bytes: &[u8; GOSSIP_LEN] = bytes.try_into().map_err(|_| Error::Length {
            field: "head summary",
            expected: GOSSIP_LEN,
            actual: bytes.len(),
        })?;
        if bytes[0] != GOSSIP_VERSION {
            return Err(Error::Gossip("unknown version"));
        }
        let (tag, rest) = bytes[1..].split_at(4);
        let (size, root) = rest.split_at(8);
        let summary = Self {
            origin_tag: tag.try_into().map_err(|_| Error::Gossip("origin tag"))?,
            size: u64::from_be_bytes(size.try_into().map_err(|_| Error::Gossip("size"))?),
            root: root.try_into().map_err(|_| Error::Gossip("root"))?,
        };
        if summary.size == 0 {
            return Err(Error::Gossip("a head names at least one epoch"));
        }
        Ok(summary)
    }

    /// Compares my summary (`self`) with one received.
    pub fn compare(&self, theirs: &HeadSummary) -> Comparison {
        use core::cmp::Ordering;
        if self.origin_tag != theirs.origin_tag {
            return Comparison::OtherDirectory;
        }
        match self.size.cmp(&theirs.size) {
            Ordering::Less => Comparison::MineOlder,
            Ordering::Greater => Comparison::MineNewer,
            Ordering::Equal if self.root == theirs.root => Comparison::Same,
            Ordering::Equal => Comparison::Fork,
        }
    }
}

/// `SHA-256(origin)[:4]`.
pub fn origin_tag(origin: &str) -> [u8; 4] {
    let digest = Sha256::digest(origin.as_bytes());
    [digest[0], digest[1], digest[2], digest[3]]
}

#[cfg(test)]
mod tests {
    use super::super::log::EpochLeaf;
    use super::*;

    fn head(origin: &str, size: u64, root: u8) -> Head {
        Head::new(origin, size, [root; 32], EpochLeaf { epoch: size, akd_root: [0; 32] }).expect("head")
    }

    #[test]
    fn encoding_round_trip_and_layout() {
        let summary = HeadSummary::of(&head("keyward/example.org", 258, 0x22));
        let bytes = summary.encode();
        assert_eq!(bytes.len(), GOSSIP_LEN);
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[1..5], origin_tag("keyward/example.org"));
        assert_eq!(bytes[5..13], [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(bytes[13..], [0x22; 32]);
        assert_eq!(HeadSummary::parse(&bytes), Ok(summary));
        // The origin tag written out in the spec.
        assert_eq!(hex::encode(origin_tag("keyward/example.org")), DOC_TAG);
    }

    /// `SHA-256("keyward/example.org")[:4]`, as the spec writes it.
    const DOC_TAG: &str = "6b3222c0";

    #[test]
    fn malformed_summaries_are_refused() {
        let bytes = HeadSummary::of(&head("keyward/example.org", 3, 1)).encode();
        assert!(matches!(HeadSummary::parse(&bytes[..44]), Err(Error::Length { .. })));
        assert!(matches!(HeadSummary::parse(&[bytes.as_slice(), &[0]].concat()), Err(Error::Length { .. })));
        let mut other = bytes;
        other[0] = 2;
        assert_eq!(HeadSummary::parse(&other), Err(Error::Gossip("unknown version")));
        let mut empty = bytes;
        empty[5..13].fill(0);
        assert!(matches!(HeadSummary::parse(&empty), Err(Error::Gossip(_))));
    }

    #[test]
    fn comparisons() {
        let o = "keyward/example.org";
        let mine = HeadSummary::of(&head(o, 10, 1));
        assert_eq!(mine.compare(&HeadSummary::of(&head(o, 10, 1))), Comparison::Same);
        assert_eq!(mine.compare(&HeadSummary::of(&head(o, 10, 2))), Comparison::Fork);
        assert_eq!(mine.compare(&HeadSummary::of(&head(o, 11, 2))), Comparison::MineOlder);
        assert_eq!(mine.compare(&HeadSummary::of(&head(o, 9, 2))), Comparison::MineNewer);
        assert_eq!(mine.compare(&HeadSummary::of(&head("keyward/other.org", 10, 2))), Comparison::OtherDirectory);
    }
}
