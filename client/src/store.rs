//! Local state of one account on one device, in one SQLite database: own sealed keys, contacts, the replay window.
//!
//! Layout (protocol section 12.5): inside the folder the user names (`--data-dir`,
//! `KEYWARD_DATA_DIR`, else the platform data folder such as `~/.local/share`), keyward keeps
//! `keyward/<account jid>/` (both 0700; the named folder is created when missing but its
//! permissions are never changed) holding `state.sqlite3` (0600; its journal inherits the mode). Tables are described in `store/schema.sql`: the
//! own bundle and the secret blob exactly as sealed (never a private key in the clear),
//! contacts with pins, trust and revocations, the replay rule's per-sender state, and
//! evidence kept of refused stanzas. Every change is one transaction, so a running `recv`
//! and a `send` in another terminal never lose each other's updates; a received message
//! costs one indexed insert. State of the earlier JSON layout (`account.json`,
//! `contacts.json`, `replay.json`) is imported on first open and the files removed.

mod migrate;
mod replay;
mod transparency;

use crate::contacts::{Contact, Contacts, Revocation, Trust};
use crate::error::{Error, Result};
use crate::fsutil::{create_missing_dirs, ensure_private_dir, open_private};
use keyward_proto::restore::AnySecret;
use keyward_proto::{BareJid, Bundle, ReplayCache, VerifiedBundle, XmlElement};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The environment variable that overrides the data folder.
pub const DATA_DIR_ENV: &str = "KEYWARD_DATA_DIR";

/// The database file inside an account's state folder.
pub const DATABASE_FILE: &str = "state.sqlite3";

/// The schema version this code writes (SQLite's `user_version`).
const SCHEMA_VERSION: i64 = 2;

/// How long a write waits for another process holding the database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The name of keyward's own folder inside the data folder the user names.
pub const STATE_FOLDER: &str = "keyward";

/// The default data folder: `$KEYWARD_DATA_DIR`, else the platform's user data folder
/// (`~/.local/share` on Linux). keyward's state goes in `keyward/` inside it.
pub fn default_data_dir() -> Option<PathBuf> {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::data_dir(),
    }
}

/// The account's own keys as cached on this device: public bundle and sealed secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// The account.
    pub jid: String,
    /// The published bundle (XML).
    pub bundle: String,
    /// The secret blob exactly as stored on the server (XML, passphrase-sealed).
    pub secret: String,
}

impl AccountState {
    /// Builds the cached state from a bundle and a sealed blob (either version).
    pub fn new(bundle: &VerifiedBundle, secret: &AnySecret) -> Self {
        Self { jid: bundle.jid().to_string(), bundle: bundle.to_xml(), secret: secret.to_xml() }
    }

    /// The bundle, verified again for `jid`.
    pub fn bundle(&self, jid: &BareJid) -> Result<VerifiedBundle> {
        Ok(crate::contacts::verify_bundle(&Bundle::parse(self.bundle.as_bytes())?, jid)?)
    }

    /// The sealed secret blob: version 1 once the account has a keyward component, version 0
    /// from before, or for keys kept on this device only ([`crate::Session::with_local_keys`]).
    pub fn secret(&self) -> Result<AnySecret> {
        Ok(AnySecret::parse(self.secret.as_bytes())?)
    }
}

/// The local state of one account.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
    jid: BareJid,
    db: Mutex<Connection>,
    /// The auditors' cosignatures the account requires on the directory's heads (configuration,
    /// not stored: [`crate::Account::cosignatures`]).
    cosignatures: Mutex<keyward_proto::transparency::heads::CosignaturePolicy>,
}

