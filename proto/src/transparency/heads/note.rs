//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys: key IDs, verifier key
//! strings, signing, and strict parsing and verification.
//!
//! Two key types: `0x01`, a plain Ed25519 note signature (keydir signs its heads with it), and
//! `0x04`, the Ed25519 cosignature of C2SP tlog-cosignature/v1 (auditors; see
//! `cosignature.rs`), whose signature carries a timestamp. A key ID is
//! `SHA-256(name || "\n" || type || public key)[:4]`.
//!
//! Why not a crate: `signed_note` 0.2 (Cloudflare's port of Go's `sumdb/note`) is built on
//! ed25519-dalek 2 and sha2 0.10, a second copy of the curve arithmetic beside this crate's
//! ed25519-dalek 3, and has no cosignature type. The format is small; the tests check it
//! against Go's published notes.

use crate::codec::b64;
use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use core::fmt;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The largest signed note accepted, in bytes: room for the 16 signatures the specification
/// requires verifiers to accept even if they are post-quantum ones of about 3.3 KB in base64 (a
/// keyward head with a dozen Ed25519 cosignatures is under 2 KiB).
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// The most signature lines a note may carry, known keys or not (the specification's minimum).
pub const MAX_SIGNATURES: usize = 16;
/// The longest key name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// The signature line prefix: an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// The signature types keyward uses (the byte in the key ID and the verifier key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// `0x01`: an Ed25519 signature of the note text.
    Ed25519,
    /// `0x04`: a C2SP tlog-cosignature/v1, an Ed25519 signature with a timestamp.
    Cosignature,
}

impl KeyType {
    /// The type byte.
    pub fn byte(self) -> u8 {
        match self {
            Self::Ed25519 => 0x01,
            Self::Cosignature => 0x04,
        }
    }

    fn from_byte(byte: u8) -> Result<Self> {
        match byte {
            0x01 => Ok(Self::Ed25519),
            0x04 => Ok(Self::Cosignature),
            _ => Err(Error::Note("unsupported key type")),
        }
    }

    /// Length of the signature bytes after the key ID.
    fn signature_len(self) -> usize {
        match self {
            Self::Ed25519 => 64,
            Self::Cosignature => 8 + 64,
        }
    }
}

/// The key ID: `SHA-256(name || "\n" || type || public key)[:4]`.
pub fn key_id(name: &str, kind: KeyType, public_key: &[u8; 32]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([kind.byte()])
        .chain_update(public_key)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Checks a key name: 1 to 255 bytes of UTF-8 without whitespace, control characters or `+`.
pub fn check_key_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(Error::Note("key name empty or too long"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+') {
        return Err(Error::Note("key name with whitespace, control characters or '+'"));
    }
    Ok(())
}

/// A public key that may sign notes: its name, type and Ed25519 key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    kind: KeyType,
    id: [u8; 4],
    key: VerifyingKey,
}

impl VerifierKey {
    /// A verifier for `name` with this Ed25519 public key; refuses invalid and weak keys.
    pub fn new(name: &str, kind: KeyType, public_key: &[u8; 32]) -> Result<Self> {
        check_key_name(name)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| Error::InvalidKey)?;
        if key.is_weak() {
            return Err(Error::InvalidKey);
        }
        Ok(Self { name: name.to_owned(), kind, id: key_id(name, kind, public_key), key })
    }

    /// Parses a verifier key string `<name>+<8 hex digits key ID>+<base64(type || public key)>`;
    /// the key ID must be the one the name and key give.
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Note("a verifier key has three parts"));
        };
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(Error::Note("a key ID is 8 lower-case hex digits"));
        }
        let encoded = STANDARD.decode(key_b64).map_err(|_| Error::Note("verifier key base64"))?;
        let (&kind, public_key) = encoded.split_first().ok_or(Error::Note("empty verifier key"))?;
        let kind = KeyType::from_byte(kind)?;
        let public_key: &[u8; 32] = public_key.try_into().map_err(|_| Error::Note("an Ed25519 key is 32 bytes"))?;
        let verifier = Self::new(name, kind, public_key)?;
        if hex::encode(verifier.id) != id_hex {
            return Err(Error::Note("the key ID does not match the key"));
        }
        Ok(verifier)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key type.
    pub fn kind(&self) -> KeyType {
        self.kind
    }

    /// The key ID.
    pub fn id(&self) -> [u8; 4] {
        self.id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether this key made a signature line (same name and key ID).
    fn made(&self, signature: &NoteSignature) -> bool {
        signature.name == self.name && signature.key_id == self.id
    }

    /// Checks an Ed25519 signature (strict: no malleable signatures, no small-order points).
    pub(crate) fn check(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.key.verify_strict(message, &Signature::from_bytes(signature)).is_ok()
    }
}

