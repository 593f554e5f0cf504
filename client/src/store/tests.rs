//! Tests of the local database: round trips, no clear private key, the replay rule across opens, the JSON import.

use super::*;
use crate::contacts::PinOutcome;
use keyward_proto::restore::{OprfSeed, RecoveryCode, SecretV1, blind, evaluate, finalize};
use keyward_proto::{KdfParams, KeyPair, SecretBlob};

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn alice() -> BareJid {
    BareJid::parse("alice@example.test").expect("valid")
}

fn bob() -> BareJid {
    BareJid::parse("bob@example.test").expect("valid")
}

#[test]
fn account_state_round_trips_and_holds_no_clear_private_key() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = Store::open(root.path(), &alice()).expect("opens");
    assert_eq!(store.account().expect("reads"), None);
    let (ik_seed, ek_secret) = ([0x5a; 32], [0xc3; 32]);
    let keys = KeyPair::from_secret_bytes(&ik_seed, &ek_secret);
    let bundle = Bundle::sign(&keys, alice(), 7);
    // A version 1 blob, sealed with a real OPRF exchange against a test seed.
    let seed = OprfSeed::generate().expect("rng");
    let (state, blinded) = blind(b"pass").expect("blinds");
    let output = finalize(state, &evaluate(&seed, &alice(), &blinded).expect("evaluates")).expect("finalizes");
    let code = RecoveryCode::generate().expect("rng");
    let sealed =
        SecretV1::seal(&keys, &alice(), b"pass", &output, &code, KdfParams::INSECURE_TEST_ONLY).expect("seals");
    let secret = AnySecret::from(sealed);
    store.save_account(&AccountState::new(&bundle, &secret)).expect("saves");
    let back = store.account().expect("reads").expect("present");
    assert_eq!(back.bundle(&alice()).expect("verifies"), bundle);
    let AnySecret::V1(back) = back.secret().expect("parses") else { panic!("a version 1 blob was saved") };
    let opened = back
        .open_with_passphrase(b"pass", &output, &alice(), &keyward_proto::KdfPolicy::danger_accept_weak_for_tests())
        .expect("opens");
    assert_eq!(opened.keys().fingerprint(), keys.fingerprint());
    assert_eq!(back.open_with_recovery(&code, &alice()).expect("opens").keys().fingerprint(), keys.fingerprint());
    let path = store.path().to_owned();
    drop(store);
    // The database file holds no private key bytes, raw or in any usual encoding, and is 0600.
    let bytes = std::fs::read(&path).expect("reads");
    for secret in [ik_seed, ek_secret] {
        assert!(!bytes.windows(32).any(|w| w == secret), "a raw private key is in the database");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&hex::encode(secret)));
        assert!(!text.contains(&b64(&secret)));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777, 0o600);
    }
    let other = Store::open(root.path(), &bob()).expect("opens");
    assert!(matches!(other.account(), Ok(None)));
    assert!(other.save_account(&AccountState::new(&bundle, &secret)).is_err(), "another account's keys");
}

#[test]
fn contacts_persist_across_opens() {
    let root = tempfile::tempdir().expect("tempdir");
    let bob_bundle = Bundle::sign(&KeyPair::generate().expect("rng"), bob(), 1);
    let store = Store::open(root.path(), &alice()).expect("opens");
    let outcome = store.update_contacts(|c| c.offer(&bob_bundle, 42)).expect("saves").expect("pins");
    assert_eq!(outcome, PinOutcome::Pinned(bob_bundle.fingerprint()));
    drop(store);
    let again = Store::open(root.path(), &alice()).expect("opens");
    let contacts = again.contacts().expect("reads");
    assert_eq!(contacts.sendable(&bob()).expect("pinned"), bob_bundle);
    assert_eq!(contacts.get(&bob()).and_then(|c| c.pinned_at_ms), Some(42));
}

