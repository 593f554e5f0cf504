//! The auditor's state directory: the pinned keys, the last verified head with the log's compact range (one JSON file, replaced atomically), and the evidence of alarms.
//!
//! `<dir>/state.json`:
//!
//! ```json
//! {"version": 1, "origin": "...", "log_key": "<verifier key>", "vrf_public_key": "<base64>",
//!  "verified": {"size": 7, "note": "<signed note>", "frontier": ["<base64>", ...]},
//!  "alarm": {"kind": "fork", "detail": "...", "evidence": "alarms/1765000000-fork", "at": 1765000000}}
//! ```
//!
//! `verified` and `alarm` may be null. `frontier` holds the roots of the log's perfect
//! subtrees at `size` (one per bit set in `size`, largest first). An alarm's evidence directory
//! holds `verified.note` (the last verified head, if any), `served.note` and `alarm.txt`.

use crate::error::{AuditorError, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The state file's format version.
pub const VERSION: u32 = 1;
/// The state file's name in the state directory.
pub const FILE: &str = "state.json";

/// The last verified head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    /// Its size.
    pub size: u64,
    /// The signed note as served.
    pub note: String,
    /// The log's compact range at `size`, base64.
    pub frontier: Vec<String>,
}

/// A raised alarm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// Its name (`fork`, `rollback`, ...).
    pub kind: String,
    /// The error's text.
    pub detail: String,
    /// The evidence directory, relative to the state directory.
    pub evidence: String,
    /// When (seconds since the Unix epoch).
    pub at: u64,
}

/// Everything the auditor keeps between rounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// The log's origin.
    pub origin: String,
    /// keydir's pinned note verifier key.
    pub log_key: String,
    /// The pinned VRF public key, base64.
    pub vrf_public_key: String,
    /// The last verified head; `None` before the first.
    pub verified: Option<Verified>,
    /// The alarm raised, if any.
    pub alarm: Option<Alarm>,
}

fn failed(path: &Path, err: impl std::fmt::Display) -> AuditorError {
    AuditorError::State { path: path.to_path_buf(), detail: err.to_string() }
}

/// Reads the state of `dir`; `None` if it has none yet.
pub fn load(dir: &Path) -> Result<Option<State>> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(failed(&path, err)),
    };
    let state: State = serde_json::from_slice(&bytes).map_err(|err| failed(&path, err))?;
    if state.version != VERSION {
        return Err(failed(&path, format!("version {} is not {VERSION}", state.version)));
    }
    Ok(Some(state))
}

/// Replaces the state of `dir` atomically: a temporary file in the same directory, synced,
/// renamed over the old one.
pub fn save(dir: &Path, state: &State) -> Result<()> {
    let path = dir.join(FILE);
    std::fs::create_dir_all(dir).map_err(|err| failed(dir, err))?;
    let bytes = serde_json::to_vec_pretty(state).map_err(|err| failed(&path, err))?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|err| failed(dir, err))?;
    file.write_all(&bytes).map_err(|err| failed(&path, err))?;
    file.as_file().sync_all().map_err(|err| failed(&path, err))?;
    file.persist(&path).map_err(|err| failed(&path, err.error))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        // Makes the rename durable where the platform allows syncing a directory.
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Keeps an alarm's evidence in `<dir>/alarms/<at>-<kind>/`; returns that path relative to `dir`.
pub fn keep_evidence(
    dir: &Path,
    kind: &str,
    at: u64,
    verified_note: Option<&str>,
    served_note: Option<&str>,
    detail: &str,
) -> Result<String> {
    let relative = format!("alarms/{at}-{kind}");
    let evidence: PathBuf = dir.join(&relative);
    std::fs::create_dir_all(&evidence).map_err(|err| failed(&evidence, err))?;
    let files = [("verified.note", verified_note), ("served.note", served_note), ("alarm.txt", Some(detail))];
    for (name, contents) in files {
        if let Some(contents) = contents {
            let path = evidence.join(name);
            std::fs::write(&path, contents).map_err(|err| failed(&path, err))?;
        }
    }
    Ok(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_evidence_is_kept() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(load(dir.path()).expect("empty"), None);
        let state = State {
            version: VERSION,
            origin: "keyward/example.org".into(),
            log_key: "k".into(),
            vrf_public_key: "v".into(),
            verified: Some(Verified { size: 3, note: "n".into(), frontier: vec!["a".into(), "b".into()] }),
            alarm: None,
        };
        save(dir.path(), &state).expect("saved");
        save(dir.path(), &state).expect("replaced");
        assert_eq!(load(dir.path()).expect("read"), Some(state));
        let relative = keep_evidence(dir.path(), "fork", 5, Some("old"), Some("new"), "why").expect("kept");
        assert_eq!(std::fs::read_to_string(dir.path().join(&relative).join("served.note")).expect("read"), "new");
        std::fs::write(dir.path().join(FILE), b"{").expect("written");
        assert!(matches!(load(dir.path()), Err(AuditorError::State { .. })));
    }
}
