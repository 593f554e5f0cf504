//! Guess-limited key restore (protocol section 6.2): an OPRF with keydir, the version 1 secret blob, the recovery code and the restore proof.
//!
//! The pieces, by who calls them:
//!
//! - client: [`blind`] the passphrase, send [`elements::OprfQuery`](crate::elements::OprfQuery),
//!   [`finalize`] keydir's answer into an [`OprfOutput`], then [`SecretV1::open_with_passphrase`]
//!   (or [`SecretV1::open_with_recovery`] with a [`RecoveryCode`]), and answer keydir's challenge
//!   with [`sign_proof`]; [`SecretV1::seal`] and [`SecretV1::reseal_passphrase`] to write a blob,
//!   [`AnySecret`] to read a stored blob of either version.
//! - keydir: [`evaluate`] with its [`OprfSeed`] and the requester's JID, a fresh
//!   [`RestoreChallenge`] with each answer, [`verify_proof`] with the bundle's identity key.
//! - the component only relays the elements.

pub(crate) mod blob;
pub(crate) mod oprf;
pub(crate) mod proof;
pub(crate) mod recovery;

pub use blob::{AnySecret, OpenedV1, SecretV1};
pub use oprf::{
    BlindState, BlindedElement, EvaluatedElement, MAX_SEED_BYTES, MIN_SEED_BYTES, OprfOutput, OprfSeed, blind,
    evaluate, finalize,
};
pub use proof::{RestoreChallenge, proof_message, sign_proof, verify_proof};
pub use recovery::RecoveryCode;
