//! The guess-limited restore's settings: the OPRF master seed (from the environment or a file, never printed), the guess limit and the lock's expiry.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_proto::restore::{MAX_SEED_BYTES, MIN_SEED_BYTES, OprfSeed};
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

use super::Secret;
use crate::Error;

/// The largest accepted `KEYWARD_RESTORE_MAX_ATTEMPTS`.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;
/// The longest accepted `KEYWARD_RESTORE_LOCK_SECONDS` (a year).
pub const LOCK_SECONDS_LIMIT: u64 = 366 * 24 * 3600;

/// How keydir limits guesses at a passphrase (protocol section 6.2).
#[derive(Debug, Clone)]
pub struct RestoreSettings {
    /// The OPRF master seed; `None`: the restore endpoints answer `restore-unavailable`.
    /// `Debug` prints nothing of it.
    pub seed: Option<OprfSeed>,
    /// Evaluations answered without a valid proof before the account is locked (the last one
    /// locks it and is still answered).
    pub max_attempts: u32,
    /// How long a lock lasts; `None`: until an admin unlocks the account.
    pub lock: Option<Duration>,
}

impl Default for RestoreSettings {
    /// No seed, 10 guesses, locks only an admin clears.
    fn default() -> Self {
        Self { seed: None, max_attempts: 10, lock: None }
    }
}

impl RestoreSettings {
    /// The settings from `KEYWARD_OPRF_SEED` or `KEYWARD_OPRF_SEED_FILE` (not both),
    /// `KEYWARD_RESTORE_MAX_ATTEMPTS` and `KEYWARD_RESTORE_LOCK_SECONDS` (0: no expiry).
    pub fn new(
        seed: Option<&Secret>,
        seed_file: Option<&Path>,
        max_attempts: u32,
        lock_seconds: u64,
    ) -> Result<Self, Error> {
        let seed = match (seed, seed_file) {
            (Some(_), Some(_)) => {
                return Err(Error::Config("set KEYWARD_OPRF_SEED or KEYWARD_OPRF_SEED_FILE, not both".into()));
            }
            (Some(text), None) => Some(parse_seed(text.expose(), "KEYWARD_OPRF_SEED")?),
            (None, Some(path)) => Some(read_seed(path)?),
            (None, None) => None,
        };
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(Error::Config(format!("KEYWARD_RESTORE_MAX_ATTEMPTS must be 1 to {MAX_ATTEMPTS_LIMIT}")));
        }
        if lock_seconds > LOCK_SECONDS_LIMIT {
            return Err(Error::Config(format!("KEYWARD_RESTORE_LOCK_SECONDS must be at most {LOCK_SECONDS_LIMIT}")));
        }
        let lock = (lock_seconds > 0).then(|| Duration::from_secs(lock_seconds));
        Ok(Self { seed, max_attempts, lock })
    }
}

/// Reads the seed file (a mounted Kubernetes Secret, say). The error names the file, never its content.
fn read_seed(path: &Path) -> Result<OprfSeed, Error> {
    let text = std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|err| Error::Config(format!("KEYWARD_OPRF_SEED_FILE {}: {err}", path.display())))?;
    let text = std::str::from_utf8(&text)
        .map_err(|_| Error::Config(format!("KEYWARD_OPRF_SEED_FILE {}: not base64 text", path.display())))?;
    parse_seed(text, "KEYWARD_OPRF_SEED_FILE")
}

/// Decodes a seed: base64 (standard alphabet, padded), white space around it ignored,
/// 32 to 1024 bytes. Errors say what is wrong, never which byte.
pub fn parse_seed(text: &str, name: &str) -> Result<OprfSeed, Error> {
    let bytes = STANDARD
        .decode(text.trim())
        .map(Zeroizing::new)
        .map_err(|_| Error::Config(format!("{name}: not base64 (standard alphabet, padded)")))?;
    if !(MIN_SEED_BYTES..=MAX_SEED_BYTES).contains(&bytes.len()) {
        return Err(Error::Config(format!(
            "{name}: the seed must be {MIN_SEED_BYTES} to {MAX_SEED_BYTES} bytes, not {}",
            bytes.len()
        )));
    }
    OprfSeed::from_bytes(&bytes).map_err(|_| Error::Config(format!("{name}: not a usable seed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8=";

    #[test]
    fn a_seed_is_base64_of_32_bytes_or_more_and_never_printed() {
        let settings = RestoreSettings::new(Some(&Secret::new(format!(" {SEED}\n"))), None, 10, 0).expect("valid");
        let seed = settings.seed.as_ref().expect("a seed");
        assert_eq!(seed.as_bytes()[0], 0xe0);
        let shown = format!("{settings:?}");
        assert!(!shown.contains(SEED) && !shown.contains("e0e1e2") && !shown.contains("224"), "{shown}");
        for bad in ["e0e1e2e3", "AAAA", "not base64 at all!", ""] {
            let err = RestoreSettings::new(Some(&Secret::new(bad)), None, 10, 0).expect_err("refused");
            assert!(matches!(err, Error::Config(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn the_seed_comes_from_one_place_and_the_file_is_named_in_errors() {
        let dir = std::env::temp_dir().join(format!("keydir-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("seed");
        std::fs::write(&file, format!("{SEED}\n")).expect("written");
        let from_file = RestoreSettings::new(None, Some(file.as_path()), 10, 0).expect("valid");
        assert_eq!(from_file.seed.expect("a seed").as_bytes().len(), 32);
        let both = RestoreSettings::new(Some(&Secret::new(SEED)), Some(file.as_path()), 10, 0);
        assert!(matches!(both, Err(Error::Config(_))));
        std::fs::write(&file, "c2hvcnQ=").expect("written");
        let err = RestoreSettings::new(None, Some(file.as_path()), 10, 0).expect_err("too short").to_string();
        assert!(err.contains("32 to 1024 bytes") && !err.contains("c2hvcnQ"), "{err}");
        let missing = RestoreSettings::new(None, Some(dir.join("absent").as_path()), 10, 0).expect_err("missing");
        assert!(missing.to_string().contains("absent"), "{missing}");
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn limits_default_and_are_bounded() {
        let none = RestoreSettings::new(None, None, 10, 0).expect("valid");
        assert!(none.seed.is_none() && none.lock.is_none() && none.max_attempts == 10);
        let lock = RestoreSettings::new(None, None, 3, 60).expect("valid").lock;
        assert_eq!(lock, Some(Duration::from_secs(60)));
        for (attempts, seconds) in [(0, 0), (1001, 0), (10, LOCK_SECONDS_LIMIT + 1)] {
            assert!(RestoreSettings::new(None, None, attempts, seconds).is_err(), "{attempts} {seconds}");
        }
    }
}
