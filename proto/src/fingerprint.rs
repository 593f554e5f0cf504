//! Account fingerprints (SHA-256 of the identity key) and pairwise safety numbers.

use crate::error::{Error, Result};
use core::fmt;
use sha2::{Digest, Sha256, Sha512};

/// The fingerprint of an account: SHA-256 of its 32 byte Ed25519 identity key.
///
/// `Display` shows 64 hex digits in groups of 4 for people; [`Fingerprint::to_hex`]
/// gives the plain form used on the wire (`fp` attributes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of an identity public key.
    pub fn of_identity_key(ik_public: &[u8; 32]) -> Self {
        Self(Sha256::digest(ik_public).into())
    }

    /// The fingerprint with these raw 32 bytes (as a transparency map value carries it).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 digits, no spaces (the wire form).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the wire form: 64 hex digits; spaces between groups are allowed.
    pub fn from_hex(text: &str) -> Result<Self> {
        let compact: String = text.chars().filter(|c| *c != ' ').collect();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(compact, &mut bytes).map_err(|_| Error::InvalidValue("fingerprint"))?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        for (i, group) in hex.as_bytes().chunks(4).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(core::str::from_utf8(group).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

/// A number two users compare out of band to verify each other's keys.
///
/// It is derived from both fingerprints in sorted order, so both sides compute
/// the same number: SHA-512 of `"keyward/safety/v0" 0x00 || lower fp || higher fp`,
/// whose first 60 bytes, taken 5 at a time as big-endian integers modulo 100000,
/// give 12 groups of 5 decimal digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SafetyNumber([u32; 12]);

impl SafetyNumber {
    /// The safety number of two accounts; symmetric in its arguments.
    pub fn of(a: &Fingerprint, b: &Fingerprint) -> Self {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let mut hasher = Sha512::new();
        hasher.update(b"keyward/safety/v0\x00");
        hasher.update(low.as_bytes());
        hasher.update(high.as_bytes());
        let digest = hasher.finalize();
        let mut groups = [0u32; 12];
        for (group, chunk) in groups.iter_mut().zip(digest.chunks_exact(5)) {
            let value = chunk.iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
            *group = (value % 100_000) as u32;
        }
        Self(groups)
    }

    /// The 12 groups of 5 digits, for layouts other than `Display`'s one line.
    pub fn groups(&self) -> [String; 12] {
        self.0.map(|group| format!("{group:05}"))
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.groups().join(" "))
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_groups_hex_by_four() {
        let fp = Fingerprint([0xab; 32]);
        let shown = fp.to_string();
        assert_eq!(shown.len(), 64 + 15);
        assert!(shown.starts_with("abab abab "));
        assert_eq!(Fingerprint::from_hex(&shown).expect("parses"), fp);
        assert_eq!(Fingerprint::from_hex(&fp.to_hex()).expect("parses"), fp);
        assert!(Fingerprint::from_hex("abcd").is_err());
        assert!(Fingerprint::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn safety_number_is_symmetric_and_distinct() {
        let a = Fingerprint::of_identity_key(&[1; 32]);
        let b = Fingerprint::of_identity_key(&[2; 32]);
        let c = Fingerprint::of_identity_key(&[3; 32]);
        assert_eq!(SafetyNumber::of(&a, &b), SafetyNumber::of(&b, &a));
        assert_ne!(SafetyNumber::of(&a, &b), SafetyNumber::of(&a, &c));
        let text = SafetyNumber::of(&a, &b).to_string();
        assert_eq!(text.len(), 12 * 5 + 11);
        assert!(text.chars().all(|c| c.is_ascii_digit() || c == ' '));
    }
}
