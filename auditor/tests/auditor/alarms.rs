//! The directory's database edited under a running keydir, as a hostile DBA would: each edit is caught by the auditor with its typed alarm, the evidence is kept, and nothing is cosigned after it.

use crate::common::{AUDITOR_KEYS, App, ORIGIN, log_signer};
use keyward_auditor::{Auditor, AuditorError};
use keyward_proto::transparency::heads::{CosignaturePolicy, EpochLeaf, Head, SignedNote};
use std::path::Path;

/// The evidence directory of the recorded alarm holds the served note (and the verified one).
fn assert_evidence(auditor: &Auditor, dir: &Path, kind: &str, served: Option<&str>) {
    let alarm = auditor.state().alarm.clone().expect("an alarm is recorded");
    assert_eq!(alarm.kind, kind);
    let evidence = dir.join(&alarm.evidence);
    let verified = std::fs::read_to_string(evidence.join("verified.note")).expect("the verified note is kept");
    assert_eq!(Some(verified.as_str()), auditor.state().verified.as_ref().map(|v| v.note.as_str()));
    if let Some(served) = served {
        assert_eq!(std::fs::read_to_string(evidence.join("served.note")).expect("the served note is kept"), served);
    }
    assert!(!std::fs::read_to_string(evidence.join("alarm.txt")).expect("the detail is kept").is_empty());
}

/// After an alarm: later rounds refuse, and the binary exits 1 on that state.
async fn assert_stays_alarmed(app: &App, auditor: &mut Auditor, dir: &Path) {
    assert!(matches!(auditor.round().await, Err(AuditorError::AlarmRecorded { .. })));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_keyward-auditor"))
        .args(["check", "--keydir", &app.keydir.url(), "--state"])
        .arg(dir)
        .env("KEYWARD_AUDITOR_NAME", AUDITOR_KEYS[0].0)
        .env("KEYWARD_AUDITOR_KEY", AUDITOR_KEYS[0].1)
        .status()
        .expect("runs");
    assert_eq!(status.code(), Some(1));
}

/// No cosignature of the first auditor is served on the newest head.
async fn assert_not_cosigned(app: &App) {
    let head = app.head().await.expect("a head");
    let note = SignedNote::parse(head.note.as_bytes()).expect("a note");
    let policy = CosignaturePolicy {
        auditors: vec![crate::common::cosigner(AUDITOR_KEYS[0]).verifier().clone()],
        required: 1,
        max_age_secs: 600,
    };
    assert!(policy.check(&note, crate::common::now()).is_err(), "the head of size {} is cosigned", head.size);
}

#[tokio::test]
async fn a_rewritten_epoch_root_fails_the_audit_proof() {
    let app = App::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut auditor = app.auditor(&dir, Some(AUDITOR_KEYS[0])).await;
    app.publish_epoch("alice@example.test").await;
    let size = app.publish_epoch("bob@example.test").await;
    auditor.round().await.expect("verifies");
    // Two more epochs, signed; then the DBA rewrites the first of them's recorded akd root.
    app.publish_epoch("carol@example.test").await;
    let newest = app.revoke_epoch("bob@example.test").await;
    let pool = app.pool().await;
    let rewritten = sqlx::query("UPDATE transparency_epochs SET root_hash = sha256(root_hash) WHERE epoch = $1")
        .bind(i64::try_from(size + 1).expect("small"))
        .execute(&pool)
        .await
        .expect("rewritten");
    assert_eq!(rewritten.rows_affected(), 1);
    let served = app.head().await.expect("a head");
    assert_eq!(served.size, newest, "keydir still serves its head");
    let err = auditor.round().await.expect_err("caught");
    assert!(matches!(err, AuditorError::AuditProofInvalid { .. }), "{err}");
    assert_eq!(err.alarm(), Some("audit-proof-invalid"));
    assert_eq!(auditor.state().verified.as_ref().map(|v| v.size), Some(size), "the bad head is not verified");
    assert_evidence(&auditor, dir.path(), "audit-proof-invalid", Some(&served.note));
    assert_not_cosigned(&app).await;
    assert_stays_alarmed(&app, &mut auditor, dir.path()).await;
}

