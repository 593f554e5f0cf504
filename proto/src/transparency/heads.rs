//! Signed epoch heads: the append-only log of epoch roots, C2SP checkpoints and auditor cosignatures.
//!
//! keydir appends each akd epoch (its number and akd's root hash) as a leaf of an RFC 6962 log
//! ([`log`]), signs a C2SP checkpoint of the log ([`checkpoint`]) as a C2SP signed note
//! ([`note`]), and serves inclusion and consistency proofs ([`proof`] checks them). Auditors
//! countersign heads they have verified (C2SP tlog-cosignature/v1, [`cosignature`]); clients
//! require fresh cosignatures, never accept a head that does not extend the one they stored, and
//! gossip a 45 byte summary of their newest head in sealed messages ([`gossip`]).
//! `docs/protocol.md` section 15.2 specifies every format byte by byte, with test vectors.

pub mod checkpoint;
pub mod cosignature;
pub mod gossip;
pub mod log;
pub mod note;
pub mod proof;
#[cfg(test)]
mod vectors;

pub use checkpoint::{Head, VerifiedHead};
pub use cosignature::CosignaturePolicy;
pub use gossip::{Comparison, HeadSummary};
pub use log::{EpochLeaf, EpochLog, LogHash};
pub use note::{KeyType, NoteSigner, SignedNote, VerifierKey};
pub use proof::{verify_consistency, verify_inclusion};
