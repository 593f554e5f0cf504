//! Key material: the Ed25519 identity key and the X25519 encryption key of an account.

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use core::fmt;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// Fills a buffer with randomness. The public API uses the OS generator; the
/// test vectors pass a deterministic one.
pub(crate) type FillRandom<'a> = &'a mut dyn FnMut(&mut [u8]) -> Result<()>;

/// Fills `buf` from the operating system's generator.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|_| Error::Rng)
}

/// An Ed25519 identity public key (`IK_pub`): it signs bundles and messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityPublic(VerifyingKey);

impl IdentityPublic {
    /// Parses 32 bytes; refuses encodings that are not valid points.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| Error::InvalidKey)?;
        if key.is_weak() {
            return Err(Error::InvalidKey);
        }
        Ok(Self(key))
    }

    /// The 32 byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The fingerprint of the account this key identifies.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_identity_key(self.0.as_bytes())
    }

    /// Verifies a signature with the strict rules (no malleability, no weak keys).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<()> {
        let signature = Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).map_err(|_| Error::BadSignature)
    }
}

impl fmt::Debug for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublic({})", self.fingerprint().to_hex())
    }
}

/// An X25519 encryption public key (`EK_pub`): messages are sealed to it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncryptionPublic(x25519_dalek::PublicKey);

impl EncryptionPublic {
    /// Wraps 32 bytes. Every 32 byte string is a Montgomery u-coordinate;
    /// low-order keys are caught when a shared secret is computed.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(x25519_dalek::PublicKey::from(*bytes))
    }

    /// The 32 byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub(crate) fn inner(&self) -> &x25519_dalek::PublicKey {
        &self.0
    }
}

impl fmt::Debug for EncryptionPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionPublic({})", hex::encode(self.0.as_bytes()))
    }
}

/// The private keys of an account: identity (Ed25519) and encryption (X25519).
///
/// Both secrets are zeroized when this value is dropped, and `Debug` prints
/// only the fingerprint.
pub struct KeyPair {
    identity: SigningKey,
    encryption: x25519_dalek::StaticSecret,
    /// Derived once: each is a scalar multiplication or a hash, needed by every seal and open.
    encryption_public: x25519_dalek::PublicKey,
    fingerprint: Fingerprint,
}

impl KeyPair {
    /// Generates fresh keys from the operating system's random generator.
    pub fn generate() -> Result<Self> {
        Self::generate_with(&mut os_random)
    }

    pub(crate) fn generate_with(random: FillRandom<'_>) -> Result<Self> {
        let mut ik_seed = Zeroizing::new([0u8; 32]);
        let mut ek_secret = Zeroizing::new([0u8; 32]);
        random(ik_seed.as_mut())?;
        random(ek_secret.as_mut())?;
        Ok(Self::from_secret_bytes(&ik_seed, &ek_secret))
    }

    /// Rebuilds keys from the 32 byte Ed25519 seed and the 32 byte X25519 secret.
    pub fn from_secret_bytes(ik_seed: &[u8; 32], ek_secret: &[u8; 32]) -> Self {
        let identity = SigningKey::from_bytes(ik_seed);
        let encryption = x25519_dalek::StaticSecret::from(*ek_secret);
        let encryption_public = x25519_dalek::PublicKey::from(&encryption);
        let fingerprint = Fingerprint::of_identity_key(identity.verifying_key().as_bytes());
        Self { identity, encryption, encryption_public, fingerprint }
    }

    /// The Ed25519 seed and X25519 secret, in a buffer zeroized on drop.
    pub(crate) fn secret_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(self.identity.as_bytes());
        out[32..].copy_from_slice(self.encryption.as_bytes());
        out
    }

    /// The identity public key.
    pub fn identity_public(&self) -> IdentityPublic {
        IdentityPublic(self.identity.verifying_key())
    }

    /// The encryption public key.
    pub fn encryption_public(&self) -> EncryptionPublic {
        EncryptionPublic(self.encryption_public)
    }

    /// The fingerprint of this account.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Signs `message` with the identity key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.identity.sign(message).to_bytes()
    }

    /// X25519 with the encryption secret; refuses a non-contributory (low-order) peer key.
    pub(crate) fn agree(&self, peer: &EncryptionPublic) -> Result<Zeroizing<[u8; 32]>> {
        let shared = self.encryption.diffie_hellman(peer.inner());
        if !shared.was_contributory() {
            return Err(Error::InvalidKey);
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair").field("fingerprint", &self.fingerprint().to_hex()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let keys = KeyPair::from_secret_bytes(&[7; 32], &[9; 32]);
        let shown = format!("{keys:?}");
        assert!(shown.contains(&keys.fingerprint().to_hex()));
        assert!(!shown.contains(&hex::encode([7u8; 32])));
        assert!(!shown.contains(&hex::encode([9u8; 32])));
    }

    #[test]
    fn secret_bytes_round_trip() {
        let keys = KeyPair::generate().expect("rng");
        let secret = keys.secret_bytes();
        let mut ik = [0u8; 32];
        let mut ek = [0u8; 32];
        ik.copy_from_slice(&secret[..32]);
        ek.copy_from_slice(&secret[32..]);
        let again = KeyPair::from_secret_bytes(&ik, &ek);
        assert_eq!(again.identity_public(), keys.identity_public());
        assert_eq!(again.encryption_public(), keys.encryption_public());
    }

    #[test]
    fn signatures_verify_and_forgeries_do_not() {
        let keys = KeyPair::generate().expect("rng");
        let sig = keys.sign(b"hello");
        keys.identity_public().verify(b"hello", &sig).expect("verifies");
        assert_eq!(keys.identity_public().verify(b"hellO", &sig), Err(Error::BadSignature));
        let other = KeyPair::generate().expect("rng");
        assert_eq!(other.identity_public().verify(b"hello", &sig), Err(Error::BadSignature));
    }

    #[test]
    fn low_order_peer_key_is_refused() {
        let keys = KeyPair::generate().expect("rng");
        let zero = EncryptionPublic::from_bytes(&[0; 32]);
        assert_eq!(keys.agree(&zero).err(), Some(Error::InvalidKey));
    }
}