impl Store {
    /// Opens (creating) the state folder of `jid`, `<data_dir>/keyward/<jid>/`, and its database.
    /// `data_dir` is created (0700) when missing and otherwise left as it is. State of earlier
    /// layouts is taken over once: the folder `<data_dir>/<jid>/` is moved, and JSON state is
    /// imported into the database.
    pub fn open(data_dir: &Path, jid: &BareJid) -> Result<Self> {
        create_missing_dirs(data_dir)?;
        let root = data_dir.join(STATE_FOLDER);
        ensure_private_dir(&root)?;
        let dir = root.join(jid.as_str());
        let old = data_dir.join(jid.as_str());
        if old.join("account.json").is_file() && !dir.exists() {
            std::fs::rename(&old, &dir)
                .map_err(|e| Error::store(&old, format!("moving it to {}: {e}", dir.display())))?;
        }
        ensure_private_dir(&dir)?;
        let path = dir.join(DATABASE_FILE);
        // Created 0600 before SQLite opens it; SQLite gives its journal the same mode.
        drop(open_private(&path)?);
        let db = Connection::open(&path).map_err(|e| Error::store(&path, e))?;
        let store = Self { dir, path, jid: jid.clone(), db: Mutex::new(db), cosignatures: Mutex::default() };
        store.prepare()?;
        migrate::import_json(&store)?;
        Ok(store)
    }