impl fmt::Display for VerifierKey {
    /// The verifier key string `<name>+<hex key ID>+<base64(type || public key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut encoded = vec![self.kind.byte()];
        encoded.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{}+{}", self.name, hex::encode(self.id), b64(&encoded))
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

/// A private key that signs notes under a name. `Debug` shows only the public verifier key; the
/// seed is zeroized on drop (ed25519-dalek's `zeroize` feature).
#[derive(Clone)]
pub struct NoteSigner {
    key: SigningKey,
    verifier: VerifierKey,
}

impl NoteSigner {
    /// A signer for `name` from a 32 byte Ed25519 seed.
    pub fn new(name: &str, kind: KeyType, seed: &[u8; 32]) -> Result<Self> {
        let key = SigningKey::from_bytes(seed);
        let verifier = VerifierKey::new(name, kind, key.verifying_key().as_bytes())?;
        Ok(Self { key, verifier })
    }

    /// The public half, to publish.
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// Signs `message` (for the cosignature module, which builds its own message).
    pub(crate) fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Signs a note's text with a type `0x01` key.
    pub fn sign(&self, text: &str) -> Result<NoteSignature> {
        if self.verifier.kind != KeyType::Ed25519 {
            return Err(Error::Note("a cosignature key signs through cosign"));
        }
        check_text(text)?;
        Ok(self.signature_line(self.sign_raw(text.as_bytes()).to_vec()))
    }

    /// A signature line of this key with these signature bytes (after the key ID).
    pub(crate) fn signature_line(&self, signature: Vec<u8>) -> NoteSignature {
        NoteSignature { name: self.verifier.name.clone(), key_id: self.verifier.id, signature }
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner").field("verifier", &self.verifier).finish_non_exhaustive()
    }
}

/// One signature line: `— <name> <base64(key ID || signature)>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key ID.
    pub key_id: [u8; 4],
    /// The signature bytes after the key ID (their form depends on the key type).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// Parses one signature line, without its newline (e.g. a cosignature an auditor posts).
    pub fn parse(line: &str) -> Result<Self> {
        let rest = line.strip_prefix(SIG_PREFIX).ok_or(Error::Note("a signature line starts with an em dash"))?;
        let (name, encoded) = rest.split_once(' ').ok_or(Error::Note("a signature line has a name and a signature"))?;
        check_key_name(name)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| Error::Note("signature base64"))?;
        if bytes.len() < 5 {
            return Err(Error::Note("a signature is a key ID and at least one byte"));
        }
        let (id, signature) = bytes.split_at(4);
        Ok(Self { name: name.to_owned(), key_id: [id[0], id[1], id[2], id[3]], signature: signature.to_vec() })
    }

    /// The signature line, with its newline.
    pub fn encode(&self) -> String {
        let mut bytes = self.key_id.to_vec();
        bytes.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, b64(&bytes))
    }
}

/// A signature a [`SignedNote::verify`] found valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The index of the key among those given to `verify`.
    pub key: usize,
    /// A cosignature's timestamp (seconds since the Unix epoch); `None` for type `0x01`.
    pub timestamp: Option<u64>,
}

