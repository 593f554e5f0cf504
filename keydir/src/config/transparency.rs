//! The transparency map's settings: the VRF private key and the head signing key (each from the environment or a file, never printed), the log's origin and the epoch interval.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_proto::transparency::heads::checkpoint::check_origin;
use keyward_proto::transparency::heads::{KeyType, NoteSigner, VerifierKey};
use keyward_transparency::akd::ecvrf::{VRFKeyStorage, VRFPrivateKey, VRFPublicKey, VrfError};
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

    /// The VRF public key (32 bytes).
    pub fn public_key(&self) -> Option<[u8; 32]> {
        let private = VRFPrivateKey::try_from(&self.0[..]).ok()?;
        Some(*VRFPublicKey::from(&private).as_bytes())
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

/// keydir's head signing key: a 32 byte Ed25519 seed with which it signs the epoch heads.
///
/// Kept out of the database, zeroized on drop (here and in the signer made from it), never
/// printed. Clients pin its verifier key; changing it is a new log to them.
#[derive(Clone)]
pub struct SigningKey(Arc<Zeroizing<[u8; 32]>>);

impl SigningKey {
    /// The key with these 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Config(format!("the head signing key must be 32 bytes, not {}", bytes.len())))?;
        Ok(Self(Arc::new(Zeroizing::new(key))))
    }

    /// The note signer of the log `origin` (the key's name is the origin, as C2SP recommends).
    pub fn signer(&self, origin: &str) -> Result<NoteSigner, Error> {
        NoteSigner::new(origin, KeyType::Ed25519, &self.0)
            .map_err(|err| Error::Config(format!("KEYWARD_TRANSPARENCY_ORIGIN: {err}")))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// How keydir keeps its verifiable map and its signed epoch heads.
#[derive(Debug, Clone)]
pub struct TransparencySettings {
    /// The VRF key; `None`: no map is published (updates still queue) and the transparency
    /// endpoints answer 503 `unavailable`.
    pub vrf_key: Option<VrfKey>,
    /// The head signing key; `None`: no head is signed (the map still publishes) and the head
    /// endpoints answer 503 `unavailable`.
    pub signing_key: Option<SigningKey>,
    /// The epoch log's origin (the heads' first line and the signing key's name).
    pub origin: String,
    /// How often the publisher looks for pending updates and publishes them as one epoch.
    pub epoch_interval: Duration,
    /// The auditors whose cosignatures are accepted and served (type `0x04` verifier keys).
    pub auditors: Vec<VerifierKey>,
    /// Most bytes the lookup proofs of the current epoch may take in the proof cache (0: none).
    pub proof_cache_bytes: usize,
}

/// The proof cache's default size (`KEYWARD_TRANSPARENCY_PROOF_CACHE_MB`): 64 MiB, some
/// 20,000 proofs of a directory of a million accounts.
pub const DEFAULT_PROOF_CACHE_BYTES: usize = 64 << 20;

impl Default for TransparencySettings {
    /// No key, an epoch every 2 s.
    fn default() -> Self {
        Self {
            vrf_key: None,
            signing_key: None,
            origin: "keyward/keydir".into(),
            epoch_interval: Duration::from_millis(2000),
            auditors: Vec::new(),
            proof_cache_bytes: DEFAULT_PROOF_CACHE_BYTES,
        }
    }
}

/// Where a key comes from: its variable's name, its value and the file variable's name and path.
pub struct KeySource<'a> {
    /// The variable holding the key (`KEYWARD_VRF_KEY`).
    pub name: &'static str,
    /// Its value.
    pub value: Option<&'a Secret>,
    /// The variable naming a file that holds the key (`KEYWARD_VRF_KEY_FILE`).
    pub file_name: &'static str,
    /// Its value.
    pub file: Option<&'a Path>,
}

impl KeySource<'_> {
    /// The key's bytes, if one is set (from one place only); the errors never show the key.
    fn read(&self) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        match (self.value, self.file) {
            (Some(_), Some(_)) => Err(Error::Config(format!("set {} or {}, not both", self.name, self.file_name))),
            (Some(text), None) => decode(text.expose(), self.name).map(Some),
            (None, Some(path)) => {
                let text = std::fs::read(path)
                    .map(Zeroizing::new)
                    .map_err(|err| Error::Config(format!("{} {}: {err}", self.file_name, path.display())))?;
                let text = std::str::from_utf8(&text)
                    .map_err(|_| Error::Config(format!("{} {}: not base64 text", self.file_name, path.display())))?;
                decode(text, self.file_name).map(Some)
            }
            (None, None) => Ok(None),
        }
    }
}

