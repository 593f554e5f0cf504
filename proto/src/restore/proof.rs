//! The restore proof: after opening its blob the client signs keydir's challenge, so keydir can tell a right guess from a wrong one.
//!
//! keydir answers every OPRF evaluation with a fresh 32 byte challenge and counts the evaluation
//! as a failed guess until it receives, for that challenge, a signature by the account's
//! identity key over
//!
//! ```text
//! M = "keyward/restore-proof/v0" 0x00 || lp(jid) || challenge(32)
//! ```
//!
//! Only someone who opened the blob holds the identity key, so a valid proof shows the guess
//! was right; keydir checks it with the identity key of the account's stored bundle.

use crate::codec::put_lp;
use crate::error::Result;
use crate::jid::BareJid;
use crate::keys::{FillRandom, IdentityPublic, KeyPair, os_random};
use core::fmt;
use subtle::ConstantTimeEq;

const DOMAIN: &[u8] = b"keyward/restore-proof/v0\x00";

/// keydir's challenge for one OPRF evaluation: 32 random bytes, used once.
#[derive(Clone, Copy)]
pub struct RestoreChallenge([u8; 32]);

impl RestoreChallenge {
    /// A fresh challenge from the operating system's generator.
    pub fn generate() -> Result<Self> {
        Self::generate_with(&mut os_random)
    }

    pub(crate) fn generate_with(random: FillRandom<'_>) -> Result<Self> {
        let mut bytes = [0u8; 32];
        random(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Wraps 32 bytes (as received, or as stored by keydir).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(*bytes)
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

/// Compared in constant time: keydir compares an echoed challenge with the one it issued.
impl PartialEq for RestoreChallenge {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for RestoreChallenge {}

impl fmt::Debug for RestoreChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RestoreChallenge({})", hex::encode(self.0))
    }
}

/// The signed message `M = "keyward/restore-proof/v0" 0x00 || lp(jid) || challenge`.
pub fn proof_message(jid: &BareJid, challenge: &RestoreChallenge) -> Vec<u8> {
    let jid = jid.as_str().as_bytes();
    let mut out = Vec::with_capacity(DOMAIN.len() + 4 + jid.len() + 32);
    out.extend_from_slice(DOMAIN);
    put_lp(&mut out, jid);
    out.extend_from_slice(&challenge.0);
    out
}

/// Client: signs `challenge` for account `jid` with the restored identity key.
pub fn sign_proof(keys: &KeyPair, jid: &BareJid, challenge: &RestoreChallenge) -> [u8; 64] {
    keys.sign(&proof_message(jid, challenge))
}

/// keydir: checks (strictly) that `ik`, the identity key of `jid`'s stored bundle, signed
/// `challenge` for `jid`. A failure is [`Error::BadSignature`](crate::Error::BadSignature).
pub fn verify_proof(ik: &IdentityPublic, jid: &BareJid, challenge: &RestoreChallenge, sig: &[u8; 64]) -> Result<()> {
    ik.verify(&proof_message(jid, challenge), sig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn a_proof_verifies_only_for_its_account_challenge_and_key() {
        let keys = KeyPair::generate().expect("rng");
        let alice = BareJid::parse("alice@example.test").expect("valid");
        let bob = BareJid::parse("bob@example.test").expect("valid");
        let challenge = RestoreChallenge::generate().expect("rng");
        let sig = sign_proof(&keys, &alice, &challenge);
        verify_proof(&keys.identity_public(), &alice, &challenge, &sig).expect("verifies");
        assert_eq!(verify_proof(&keys.identity_public(), &bob, &challenge, &sig), Err(Error::BadSignature));
        let other = RestoreChallenge::generate().expect("rng");
        assert_ne!(other, challenge);
        assert_eq!(verify_proof(&keys.identity_public(), &alice, &other, &sig), Err(Error::BadSignature));
        let stranger = KeyPair::generate().expect("rng");
        assert_eq!(verify_proof(&stranger.identity_public(), &alice, &challenge, &sig), Err(Error::BadSignature));
        let mut tampered = sig;
        tampered[10] ^= 1;
        assert_eq!(verify_proof(&keys.identity_public(), &alice, &challenge, &tampered), Err(Error::BadSignature));
    }

    #[test]
    fn the_message_is_domain_separated_and_length_prefixed() {
        let jid = BareJid::parse("alice@example.test").expect("valid");
        let challenge = RestoreChallenge::from_bytes(&[9; 32]);
        let m = proof_message(&jid, &challenge);
        assert!(m.starts_with(b"keyward/restore-proof/v0\x00\x00\x00\x00\x12alice@example.test"));
        assert!(m.ends_with(&[9; 32]));
        assert_eq!(m.len(), 25 + 4 + 18 + 32);
    }
}
