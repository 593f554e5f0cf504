//! The recovery code: 130 random bits a person writes down, which opens a version 1 blob without the passphrase.
//!
//! Written as 28 Crockford base32 characters (alphabet `0-9 A-Z` without `I L O U`) in 7 groups of
//! 4, e.g. `7XQ2-M9KD-...`: 26 data characters (5 random bits each) and 2 checksum characters,
//! the first 10 bits of `SHA-256("keyward/recovery-code/v1" 0x00 || data)` where `data` is the 26
//! data characters in upper case. Reading is tolerant: case, spaces and dashes do not matter,
//! and `O` reads as `0`, `I` and `L` as `1`, as Crockford base32 prescribes. The checksum catches
//! a mistyped code before any decryption is tried (all but 1 in 1024 typos).

use crate::error::{Error, Result};
use crate::keys::{FillRandom, os_random};
use core::fmt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CHECK_DOMAIN: &[u8] = b"keyward/recovery-code/v1\x00";
/// Data characters: 26 * 5 = 130 random bits.
const DATA_CHARS: usize = 26;
const CODE_CHARS: usize = DATA_CHARS + 2;
const GROUP: usize = 4;

/// A recovery code. Zeroized on drop; `Debug` prints nothing of it, and there is no `Display`:
/// show it to its owner with [`RecoveryCode::to_grouped`], once.
#[derive(Clone)]
pub struct RecoveryCode {
    /// The 26 data characters, upper case: the secret, as fed to the KDF.
    data: Zeroizing<[u8; DATA_CHARS]>,
}

fn checksum(data: &[u8; DATA_CHARS]) -> [u8; 2] {
    let digest = Sha256::new().chain_update(CHECK_DOMAIN).chain_update(data).finalize();
    let bits = u16::from_be_bytes([digest[0], digest[1]]) >> 6;
    [ALPHABET[usize::from(bits >> 5)], ALPHABET[usize::from(bits & 31)]]
}

/// The value of a Crockford base32 character, with its aliases; `None` outside the alphabet.
fn value(c: u8) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        b'O' => b'0',
        b'I' | b'L' => b'1',
        c => c,
    };
    ALPHABET.iter().position(|&a| a == c).map(|v| v as u8)
}

/// A code from 26 random bytes (each keeps its low 5 bits: uniform, as 256 is a multiple of 32).
pub(crate) fn code_from_random(random: FillRandom<'_>) -> Result<RecoveryCode> {
    let mut bytes = Zeroizing::new([0u8; DATA_CHARS]);
    random(bytes.as_mut())?;
    let mut data = Zeroizing::new([0u8; DATA_CHARS]);
    for (out, byte) in data.iter_mut().zip(bytes.iter()) {
        *out = ALPHABET[usize::from(byte & 31)];
    }
    Ok(RecoveryCode { data })
}

impl RecoveryCode {
    /// A fresh code from the operating system's generator.
    pub fn generate() -> Result<Self> {
        code_from_random(&mut os_random)
    }

    /// Reads a code as a person typed it: case, spaces and dashes ignored, `O I L` read as `0 1 1`.
    /// Errors: [`Error::RecoveryCode`] for a wrong length, a character outside the alphabet,
    /// or a checksum that does not match (a typo).
    pub fn parse(text: &str) -> Result<Self> {
        let mut chars = Zeroizing::new([0u8; CODE_CHARS]);
        let mut len = 0;
        for c in text.bytes().filter(|c| !matches!(c, b' ' | b'-' | b'\t')) {
            let v = value(c).ok_or(Error::RecoveryCode { reason: "a character outside the alphabet" })?;
            if len == CODE_CHARS {
                return Err(Error::RecoveryCode { reason: "too long" });
            }
            chars[len] = ALPHABET[usize::from(v)];
            len += 1;
        }
        if len != CODE_CHARS {
            return Err(Error::RecoveryCode { reason: "too short" });
        }
        let mut data = Zeroizing::new([0u8; DATA_CHARS]);
        data.copy_from_slice(&chars[..DATA_CHARS]);
        if !bool::from(checksum(&data).ct_eq(&chars[DATA_CHARS..])) {
            return Err(Error::RecoveryCode { reason: "the checksum does not match (a typo?)" });
        }
        Ok(Self { data })
    }

    /// The code for people: 28 characters in 7 groups of 4 joined by `-`.
    pub fn to_grouped(&self) -> Zeroizing<String> {
        let mut all = Zeroizing::new(Vec::with_capacity(CODE_CHARS));
        all.extend_from_slice(self.data.as_ref());
        all.extend_from_slice(&checksum(&self.data));
        let mut out = Zeroizing::new(String::with_capacity(CODE_CHARS + CODE_CHARS / GROUP));
        for (i, group) in all.chunks(GROUP).enumerate() {
            if i > 0 {
                out.push('-');
            }
            out.extend(group.iter().map(|&c| char::from(c)));
        }
        out
    }

    /// The 26 data characters: the key material of the recovery slot.
    pub(crate) fn secret(&self) -> &[u8; DATA_CHARS] {
        &self.data
    }
}

impl PartialEq for RecoveryCode {
    fn eq(&self, other: &Self) -> bool {
        self.data.ct_eq(other.data.as_ref()).into()
    }
}

impl Eq for RecoveryCode {}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_read_back_however_they_are_typed() {
        let code = RecoveryCode::generate().expect("rng");
        let grouped = code.to_grouped();
        assert_eq!(grouped.len(), 34);
        assert_eq!(grouped.split('-').count(), 7);
        assert_eq!(RecoveryCode::parse(&grouped).expect("parses"), code);
        let sloppy = grouped.to_lowercase().replace('-', " ").replace('0', "o").replace('1', "l");
        assert_eq!(RecoveryCode::parse(&sloppy).expect("parses"), code);
        assert_eq!(RecoveryCode::parse(&grouped.replace('-', "")).expect("parses"), code);
        assert_ne!(RecoveryCode::generate().expect("rng"), code);
    }

    #[test]
    fn typos_and_garbage_are_typed_errors() {
        let code = RecoveryCode::generate().expect("rng");
        let grouped = code.to_grouped();
        let mut caught = 0;
        for at in [0, 1, 7, 20, 32, 33] {
            let mut typo = grouped.as_bytes().to_vec();
            typo[at] = if typo[at] == b'7' { b'8' } else { b'7' };
            let typo = String::from_utf8(typo).expect("ascii");
            match RecoveryCode::parse(&typo) {
                Err(Error::RecoveryCode { reason }) => {
                    assert!(reason.contains("checksum"), "{reason}");
                    caught += 1;
                }
                Ok(other) => assert_ne!(other, code, "a typo cannot give the same code"),
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert!(caught >= 5, "the checksum misses at most 1 in 1024");
        for (text, reason) in [
            ("", "too short"),
            (&grouped[..30], "too short"),
            (&format!("{}0", grouped.as_str()), "too long"),
            (&grouped.replacen(|c: char| c.is_ascii_alphanumeric(), "U", 1), "a character outside the alphabet"),
            (&grouped.replacen(|c: char| c.is_ascii_alphanumeric(), "é", 1), "a character outside the alphabet"),
        ] {
            assert_eq!(RecoveryCode::parse(text).err(), Some(Error::RecoveryCode { reason }), "{text}");
        }
    }

    #[test]
    fn debug_never_prints_the_code() {
        let code = RecoveryCode::generate().expect("rng");
        let shown = format!("{code:?}");
        assert!(!shown.contains(&code.to_grouped()[..4]), "{shown}");
    }
}
