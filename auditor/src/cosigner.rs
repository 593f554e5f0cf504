//! The auditor's cosigning key: a type `0x04` Ed25519 key read from the environment or a file, zeroized, never printed.

use crate::error::{AuditorError, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_proto::transparency::heads::cosignature::cosign;
use keyward_proto::transparency::heads::{KeyType, NoteSigner, SignedNote, VerifierKey};
use std::path::Path;
use zeroize::Zeroizing;

/// The auditor's signer. `Debug` shows the verifier key only (keyward-proto's `NoteSigner`).
#[derive(Debug)]
pub struct Cosigner(NoteSigner);

impl Cosigner {
    /// The key named `name` from base64 of a 32 byte seed (white space around it ignored).
    pub fn from_base64(name: &str, text: &str) -> Result<Self> {
        let bytes = STANDARD
            .decode(text.trim())
            .map(Zeroizing::new)
            .map_err(|_| AuditorError::Usage("the auditor key is not base64 (standard, padded)".into()))?;
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| AuditorError::Usage(format!("the auditor key must be 32 bytes, not {}", bytes.len())))?,
        );
        let signer = NoteSigner::new(name, KeyType::Cosignature, &seed)
            .map_err(|err| AuditorError::Usage(format!("the auditor's name: {err}")))?;
        Ok(Self(signer))
    }

    /// The key from a file holding its base64.
    pub fn from_file(name: &str, path: &Path) -> Result<Self> {
        let text = std::fs::read(path)
            .map(Zeroizing::new)
            .map_err(|err| AuditorError::Usage(format!("the auditor key file {}: {err}", path.display())))?;
        let text = std::str::from_utf8(&text)
            .map_err(|_| AuditorError::Usage(format!("the auditor key file {}: not base64 text", path.display())))?;
        Self::from_base64(name, text)
    }

    /// The verifier key keydir is configured with (`KEYWARD_TRANSPARENCY_AUDITORS`).
    pub fn verifier(&self) -> &VerifierKey {
        self.0.verifier()
    }

    /// The cosignature line (without its newline) of `note` at `timestamp`.
    pub fn cosign(&self, note: &SignedNote, timestamp: u64) -> Result<String> {
        let line = cosign(&self.0, note, timestamp).map_err(|err| AuditorError::Usage(format!("cosign: {err}")))?;
        Ok(line.encode().trim_end_matches('\n').to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_32_bytes_of_base64_and_never_printed() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let cosigner = Cosigner::from_base64("auditor.example", &format!(" {key}\n")).expect("valid");
        let shown = format!("{cosigner:?}");
        assert!(!shown.contains(key) && !shown.contains("000102"), "{shown}");
        assert_eq!(cosigner.verifier().kind(), KeyType::Cosignature);
        assert!(Cosigner::from_base64("auditor.example", "c2hvcnQ=").is_err());
        assert!(Cosigner::from_base64("has space", key).is_err());
    }
}
