//! Whole runs: the auditor verifies every epoch keydir published, cosigns, keydir serves the cosignature with the head, and later rounds verify only what is new; the binary's `check` exits 0.

use crate::common::{AUDITOR_KEYS, App, cosigner, now};
use keyward_auditor::Outcome;
use keyward_proto::transparency::heads::{CosignaturePolicy, SignedNote};

/// The policy of a client that requires `required` of both configured auditors.
fn policy(required: usize) -> CosignaturePolicy {
    CosignaturePolicy {
        auditors: AUDITOR_KEYS.iter().map(|k| cosigner(*k).verifier().clone()).collect(),
        required,
        max_age_secs: 600,
    }
}

fn note(text: &str) -> SignedNote {
    SignedNote::parse(text.as_bytes()).expect("a signed note")
}

#[tokio::test]
async fn the_auditor_verifies_a_whole_run_cosigns_and_then_verifies_incrementally() {
    let app = App::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let mut auditor = app.auditor(&dir, Some(AUDITOR_KEYS[0])).await;
    assert_eq!(auditor.round().await.expect("nothing to audit yet"), Outcome::NoHeadYet);

    // Several epochs: publishes and a revocation, each through keydir's API.
    app.publish_epoch("alice@example.test").await;
    app.publish_epoch("bob@example.test").await;
    app.revoke_epoch("alice@example.test").await;
    let size = app.publish_epoch("carol@example.test").await;
    assert!(size >= 4, "{size}");
    let served = app.head().await.expect("a head");
    assert_eq!(served.size, size, "no epoch while nothing is pending");

    let outcome = auditor.round().await.expect("the run verifies");
    assert_eq!(outcome, Outcome::Verified { size, cosigned: true });
    let verified = auditor.state().verified.clone().expect("saved");
    assert_eq!(verified.size, size);
    assert_eq!(verified.frontier.len(), size.count_ones() as usize);

    // keydir serves the cosignature with the head; a client's policy counts it.
    let head = app.head().await.expect("a head");
    assert_eq!(head.size, size);
    let counted = policy(1).check(&note(&head.note), now()).expect("cosigned");
    assert_eq!(counted.len(), 1);
    assert_eq!(counted[0].0, AUDITOR_KEYS[0].0);
    assert!(policy(2).check(&note(&head.note), now()).is_err(), "one auditor only so far");

    // More epochs: the second round audits only the new ones, from the verified head.
    app.revoke_epoch("bob@example.test").await;
    let newer = app.publish_epoch("dave@example.test").await;
    assert!(newer > size);
    assert_eq!(auditor.round().await.expect("verifies"), Outcome::Verified { size: newer, cosigned: true });
    assert_eq!(auditor.state().verified.as_ref().map(|v| v.size), Some(newer));
    // The same head again: nothing new, cosigned afresh.
    assert_eq!(auditor.round().await.expect("verifies"), Outcome::Verified { size: newer, cosigned: true });

    // A second auditor, from scratch, through the binary: exit 0, and the head carries both.
    let second = tempfile::tempdir().expect("dir");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_keyward-auditor"))
        .args(["check", "--keydir", &app.keydir.url(), "--state"])
        .arg(second.path())
        .env("KEYWARD_AUDITOR_NAME", AUDITOR_KEYS[1].0)
        .env("KEYWARD_AUDITOR_KEY", AUDITOR_KEYS[1].1)
        .status()
        .expect("runs");
    assert_eq!(status.code(), Some(0));
    let head = app.head().await.expect("a head");
    let counted = policy(2).check(&note(&head.note), now()).expect("two cosignatures");
    assert_eq!(counted.len(), 2);
    let saved = std::fs::read_to_string(second.path().join("state.json")).expect("state file");
    assert!(saved.contains(&format!("\"size\": {newer}")), "{saved}");

    // From scratch again in audits of two epochs at a time: every chunk chains to the last.
    let third = tempfile::tempdir().expect("dir");
    let mut chunked = app.auditor(&third, None).await.with_audit_chunk(2);
    assert_eq!(chunked.round().await.expect("verifies"), Outcome::Verified { size: newer, cosigned: false });
}

#[tokio::test]
async fn an_auditor_without_a_key_verifies_and_pins_what_it_is_given() {
    let app = App::start().await;
    app.publish_epoch("erin@example.test").await;
    let size = app.publish_epoch("frank@example.test").await;
    let dir = tempfile::tempdir().expect("dir");
    let mut auditor = app.auditor(&dir, None).await;
    assert_eq!(auditor.round().await.expect("verifies"), Outcome::Verified { size, cosigned: false });
    let head = app.head().await.expect("a head");
    assert_eq!(note(&head.note).signatures().len(), 1, "nothing cosigned");

    // A log key other than the pinned one is refused (usage: exit 2).
    let other = crate::common::cosigner(crate::common::STRANGER_KEY);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_keyward-auditor"))
        .args(["check", "--keydir", &app.keydir.url(), "--log-key", &other.verifier().to_string(), "--state"])
        .arg(dir.path())
        .status()
        .expect("runs");
    assert_eq!(status.code(), Some(2));
}

#[tokio::test]
async fn follow_cosigns_each_new_head_until_stopped() {
    let app = App::start().await;
    let size = app.publish_epoch("gina@example.test").await;
    let dir = tempfile::tempdir().expect("dir");
    let mut follow = Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_keyward-auditor"))
            .args(["follow", "--interval-ms", "100", "--keydir", &app.keydir.url(), "--state"])
            .arg(dir.path())
            .env("KEYWARD_AUDITOR_NAME", AUDITOR_KEYS[1].0)
            .env("KEYWARD_AUDITOR_KEY", AUDITOR_KEYS[1].1)
            .spawn()
            .expect("runs"),
    );
    let two = CosignaturePolicy {
        auditors: vec![cosigner(AUDITOR_KEYS[1]).verifier().clone()],
        required: 1,
        max_age_secs: 600,
    };
    // Each head keydir signs is cosigned by the following auditor within a few rounds.
    for (round, jid) in [(0, ""), (1, "hank@example.test")] {
        let size = if round == 0 { size } else { app.publish_epoch(jid).await };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let head = app.head().await.expect("a head");
            if head.size == size && two.check(&note(&head.note), now()).is_ok() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the head of size {size} was never cosigned");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // SIGTERM: it stops, exit 0 (no alarm).
    let stopped =
        std::process::Command::new("kill").args(["-TERM", &follow.0.id().to_string()]).status().expect("kill");
    assert!(stopped.success());
    assert_eq!(follow.0.wait().expect("exits").code(), Some(0));
}

/// A child process killed when dropped (if a test fails while it runs).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
