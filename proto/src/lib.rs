//! keyward's wire formats and cryptography: pure code, no I/O.
//!
//! Everything that the client, the component and the key directory must agree
//! on lives here: bare JIDs, fingerprints and safety numbers, key material,
//! the signed [`Bundle`], the passphrase-sealed [`SecretBlob`] and the
//! [`SecretSig`] without which no blob is stored or replaced, the guess-limited
//! [`restore`] (an OPRF with keydir, the version 1 blob with its recovery code,
//! the restore proof), the [`Sealed`] message, and every protocol element as a
//! typed value ([`elements`]) with XML encode and decode ([`xml`]). The
//! normative description is `docs/protocol.md` in the repository, with test
//! vectors checked by this crate's tests.
//!
//! This crate performs no I/O and never panics on input: every failure is an
//! [`Error`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bundle;
mod codec;
pub mod elements;
mod error;
mod fingerprint;
mod jid;
mod keys;
pub mod limits;
mod message;
mod replay;
pub mod restore;
mod secret;
pub mod transparency;
mod update;
mod verify_cache;
pub mod xml;

#[cfg(test)]
mod vectors;

pub use bundle::{Bundle, VerifiedBundle};
pub use elements::XmlElement;
pub use error::{Error, Result};
pub use fingerprint::{Fingerprint, SafetyNumber};
pub use jid::BareJid;
pub use keys::{EncryptionPublic, IdentityPublic, KeyPair};
pub use message::{Envelope, Recipient, Sealed, SealedVersion, WrappedKey};
pub use replay::{MemoryReplayCache, ReplayCache, ReplayRule, SenderState};
pub use secret::{KdfParams, KdfPolicy, SecretBlob};
pub use update::{MAX_SEQ, SecretSig};
pub use verify_cache::VerifyCache;
