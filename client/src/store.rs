//! Local state of one account on one device: own sealed keys, pinned contacts, the replay cache.
//!
//! Layout (protocol section 12.5): inside the folder the user names (`--data-dir`,
//! `KEYWARD_DATA_DIR`, else the platform data folder such as `~/.local/share`), keyward keeps
//! `keyward/<account jid>/` (both 0700) holding `account.json` (own bundle and the secret blob
//! exactly as sealed: never a private key in the clear), `contacts.json` (pins, trust,
//! revocations), `replay.json` (accepted message ids) and `lock`. The named folder itself is
//! created when missing but its permissions are never changed. Every file is 0600 and
//! replaced atomically; read-modify-write cycles hold an exclusive lock on `lock`, so a running
//! `recv` and a `send` in another terminal do not lose each other's updates.

use crate::contacts::Contacts;
use crate::error::{Error, Result};
use crate::fsutil::{create_missing_dirs, ensure_private_dir, open_private, read_optional, write_private};
use keyward_proto::{BareJid, Bundle, MemoryReplayCache, ReplayEntry, SecretBlob, VerifiedBundle, XmlElement};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The environment variable that overrides the data folder.
pub const DATA_DIR_ENV: &str = "KEYWARD_DATA_DIR";

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
    /// Builds the cached state from a bundle and a sealed blob.
    pub fn new(bundle: &VerifiedBundle, secret: &SecretBlob) -> Self {
        Self { jid: bundle.jid().to_string(), bundle: bundle.to_xml(), secret: secret.to_xml() }
    }

    /// The bundle, verified again for `jid`.
    pub fn bundle(&self, jid: &BareJid) -> Result<VerifiedBundle> {
        Ok(Bundle::parse(self.bundle.as_bytes())?.verify_for(jid)?)
    }

    /// The sealed secret blob.
    pub fn secret(&self) -> Result<SecretBlob> {
        Ok(SecretBlob::parse(self.secret.as_bytes())?)
    }
}

#[derive(Debug, Serialize, Deserialize, Default)]
struct ReplayFile {
    entries: Vec<ReplayRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ReplayRecord {
    from: String,
    id: String,
    ts: u64,
}

/// The local state of one account.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    jid: BareJid,
}