impl TransparencySettings {
    /// The settings from `KEYWARD_VRF_KEY` or `KEYWARD_VRF_KEY_FILE` (not both),
    /// `KEYWARD_TRANSPARENCY_SIGNING_KEY` or `..._FILE` (not both), `KEYWARD_TRANSPARENCY_ORIGIN`
    /// and `KEYWARD_TRANSPARENCY_EPOCH_MS`.
    ///
    /// Without an origin it is `keyward/` and the hex of the VRF public key's first 8 bytes: the
    /// VRF key is the directory's for its whole life, so is the origin.
    pub fn new(
        vrf: &KeySource<'_>,
        signing: &KeySource<'_>,
        origin: Option<&str>,
        epoch_ms: u64,
    ) -> Result<Self, Error> {
        let vrf_key = match vrf.read()? {
            Some(bytes) => {
                Some(VrfKey::from_bytes(&bytes).map_err(|err| Error::Config(format!("{}: {err}", vrf.name)))?)
            }
            None => None,
        };
        let signing_key = match signing.read()? {
            Some(bytes) => {
                Some(SigningKey::from_bytes(&bytes).map_err(|err| Error::Config(format!("{}: {err}", signing.name)))?)
            }
            None => None,
        };
        let origin = match (origin, &vrf_key) {
            (Some(origin), _) => origin.to_owned(),
            (None, Some(key)) => {
                let public = key.public_key().ok_or_else(|| Error::Config("the VRF key is not a usable key".into()))?;
                format!("keyward/{}", hex::encode(&public[..8]))
            }
            (None, None) => "keyward/keydir".to_owned(),
        };
        check_origin(&origin).map_err(|err| Error::Config(format!("KEYWARD_TRANSPARENCY_ORIGIN: {err}")))?;
        if !(MIN_EPOCH_MS..=MAX_EPOCH_MS).contains(&epoch_ms) {
            return Err(Error::Config(format!(
                "KEYWARD_TRANSPARENCY_EPOCH_MS must be {MIN_EPOCH_MS} to {MAX_EPOCH_MS}"
            )));
        }
        Ok(Self {
            vrf_key,
            signing_key,
            origin,
            epoch_interval: Duration::from_millis(epoch_ms),
            proof_cache_bytes: DEFAULT_PROOF_CACHE_BYTES,
            auditors: Vec::new(),
        })
    }
}

/// Decodes a key: base64 (standard alphabet, padded), white space around it ignored.
fn decode(text: &str, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    STANDARD
        .decode(text.trim())
        .map(Zeroizing::new)
        .map_err(|_| Error::Config(format!("{name}: not base64 (standard alphabet, padded)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8=";
    const SIGNING: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn vrf<'a>(value: Option<&'a Secret>, file: Option<&'a Path>) -> KeySource<'a> {
        KeySource { name: "KEYWARD_VRF_KEY", value, file_name: "KEYWARD_VRF_KEY_FILE", file }
    }

    fn signing(value: Option<&Secret>) -> KeySource<'_> {
        KeySource {
            name: "KEYWARD_TRANSPARENCY_SIGNING_KEY",
            value,
            file_name: "KEYWARD_TRANSPARENCY_SIGNING_KEY_FILE",
            file: None,
        }
    }

    fn vrf_only(key: Option<&Secret>, file: Option<&Path>, ms: u64) -> Result<TransparencySettings, Error> {
        TransparencySettings::new(&vrf(key, file), &signing(None), None, ms)
    }

    #[test]
    fn a_key_is_base64_of_32_bytes_and_never_printed() {
        let settings = vrf_only(Some(&Secret::new(format!(" {KEY}\n"))), None, 2000).expect("valid");
        assert!(settings.vrf_key.is_some());
        let shown = format!("{settings:?}");
        assert!(!shown.contains(KEY) && !shown.contains("e0e1e2") && !shown.contains("224"), "{shown}");
        for bad in ["AAAA", "not base64!", "", "4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v/w"] {
            let err = vrf_only(Some(&Secret::new(bad)), None, 2000).expect_err("refused");
            assert!(matches!(err, Error::Config(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn the_key_comes_from_one_place_and_the_interval_is_bounded() {
        let dir = std::env::temp_dir().join(format!("keydir-vrf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("vrf");
        std::fs::write(&file, format!("{KEY}\n")).expect("written");
        assert!(vrf_only(None, Some(file.as_path()), 2000).expect("valid").vrf_key.is_some());
        assert!(vrf_only(Some(&Secret::new(KEY)), Some(file.as_path()), 2000).is_err());
        std::fs::write(&file, "c2hvcnQ=").expect("written");
        let err = vrf_only(None, Some(file.as_path()), 2000).expect_err("too short").to_string();
        assert!(err.contains("32 bytes") && !err.contains("c2hvcnQ"), "{err}");
        std::fs::remove_dir_all(&dir).expect("removed");
        for ms in [0, 99, 3_600_001] {
            assert!(vrf_only(None, None, ms).is_err(), "{ms}");
        }
        let none = vrf_only(None, None, 100).expect("valid");
        assert!(none.vrf_key.is_none() && none.epoch_interval == Duration::from_millis(100));
    }

    #[test]
    fn the_signing_key_is_never_printed_and_the_origin_is_checked() {
        let vrf_key = Secret::new(KEY);
        let key = Secret::new(SIGNING);
        let settings =
            TransparencySettings::new(&vrf(Some(&vrf_key), None), &signing(Some(&key)), None, 2000).expect("valid");
        let shown = format!("{settings:?}");
        assert!(!shown.contains(SIGNING) && !shown.contains("000102") && shown.contains("[redacted]"), "{shown}");
        // Derived from the VRF public key: stable for the directory's life.
        assert_eq!(settings.origin, "keyward/13d9908a70925992", "keyward/ and the VRF public key's first 8 bytes");
        let signer = settings.signing_key.expect("a key").signer(&settings.origin).expect("a signer");
        assert_eq!(signer.verifier().name(), settings.origin);
        let named =
            TransparencySettings::new(&vrf(None, None), &signing(Some(&key)), Some("keyward/example.org"), 2000)
                .expect("valid");
        assert_eq!(named.origin, "keyward/example.org");
        for bad in ["", "has space", "plus+sign", "\u{e9}"] {
            assert!(TransparencySettings::new(&vrf(None, None), &signing(None), Some(bad), 2000).is_err(), "{bad}");
        }
        let short = Secret::new("c2hvcnQ=");
        let err = TransparencySettings::new(&vrf(None, None), &signing(Some(&short)), None, 2000)
            .expect_err("too short")
            .to_string();
        assert!(err.contains("KEYWARD_TRANSPARENCY_SIGNING_KEY") && err.contains("32 bytes"), "{err}");
    }
}
