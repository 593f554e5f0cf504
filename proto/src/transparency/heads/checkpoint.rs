//! keyward's epoch head: a C2SP checkpoint (<https://c2sp.org/tlog-checkpoint>) of the epoch
//! log, with one extension line naming the newest epoch and akd's root after it.
//!
//! The note text is exactly four lines:
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <root hash, base64>
//! keyward-epoch <epoch, decimal> <akd root hash, base64>
//! ```
//!
//! keydir signs it with its Ed25519 note key (type `0x01`); auditors cosign it. A client that
//! trusts a head verifies akd's lookup proofs against the akd root it names, after checking with
//! [`Head::check_last_leaf`] that the line is the log's last leaf.

use super::cosignature::CosignaturePolicy;
use super::log::{EpochLeaf, LogHash};
use super::note::{NoteSigner, SignedNote, VerifierKey};
use super::proof::{verify_consistency, verify_inclusion};
use crate::codec::b64;
use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The keyword of keyward's extension line.
pub const EPOCH_LINE: &str = "keyward-epoch";
/// The longest origin accepted, in bytes.
pub const MAX_ORIGIN_BYTES: usize = 255;

/// A signed epoch head: the epoch log's size and root, and its last leaf (the newest epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    origin: String,
    size: u64,
    root: LogHash,
    last: EpochLeaf,
}

impl Head {
    /// A head of the log `origin` (e.g. `keyward/<directory name>`, from configuration) of `size`
    /// leaves (at least one) with root `root`, whose last leaf is `last`.
    pub fn new(origin: &str, size: u64, root: LogHash, last: EpochLeaf) -> Result<Self> {
        check_origin(origin)?;
        if size == 0 {
            return Err(Error::Checkpoint("a head names at least one epoch"));
        }
        Ok(Self { origin: origin.to_owned(), size, root, last })
    }

    /// The log's origin (the checkpoint's first line).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The number of leaves (epochs) in the log.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The log's root hash at this size.
    pub fn root(&self) -> &LogHash {
        &self.root
    }

    /// The newest epoch and akd's root after it (the extension line).
    pub fn last_leaf(&self) -> &EpochLeaf {
        &self.last
    }

    /// The checkpoint's note text.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n{EPOCH_LINE} {} {}\n",
            self.origin,
            self.size,
            b64(&self.root),
            self.last.epoch,
            b64(&self.last.akd_root)
        )
    }

    /// Parses a checkpoint's note text, strictly: exactly the four lines above, canonical decimal
    /// numbers (no sign, no leading zeros), canonical padded base64 of 32 bytes.
    pub fn from_text(text: &str) -> Result<Self> {
        let body = text.strip_suffix('\n').ok_or(Error::Checkpoint("the text ends in a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, extension] = lines.as_slice() else {
            return Err(Error::Checkpoint("a head has four lines"));
        };
        let (keyword, epoch, akd_root) = match extension.split(' ').collect::<Vec<_>>().as_slice() {
            [keyword, epoch, akd_root] => (*keyword, *epoch, *akd_root),
            _ => return Err(Error::Checkpoint("the epoch line has three fields")),
        };
        if keyword != EPOCH_LINE {
            return Err(Error::Checkpoint("the fourth line is not keyward's epoch line"));
        }
        let last = EpochLeaf { epoch: decimal(epoch)?, akd_root: hash(akd_root)? };
        Self::new(origin, decimal(size)?, hash(root)?, last)
    }

    /// Signs the head as keydir (a type `0x01` key).
    pub fn sign(&self, signer: &NoteSigner) -> Result<SignedNote> {
        SignedNote::sign(&self.to_text(), signer)
    }

    /// Parses a signed head of the log `origin` and checks keydir's signature with `log_key`.
    pub fn open(note: &[u8], origin: &str, log_key: &VerifierKey) -> Result<(Self, SignedNote)> {
        let note = SignedNote::parse(note)?;
        note.verify_by(log_key)?;
        let head = Self::from_text(note.text())?;
        if head.origin != origin {
            return Err(Error::Origin);
        }
        Ok((head, note))
    }

    /// Checks that the extension line is the log's last leaf: `proof` is the inclusion proof of
    /// leaf `size - 1` in this head's tree.
    pub fn check_last_leaf(&self, proof: &[LogHash]) -> Result<()> {
        verify_inclusion(self.size - 1, self.size, &self.last.hash(), proof, &self.root)
            .map_err(|_| Error::HeadMismatch)
    }

    /// Checks that `self` extends `older`, the head stored before: same origin, not smaller
    /// ([`Error::Rollback`]), same root at the same size ([`Error::Fork`]: keep both signed heads
    /// as evidence), otherwise consistent by `proof` (from `older.size` to `self.size`).
    pub fn check_extends(&self, older: &Head, proof: &[LogHash]) -> Result<()> {
        if self.origin != older.origin {
            return Err(Error::Origin);
        }
        if self.size < older.size {
            return Err(Error::Rollback);
        }
        if self.size == older.size && self.root != older.root {
            return Err(Error::Fork);
        }
        verify_consistency(older.size, self.size, &older.root, &self.root, proof)
    }
}

