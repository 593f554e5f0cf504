//! The transparency map's settings: the VRF private key (from the environment or a file, never printed) and the epoch interval.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_transparency::akd::ecvrf::{VRFKeyStorage, VRFPrivateKey, VrfError};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

use super::Secret;
use crate::Error;

/// The shortest accepted `KEYWARD_TRANSPARENCY_EPOCH_MS`.
pub const MIN_EPOCH_MS: u64 = 100;
/// The longest accepted `KEYWARD_TRANSPARENCY_EPOCH_MS` (an hour).
pub const MAX_EPOCH_MS: u64 = 3_600_000;

/// The map's VRF private key: 32 bytes (an Ed25519 secret key, akd's ECVRF over edwards25519).
///
/// It decides every leaf's position in the tree: it must never change for the life of a
/// directory (a new key is a new directory). Kept out of the database, zeroized on drop,
/// never printed. It is akd's key storage ([`VRFKeyStorage`]): akd asks it for the bytes.
#[derive(Clone)]
pub struct VrfKey(Arc<Zeroizing<[u8; 32]>>);

impl VrfKey {
    /// The key with these bytes; refused if akd cannot use them as a VRF key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Config(format!("the VRF key must be 32 bytes, not {}", bytes.len())))?;
        let key = Zeroizing::new(key);
        VRFPrivateKey::try_from(&key[..]).map_err(|_| Error::Config("the VRF key is not a usable key".into()))?;
        Ok(Self(Arc::new(key)))
    }
}

impl fmt::Debug for VrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VrfKey([redacted])")
    }
}

#[async_trait::async_trait]
impl VRFKeyStorage for VrfKey {
    async fn retrieve(&self) -> Result<Vec<u8>, VrfError> {
        Ok(self.0.to_vec())
    }
}

/// How keydir keeps its verifiable map.
#[derive(Debug, Clone)]
pub struct TransparencySettings {
    /// The VRF key; `None`: no map is published (updates still queue) and the transparency
    /// endpoints answer 503 `unavailable`.
    pub vrf_key: Option<VrfKey>,
    /// How often the publisher looks for pending updates and publishes them as one epoch.
    pub epoch_interval: Duration,
}

impl Default for TransparencySettings {
    /// No key, an epoch every 2 s.
    fn default() -> Self {
        Self { vrf_key: None, epoch_interval: Duration::from_millis(2000) }
    }
}

impl TransparencySettings {
    /// The settings from `KEYWARD_VRF_KEY` or `KEYWARD_VRF_KEY_FILE` (not both) and
    /// `KEYWARD_TRANSPARENCY_EPOCH_MS`.
    pub fn new(key: Option<&Secret>, key_file: Option<&Path>, epoch_ms: u64) -> Result<Self, Error> {
        let vrf_key = match (key, key_file) {
            (Some(_), Some(_)) => {
                return Err(Error::Config("set KEYWARD_VRF_KEY or KEYWARD_VRF_KEY_FILE, not both".into()));
            }
            (Some(text), None) => Some(parse_key(text.expose(), "KEYWARD_VRF_KEY")?),
            (None, Some(path)) => Some(read_key(path)?),
            (None, None) => None,
        };
        if !(MIN_EPOCH_MS..=MAX_EPOCH_MS).contains(&epoch_ms) {
            return Err(Error::Config(format!(
                "KEYWARD_TRANSPARENCY_EPOCH_MS must be {MIN_EPOCH_MS} to {MAX_EPOCH_MS}"
            )));
        }
        Ok(Self { vrf_key, epoch_interval: Duration::from_millis(epoch_ms) })
    }
}

/// Reads the key file (a mounted Kubernetes Secret, say). The error names the file, never its content.
fn read_key(path: &Path) -> Result<VrfKey, Error> {
    let text = std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|err| Error::Config(format!("KEYWARD_VRF_KEY_FILE {}: {err}", path.display())))?;
    let text = std::str::from_utf8(&text)
        .map_err(|_| Error::Config(format!("KEYWARD_VRF_KEY_FILE {}: not base64 text", path.display())))?;
    parse_key(text, "KEYWARD_VRF_KEY_FILE")
}

/// Decodes a key: base64 (standard alphabet, padded) of 32 bytes, white space around it ignored.
fn parse_key(text: &str, name: &str) -> Result<VrfKey, Error> {
    let bytes = STANDARD
        .decode(text.trim())
        .map(Zeroizing::new)
        .map_err(|_| Error::Config(format!("{name}: not base64 (standard alphabet, padded)")))?;
    VrfKey::from_bytes(&bytes).map_err(|err| Error::Config(format!("{name}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8=";

    #[test]
    fn a_key_is_base64_of_32_bytes_and_never_printed() {
        let settings = TransparencySettings::new(Some(&Secret::new(format!(" {KEY}\n"))), None, 2000).expect("valid");
        assert!(settings.vrf_key.is_some());
        let shown = format!("{settings:?}");
        assert!(!shown.contains(KEY) && !shown.contains("e0e1e2") && !shown.contains("224"), "{shown}");
        for bad in ["AAAA", "not base64!", "", "4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v/w"] {
            let err = TransparencySettings::new(Some(&Secret::new(bad)), None, 2000).expect_err("refused");
            assert!(matches!(err, Error::Config(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn the_key_comes_from_one_place_and_the_interval_is_bounded() {
        let dir = std::env::temp_dir().join(format!("keydir-vrf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("vrf");
        std::fs::write(&file, format!("{KEY}\n")).expect("written");
        assert!(TransparencySettings::new(None, Some(file.as_path()), 2000).expect("valid").vrf_key.is_some());
        assert!(TransparencySettings::new(Some(&Secret::new(KEY)), Some(file.as_path()), 2000).is_err());
        std::fs::write(&file, "c2hvcnQ=").expect("written");
        let err = TransparencySettings::new(None, Some(file.as_path()), 2000).expect_err("too short").to_string();
        assert!(err.contains("32 bytes") && !err.contains("c2hvcnQ"), "{err}");
        std::fs::remove_dir_all(&dir).expect("removed");
        for ms in [0, 99, 3_600_001] {
            assert!(TransparencySettings::new(None, None, ms).is_err(), "{ms}");
        }
        let none = TransparencySettings::new(None, None, 100).expect("valid");
        assert!(none.vrf_key.is_none() && none.epoch_interval == Duration::from_millis(100));
    }
}
