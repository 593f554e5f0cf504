//! The `keyward` binary over real TLS, on Prosody and ejabberd serving a certificate from a throwaway CA:
//! STARTTLS and direct TLS verified against that CA (trusted through `SSL_CERT_FILE`, as a
//! system CA would be), a client that does not trust the CA refusing to log in, and a client
//! never falling back to plaintext when the server offers no TLS.

use std::path::Path;
use std::process::Output;

use anyhow::{Context, bail};
use keyward_tests::process::find_binary;
use keyward_tests::stack::{Stack, StackOptions};
use keyward_tests::tls::TestCa;
use keyward_tests::xmpp::{ServerKind, ServerOptions};
use serde_json::Value;
use tokio::process::Command;

use crate::support::{stack, stack_with};
use keyward_tests::on_both_servers;

on_both_servers!(
    chat_over_starttls_and_direct_tls,
    a_certificate_from_an_unknown_ca_is_refused,
    no_plaintext_fallback_when_the_server_offers_no_tls
);

/// How a client reaches the server.
#[derive(Clone, Copy)]
enum Via {
    StartTls,
    DirectTls,
}

/// Runs `keyward --json ARGS` as `local` over `via`, trusting only the CA in `ca`.
async fn keyward(
    stack: &Stack,
    via: Via,
    ca: &Path,
    local: &str,
    data: &Path,
    args: &[&str],
) -> anyhow::Result<Output> {
    let (server, flags): (String, &[&str]) = match via {
        Via::StartTls => (stack.c2s_addr().to_string(), &[]),
        Via::DirectTls => (stack.direct_tls_addr().context("no direct TLS port")?.to_string(), &["--direct-tls"]),
    };
    Command::new(find_binary("keyward", None)?)
        .args(["--json", "--server", &server, "--component", stack.component_jid(), "--data-dir"])
        .arg(data)
        .args(["--jid", &format!("{local}@{}", stack.domain())])
        .args(flags)
        .args(args)
        .env("SSL_CERT_FILE", ca)
        .env_remove("SSL_CERT_DIR")
        .env("KEYWARD_PASSWORD", format!("password of {local}"))
        .env("KEYWARD_PASSPHRASE", format!("{local}'s rhubarb tractor hums over velvet anchors"))
        .output()
        .await
        .context("running keyward")
}

fn json_lines(output: &Output, what: &str) -> anyhow::Result<Vec<Value>> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("{what} failed: {}{stdout}", String::from_utf8_lossy(&output.stderr));
    }
    stdout.lines().filter(|l| !l.trim().is_empty()).map(|l| Ok(serde_json::from_str(l)?)).collect()
}

fn tls_options(ca: &TestCa) -> StackOptions {
    StackOptions {
        server: ServerOptions { registration: true, tls: Some(ca.files().clone()), ..ServerOptions::default() },
        ..StackOptions::default()
    }
}

async fn chat_over_starttls_and_direct_tls(kind: ServerKind) -> anyhow::Result<()> {
    let ca = TestCa::new("example.test")?;
    let stack = stack_with(kind, tls_options(&ca)).await?;
    let trusted = &ca.files().ca;
    let alice_dir = tempfile::tempdir()?;
    let bob_dir = tempfile::tempdir()?;
    let alice =
        |args: &'static [&'static str]| keyward(&stack, Via::StartTls, trusted, "alice", alice_dir.path(), args);
    let bob = |args: &'static [&'static str]| keyward(&stack, Via::DirectTls, trusted, "bob", bob_dir.path(), args);

    for (who, run) in [("alice", &alice as &dyn Fn(_) -> _), ("bob", &bob)] {
        json_lines(&run(&["register"]).await?, &format!("{who}: register"))?;
        json_lines(&run(&["init"]).await?, &format!("{who}: init"))?;
    }
    json_lines(&alice(&["add", "bob@example.test"]).await?, "alice: add")?;
    json_lines(&bob(&["recv", "--timeout", "3"]).await?, "bob: recv")?;
    json_lines(&bob(&["accept", "alice@example.test"]).await?, "bob: accept")?;
    json_lines(&alice(&["send", "bob@example.test", "over TLS, twice over"]).await?, "alice: send")?;
    let read = json_lines(&bob(&["recv", "--timeout", "3"]).await?, "bob: recv")?;
    let message = read.iter().find(|l| l.get("body").is_some()).context("bob read no message")?;
    assert_eq!(message["body"], "over TLS, twice over");
    assert_eq!(message["from"], "alice@example.test");
    assert_eq!(message["verified"], true);

    // Every login was SCRAM, never PLAIN although both servers accept PLAIN over TLS: the
    // `y` flag on Prosody 0.12 (no -PLUS offered over TLS 1.3), `n` on ejabberd 23.01 (-PLUS
    // offered, tls-exporter not supported). Both fixtures log every `<auth mechanism=...>`.
    let log = std::fs::read_to_string(stack.xmpp_log_path())?;
    assert!(log.contains("mechanism='SCRAM-SHA-1'"), "no SCRAM login in the server's log");
    assert!(!log.contains("mechanism='PLAIN'"), "a client logged in with PLAIN");
    assert!(!log.contains("-PLUS'>"), "a client bound a channel the server cannot bind");
    Ok(())
}

async fn a_certificate_from_an_unknown_ca_is_refused(kind: ServerKind) -> anyhow::Result<()> {
    let ca = TestCa::new("example.test")?;
    let other_ca = TestCa::new("example.test")?;
    let stack = stack_with(kind, tls_options(&ca)).await?;
    let data = tempfile::tempdir()?;
    for via in [Via::StartTls, Via::DirectTls] {
        let output = keyward(&stack, via, &other_ca.files().ca, "mallory", data.path(), &["register"]).await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "registered through a certificate it should not trust");
        assert!(stderr.to_lowercase().contains("certificate"), "the error should name the certificate: {stderr}");
    }
    // Nothing reached the server: trusting the right CA, the account is still free.
    let output = keyward(&stack, Via::StartTls, &ca.files().ca, "mallory", data.path(), &["register"]).await?;
    json_lines(&output, "register with the right CA")?;
    Ok(())
}

async fn no_plaintext_fallback_when_the_server_offers_no_tls(kind: ServerKind) -> anyhow::Result<()> {
    // The ordinary test stack serves plain c2s only: without --insecure-plaintext, the client
    // must refuse rather than log in (and send its password) in the clear.
    let stack = stack(kind).await?;
    let ca = TestCa::new("example.test")?;
    let data = tempfile::tempdir()?;
    let output = keyward(&stack, Via::StartTls, &ca.files().ca, "alice", data.path(), &["register"]).await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "registered without TLS");
    assert!(stderr.to_lowercase().contains("tls"), "the error should say TLS is missing: {stderr}");
    let log = std::fs::read_to_string(stack.xmpp_log_path())?;
    assert!(!log.contains("password of alice"), "the password reached the server");
    // Nothing was created: the name is still free for a deliberate plaintext registration.
    let plain = Command::new(find_binary("keyward", None)?)
        .args(["--json", "--insecure-plaintext", "--server", &stack.c2s_addr().to_string(), "--data-dir"])
        .arg(data.path())
        .args(["--jid", &format!("alice@{}", stack.domain()), "register"])
        .env("KEYWARD_PASSWORD", "password of alice")
        .output()
        .await?;
    json_lines(&plain, "register over plaintext, deliberately")?;
    Ok(())
}
