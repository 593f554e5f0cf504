//! An akd directory over Postgres end to end: three epochs, every proof verified, then a restart.

use crate::helpers::{Config, PgDirectory, migrated_pool, open_directory};
use akd::storage::StorageManager;
use akd::{AkdLabel, AkdValue, EpochHash, HistoryParams, HistoryVerificationParams, VerifyResult};
use keyward_transparency::{PgDatabase, akd};
use std::time::Duration;

fn entry(label: &str, value: &str) -> (AkdLabel, AkdValue) {
    (AkdLabel::from(label), AkdValue::from(value))
}

/// Looks `label` up and verifies the proof against `at`; returns what it proves.
async fn lookup_verified(directory: &PgDirectory, label: &str, at: &EpochHash) -> VerifyResult {
    let (proof, epoch_hash) = directory.lookup(AkdLabel::from(label)).await.expect("a lookup proof");
    assert_eq!(&epoch_hash, at, "the lookup is proven against the latest epoch");
    let vrf = directory.get_public_key().await.expect("the VRF public key");
    akd::client::lookup_verify::<Config>(vrf.as_bytes(), at.hash(), at.epoch(), AkdLabel::from(label), proof)
        .expect("the lookup proof verifies")
}

fn result(epoch: u64, version: u64, value: &str) -> VerifyResult {
    VerifyResult { epoch, version, value: AkdValue::from(value) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_proves_lookups_histories_and_audits_and_a_restart_reads_the_same_root() {
    let pool = migrated_pool().await;
    // akd's own cache in front, as a service would run it (bounded: 16 MiB).
    let storage = StorageManager::new(
        PgDatabase::new(pool.clone()),
        Some(Duration::from_secs(60)),
        Some(16 << 20),
        Some(Duration::from_secs(60)),
    );
    let directory = PgDirectory::new(storage, akd::ecvrf::HardCodedAkdVRF, akd::AzksParallelismConfig::default())
        .await
        .expect("new");

    let epochs = [
        vec![entry("alice@example.test", "a1"), entry("bob@example.test", "b1"), entry("carol@example.test", "c1")],
        vec![entry("alice@example.test", "a2"), entry("dave@example.test", "d1")],
        vec![entry("bob@example.test", "b2"), entry("alice@example.test", "a3")],
    ];
    let mut hashes = Vec::new();
    for (n, updates) in (1..).zip(epochs) {
        let epoch_hash = directory.publish(updates).await.expect("publishes");
        assert_eq!(epoch_hash.epoch(), n);
        assert_eq!(lookup_verified(&directory, "carol@example.test", &epoch_hash).await, result(1, 1, "c1"));
        hashes.push(epoch_hash);
        if let Some([before, after]) = hashes.last_chunk::<2>() {
            let proof = directory.audit(before.epoch(), after.epoch()).await.expect("an audit proof");
            akd::auditor::audit_verify::<Config>(vec![before.hash(), after.hash()], proof)
                .await
                .expect("the audit proof between consecutive epochs verifies");
        }
    }
    let latest = hashes[2].clone();
    assert_eq!(lookup_verified(&directory, "alice@example.test", &latest).await, result(3, 3, "a3"));
    assert_eq!(lookup_verified(&directory, "bob@example.test", &latest).await, result(3, 2, "b2"));
    assert_eq!(lookup_verified(&directory, "dave@example.test", &latest).await, result(2, 1, "d1"));

    let (history, at) =
        directory.key_history(&AkdLabel::from("alice@example.test"), HistoryParams::default()).await.expect("history");
    assert_eq!(at, latest);
    let vrf = directory.get_public_key().await.expect("the VRF public key");
    let verified = akd::client::key_history_verify::<Config>(
        vrf.as_bytes(),
        at.hash(),
        at.epoch(),
        AkdLabel::from("alice@example.test"),
        history,
        HistoryVerificationParams::default(),
    )
    .expect("the history proof verifies");
    assert_eq!(verified, vec![result(3, 3, "a3"), result(2, 2, "a2"), result(1, 1, "a1")]);

    let proof = directory.audit(1, 3).await.expect("an audit proof over two epochs");
    akd::auditor::audit_verify::<Config>(hashes.iter().map(|h| h.hash()).collect(), proof)
        .await
        .expect("the audit proof from epoch 1 to 3 verifies");
    // An audit against a root that is not the directory's fails: the check has teeth.
    let proof = directory.audit(2, 3).await.expect("an audit proof");
    let wrong = akd::auditor::audit_verify::<Config>(vec![hashes[0].hash(), latest.hash()], proof).await;
    assert!(wrong.is_err(), "an audit proof verified against the wrong starting root");
    drop(directory);

    // A restart: a new directory over a new pool on the same database, no cache.
    let pool = sqlx::PgPool::connect_with(pool.connect_options().as_ref().clone()).await.expect("reconnects");
    let restarted = open_directory(&pool).await.expect("the directory loads");
    assert_eq!(restarted.get_epoch_hash().await.expect("the epoch hash"), latest);
    assert_eq!(lookup_verified(&restarted, "bob@example.test", &latest).await, result(3, 2, "b2"));
    let next = restarted.publish(vec![entry("erin@example.test", "e1")]).await.expect("publishes epoch 4");
    let proof = restarted.audit(3, 4).await.expect("an audit proof");
    akd::auditor::audit_verify::<Config>(vec![latest.hash(), next.hash()], proof)
        .await
        .expect("the audit proof across the restart verifies");
}
