//! Key transparency's wire formats: what keydir commits to in its verifiable map, and the signed heads that chain its epochs.
//!
//! The map itself is akd's (keydir keeps it, `keyward-transparency` stores it); this
//! module holds the parts that are keyward's own and that the client, keydir and the
//! auditor must agree on byte for byte: the [`value`]s a label (a bare JID) can hold, and
//! the [`heads`]: the log of epoch roots, its C2SP checkpoints signed by keydir and
//! countersigned by auditors. Pure code, no I/O, like the rest of this crate.

pub mod check;
pub mod heads;
pub mod lookup;
pub mod value;
