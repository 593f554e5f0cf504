//! The epoch log: an RFC 6962 (RFC 9162 section 2.1) Merkle tree whose leaves are keydir's epochs.
//!
//! Hashing is RFC 6962's with SHA-256: a leaf hash is `SHA-256(0x00 || leaf)`, an inner node
//! `SHA-256(0x01 || left || right)`, the empty tree `SHA-256("")`. A leaf is [`EpochLeaf`]:
//! the epoch number and akd's root hash of that epoch.
//!
//! keydir keeps the leaf hashes (in Postgres) and loads them into an [`EpochLog`], which keeps
//! the hashes of every complete subtree (about two hashes per leaf) so that roots and proofs for
//! any sizes cost O(log² n) hashes. Clients and auditors check proofs with [`verify_inclusion`]
//! and [`verify_consistency`] (in `proof.rs`).
//!
//! Why not a crate: `ct-merkle` 0.3 (the closest fit) builds proofs only from its own
//! memory-backed tree of leaf *values* (or its own node numbering, which would make keydir store
//! every inner node in that layout), and cannot prove sizes older than its current one without
//! keeping them; what keydir has is a list of leaf hashes. The code here is the RFC's recursive
//! definition (`MTH`, `PATH`, `SUBPROOF`) over that list; the tests check it against
//! transparency-dev/merkle's vectors and `ct-merkle`'s verifier.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

/// A SHA-256 hash in the epoch log: a leaf hash, an inner node or a root.
pub type LogHash = [u8; 32];

/// The root of the empty log: `SHA-256("")` (RFC 6962 section 2.1).
pub const EMPTY_ROOT: LogHash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
    0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The leaf hash of arbitrary leaf bytes: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> LogHash {
    Sha256::new().chain_update([0x00]).chain_update(leaf).finalize().into()
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &LogHash, right: &LogHash) -> LogHash {
    Sha256::new().chain_update([0x01]).chain_update(left).chain_update(right).finalize().into()
}

/// One leaf of the epoch log: an epoch of akd's map and akd's root hash after it.
///
/// Encoded as 56 bytes: the ASCII domain string `keyward/epoch/v1` (16 bytes), the epoch as a
/// big-endian u64 (8 bytes), akd's root hash (32 bytes). Its leaf hash is
/// `SHA-256(0x00 || those 56 bytes)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochLeaf {
    /// The akd epoch.
    pub epoch: u64,
    /// akd's root hash of the map after that epoch.
    pub akd_root: [u8; 32],
}

impl EpochLeaf {
    /// The domain string that starts every encoded leaf.
    pub const DOMAIN: &'static [u8; 16] = b"keyward/epoch/v1";
    /// The length of an encoded leaf.
    pub const LEN: usize = 56;

    /// The 56 byte encoding.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..16].copy_from_slice(Self::DOMAIN);
        out[16..24].copy_from_slice(&self.epoch.to_be_bytes());
        out[24..].copy_from_slice(&self.akd_root);
        out
    }

    /// The RFC 6962 leaf hash of the encoding, as keydir stores it.
    pub fn hash(&self) -> LogHash {
        leaf_hash(&self.encode())
    }
}

/// The epoch log in memory: every leaf hash and the hash of every complete, aligned subtree.
///
/// `levels[h][j]` is the hash of leaves `j·2^h .. (j+1)·2^h`; about `2n` hashes (64 MB for a
/// million epochs). Appending costs O(log n) hashes; any root or proof O(log² n).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochLog {
    levels: Vec<Vec<LogHash>>,
}