/// A head a client may use: keydir's signature, the extension line against the log and the
/// auditors' cosignatures all checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedHead {
    /// The head.
    pub head: Head,
    /// The signed note as received (keep it: it is evidence if the directory forks).
    pub note: SignedNote,
    /// The auditors whose fresh cosignatures counted, with their times, newest first.
    pub cosigners: Vec<(String, u64)>,
}

impl VerifiedHead {
    /// Every check of a head served to a client, in order: parse, keydir's signature, the origin,
    /// the extension line against the log (`last_leaf_proof`: inclusion of leaf `size - 1`), then
    /// the cosignature policy at time `now` (seconds since the Unix epoch). Consistency with the
    /// head stored before is the caller's next step ([`Head::check_extends`]).
    pub fn check(
        note: &[u8],
        origin: &str,
        log_key: &VerifierKey,
        last_leaf_proof: &[LogHash],
        policy: &CosignaturePolicy,
        now: u64,
    ) -> Result<Self> {
        let (head, note) = Head::open(note, origin, log_key)?;
        head.check_last_leaf(last_leaf_proof)?;
        let cosigners = policy.check(&note, now)?;
        Ok(Self { head, note, cosigners })
    }
}

/// Checks an origin: 1 to 255 bytes of printable ASCII without spaces or `+` (so it can also be
/// keydir's key name, as the checkpoint specification recommends).
pub fn check_origin(origin: &str) -> Result<()> {
    if origin.is_empty() || origin.len() > MAX_ORIGIN_BYTES {
        return Err(Error::Checkpoint("origin empty or too long"));
    }
    if !origin.bytes().all(|b| b.is_ascii_graphic() && b != b'+') {
        return Err(Error::Checkpoint("origin outside printable ASCII, or with '+'"));
    }
    Ok(())
}

/// A canonical decimal u64: digits only, no leading zero (except `0` itself).
fn decimal(text: &str) -> Result<u64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(Error::Checkpoint("a number is not canonical decimal"));
    }
    text.parse().map_err(|_| Error::Checkpoint("a number is larger than 64 bits"))
}

