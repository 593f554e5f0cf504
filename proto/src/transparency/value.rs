//! The values of the verifiable map: the commitment to an account's bundle, and the terminal revocation.
//!
//! keydir's akd map has one label per account and, per label, a history of values. This
//! module fixes both byte for byte, so the client, keydir and an auditor agree on them.
//!
//! **Label**: the UTF-8 bytes of the account's canonical bare JID ([`BareJid::as_str`], the
//! normalised form every other part of the protocol uses), with no prefix or terminator:
//! [`label`].
//!
//! **Values** ([`MapValue`]), the first byte is a version:
//!
//! | version | layout | meaning |
//! |---|---|---|
//! | `0x01` | `0x01 ‖ SHA-256(bundle)` (33 bytes) | the account's active bundle is the one whose bytes hash to this |
//! | `0x02` | `0x02 ‖ fingerprint (32) ‖ revoked_at (u64 BE, unix seconds) ‖ reason (UTF-8, 0..=1024 bytes)` | the account was revoked; terminal |
//!
//! `bundle` is the bundle exactly as keydir stores and serves it (the UTF-8 bytes of its
//! XML element, as published); nothing is canonicalised before hashing, so a client hashes
//! the bytes it received. The revocation's fingerprint is that of the identity key revoked
//! (SHA-256 of it), its time whole seconds since the Unix epoch, its reason the admin's,
//! at most [`REASON_BYTES`] bytes, taking the rest of the value (no length prefix).
//!
//! Parsing is strict: an unknown version, a wrong length, a reason that is not UTF-8 or too
//! long are each an [`Error`], never a guess.

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::jid::BareJid;
use crate::limits::REASON_BYTES;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The domain label of keyward's akd configuration (`akd::ExperimentalConfiguration`): every
/// hash of the map is separated by it, so no proof of another akd deployment passes for keydir's.
pub const DOMAIN_LABEL: &[u8] = b"keyward key transparency v0";

/// The first byte of a bundle commitment.
pub const VERSION_BUNDLE: u8 = 0x01;
/// The first byte of a revocation.
pub const VERSION_REVOKED: u8 = 0x02;
/// The length of a bundle commitment: version and SHA-256.
pub const BUNDLE_VALUE_LEN: usize = 1 + 32;
/// The length of a revocation without its reason: version, fingerprint, time.
pub const REVOKED_FIXED_LEN: usize = 1 + 32 + 8;

/// The map label of an account: its canonical bare JID's UTF-8 bytes.
pub fn label(jid: &BareJid) -> Vec<u8> {
    jid.as_str().as_bytes().to_vec()
}

/// A value of the map: what a label (an account) holds at an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapValue {
    /// The account's active bundle is the one with this SHA-256.
    Bundle(BundleCommitment),
    /// The account was revoked (terminal: no value follows it).
    Revoked(Revocation),
}

/// The SHA-256 of a bundle's bytes as keydir stores and serves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleCommitment([u8; 32]);

impl BundleCommitment {
    /// The commitment to `bundle_bytes`.
    pub fn of(bundle_bytes: &[u8]) -> Self {
        Self(Sha256::digest(bundle_bytes).into())
    }

    /// The SHA-256.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether this commits to `bundle_bytes`, comparing in constant time.
    pub fn commits_to(&self, bundle_bytes: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(bundle_bytes).into();
        bool::from(self.0.ct_eq(&digest))
    }
}

/// A revocation as the map holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    fingerprint: Fingerprint,
    revoked_at: u64,
    reason: String,
}

impl Revocation {
    /// A revocation of the key with `fingerprint` at `revoked_at` (unix seconds) for `reason`;
    /// refused if the reason exceeds [`REASON_BYTES`].
    pub fn new(fingerprint: Fingerprint, revoked_at: u64, reason: &str) -> Result<Self> {
        if reason.len() > REASON_BYTES {
            return Err(Error::TooLarge { what: "revocation reason", limit: REASON_BYTES });
        }
        Ok(Self { fingerprint, revoked_at, reason: reason.to_owned() })
    }

    /// The fingerprint of the identity key revoked.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// When, in seconds since the Unix epoch.
    pub fn revoked_at(&self) -> u64 {
        self.revoked_at
    }

    /// Why, as the admin said.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl MapValue {
    /// The commitment to the active bundle `bundle_bytes`.
    pub fn bundle(bundle_bytes: &[u8]) -> Self {
        Self::Bundle(BundleCommitment::of(bundle_bytes))
    }