/// A signed note: text, then an empty line, then signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedNote {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// A note of `text` with one signature.
    pub fn sign(text: &str, signer: &NoteSigner) -> Result<Self> {
        let signature = signer.sign(text)?;
        Ok(Self { text: text.to_owned(), signatures: vec![signature] })
    }

    /// Parses a signed note with the limits of this module. Only the form is checked here;
    /// [`SignedNote::verify`] checks signatures.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(Error::TooLarge { what: "signed note", limit: MAX_NOTE_BYTES });
        }
        let note = core::str::from_utf8(bytes).map_err(|_| Error::Note("not UTF-8"))?;
        let split = note.rfind("\n\n").ok_or(Error::Note("no empty line before the signatures"))?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        check_text(text)?;
        let signatures = signatures.strip_suffix('\n').ok_or(Error::Note("a signature line ends in a newline"))?;
        let signatures = signatures.split('\n').map(NoteSignature::parse).collect::<Result<Vec<_>>>()?;
        if signatures.len() > MAX_SIGNATURES {
            return Err(Error::TooLarge { what: "signatures on a note", limit: MAX_SIGNATURES });
        }
        Ok(Self { text: text.to_owned(), signatures })
    }

    /// The note as bytes: text, empty line, signature lines.
    pub fn encode(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for signature in &self.signatures {
            out.push_str(&signature.encode());
        }
        out
    }

    /// The text (every line ends in a newline).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature line (e.g. an auditor's cosignature); at most [`MAX_SIGNATURES`].
    pub fn add_signature(&mut self, signature: NoteSignature) -> Result<()> {
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(Error::TooLarge { what: "signatures on a note", limit: MAX_SIGNATURES });
        }
        self.signatures.push(signature);
        Ok(())
    }

    /// Checks the signatures of the given keys. Signatures of other keys are ignored; a known
    /// key whose signature does not verify, or that signed twice, refuses the whole note.
    /// Returns the valid ones (possibly none: the caller says which keys it needs).
    pub fn verify(&self, keys: &[VerifierKey]) -> Result<Vec<Verified>> {
        let mut verified: Vec<Verified> = Vec::new();
        for signature in &self.signatures {
            let Some((index, key)) = keys.iter().enumerate().find(|(_, key)| key.made(signature)) else {
                continue;
            };
            if verified.iter().any(|v| v.key == index) {
                return Err(Error::Note("a key signed twice"));
            }
            let bad = || Error::NoteSignature { name: signature.name.clone() };
            if signature.signature.len() != key.kind.signature_len() {
                return Err(bad());
            }
            let timestamp = match key.kind {
                KeyType::Ed25519 => {
                    let sig: &[u8; 64] = signature.signature.as_slice().try_into().map_err(|_| bad())?;
                    if !key.check(self.text.as_bytes(), sig) {
                        return Err(bad());
                    }
                    None
                }
                KeyType::Cosignature => {
                    Some(super::cosignature::check(key, &self.text, &signature.signature).ok_or_else(bad)?)
                }
            };
            verified.push(Verified { key: index, timestamp });
        }
        Ok(verified)
    }

    /// Verifies and requires a valid signature of `key`.
    pub fn verify_by(&self, key: &VerifierKey) -> Result<()> {
        let verified = self.verify(core::slice::from_ref(key))?;
        if verified.is_empty() { Err(Error::Unsigned { name: key.name.clone() }) } else { Ok(()) }
    }
}

