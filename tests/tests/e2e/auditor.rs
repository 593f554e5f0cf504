//! The auditor with the whole stack: `keyward-auditor` follows keydir through a run of real clients and cosigns every head it verified; clients that require its cosignature use keys only under heads it cosigned.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keyward_client::keyward_proto::transparency::heads::{CosignaturePolicy, KeyType, NoteSigner};
use keyward_client::{Error, KeyEvent, Session, Setup};
use keyward_tests::on_both_servers;
use keyward_tests::process::find_binary;
use keyward_tests::stack::StackOptions;
use keyward_tests::xmpp::ServerKind;

use crate::support::{User, stack_with};

on_both_servers!(clients_use_keys_only_under_heads_the_auditor_cosigned);

const AUDITOR: &str = "auditor.example.test";

async fn clients_use_keys_only_under_heads_the_auditor_cosigned(kind: ServerKind) -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let signer = NoteSigner::new(AUDITOR, KeyType::Cosignature, &seed)?;
    let options = StackOptions {
        keydir_env: vec![("KEYWARD_TRANSPARENCY_AUDITORS".into(), signer.verifier().to_string())],
        ..StackOptions::default()
    };
    let stack = stack_with(kind, options).await?;
    let state = tempfile::tempdir()?;
    let log = std::fs::File::create(state.path().join("auditor.log"))?;
    let mut auditor = tokio::process::Command::new(find_binary("keyward-auditor", None)?)
        .args(["follow", "--keydir", &stack.keydir_url(), "--name", AUDITOR, "--interval-ms", "100", "--state"])
        .arg(state.path().join("state"))
        .env("KEYWARD_AUDITOR_KEY", STANDARD.encode(seed))
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting keyward-auditor")?;

    // alice requires the auditor's fresh cosignature on every head.
    let policy = CosignaturePolicy { auditors: vec![signer.verifier().clone()], required: 1, max_age_secs: 600 };
    let (alice, bob) = (User::register(&stack, "alice").await?, User::register(&stack, "bob").await?);
    let mut b = bob.session(Setup::FirstUse).await?;
    let mut account = alice.account();
    account.cosignatures = policy;
    let (mut a, setup) = Session::start(&account).await?;
    assert_eq!(setup, Setup::FirstUse);
    crate::support::wait_published(stack.database_url()?).await?;
    let added = a.add(&bob.jid).await?;
    assert!(matches!(added, KeyEvent::Pinned { fingerprint, .. } if fingerprint == b.fingerprint()), "{added:?}");
    b.accept(&alice.jid).await?;
    a.send(&bob.jid, "under an audited head").await?;

    // The auditor verified the whole run (every epoch's append-only proof, the log's consistency)
    // without an alarm: stopped, it says so with its exit status.
    let pid = auditor.id().context("the auditor runs")?;
    nix_terminate(pid)?;
    let status = tokio::time::timeout(Duration::from_secs(10), auditor.wait()).await??;
    let log = std::fs::read_to_string(state.path().join("auditor.log"))?;
    assert!(status.success(), "the auditor raised no alarm: {status}\n{log}");
    assert!(log.contains("cosigned the head"), "{log}");

    // Without the auditor, new heads go uncosigned: alice uses no key under them.
    let carol = User::register(&stack, "carol").await?;
    let c = carol.session(Setup::FirstUse).await?;
    crate::support::wait_published(stack.database_url()?).await?;
    let refused = a.refresh_key(&carol.jid).await;
    assert!(matches!(refused, Err(Error::HeadNotCosigned { valid: 0, required: 1 })), "{refused:?}");
    for session in [a, b, c] {
        session.close().await?;
    }
    Ok(())
}

/// Sends SIGTERM (the auditor's graceful stop).
fn nix_terminate(pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    anyhow::ensure!(status.success(), "kill -TERM {pid}");
    Ok(())
}
