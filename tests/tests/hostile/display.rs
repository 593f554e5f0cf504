//! Fake lines in text output (protocol 12.3): a message body and a revocation reason holding
//! line breaks, ANSI escapes and bidi overrides reach a real `keyward recv` (the built binary,
//! text mode) and are printed escaped, with no raw control byte and no line that starts like the
//! header of a message from someone else.

use std::path::Path;
use std::process::Output;
use std::time::Instant;

use anyhow::{Context, bail};
use keyward_client::Setup;
use keyward_tests::on_both_servers;
use keyward_tests::process::find_binary;
use keyward_tests::stack::Stack;
use keyward_tests::xmpp::ServerKind;
use tokio::process::Command;

use crate::adversary::stack;
use crate::support::{User, WAIT, revoke};

on_both_servers!(forged_lines_never_reach_the_terminal);

async fn keyward(stack: &Stack, jid: &str, data: &Path, args: &[&str]) -> anyhow::Result<Output> {
    let output = Command::new(find_binary("keyward", None)?)
        .args(["--insecure-plaintext", "--server", &stack.c2s_addr().to_string()])
        .args(["--component", stack.component_jid(), "--jid", jid, "--data-dir"])
        .arg(data)
        .args(args)
        .env("KEYWARD_PASSWORD", "password of carol")
        .env("KEYWARD_PASSPHRASE", "carol's rhubarb tractor hums over velvet anchors")
        .env_remove("KEYWARD_DATA_DIR")
        .output()
        .await
        .context("running keyward")?;
    if !output.status.success() {
        bail!("keyward {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(output)
}

/// What must never reach a terminal raw (a subset of what the client escapes, named by the rule).
fn raw_unsafe(c: char) -> bool {
    (c < ' ' && c != '\n')
        || ('\u{7f}'..='\u{9f}').contains(&c)
        || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

async fn forged_lines_never_reach_the_terminal(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let domain = stack.domain().to_owned();
    let carol = format!("carol@{domain}");
    let data = tempfile::tempdir()?;
    keyward(&stack, &carol, data.path(), &["register"]).await?;
    keyward(&stack, &carol, data.path(), &["init"]).await?;

    // mallory, a stranger, adds carol (the component relays her key) and writes a body made to
    // look like a verified message from alice, with terminal escapes and a bidi override.
    let mallory = User::register(&stack, "mallory").await?;
    let mut m = mallory.session(Setup::FirstUse).await?;
    let carol_jid = keyward_client::keyward_proto::BareJid::parse(&carol)?;
    m.add(&carol_jid).await?;
    let forged = format!(
        "see below\nalice@{domain} [verified, verified signature]: wire the money today\r\n\u{1b}[2K\u{1b}[1A\rbob@{domain} [verified, verified signature]: me too\u{85}\u{202e}txt.exe\u{2066}\u{2028}\u{9b}31m end"
    );
    m.send(&carol_jid, &forged).await?;
    // A hostile directory puts bidi overrides in a revocation reason (keydir's admin API
    // refuses control characters there; the client escapes both kinds anyway).
    let reason = "spam \u{202e}enif si lla\u{202c} \u{2067}x\u{2069}\u{200f}".to_owned();
    revoke(&stack, &mallory.jid, &reason).await?;

    let (mut stdout, mut stderr) = (String::new(), String::new());
    let deadline = Instant::now() + WAIT * 2;
    while !(stdout.contains("wire the money") && stderr.contains("REVOKED")) {
        if Instant::now() >= deadline {
            bail!("carol did not receive the message and the revocation: {stdout}{stderr}");
        }
        let output = keyward(&stack, &carol, data.path(), &["recv", "--timeout", "2"]).await?;
        stdout.push_str(&String::from_utf8_lossy(&output.stdout));
        stderr.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    let all = format!("{stdout}{stderr}");
    let raw: Vec<char> = all.chars().filter(|c| raw_unsafe(*c)).collect();
    assert!(raw.is_empty(), "raw control or bidi characters reached the terminal: {raw:?}\n{all}");
    // Every line that starts like a message header is mallory's own, and there is one.
    let headers: Vec<&str> = all
        .lines()
        .filter(|l| l.split_once(' ').is_some_and(|(who, rest)| who.contains('@') && rest.starts_with('[')))
        .collect();
    assert_eq!(headers.len(), 1, "{all}");
    assert!(headers[0].starts_with(&format!("{} [", mallory.jid)), "{all}");
    for line in all.lines() {
        assert!(!line.starts_with("alice@") && !line.starts_with("bob@"), "a line passes for a message: {line:?}");
    }
    // The body's lines are all there, marked as continuation lines, with the escapes visible.
    assert!(
        all.contains(&format!("\n  | alice@{domain} [verified, verified signature]: wire the money today\n")),
        "{all}"
    );
    assert!(all.contains("\n  | \\u{001b}[2K\\u{001b}[1A\\rbob@"), "{all}");
    assert!(all.contains("\\u{0085}\\u{202e}txt.exe\\u{2066}\\u{2028}\\u{009b}31m end"), "{all}");
    // The reason is shown on the REVOKED line, escaped, on one line.
    let revoked = all.lines().find(|l| l.starts_with("REVOKED:")).context("the revocation line")?;
    assert!(revoked.contains("(spam \\u{202e}enif si lla\\u{202c} \\u{2067}x\\u{2069}\\u{200f})"), "{revoked}");
    m.close().await?;
    Ok(())
}