impl EpochLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log holding these leaf hashes, in order (as loaded from storage).
    pub fn from_leaf_hashes<I: IntoIterator<Item = LogHash>>(leaf_hashes: I) -> Self {
        let mut log = Self::new();
        for hash in leaf_hashes {
            log.push(hash);
        }
        log
    }

    /// Appends a leaf hash (an [`EpochLeaf::hash`]).
    pub fn push(&mut self, leaf_hash: LogHash) {
        let mut hash = leaf_hash;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            if row.len() % 2 == 1 {
                return;
            }
            hash = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Whether the log has no leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Result<LogHash> {
        self.levels
            .first()
            .and_then(|leaves| leaves.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(Error::LogRange { what: "leaf index", len: self.len() })
    }

    /// The root of the first `size` leaves (`MTH(D[0:size])`).
    pub fn root(&self, size: u64) -> Result<LogHash> {
        self.check_size(size, "size")?;
        Ok(if size == 0 { EMPTY_ROOT } else { self.subtree(0, size) })
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves
    /// (`PATH(index, D[0:size])`, RFC 6962 section 2.1.1), from the leaf up.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<LogHash>> {
        self.check_size(size, "size")?;
        if index >= size {
            return Err(Error::LogRange { what: "leaf index", len: self.len() });
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof);
        Ok(proof)
    }

    /// The consistency proof between the trees of the first `old` and the first `new` leaves
    /// (`PROOF(old, D[0:new])`, RFC 6962 section 2.1.2); `0 < old <= new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<LogHash>> {
        self.check_size(new, "new size")?;
        if old == 0 || old > new {
            return Err(Error::LogRange { what: "old size", len: self.len() });
        }
        let mut proof = Vec::new();
        self.subproof(old, 0, new, true, &mut proof);
        Ok(proof)
    }

    fn check_size(&self, size: u64, what: &'static str) -> Result<()> {
        if size > self.len() { Err(Error::LogRange { what, len: self.len() }) } else { Ok(()) }
    }

    /// `MTH(D[lo:hi])` for `lo < hi <= len`, where `lo` is a multiple of the largest power of two
    /// below `hi - lo` (true of every subtree the RFC's recursions visit).
    fn subtree(&self, lo: u64, hi: u64) -> LogHash {
        let n = hi - lo;
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            let level = n.trailing_zeros() as usize;
            // In range: a complete aligned subtree below `len` is always stored.
            return self.levels[level][(lo >> level) as usize];
        }
        let k = split(n);
        node_hash(&self.subtree(lo, lo + k), &self.subtree(lo + k, hi))
    }

    /// `PATH(m, D[lo:hi])`, appended to `out` from the leaf up.
    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<LogHash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, lo, lo + k, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.path(m - k, lo + k, hi, out);
            out.push(self.subtree(lo, lo + k));
        }
    }

    /// `SUBPROOF(m, D[lo:hi], b)`, appended to `out`.
    fn subproof(&self, m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<LogHash>) {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(self.subtree(lo, hi));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, lo, lo + k, whole, out);
            out.push(self.subtree(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.subtree(lo, lo + k));
        }
    }
}