#[tokio::test]
async fn a_rolled_back_head_table_is_a_rollback() {
    let mut app = App::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut auditor = app.auditor(&dir, Some(AUDITOR_KEYS[0])).await;
    app.publish_epoch("alice@example.test").await;
    app.publish_epoch("bob@example.test").await;
    app.publish_epoch("carol@example.test").await;
    let size = app.revoke_epoch("alice@example.test").await;
    auditor.round().await.expect("verifies");
    let dir2 = tempfile::tempdir().expect("dir");
    let mut second = app.auditor(&dir2, None).await;
    second.round().await.expect("verifies");
    // The DBA drops the trigger and deletes the two newest heads and epochs (one would be
    // recorded again from akd's tree), with keydir stopped so that it rebuilds its log.
    app.keydir.stop().await.expect("stops");
    let pool = app.pool().await;
    let keep = i64::try_from(size - 2).expect("small");
    for edit in [
        "DROP TRIGGER transparency_heads_append_only ON transparency_heads",
        "DELETE FROM transparency_heads WHERE size > $1",
        "DELETE FROM transparency_epochs WHERE epoch > $1",
    ] {
        sqlx::query(edit).bind(keep).execute(&pool).await.expect("edited");
    }
    app.keydir.start_again().await.expect("starts");
    let served = app.head().await.expect("a head");
    assert_eq!(served.size, size - 2, "keydir serves the rolled back head");
    let err = auditor.round().await.expect_err("caught");
    assert!(
        matches!(err, AuditorError::Rollback { verified, served } if verified == size && served == size - 2),
        "{err}"
    );
    assert_eq!(err.alarm(), Some("rollback"));
    assert_evidence(&auditor, dir.path(), "rollback", Some(&served.note));
    assert_stays_alarmed(&app, &mut auditor, dir.path()).await;
    // Then every head and epoch: keydir answers that it has signed none (404), which after a
    // verified head is a rollback to nothing.
    app.keydir.stop().await.expect("stops");
    for edit in ["DELETE FROM transparency_heads", "DELETE FROM transparency_epochs"] {
        sqlx::query(edit).execute(&pool).await.expect("edited");
    }
    app.keydir.start_again().await.expect("starts");
    assert!(app.head().await.is_none(), "no head is served");
    let err = second.round().await.expect_err("caught");
    assert!(matches!(err, AuditorError::Rollback { verified, served: 0 } if verified == size), "{err}");
}

#[tokio::test]
async fn a_forked_head_signed_with_the_stolen_key_is_a_fork() {
    let app = App::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut auditor = app.auditor(&dir, Some(AUDITOR_KEYS[0])).await;
    app.publish_epoch("alice@example.test").await;
    let size = app.publish_epoch("bob@example.test").await;
    auditor.round().await.expect("verifies");
    // Whoever holds the signing key signs another head of the same size for one victim; keydir
    // itself refuses to serve a head its log does not have, so the note is handed to the
    // auditor as it would reach it (e.g. gossiped by a client).
    let forked = Head::new(ORIGIN, size, [0x66; 32], EpochLeaf { epoch: size, akd_root: [0x77; 32] })
        .expect("head")
        .sign(&log_signer())
        .expect("signed")
        .encode();
    let err = auditor.check_served(&forked).await.expect_err("caught");
    assert!(matches!(err, AuditorError::Fork { size: s } if s == size), "{err}");
    assert_eq!(err.alarm(), Some("fork"));
    assert_evidence(&auditor, dir.path(), "fork", Some(&forked));
    // A note signed by another key is no head of this log.
    let dir2 = tempfile::tempdir().expect("dir");
    let mut other = app.auditor(&dir2, None).await;
    let stranger = keyward_proto::transparency::heads::NoteSigner::new(
        ORIGIN,
        keyward_proto::transparency::heads::KeyType::Ed25519,
        &[9; 32],
    )
    .expect("signer");
    let unsigned = Head::new(ORIGIN, size, [0x66; 32], EpochLeaf { epoch: size, akd_root: [0x77; 32] })
        .expect("head")
        .sign(&stranger)
        .expect("signed")
        .encode();
    let err = other.check_served(&unsigned).await.expect_err("caught");
    assert_eq!(err.alarm(), Some("signature-invalid"), "{err}");
    assert_stays_alarmed(&app, &mut auditor, dir.path()).await;
}

#[tokio::test]
async fn an_edited_node_of_the_map_fails_the_audit_proof() {
    let mut app = App::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut auditor = app.auditor(&dir, Some(AUDITOR_KEYS[0])).await;
    app.publish_epoch("alice@example.test").await;
    app.publish_epoch("bob@example.test").await;
    let size = app.revoke_epoch("alice@example.test").await;
    auditor.round().await.expect("verifies");
    app.publish_epoch("carol@example.test").await;
    // The DBA rewrites the hashes of the tree's nodes that did not change since the verified
    // epoch (keydir restarted so that its akd cache reads them).
    app.keydir.stop().await.expect("stops");
    let pool = app.pool().await;
    let edited = sqlx::query("UPDATE akd_tree_nodes SET hash = sha256(hash) WHERE last_epoch <= $1 AND node_type <> 2")
        .bind(i64::try_from(size).expect("small"))
        .execute(&pool)
        .await
        .expect("edited");
    assert!(edited.rows_affected() > 0);
    app.keydir.start_again().await.expect("starts");
    let served = app.head().await.expect("a head");
    let err = auditor.round().await.expect_err("caught");
    assert!(matches!(err, AuditorError::AuditProofInvalid { .. }), "{err}");
    assert_evidence(&auditor, dir.path(), "audit-proof-invalid", Some(&served.note));
    assert_not_cosigned(&app).await;
}
