//! The directory's pinned transparency keys and the newest verified epoch head, in the account's database.

use super::Store;
use crate::error::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_proto::transparency::check::DirectoryKeys;
use keyward_proto::transparency::heads::{CosignaturePolicy, VerifierKey};
use rusqlite::{OptionalExtension, params};

/// What the store knows of the directory's transparency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pinned {
    /// The pinned keys (`None`: the component offered none when last asked).
    pub keys: Option<DirectoryKeys>,
    /// When the component's offer was last read (ms since the Unix epoch).
    pub checked_at_ms: i64,
    /// The newest verified head's note.
    pub head: Option<String>,
}

impl Store {
    /// Sets the auditors' cosignatures every head must carry (from the account's configuration).
    pub(crate) fn set_cosignature_policy(&self, policy: CosignaturePolicy) {
        if let Ok(mut current) = self.cosignatures.lock() {
            *current = policy;
        }
    }

    /// The auditors' cosignatures every head must carry.
    pub(crate) fn cosignature_policy(&self) -> CosignaturePolicy {
        self.cosignatures.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The pinned transparency state, if the component was ever asked.
    pub(crate) fn transparency(&self) -> Result<Option<Pinned>> {
        let db = self.db()?;
        let row = db
            .query_row(
                "SELECT origin, log_key, vrf_key, checked_at_ms, head FROM transparency WHERE id = 1",
                [],
                |row| {
                    Ok((
                        row.get::<_, Option<String>>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.error(e))?;
        let Some((origin, log_key, vrf_key, checked_at_ms, head)) = row else { return Ok(None) };
        let keys = match (origin, log_key, vrf_key) {
            (Some(origin), Some(log_key), Some(vrf_key)) => {
                let log_key = VerifierKey::parse(&log_key).map_err(|e| self.error(e))?;
                let vrf = STANDARD.decode(vrf_key).map_err(|e| self.error(e))?;
                let vrf_key =
                    <[u8; 32]>::try_from(vrf.as_slice()).map_err(|_| self.error("VRF key is not 32 bytes"))?;
                Some(DirectoryKeys { origin, log_key, vrf_key })
            }
            _ => None,
        };
        Ok(Some(Pinned { keys, checked_at_ms, head }))
    }

    /// Whether the directory's transparency keys are pinned (every key is then checked against its map).
    pub(crate) fn transparency_pinned(&self) -> Result<bool> {
        Ok(self.transparency()?.is_some_and(|p| p.keys.is_some()))
    }

    /// Records what the component offers: pins `keys` unless keys are pinned already (those
    /// are never replaced), and the time of asking.
    pub(crate) fn offer_transparency(&self, keys: Option<&DirectoryKeys>, now_ms: i64) -> Result<()> {
        let db = self.db()?;
        let (origin, log_key, vrf_key) = match keys {
            Some(k) => (Some(k.origin.clone()), Some(k.log_key.to_string()), Some(STANDARD.encode(k.vrf_key))),
            None => (None, None, None),
        };
        db.execute(
            "INSERT INTO transparency (id, origin, log_key, vrf_key, checked_at_ms) VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET checked_at_ms = excluded.checked_at_ms,
                 origin = COALESCE(transparency.origin, excluded.origin),
                 log_key = COALESCE(transparency.log_key, excluded.log_key),
                 vrf_key = COALESCE(transparency.vrf_key, excluded.vrf_key)",
            params![origin, log_key, vrf_key, now_ms],
        )
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Stores a verified head of `size` unless a larger one is stored (heads never roll back).
    pub(crate) fn store_head(&self, note: &str, size: u64) -> Result<()> {
        let db = self.db()?;
        let size = i64::try_from(size).map_err(|_| self.error("head size beyond 2^63"))?;
        db.execute(
            "UPDATE transparency SET head = ?1, head_size = ?2 WHERE id = 1 AND (head_size IS NULL OR head_size < ?2)",
            params![note, size],
        )
        .map_err(|e| self.error(e))?;
        Ok(())
    }
}