/// Checks a note's text: non-empty, ends in a newline, no control characters but newlines.
fn check_text(text: &str) -> Result<()> {
    if !text.ends_with('\n') {
        return Err(Error::Note("the text must end in a newline"));
    }
    if text.chars().any(|c| c != '\n' && c.is_control()) {
        return Err(Error::Note("control characters in the text"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // golang.org/x/mod sumdb/note/note_test.go
    const PETER_KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const ENOCH_KEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn peter_signer() -> NoteSigner {
        let encoded = PETER_SKEY.splitn(5, '+').nth(4).expect("key part");
        let bytes = STANDARD.decode(encoded).expect("base64");
        assert_eq!(bytes[0], 1);
        NoteSigner::new("PeterNeumann", KeyType::Ed25519, bytes[1..].try_into().expect("seed")).expect("signer")
    }

    fn peter() -> VerifierKey {
        VerifierKey::parse(PETER_KEY).expect("Go's key parses")
    }

    #[test]
    fn go_verifier_keys_parse_and_print_back() {
        // transparency-dev/formats note tests: a key whose base64 holds a '+'.
        for key in [PETER_KEY, ENOCH_KEY, "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"] {
            assert_eq!(VerifierKey::parse(key).expect("parses").to_string(), key);
        }
        assert_eq!(peter().id(), [0xc7, 0x4f, 0x20, 0xa3]);
        assert_eq!(peter_signer().verifier(), &peter());
    }

    #[test]
    fn signing_reproduces_go_note_byte_for_byte() {
        let note = SignedNote::sign(TEXT, &peter_signer()).expect("sign");
        assert_eq!(note.encode(), format!("{TEXT}\n{PETER_SIG}"));
    }

    #[test]
    fn go_notes_verify() {
        let keys = [peter(), VerifierKey::parse(ENOCH_KEY).expect("parses")];
        let both = SignedNote::parse(format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}").as_bytes()).expect("parses");
        assert_eq!(both.text(), TEXT);
        let verified = both.verify(&keys).expect("valid");
        assert_eq!(verified.iter().map(|v| v.key).collect::<Vec<_>>(), [0, 1]);
        // Enoch's signature is ignored by a verifier that knows only Peter.
        both.verify_by(&peter()).expect("Peter signed");
        // A note signed only by an unknown key verifies nothing.
        let enoch_only = SignedNote::parse(format!("{TEXT}\n{ENOCH_SIG}").as_bytes()).expect("parses");
        assert!(matches!(enoch_only.verify_by(&peter()), Err(Error::Unsigned { .. })));
    }

    #[test]
    fn a_known_key_with_a_bad_signature_refuses_the_note() {
        let keys = [peter()];
        let tampered = format!("{}\n{PETER_SIG}", TEXT.replace("cryptography", "cryptographY"));
        let note = SignedNote::parse(tampered.as_bytes()).expect("parses");
        assert_eq!(note.verify(&keys), Err(Error::NoteSignature { name: "PeterNeumann".into() }));
        // Go's "enochABCD": a signature with bytes changed inside.
        let enoch = VerifierKey::parse(ENOCH_KEY).expect("parses");
        let changed = ENOCH_SIG.replace("5n2tiOHp", "5nABCD2tiOHp");
        let note = SignedNote::parse(format!("{TEXT}\n{changed}").as_bytes()).expect("parses");
        assert!(matches!(note.verify(&[enoch]), Err(Error::NoteSignature { .. })));
        // The same key twice.
        let twice = SignedNote::parse(format!("{TEXT}\n{PETER_SIG}{PETER_SIG}").as_bytes()).expect("parses");
        assert_eq!(twice.verify(&keys), Err(Error::Note("a key signed twice")));
        // A misnamed signature is another key's: ignored.
        let misnamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego");
        let note = SignedNote::parse(format!("{TEXT}\n{misnamed}").as_bytes()).expect("parses");
        assert_eq!(note.verify(&keys), Ok(Vec::new()));
    }

    #[test]
    fn malformed_notes_are_refused() {
        let good = format!("{TEXT}\n{PETER_SIG}");
        let cases: Vec<(String, &str)> = vec![
            (TEXT.to_owned(), "no signatures"),
            (good.trim_end_matches('\n').to_owned(), "no final newline"),
            (good.replace('\u{2014}', "-"), "hyphen for em dash"),
            (good.replace("\u{2014} ", "\u{2014}"), "no space after the dash"),
            (good.replace("PeterNeumann ", "Peter Neumann "), "bad base64 after a space in the name"),
            (good.replace("x08go", "x08g!"), "bad base64"),
            (good.replace("AM=\n", "AM\n"), "missing padding"),
            (good.replace("problem,", "prob\u{7}lem,"), "control character"),
            (format!("{TEXT}\n\u{2014} PeterNeumann AAAA\n"), "short signature"),
            (
                format!(
                    "{TEXT}\n\u{2014} Peter+Neumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
                ),
                "plus in name",
            ),
            (format!("{TEXT}\n{PETER_SIG}\n"), "trailing empty line"),
            (format!("no newline\n{PETER_SIG}"), "no empty line"),
        ];
        for (note, why) in cases {
            assert!(SignedNote::parse(note.as_bytes()).is_err(), "{why}");
        }
        assert!(SignedNote::parse(&[0xff, b'\n', b'\n']).is_err());
        let oversized = format!("{}\n{PETER_SIG}", "a\n".repeat(MAX_NOTE_BYTES / 2));
        assert!(matches!(SignedNote::parse(oversized.as_bytes()), Err(Error::TooLarge { .. })));
        let many = format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES + 1));
        assert!(matches!(SignedNote::parse(many.as_bytes()), Err(Error::TooLarge { .. })));
        assert!(SignedNote::parse(format!("{TEXT}\n{}", PETER_SIG.repeat(MAX_SIGNATURES)).as_bytes()).is_ok());
    }

    #[test]
    fn malformed_verifier_keys_are_refused() {
        let cases = [
            "PeterNeumann+c74f20a3",                                                      // two parts
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",         // wrong key ID
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",         // upper-case hex
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",          // short key ID
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==", // Go: wrong length
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",         // Go: unknown algorithm
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",          // bad base64
            "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",                     // empty name
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",        // space in name
        ];
        for key in cases {
            assert!(VerifierKey::parse(key).is_err(), "{key}");
        }
        // Every truncation of Go's key is refused too (Go's TestNewVerifier).
        for end in 0..PETER_KEY.len() {
            assert!(VerifierKey::parse(&PETER_KEY[..end]).is_err(), "prefix {end}");
        }
        // A weak (small-order) key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(VerifierKey::new("weak", KeyType::Ed25519, &identity), Err(Error::InvalidKey));
    }

    proptest::proptest! {
        /// Arbitrary bytes, and a valid note with one byte changed, never panic the parsers;
        /// a changed note never verifies as Peter's unless the change left it equal.
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), at in 0usize..400, byte in proptest::prelude::any::<u8>()) {
            let _ = SignedNote::parse(&bytes);
            let _ = VerifierKey::parse(&String::from_utf8_lossy(&bytes));
            let mut note = format!("{TEXT}\n{PETER_SIG}").into_bytes();
            let at = at % note.len();
            let changed = note[at] != byte;
            note[at] = byte;
            if let Ok(parsed) = SignedNote::parse(&note) {
                let verdict = parsed.verify_by(&peter());
                proptest::prop_assert!(!changed || verdict.is_err() || parsed.text() == TEXT);
            }
        }
    }

    #[test]
    fn text_may_hold_empty_lines_and_the_last_one_separates() {
        let signer = peter_signer();
        let text = "first\n\nsecond\n";
        let note = SignedNote::sign(text, &signer).expect("sign").encode();
        let parsed = SignedNote::parse(note.as_bytes()).expect("parses");
        assert_eq!(parsed.text(), text);
        parsed.verify_by(signer.verifier()).expect("valid");
    }

    #[test]
    fn signer_debug_does_not_show_the_seed() {
        let signer = NoteSigner::new("k", KeyType::Ed25519, &[0x42; 32]).expect("signer");
        let debug = format!("{signer:?}");
        assert!(debug.contains("k+"));
        assert!(!debug.contains(&hex::encode([0x42u8; 32])) && !debug.contains(&b64(&[0x42; 32])));
    }

    #[test]
    fn sign_refuses_text_without_final_newline_and_cosignature_keys() {
        let signer = peter_signer();
        assert!(SignedNote::sign("no newline", &signer).is_err());
        let cosigner = NoteSigner::new("auditor", KeyType::Cosignature, &[1; 32]).expect("signer");
        assert!(SignedNote::sign(TEXT, &cosigner).is_err());
    }
}