#[test]
fn the_replay_rule_holds_across_opens() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = Store::open(root.path(), &alice()).expect("opens");
    assert_eq!(store.with_replay(|c| c.admit(&bob(), "m1", 5)).expect("ok"), Ok(()));
    drop(store);
    let again = Store::open(root.path(), &alice()).expect("opens");
    assert_eq!(again.with_replay(|c| c.admit(&bob(), "m1", 5)).expect("ok"), Err(keyward_proto::Error::Replay));
    assert_eq!(again.with_replay(|c| c.admit(&bob(), "m2", 6)).expect("ok"), Ok(()));
    let week = keyward_proto::ReplayRule::V0.window_ms;
    assert_eq!(again.with_replay(|c| c.admit(&bob(), "m3", 10 + week)).expect("ok"), Ok(()));
    assert_eq!(
        again.with_replay(|c| c.admit(&bob(), "m0", 1)).expect("ok"),
        Err(keyward_proto::Error::TooOld),
        "older than the window"
    );
    assert_eq!(again.with_replay(|c| c.admit(&alice(), "m1", 1)).expect("ok"), Ok(()), "ids are per sender");
}

#[test]
fn the_database_applies_the_same_rule_as_the_memory_cache() {
    // The same sequence through both implementations gives the same verdicts, including the cap.
    let root = tempfile::tempdir().expect("tempdir");
    let store = Store::open(root.path(), &alice()).expect("opens");
    let rule = keyward_proto::ReplayRule { window_ms: 100, per_sender: 3 };
    let mut memory = keyward_proto::MemoryReplayCache::new(rule);
    let steps: &[(&str, u64)] = &[
        ("a", 10),
        ("b", 20),
        ("a", 30),
        ("c", 30),
        ("d", 40),
        ("e", 15),
        ("f", 200),
        ("g", 99),
        ("h", 100),
        ("b", 21),
    ];
    for (id, ts) in steps {
        let in_db = {
            let mut db = store.db().expect("db");
            let tx = db.transaction().expect("tx");
            let mut cache = replay::DbReplay::with_rule(&tx, rule);
            let verdict = cache.admit(&bob(), id, *ts);
            assert!(cache.failure().is_none());
            tx.commit().expect("commits");
            verdict
        };
        assert_eq!(in_db, memory.admit(&bob(), id, *ts), "step {id}@{ts}");
    }
}

#[test]
fn json_state_of_the_earlier_layout_is_moved_and_imported_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let old = root.path().join(alice().as_str());
    let dir = &old;
    std::fs::create_dir_all(dir).expect("creates");
    let keys = KeyPair::generate().expect("rng");
    let bundle = Bundle::sign(&keys, alice(), 7);
    let secret = SecretBlob::seal(&keys, &alice(), b"pass", KdfParams::INSECURE_TEST_ONLY).expect("seals");
    let account = AccountState::new(&bundle, &secret.into());
    std::fs::write(dir.join("account.json"), serde_json::to_vec(&account).expect("json")).expect("writes");
    let bob_bundle = Bundle::sign(&KeyPair::generate().expect("rng"), bob(), 1);
    let contacts = serde_json::json!({"contacts": {"bob@example.test": {
        "pinned": bob_bundle.to_xml(), "trust": "verified", "pending": null, "revoked": null
    }}});
    std::fs::write(dir.join("contacts.json"), contacts.to_string()).expect("writes");
    let replay = serde_json::json!({"entries": [{"from": "bob@example.test", "id": "old", "ts": 5}]});
    std::fs::write(dir.join("replay.json"), replay.to_string()).expect("writes");

    let store = Store::open(root.path(), &alice()).expect("imports");
    assert_eq!(store.account().expect("reads"), Some(account));
    let contact = store.contacts().expect("reads").get(&bob()).cloned().expect("imported");
    assert_eq!((contact.trust, contact.pinned_at_ms), (Trust::Verified, None));
    assert_eq!(store.with_replay(|c| c.admit(&bob(), "old", 5)).expect("ok"), Err(keyward_proto::Error::Replay));
    assert!(!old.exists(), "the old folder was moved into keyward/");
    for name in ["account.json", "contacts.json", "replay.json"] {
        assert!(!store.dir().join(name).exists(), "{name} removed after the import");
    }
    // A folder of an account's name without account.json is not keyward's: left alone.
    std::fs::create_dir(root.path().join(bob().as_str())).expect("mkdir");
    let bobs = Store::open(root.path(), &bob()).expect("opens");
    assert!(root.path().join(bob().as_str()).is_dir());
    assert!(bobs.account().expect("reads").is_none());
}