/// The largest power of two smaller than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eight leaves of RFC 6962's reference tests (transparency-dev/merkle, `testonly`).
    pub(crate) const RFC_LEAVES: [&str; 8] =
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

    pub(crate) fn rfc_log() -> EpochLog {
        EpochLog::from_leaf_hashes(RFC_LEAVES.iter().map(|l| leaf_hash(&hex::decode(l).expect("hex"))))
    }

    fn hexes(proof: &[LogHash]) -> Vec<String> {
        proof.iter().map(hex::encode).collect()
    }

    #[test]
    fn hashes_match_rfc6962_vectors() {
        // transparency-dev/merkle rfc6962/rfc6962_test.go
        assert_eq!(hex::encode(EMPTY_ROOT), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex::encode(leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
        assert_eq!(
            hex::encode(leaf_hash(b"L123456")),
            "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
        );
        // HashChildren takes byte strings of any length; ours takes hashes, so build the same input.
        let node: LogHash = Sha256::new().chain_update([1u8]).chain_update(b"N123N456").finalize().into();
        assert_eq!(hex::encode(node), "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb");
    }

    #[test]
    fn root_of_eight_reference_leaves() {
        let log = rfc_log();
        assert_eq!(
            hex::encode(log.root(8).expect("root")),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
        assert_eq!(log.root(1).expect("root"), leaf_hash(b""));
        assert_eq!(log.root(0).expect("root"), EMPTY_ROOT);
    }

    #[test]
    fn inclusion_proofs_match_reference_vectors() {
        // transparency-dev/merkle testonly/reference_test.go, as copied by ct-merkle's tests.
        let log = rfc_log();
        assert!(log.inclusion_proof(0, 1).expect("proof").is_empty());
        assert_eq!(
            hexes(&log.inclusion_proof(1, 5).expect("proof")),
            [
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]
        );
        assert_eq!(
            hexes(&log.inclusion_proof(5, 8).expect("proof")),
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]
        );
    }

    #[test]
    fn consistency_proofs_match_reference_vectors() {
        let log = rfc_log();
        assert_eq!(
            hexes(&log.consistency_proof(1, 8).expect("proof")),
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
        assert_eq!(
            hexes(&log.consistency_proof(6, 8).expect("proof")),
            [
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]
        );
        assert_eq!(
            hexes(&log.consistency_proof(2, 5).expect("proof")),
            [
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]
        );
        assert!(log.consistency_proof(8, 8).expect("proof").is_empty());
    }

    #[test]
    fn out_of_range_requests_are_errors() {
        let log = rfc_log();
        assert!(matches!(log.root(9), Err(Error::LogRange { .. })));
        assert!(matches!(log.inclusion_proof(8, 8), Err(Error::LogRange { .. })));
        assert!(matches!(log.inclusion_proof(0, 9), Err(Error::LogRange { .. })));
        assert!(matches!(log.consistency_proof(0, 8), Err(Error::LogRange { .. })));
        assert!(matches!(log.consistency_proof(5, 4), Err(Error::LogRange { .. })));
        assert!(matches!(log.consistency_proof(1, 9), Err(Error::LogRange { .. })));
        assert!(matches!(log.leaf(8), Err(Error::LogRange { .. })));
        assert!(matches!(EpochLog::new().root(0), Ok(EMPTY_ROOT)));
    }

    #[test]
    fn roots_of_every_prefix_match_a_naive_computation() {
        fn naive(leaves: &[LogHash]) -> LogHash {
            match leaves.len() {
                0 => EMPTY_ROOT,
                1 => leaves[0],
                n => {
                    let k = split(n as u64) as usize;
                    node_hash(&naive(&leaves[..k]), &naive(&leaves[k..]))
                }
            }
        }
        let leaves: Vec<LogHash> = (0..70u64).map(|e| EpochLeaf { epoch: e, akd_root: [e as u8; 32] }.hash()).collect();
        let log = EpochLog::from_leaf_hashes(leaves.iter().copied());
        for n in 0..=70 {
            assert_eq!(log.root(n).expect("root"), naive(&leaves[..n as usize]), "size {n}");
        }
    }

    #[test]
    fn epoch_leaf_encoding() {
        let leaf = EpochLeaf { epoch: 0x0102_0304_0506_0708, akd_root: [0xaa; 32] };
        let bytes = leaf.encode();
        assert_eq!(&bytes[..16], b"keyward/epoch/v1");
        assert_eq!(bytes[16..24], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(bytes[24..], [0xaa; 32]);
        assert_eq!(leaf.hash(), leaf_hash(&bytes));
        // The vector written out in docs/protocol.md section 15.2.
        let doc = EpochLeaf { epoch: 1, akd_root: [0x11; 32] };
        assert_eq!(hex::encode(doc.hash()), DOC_LEAF_HASH);
    }

    /// The leaf hash of epoch 1 with an akd root of 32 bytes 0x11 (written out in the spec).
    const DOC_LEAF_HASH: &str = "f6928cf39fcfdbe3a5ca28c57bff813b31cc48bcf32b8766193aaa4bb2d00c78";
}
