//! Imports the state of the earlier JSON layout (`account.json`, `contacts.json`, `replay.json`) into the database once.

use super::{AccountState, Store, replay::DbReplay};
use crate::contacts::Contacts;
use crate::error::{Error, Result};
use crate::fsutil::read_optional;
use keyward_proto::{BareJid, ReplayCache};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::path::Path;

#[derive(Debug, Deserialize, Default)]
struct ReplayFile {
    entries: Vec<ReplayRecord>,
}

#[derive(Debug, Deserialize)]
struct ReplayRecord {
    from: String,
    id: String,
    ts: u64,
}

const FILES: [&str; 3] = ["account.json", "contacts.json", "replay.json"];

fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    read_optional(path)?.map(|bytes| serde_json::from_slice(&bytes).map_err(|e| Error::store(path, e))).transpose()
}

/// Imports whatever JSON state exists, in one transaction per kind, then removes the files.
pub(super) fn import_json(store: &Store) -> Result<()> {
    let dir = store.dir().to_owned();
    if !FILES.iter().any(|name| dir.join(name).exists()) {
        return Ok(());
    }
    if let Some(account) = read::<AccountState>(&dir.join("account.json"))? {
        store.save_account(&account)?;
    }
    if let Some(old) = read::<Contacts>(&dir.join("contacts.json"))? {
        store.update_contacts(|contacts| {
            for (jid, contact) in old.contacts {
                contacts.contacts.entry(jid).or_insert(contact);
            }
        })?;
    }
    if let Some(file) = read::<ReplayFile>(&dir.join("replay.json"))? {
        let path = dir.join("replay.json");
        let mut db = store.db()?;
        let tx = db.transaction().map_err(|e| Error::store(&path, e))?;
        let mut cache = DbReplay::new(&tx);
        for record in file.entries {
            let from = BareJid::parse(&record.from).map_err(|e| Error::store(&path, e))?;
            // Old entries in the order they were accepted; a repeat or an id outside the
            // window is simply not needed.
            let _ = cache.admit(&from, &record.id, record.ts);
        }
        if let Some(failure) = cache.failure() {
            return Err(Error::store(&path, failure));
        }
        tx.commit().map_err(|e| Error::store(&path, e))?;
    }
    for name in FILES {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::store(&dir.join(name), e)),
        }
    }
    Ok(())
}
