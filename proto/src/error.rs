//! The one error type of `keyward-proto`: every failure to parse, verify or decrypt.

use thiserror::Error;

/// Everything that can go wrong in keyward's wire formats and cryptography.
///
/// Every variant is a refusal: nothing that produced an error may be shown or
/// stored as if it were valid. Messages never contain secret material.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// A JID was empty, too long, or contained characters a JID may not hold.
    #[error("invalid JID: {reason}")]
    InvalidJid {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A field was not valid standard base64 with padding.
    #[error("invalid base64 in <{field}>")]
    Base64 {
        /// The element or attribute that held it.
        field: &'static str,
    },
    /// A decoded field had the wrong length.
    #[error("<{field}> is {actual} bytes, expected {expected}")]
    Length {
        /// The element or attribute that held it.
        field: &'static str,
        /// The length the protocol requires (or allows at most).
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// The bytes were not well-formed XML, or used a feature keyward refuses
    /// (DTDs, entities other than the five predefined ones, processing instructions).
    #[error("malformed XML: {0}")]
    Xml(String),
    /// An input was larger than the protocol allows.
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit that applies.
        limit: usize,
    },
    /// An element had another name or namespace than expected.
    #[error("expected <{expected}>, found <{found}>")]
    UnexpectedElement {
        /// The element that was expected, as `{namespace}name`.
        expected: &'static str,
        /// The element found, as `{namespace}name`.
        found: String,
    },
    /// A required attribute or child element was missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// An attribute or element had a value outside its allowed set.
    #[error("invalid value for {0}")]
    InvalidValue(&'static str),
    /// A public key was not a valid curve point (or was a low-order point).
    #[error("invalid public key")]
    InvalidKey,
    /// A signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A secret blob's update signature (`<secret-sig/>`) did not verify with the
    /// account's identity key (protocol section 6.1).
    #[error("the secret blob is not signed by the account's identity key")]
    SecretSignature,
    /// A bundle or secret blob names another account than the one expected.
    #[error("bound to another account than expected")]
    JidMismatch,
    /// Argon2id parameters outside the accepted range (weakened or absurd).
    #[error("KDF parameters refused: {reason}")]
    KdfParams {
        /// Which bound was violated.
        reason: &'static str,
    },
    /// Authenticated decryption failed: wrong passphrase or key, or tampered data.
    #[error("decryption failed (wrong key or passphrase, or tampered data)")]
    Decrypt,
    /// A sealed message holds no key for this recipient.
    #[error("the message was not sealed for this key")]
    NotARecipient,
    /// A sealed message's signed sender or recipient is not the stanza's.
    #[error("the message is bound to another {0}")]
    Binding(&'static str),
    /// A message with this sender and id was already accepted.
    #[error("replayed message")]
    Replay,
    /// A message signed too long before the sender's newest one to tell whether it is a replay
    /// (protocol section 7, the replay rule).
    #[error("message too old to accept (outside the replay window)")]
    TooOld,
    /// A message claims to be from the reader's own account but is not signed by its own key.
    #[error("a message from your own account not signed by your own key")]
    NotOwnKey,
    /// An OPRF message was not the encoding of a ristretto255 element, or was the identity
    /// (protocol section 6.2).
    #[error("<{0}> is not a valid group element")]
    InvalidElement(&'static str),
    /// A recovery code was mistyped: wrong length, a character outside the alphabet, or a
    /// checksum that does not match (protocol section 6.2).
    #[error("invalid recovery code: {reason}")]
    RecoveryCode {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A transparency map value begins with a version this implementation does not know
    /// (`transparency::value`).
    #[error("unknown map value version {0:#04x}")]
    MapValueVersion(u8),
    /// A field that must be UTF-8 was not.
    #[error("{0} is not valid UTF-8")]
    Utf8(&'static str),
    /// The operating system's random generator failed.
    #[error("the random generator failed")]
    Rng,
    /// A signed note, its signature lines or a verifier key string was malformed
    /// (C2SP signed-note; protocol section on key transparency heads).
    #[error("malformed signed note: {0}")]
    Note(&'static str),
    /// A known key's signature on a signed note did not verify: the note is refused whole.
    #[error("the signature of {name} on the note does not verify")]
    NoteSignature {
        /// The key name of the signature that failed.
        name: String,
    },
    /// A signed note carried no valid signature of the key that had to sign it.
    #[error("the note is not signed by {name}")]
    Unsigned {
        /// The key name expected.
        name: String,
    },
    /// A checkpoint (an epoch head) was malformed or not keyward's.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
    /// A head came from another log than the one configured.
    #[error("the head is for another log")]
    Origin,
    /// An inclusion or consistency proof of the epoch log did not verify: wrong length,
    /// sizes it cannot prove, or hashes that do not lead to the signed roots.
    #[error("log proof refused: {0}")]
    LogProof(&'static str),
    /// keydir asked its epoch log for a root or proof of sizes it does not hold.
    #[error("the epoch log holds {len} leaves; {what} is out of range")]
    LogRange {
        /// What was out of range.
        what: &'static str,
        /// How many leaves the log holds.
        len: u64,
    },
    /// A head of the same size as the stored one with another root: the directory showed two
    /// logs. Keep both signed heads as evidence.
    #[error("the directory forked its log: two heads of one size with different roots")]
    Fork,
    /// A head smaller than the stored one: the directory rolled its log back.
    #[error("the directory rolled its log back")]
    Rollback,
    /// A head's epoch line does not name the log's last leaf.
    #[error("the head's epoch line is not the log's last leaf")]
    HeadMismatch,
    /// Fewer fresh valid cosignatures from configured auditors than required.
    #[error("{valid} fresh auditor cosignatures, {required} required")]
    Cosignatures {
        /// Valid cosignatures within the maximum age.
        valid: usize,
        /// Cosignatures required.
        required: usize,
    },
    /// An akd proof about an account (lookup or history) did not decode or verify against the
    /// head's akd root: the directory showed a key its signed map does not hold.
    #[error("map proof refused: {0}")]
    MapProof(&'static str),
    /// The directory served an account's bundle that the account's value in the map does not
    /// commit to: a key swapped outside the map.
    #[error("the directory served a key its map does not hold")]
    KeyNotInMap,
    /// The directory served as active an account the map shows revoked: a revocation withheld.
    #[error("the directory withholds a revocation its map holds")]
    RevocationWithheld,
    /// The directory served as having no key an account whose key is in the map.
    #[error("the directory withholds a key its map holds")]
    KeyWithheld,
    /// The directory shows, as an account's own key, one its owner never published (a key
    /// swapped in the map): found by the account's own client monitoring its key.
    #[error("the directory shows a key for this account that it never published")]
    ForeignKey,
    /// A gossiped head summary was malformed.
    #[error("malformed head summary: {0}")]
    Gossip(&'static str),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// A check on an error, for table-driven tests of refusals.
#[cfg(test)]
pub(crate) type ErrorCheck = fn(&Error) -> bool;