    fn prepare(&self) -> Result<()> {
        let db = self.db()?;
        db.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.error(e))?;
        // Rollback journal and full sync: a crash never loses an accepted message's id.
        db.pragma_update(None, "synchronous", "FULL").map_err(|e| self.error(e))?;
        db.pragma_update(None, "foreign_keys", "ON").map_err(|e| self.error(e))?;
        let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(|e| self.error(e))?;
        match version {
            0 | 1 => {
                let tx = db.unchecked_transaction().map_err(|e| self.error(e))?;
                if version == 0 {
                    tx.execute_batch(include_str!("store/schema.sql")).map_err(|e| self.error(e))?;
                }
                tx.execute_batch(include_str!("store/schema_v2.sql")).map_err(|e| self.error(e))?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(|e| self.error(e))?;
                tx.commit().map_err(|e| self.error(e))
            }
            SCHEMA_VERSION => Ok(()),
            other => Err(Error::store(&self.path, format!("written by a newer keyward (schema {other})"))),
        }
    }

    fn db(&self) -> Result<MutexGuard<'_, Connection>> {
        self.db.lock().map_err(|_| Error::store(&self.path, "a previous operation panicked"))
    }

    fn error(&self, cause: impl std::fmt::Display) -> Error {
        Error::store(&self.path, cause)
    }

    /// The account's state folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached own keys, if this device has them.
    pub fn account(&self) -> Result<Option<AccountState>> {
        let db = self.db()?;
        let state = db
            .query_row("SELECT jid, bundle, secret FROM account", [], |row| {
                Ok(AccountState { jid: row.get(0)?, bundle: row.get(1)?, secret: row.get(2)? })
            })
            .optional()
            .map_err(|e| self.error(e))?;
        match state {
            Some(state) if state.jid != self.jid.as_str() => Err(self.error("belongs to another account")),
            other => Ok(other),
        }
    }

    /// Caches the own keys (bundle and sealed secret).
    pub fn save_account(&self, state: &AccountState) -> Result<()> {
        if state.jid != self.jid.as_str() {
            return Err(self.error("belongs to another account"));
        }
        let db = self.db()?;
        db.execute(
            "INSERT INTO account (jid, bundle, secret) VALUES (?1, ?2, ?3)
             ON CONFLICT (jid) DO UPDATE SET bundle = excluded.bundle, secret = excluded.secret",
            params![state.jid, state.bundle, state.secret],
        )
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The contacts as currently stored.
    pub fn contacts(&self) -> Result<Contacts> {
        let db = self.db()?;
        read_contacts(&db).map_err(|e| self.error(e))
    }

    /// Reads, changes and writes back the contacts in one transaction.
    pub fn update_contacts<R>(&self, change: impl FnOnce(&mut Contacts) -> R) -> Result<R> {
        let mut db = self.db()?;
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.error(e))?;
        let mut contacts = read_contacts(&tx).map_err(|e| self.error(e))?;
        let before = contacts.clone();
        let result = change(&mut contacts);
        for (jid, contact) in &contacts.contacts {
            if before.contacts.get(jid) != Some(contact) {
                write_contact(&tx, jid, contact).map_err(|e| self.error(e))?;
            }
        }
        tx.commit().map_err(|e| self.error(e))?;
        Ok(result)
    }

    /// Runs `f` with the persistent replay state in one transaction (committed whatever `f`
    /// returns: the replay rule records only what it accepted). A database failure inside is
    /// reported as [`Error::Store`] and refuses the message.
    pub fn with_replay<R>(&self, f: impl FnOnce(&mut dyn ReplayCache) -> R) -> Result<R> {
        let mut db = self.db()?;
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.error(e))?;
        let mut cache = replay::DbReplay::new(&tx);
        let result = f(&mut cache);
        if let Some(failure) = cache.failure() {
            return Err(self.error(failure));
        }
        tx.commit().map_err(|e| self.error(e))?;
        Ok(result)
    }

    /// Keeps a refused stanza as evidence (e.g. a message signed by a changed key).
    pub fn keep_evidence(&self, kind: &str, sender: &BareJid, xml: &str) -> Result<()> {
        let db = self.db()?;
        db.execute(
            "INSERT INTO evidence (kept_at_ms, kind, sender, xml) VALUES (?1, ?2, ?3, ?4)",
            params![now_ms(), kind, sender.as_str(), xml],
        )
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The evidence kept, oldest first: `(kind, sender, xml)`.
    pub fn evidence(&self) -> Result<Vec<(String, String, String)>> {
        let db = self.db()?;
        let mut statement =
            db.prepare("SELECT kind, sender, xml FROM evidence ORDER BY id").map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .and_then(Iterator::collect)
            .map_err(|e| self.error(e))?;
        Ok(rows)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn read_contacts(db: &Connection) -> rusqlite::Result<Contacts> {
    let mut statement = db.prepare(
        "SELECT jid, pinned, pinned_at_ms, trust, pending, revoked_at, revoked_fp, revoked_reason FROM contacts",
    )?;
    let rows = statement.query_map([], |row| {
        let trust: String = row.get(3)?;
        let pinned_at: Option<i64> = row.get(2)?;
        let revoked_at: Option<String> = row.get(5)?;
        let contact = Contact {
            pinned: row.get(1)?,
            pinned_at_ms: pinned_at.and_then(|ms| u64::try_from(ms).ok()),
            trust: if trust == "verified" { Trust::Verified } else { Trust::Tofu },
            pending: row.get(4)?,
            revoked: match revoked_at {
                Some(at) => Some(Revocation {
                    at,
                    fp: row.get(6)?,
                    reason: row.get::<_, Option<String>>(7)?.unwrap_or_default(),
                }),
                None => None,
            },
        };
        Ok((row.get::<_, String>(0)?, contact))
    })?;
    let mut contacts = Contacts::default();
    for row in rows {
        let (jid, contact) = row?;
        contacts.contacts.insert(jid, contact);
    }
    Ok(contacts)
}

fn write_contact(db: &Connection, jid: &str, contact: &Contact) -> rusqlite::Result<()> {
    let revoked = contact.revoked.as_ref();
    db.execute(
        "INSERT INTO contacts (jid, pinned, pinned_at_ms, trust, pending, revoked_at, revoked_fp, revoked_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (jid) DO UPDATE SET pinned = excluded.pinned, pinned_at_ms = excluded.pinned_at_ms,
             trust = excluded.trust, pending = excluded.pending, revoked_at = excluded.revoked_at,
             revoked_fp = excluded.revoked_fp, revoked_reason = excluded.revoked_reason",
        params![
            jid,
            contact.pinned,
            contact.pinned_at_ms.and_then(|ms| i64::try_from(ms).ok()),
            contact.trust.as_str(),
            contact.pending,
            revoked.map(|r| r.at.as_str()),
            revoked.and_then(|r| r.fp.as_deref()),
            revoked.map(|r| r.reason.as_str()),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