/// Canonical padded base64 of a 32 byte hash.
fn hash(text: &str) -> Result<LogHash> {
    let bytes = STANDARD.decode(text).map_err(|_| Error::Checkpoint("a hash is not base64"))?;
    let hash = LogHash::try_from(bytes.as_slice()).map_err(|_| Error::Checkpoint("a hash is 32 bytes"))?;
    if b64(&hash) != text {
        return Err(Error::Checkpoint("a hash is not canonical base64"));
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::super::log::EpochLog;
    use super::super::note::KeyType;
    use super::*;

    const ORIGIN: &str = "keyward/example.org";

    fn signer() -> NoteSigner {
        NoteSigner::new(ORIGIN, KeyType::Ed25519, &[0x5e; 32]).expect("signer")
    }

    fn log_of(n: u64) -> (EpochLog, Vec<EpochLeaf>) {
        let leaves: Vec<EpochLeaf> = (1..=n).map(|e| EpochLeaf { epoch: e, akd_root: [e as u8; 32] }).collect();
        (EpochLog::from_leaf_hashes(leaves.iter().map(EpochLeaf::hash)), leaves)
    }

    fn head_of(log: &EpochLog, leaves: &[EpochLeaf], size: u64) -> Head {
        Head::new(ORIGIN, size, log.root(size).expect("root"), leaves[size as usize - 1]).expect("head")
    }

    #[test]
    fn text_round_trip() {
        let head = Head::new(ORIGIN, 3, [0xab; 32], EpochLeaf { epoch: 17, akd_root: [0xcd; 32] }).expect("head");
        let text = head.to_text();
        assert_eq!(
            text,
            "keyward/example.org\n3\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\nkeyward-epoch 17 zc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc0=\n"
        );
        assert_eq!(Head::from_text(&text), Ok(head));
    }

    #[test]
    fn non_canonical_texts_are_refused() {
        let good =
            Head::new(ORIGIN, 3, [0xab; 32], EpochLeaf { epoch: 17, akd_root: [0xcd; 32] }).expect("head").to_text();
        let root = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
        let cases = [
            good.replace("\n3\n", "\n03\n"),
            good.replace("\n3\n", "\n+3\n"),
            good.replace("\n3\n", "\n-3\n"),
            good.replace("\n3\n", "\n 3\n"),
            good.replace("\n3\n", "\n0\n"),
            good.replace("\n3\n", "\n18446744073709551616\n"),
            good.replace(" 17 ", " 017 "),
            good.replace(" 17 ", " +17 "),
            good.replace(" 17 ", "  17 "),
            good.replace(root, "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6t="), // non-zero padding bits
            good.replace(root, "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s"),  // no padding
            good.replace(root, "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urqw=="), // 33 bytes
            good.replace(root, "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s!"),
            good.replace("keyward-epoch", "keyward-epochs"),
            good.replace("keyward/example.org", "keyward/exa mple.org"),
            good.replace("keyward/example.org", ""),
            good.trim_end_matches('\n').to_owned(),
            format!("{good}extra line\n"),
            good.lines().take(3).map(|l| format!("{l}\n")).collect(),
            good.replace('\n', "\r\n"),
        ];
        for (i, text) in cases.iter().enumerate() {
            assert!(matches!(Head::from_text(text), Err(Error::Checkpoint(_))), "case {i}: {text:?}");
        }
        assert_eq!(Head::from_text(&good.replace("\n3\n", "\n18446744073709551615\n")).map(|h| h.size()), Ok(u64::MAX));
    }

    proptest::proptest! {
        /// Every head prints and parses back to itself.
        #[test]
        fn text_round_trips(size in 1u64.., root in proptest::prelude::any::<[u8; 32]>(), epoch in proptest::prelude::any::<u64>(), akd_root in proptest::prelude::any::<[u8; 32]>()) {
            let head = Head::new(ORIGIN, size, root, EpochLeaf { epoch, akd_root }).expect("head");
            proptest::prop_assert_eq!(Head::from_text(&head.to_text()), Ok(head));
        }

        /// A valid text with one character replaced is refused, or is the canonical text of the
        /// head it parses into (so no two texts parse into one head).
        #[test]
        fn accepted_texts_are_canonical(at in 0usize..200, c in proptest::sample::select(vec!['0', '1', '+', '-', ' ', '=', 'A', '/', '\n', 'k', '\r'])) {
            let text = Head::new(ORIGIN, 1000, [7; 32], EpochLeaf { epoch: 20, akd_root: [9; 32] }).expect("head").to_text();
            let mut chars: Vec<char> = text.chars().collect();
            let at = at % chars.len();
            chars[at] = c;
            let changed: String = chars.into_iter().collect();
            if let Ok(head) = Head::from_text(&changed) {
                proptest::prop_assert_eq!(head.to_text(), changed);
            }
        }
    }

    #[test]
    fn signed_head_opens_and_its_epoch_line_is_checked() {
        let (log, leaves) = log_of(11);
        let head = head_of(&log, &leaves, 11);
        let note = head.sign(&signer()).expect("sign").encode();
        let (opened, _) = Head::open(note.as_bytes(), ORIGIN, signer().verifier()).expect("opens");
        assert_eq!(opened, head);
        opened.check_last_leaf(&log.inclusion_proof(10, 11).expect("proof")).expect("last leaf");
        // Another origin, another key, a tampered note.
        assert_eq!(Head::open(note.as_bytes(), "keyward/other", signer().verifier()), Err(Error::Origin));
        let other = NoteSigner::new(ORIGIN, KeyType::Ed25519, &[0x5f; 32]).expect("signer");
        assert!(matches!(Head::open(note.as_bytes(), ORIGIN, other.verifier()), Err(Error::Unsigned { .. })));
        let tampered = note.replace("\n11\n", "\n12\n");
        assert!(matches!(
            Head::open(tampered.as_bytes(), ORIGIN, signer().verifier()),
            Err(Error::NoteSignature { .. })
        ));
    }

    #[test]
    fn an_epoch_line_that_is_not_the_last_leaf_is_caught() {
        let (log, leaves) = log_of(11);
        let proof = log.inclusion_proof(10, 11).expect("proof");
        // keydir signs a head whose line names an older epoch (or another akd root).
        for wrong in [leaves[9], EpochLeaf { epoch: 11, akd_root: [0; 32] }] {
            let head = Head::new(ORIGIN, 11, log.root(11).expect("root"), wrong).expect("head");
            assert_eq!(head.check_last_leaf(&proof), Err(Error::HeadMismatch));
        }
        // A proof of another leaf does not do.
        let head = head_of(&log, &leaves, 11);
        assert_eq!(head.check_last_leaf(&log.inclusion_proof(9, 11).expect("proof")), Err(Error::HeadMismatch));
    }

    #[test]
    fn heads_extend_by_consistency_and_a_fork_is_caught() {
        let (log, leaves) = log_of(20);
        let (old, new) = (head_of(&log, &leaves, 7), head_of(&log, &leaves, 20));
        new.check_extends(&old, &log.consistency_proof(7, 20).expect("proof")).expect("consistent");
        // A forked log: the same first 6 epochs, another 7th.
        let mut forked_leaves = leaves.clone();
        forked_leaves[6].akd_root = [0xff; 32];
        let forked = EpochLog::from_leaf_hashes(forked_leaves.iter().map(EpochLeaf::hash));
        let fork_head = head_of(&forked, &forked_leaves, 20);
        assert!(fork_head.check_extends(&old, &forked.consistency_proof(7, 20).expect("proof")).is_err());
        assert!(fork_head.check_extends(&old, &log.consistency_proof(7, 20).expect("proof")).is_err());
        // Rolled back: the older head cannot extend the newer.
        assert_eq!(old.check_extends(&new, &[]), Err(Error::Rollback));
        // Same size, another root.
        let fork_at_7 = head_of(&forked, &forked_leaves, 7);
        assert_eq!(fork_at_7.check_extends(&old, &[]), Err(Error::Fork));
        new.check_extends(&new, &[]).expect("a head extends itself");
        let elsewhere = Head::new("keyward/other", 7, *old.root(), *old.last_leaf()).expect("head");
        assert_eq!(new.check_extends(&elsewhere, &[]), Err(Error::Origin));
    }

    #[test]
    fn verified_head_runs_every_check() {
        let (log, leaves) = log_of(5);
        let head = head_of(&log, &leaves, 5);
        let auditor = NoteSigner::new("auditor.example", KeyType::Cosignature, &[0xa0; 32]).expect("signer");
        let mut note = head.sign(&signer()).expect("sign");
        note.add_signature(super::super::cosignature::cosign(&auditor, &note, 1_000).expect("cosign")).expect("room");
        let bytes = note.encode();
        let policy = CosignaturePolicy { auditors: vec![auditor.verifier().clone()], required: 1, max_age_secs: 600 };
        let proof = log.inclusion_proof(4, 5).expect("proof");
        let verified = VerifiedHead::check(bytes.as_bytes(), ORIGIN, signer().verifier(), &proof, &policy, 1_200)
            .expect("verified");
        assert_eq!(verified.head, head);
        assert_eq!(verified.cosigners, [("auditor.example".to_owned(), 1_000)]);
        assert_eq!(
            VerifiedHead::check(bytes.as_bytes(), ORIGIN, signer().verifier(), &proof, &policy, 1_601),
            Err(Error::Cosignatures { valid: 0, required: 1 })
        );
        assert_eq!(
            VerifiedHead::check(bytes.as_bytes(), ORIGIN, signer().verifier(), &proof[1..], &policy, 1_200),
            Err(Error::HeadMismatch)
        );
    }
}