    /// The value's bytes, as stored in the map.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Bundle(commitment) => {
                let mut out = Vec::with_capacity(BUNDLE_VALUE_LEN);
                out.push(VERSION_BUNDLE);
                out.extend_from_slice(commitment.digest());
                out
            }
            Self::Revoked(revocation) => {
                let mut out = Vec::with_capacity(REVOKED_FIXED_LEN + revocation.reason.len());
                out.push(VERSION_REVOKED);
                out.extend_from_slice(revocation.fingerprint.as_bytes());
                out.extend_from_slice(&revocation.revoked_at.to_be_bytes());
                out.extend_from_slice(revocation.reason.as_bytes());
                out
            }
        }
    }

    /// Parses a value's bytes, strictly.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        match bytes.split_first() {
            None => Err(Error::Length { field: "map value", expected: BUNDLE_VALUE_LEN, actual: 0 }),
            Some((&VERSION_BUNDLE, digest)) => {
                let digest: [u8; 32] = digest.try_into().map_err(|_| Error::Length {
                    field: "map value",
                    expected: BUNDLE_VALUE_LEN,
                    actual: bytes.len(),
                })?;
                Ok(Self::Bundle(BundleCommitment(digest)))
            }
            Some((&VERSION_REVOKED, rest)) => {
                let too_short =
                    || Error::Length { field: "map value", expected: REVOKED_FIXED_LEN, actual: bytes.len() };
                let (fingerprint, rest) = rest.split_first_chunk::<32>().ok_or_else(too_short)?;
                let (revoked_at, reason) = rest.split_first_chunk::<8>().ok_or_else(too_short)?;
                if reason.len() > REASON_BYTES {
                    return Err(Error::TooLarge { what: "revocation reason", limit: REASON_BYTES });
                }
                let reason = core::str::from_utf8(reason).map_err(|_| Error::Utf8("revocation reason"))?;
                Ok(Self::Revoked(Revocation {
                    fingerprint: Fingerprint::from_bytes(*fingerprint),
                    revoked_at: u64::from_be_bytes(*revoked_at),
                    reason: reason.to_owned(),
                }))
            }
            Some((&version, _)) => Err(Error::MapValueVersion(version)),
        }
    }

    /// Whether this value is the commitment to the active bundle `bundle_bytes`
    /// (constant-time compare); a revocation commits to no bundle.
    pub fn commits_to(&self, bundle_bytes: &[u8]) -> bool {
        match self {
            Self::Bundle(commitment) => commitment.commits_to(bundle_bytes),
            Self::Revoked(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &[u8] = b"<bundle xmlns='urn:keyward:0'/>";

    fn fingerprint() -> Fingerprint {
        Fingerprint::from_bytes(core::array::from_fn(|i| i as u8))
    }

    #[test]
    fn the_label_is_the_canonical_bare_jid() {
        let jid = BareJid::parse("Alice@Example.TEST").expect("a JID");
        assert_eq!(label(&jid), jid.as_str().as_bytes());
        assert_eq!(label(&jid), BareJid::parse("alice@example.test").map(|j| label(&j)).expect("a JID"));
    }

    #[test]
    fn a_bundle_commitment_vector() {
        let value = MapValue::bundle(b"abc");
        assert_eq!(hex::encode(value.encode()), "01ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(value.commits_to(b"abc"));
        assert!(!value.commits_to(b"abd"));
        assert_eq!(MapValue::parse(&value.encode()), Ok(value));
    }

    #[test]
    fn a_revocation_vector() {
        let revocation = Revocation::new(fingerprint(), 1_796_558_400, "stolen").expect("a short reason");
        let value = MapValue::Revoked(revocation);
        assert_eq!(
            hex::encode(value.encode()),
            concat!(
                "02",
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "000000006b154e40",
                "73746f6c656e"
            )
        );
        assert!(!value.commits_to(BUNDLE), "a revocation commits to no bundle");
        assert_eq!(MapValue::parse(&value.encode()), Ok(value));
    }

    #[test]
    fn an_empty_reason_and_the_longest_reason_round_trip() {
        for reason in [String::new(), "é".repeat(REASON_BYTES / 2)] {
            let value = MapValue::Revoked(Revocation::new(fingerprint(), 0, &reason).expect("within the bound"));
            assert_eq!(MapValue::parse(&value.encode()), Ok(value));
        }
    }

    #[test]
    fn malformed_values_are_refused_with_their_reason() {
        let mut long_reason = vec![VERSION_REVOKED];
        long_reason.extend_from_slice(&[0; 40]);
        long_reason.extend(std::iter::repeat_n(b'a', REASON_BYTES + 1));
        let mut bad_utf8 = vec![VERSION_REVOKED];
        bad_utf8.extend_from_slice(&[0; 40]);
        bad_utf8.extend_from_slice(&[0xff, 0xfe]);
        let cases: [(&[u8], Error); 7] = [
            (&[], Error::Length { field: "map value", expected: 33, actual: 0 }),
            (&[0x03; 33], Error::MapValueVersion(0x03)),
            (&[0x00], Error::MapValueVersion(0x00)),
            (&[VERSION_BUNDLE; 32], Error::Length { field: "map value", expected: 33, actual: 32 }),
            (&[VERSION_BUNDLE; 34], Error::Length { field: "map value", expected: 33, actual: 34 }),
            (&[VERSION_REVOKED; 40], Error::Length { field: "map value", expected: 41, actual: 40 }),
            (&bad_utf8, Error::Utf8("revocation reason")),
        ];
        for (bytes, expected) in cases {
            assert_eq!(MapValue::parse(bytes), Err(expected), "{}", hex::encode(bytes));
        }
        assert_eq!(
            MapValue::parse(&long_reason),
            Err(Error::TooLarge { what: "revocation reason", limit: REASON_BYTES })
        );
        assert!(Revocation::new(fingerprint(), 0, &"a".repeat(REASON_BYTES + 1)).is_err());
    }
}