#[test]
fn evidence_is_kept_in_order() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = Store::open(root.path(), &alice()).expect("opens");
    store.keep_evidence("signed-by-changed-key", &bob(), "<sealed/>").expect("keeps");
    store.keep_evidence("other", &bob(), "<x/>").expect("keeps");
    let kept = store.evidence().expect("reads");
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0], ("signed-by-changed-key".to_owned(), bob().to_string(), "<sealed/>".to_owned()));
}

#[test]
fn a_corrupt_database_is_a_clear_error() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join(STATE_FOLDER).join(alice().as_str());
    std::fs::create_dir_all(&dir).expect("creates");
    std::fs::write(dir.join(DATABASE_FILE), b"this is not a database, just some text padding it out").expect("writes");
    assert!(matches!(Store::open(root.path(), &alice()), Err(Error::Store { .. })));
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
fn a_version_1_database_gains_the_transparency_table_and_keeps_its_rows() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join(STATE_FOLDER).join(alice().as_str());
    std::fs::create_dir_all(&dir).expect("creates");
    {
        let db = Connection::open(dir.join(DATABASE_FILE)).expect("opens");
        db.execute_batch(include_str!("schema.sql")).expect("version 1 schema");
        db.pragma_update(None, "user_version", 1).expect("version 1");
        db.execute(
            "INSERT INTO evidence (kept_at_ms, kind, sender, xml) VALUES (1, 'k', 'bob@example.test', '<x/>')",
            [],
        )
        .expect("a row of version 1");
    }
    let store = Store::open(root.path(), &alice()).expect("migrates");
    assert_eq!(store.evidence().expect("reads").len(), 1, "version 1 rows are kept");
    assert_eq!(store.transparency().expect("reads"), None, "nothing pinned yet");
    store.offer_transparency(None, 5).expect("records the ask");
    assert!(!store.transparency_pinned().expect("reads"));
}

#[test]
fn pinned_directory_keys_are_never_replaced_and_heads_never_roll_back() {
    use keyward_proto::transparency::check::DirectoryKeys;
    use keyward_proto::transparency::heads::{KeyType, NoteSigner};
    let root = tempfile::tempdir().expect("tempdir");
    let store = Store::open(root.path(), &alice()).expect("opens");
    let keys = |seed: u8| DirectoryKeys {
        origin: "keyward/test".into(),
        log_key: NoteSigner::new("keyward/test", KeyType::Ed25519, &[seed; 32]).expect("key").verifier().clone(),
        vrf_key: [seed; 32],
    };
    store.offer_transparency(Some(&keys(1)), 10).expect("pins");
    store.offer_transparency(Some(&keys(2)), 20).expect("offered again");
    let pinned = store.transparency().expect("reads").expect("a row");
    assert_eq!(pinned.keys, Some(keys(1)), "the first keys stay pinned");
    assert_eq!(pinned.checked_at_ms, 20);
    store.store_head("head of 5", 5).expect("stores");
    store.store_head("head of 3", 3).expect("ignored");
    assert_eq!(store.transparency().expect("reads").expect("a row").head.as_deref(), Some("head of 5"));
    store.store_head("head of 8", 8).expect("stores");
    assert_eq!(store.transparency().expect("reads").expect("a row").head.as_deref(), Some("head of 8"));
}