/// Holds the store's exclusive lock until dropped.
#[derive(Debug)]
pub struct StoreLock(#[allow(dead_code)] std::fs::File);

impl Store {
    /// Opens (creating) the state folder of `jid`: `<data_dir>/keyward/<jid>/`. `data_dir` is
    /// created (0700) when missing and otherwise left as it is; keyward's own folders are made
    /// 0700. State of the earlier layout, `<data_dir>/<jid>/account.json`, is moved there once.
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
        Ok(Self { dir, jid: jid.clone() })
    }

    /// The account's state folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the exclusive lock (waiting for another process to release it).
    pub fn lock(&self) -> Result<StoreLock> {
        let path = self.dir.join("lock");
        let file = open_private(&path)?;
        file.lock().map_err(|e| Error::store(&path, e))?;
        Ok(StoreLock(file))
    }

    fn read_json<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T> {
        let path = self.dir.join(name);
        match read_optional(&path)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::store(&path, e)),
            None => Ok(T::default()),
        }
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let path = self.dir.join(name);
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::store(&path, e))?;
        write_private(&path, &bytes)
    }

    /// The cached own keys, if this device has them.
    pub fn account(&self) -> Result<Option<AccountState>> {
        let path = self.dir.join("account.json");
        let Some(bytes) = read_optional(&path)? else { return Ok(None) };
        let state: AccountState = serde_json::from_slice(&bytes).map_err(|e| Error::store(&path, e))?;
        if state.jid != self.jid.as_str() {
            return Err(Error::store(&path, "belongs to another account"));
        }
        Ok(Some(state))
    }

    /// Caches the own keys (bundle and sealed secret).
    pub fn save_account(&self, state: &AccountState) -> Result<()> {
        let _lock = self.lock()?;
        self.write_json("account.json", state)
    }

    /// The contacts as currently stored.
    pub fn contacts(&self) -> Result<Contacts> {
        self.read_json("contacts.json")
    }

    /// Reads, changes and writes back the contacts under the lock.
    pub fn update_contacts<R>(&self, change: impl FnOnce(&mut Contacts) -> R) -> Result<R> {
        let _lock = self.lock()?;
        let mut contacts: Contacts = self.read_json("contacts.json")?;
        let before = contacts.clone();
        let result = change(&mut contacts);
        if contacts != before {
            self.write_json("contacts.json", &contacts)?;
        }
        Ok(result)
    }

    /// Runs `f` on the persistent replay cache under the lock and saves it if it grew.
    pub fn with_replay<R>(&self, f: impl FnOnce(&mut MemoryReplayCache) -> R) -> Result<R> {
        let _lock = self.lock()?;
        let path = self.dir.join("replay.json");
        let file: ReplayFile = self.read_json("replay.json")?;
        let entries = file
            .entries
            .into_iter()
            .map(|r| Ok(ReplayEntry { from: BareJid::parse(&r.from)?, msg_id: r.id, ts_ms: r.ts }))
            .collect::<Result<Vec<_>, keyward_proto::Error>>()
            .map_err(|e| Error::store(&path, e))?;
        let count = entries.len();
        let mut cache = MemoryReplayCache::from_entries(MemoryReplayCache::DEFAULT_CAPACITY, entries);
        let result = f(&mut cache);
        let changed = cache.len() != count || cache.len() == MemoryReplayCache::DEFAULT_CAPACITY;
        if changed {
            let file = ReplayFile {
                entries: cache
                    .entries()
                    .map(|e| ReplayRecord { from: e.from.to_string(), id: e.msg_id.clone(), ts: e.ts_ms })
                    .collect(),
            };
            self.write_json("replay.json", &file)?;
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::PinOutcome;
    use keyward_proto::{KdfParams, KeyPair, ReplayCache};

    fn keyward_b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn alice() -> BareJid {
        BareJid::parse("alice@example.test").expect("valid")
    }

    #[test]
    fn account_state_round_trips_and_holds_no_clear_private_key() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = Store::open(root.path(), &alice()).expect("opens");
        assert_eq!(store.account().expect("reads"), None);
        let (ik_seed, ek_secret) = ([0x5a; 32], [0xc3; 32]);
        let keys = KeyPair::from_secret_bytes(&ik_seed, &ek_secret);
        let bundle = Bundle::sign(&keys, alice(), 7);
        let secret = SecretBlob::seal(&keys, &alice(), b"pass", KdfParams::INSECURE_TEST_ONLY).expect("seals");
        store.save_account(&AccountState::new(&bundle, &secret)).expect("saves");
        let back = store.account().expect("reads").expect("present");
        assert_eq!(back.bundle(&alice()).expect("verifies"), bundle);
        let opened = back
            .secret()
            .expect("parses")
            .open(b"pass", &alice(), &keyward_proto::KdfPolicy::danger_accept_weak_for_tests())
            .expect("opens");
        assert_eq!(opened.fingerprint(), keys.fingerprint());
        // The state file holds no private key bytes in any usual encoding.
        let text = std::fs::read_to_string(store.dir().join("account.json")).expect("reads");
        for secret in [ik_seed, ek_secret] {
            assert!(!text.contains(&hex::encode(secret)));
            assert!(!text.contains(&keyward_b64(&secret)));
        }
        let other = Store::open(root.path(), &BareJid::parse("bob@example.test").expect("valid")).expect("opens");
        assert!(matches!(other.account(), Ok(None)));
    }

    #[test]
    fn contacts_persist_across_opens() {
        let root = tempfile::tempdir().expect("tempdir");
        let bob = BareJid::parse("bob@example.test").expect("valid");
        let bob_bundle = Bundle::sign(&KeyPair::generate().expect("rng"), bob.clone(), 1);
        let store = Store::open(root.path(), &alice()).expect("opens");
        let outcome = store.update_contacts(|c| c.offer(&bob_bundle)).expect("saves").expect("pins");
        assert_eq!(outcome, PinOutcome::Pinned(bob_bundle.fingerprint()));
        let again = Store::open(root.path(), &alice()).expect("opens");
        assert_eq!(again.contacts().expect("reads").sendable(&bob).expect("pinned"), bob_bundle);
    }

    #[test]
    fn replay_cache_survives_restart() {
        let root = tempfile::tempdir().expect("tempdir");
        let bob = BareJid::parse("bob@example.test").expect("valid");
        let store = Store::open(root.path(), &alice()).expect("opens");
        assert!(store.with_replay(|c| c.insert(&bob, "m1", 5)).expect("ok"));
        let again = Store::open(root.path(), &alice()).expect("opens");
        assert!(!again.with_replay(|c| c.insert(&bob, "m1", 5)).expect("ok"), "replay refused after restart");
        assert!(again.with_replay(|c| c.insert(&bob, "m2", 6)).expect("ok"));
    }

    #[cfg(unix)]
    #[test]
    fn state_goes_in_a_keyward_folder_and_the_named_folder_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o751)).expect("chmod");
        let store = Store::open(home.path(), &alice()).expect("opens");
        assert_eq!(store.dir(), home.path().join("keyward").join("alice@example.test"));
        assert_eq!(mode(home.path()), 0o751, "the folder the user named is left alone");
        assert_eq!(mode(&home.path().join("keyward")), 0o700);
        assert_eq!(mode(store.dir()), 0o700);
        // A missing named folder is created, private.
        let fresh = home.path().join("new").join("data");
        Store::open(&fresh, &alice()).expect("opens");
        assert_eq!(mode(&fresh), 0o700);
    }

    #[test]
    fn state_of_the_earlier_layout_is_moved_once() {
        let root = tempfile::tempdir().expect("tempdir");
        let old = root.path().join("alice@example.test");
        std::fs::create_dir(&old).expect("mkdir");
        std::fs::write(old.join("account.json"), b"{\"old\": true}").expect("writes");
        std::fs::write(old.join("contacts.json"), b"{}").expect("writes");
        let store = Store::open(root.path(), &alice()).expect("opens");
        assert!(!old.exists(), "moved away");
        assert_eq!(std::fs::read(store.dir().join("account.json")).expect("moved"), b"{\"old\": true}");
        assert!(store.dir().join("contacts.json").is_file());
        // A folder of that name without account.json is not keyward's: left alone.
        let bob = BareJid::parse("bob@example.test").expect("valid");
        std::fs::create_dir(root.path().join("bob@example.test")).expect("mkdir");
        let bobs = Store::open(root.path(), &bob).expect("opens");
        assert!(root.path().join("bob@example.test").is_dir());
        assert!(bobs.account().expect("reads").is_none());
    }

    #[test]
    fn corrupt_state_is_a_clear_error() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = Store::open(root.path(), &alice()).expect("opens");
        std::fs::write(store.dir().join("contacts.json"), b"{not json").expect("writes");
        assert!(matches!(store.contacts(), Err(Error::Store { .. })));
    }
}
