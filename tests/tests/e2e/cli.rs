//! The whole flow through the real `keyward` binary, as a script would drive it: register, init,
//! add, recv, accept, send, recv --json, verify --confirm, login on a second device and its
//! history, and recover with the recovery code `init` printed.

use std::path::Path;
use std::process::Output;
use std::time::Instant;

use anyhow::{Context, bail};
use keyward_tests::process::find_binary;
use keyward_tests::stack::Stack;
use keyward_tests::xmpp::ServerKind;
use serde_json::Value;
use tokio::process::Command;

use crate::support::{WAIT, stack};
use keyward_tests::on_both_servers;

on_both_servers!(cli_flow);

/// One person at one device running `keyward`.
struct Cli<'a> {
    stack: &'a Stack,
    jid: String,
    data: &'a Path,
}

impl Cli<'_> {
    async fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let local = self.jid.split('@').next().unwrap_or_default();
        self.run_with_passphrase(args, &format!("{local}'s rhubarb tractor hums over velvet anchors")).await
    }

    async fn run_with_passphrase(&self, args: &[&str], passphrase: &str) -> anyhow::Result<Output> {
        let local = self.jid.split('@').next().unwrap_or_default();
        let output = Command::new(find_binary("keyward", None)?)
            .args(["--json", "--insecure-plaintext", "--server", &self.stack.c2s_addr().to_string()])
            .args(["--component", self.stack.component_jid(), "--jid", &self.jid, "--data-dir"])
            .arg(self.data)
            .args(args)
            .env("KEYWARD_PASSWORD", format!("password of {local}"))
            .env("KEYWARD_PASSPHRASE", passphrase)
            .env_remove("KEYWARD_DATA_DIR")
            .output()
            .await
            .context("running keyward")?;
        Ok(output)
    }

    /// Runs and returns the JSON lines of a successful run.
    async fn ok(&self, args: &[&str]) -> anyhow::Result<Vec<Value>> {
        let output = self.run(args).await?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!("keyward {args:?} as {} failed: {}{stdout}", self.jid, String::from_utf8_lossy(&output.stderr));
        }
        stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
            .collect()
    }

    /// Runs `recv` again and again until the events seen so far satisfy `done`, or fails after
    /// [`WAIT`]: on a loaded machine a relayed key or a message may take longer than one `recv`.
    async fn recv_until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + WAIT;
        let mut events = Vec::new();
        loop {
            events.extend(self.ok(&["recv", "--timeout", "2"]).await?);
            if done(&events) {
                return Ok(events);
            }
            if Instant::now() >= deadline {
                bail!("{} did not receive {what} within {WAIT:?}; got {events:?}", self.jid);
            }
        }
    }

    async fn one(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut lines = self.ok(args).await?;
        if lines.len() != 1 {
            bail!("keyward {args:?}: expected one JSON line, got {lines:?}");
        }
        Ok(lines.remove(0))
    }
}

async fn cli_flow(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (carol_dir, dave_dir, laptop) = (tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?);
    let carol = Cli { stack: &stack, jid: format!("carol@{}", stack.domain()), data: carol_dir.path() };
    let dave = Cli { stack: &stack, jid: format!("dave@{}", stack.domain()), data: dave_dir.path() };

    for user in [&carol, &dave] {
        assert_eq!(user.one(&["register"]).await?["registered"], user.jid.as_str());
    }
    // A weak passphrase, or the XMPP password, is refused before anything is published.
    for (passphrase, why) in
        [("password1", "too easy to guess"), ("password of carol", "must not be your XMPP password")]
    {
        let refused = carol.run_with_passphrase(&["init"], passphrase).await?;
        let said = format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
        assert!(!refused.status.success() && said.contains(why), "init with {passphrase:?}: {said}");
    }
    let carol_init = carol.one(&["init"]).await?;
    assert_eq!(carol_init["setup"], "first-use");
    let carol_code = carol_init["recovery_code"].as_str().context("init prints a recovery code")?.to_owned();
    assert_eq!(carol_code.len(), 34, "28 characters in 7 groups of 4: {carol_code}");
    let carol_fp = carol_init["fingerprint"].as_str().context("fingerprint")?.to_owned();
    let dave_fp = dave.one(&["init"]).await?["fingerprint"].as_str().context("fingerprint")?.to_owned();

    let added = carol.one(&["add", &dave.jid]).await?;
    assert_eq!(added["notice"], "key-pinned");
    assert_eq!(added["fingerprint"], dave_fp.as_str());

    let requested = |e: &Value| e["notice"] == "contact-request" && e["jid"] == carol.jid.as_str();
    let relayed = |e: &Value| e["notice"] == "key-pinned" && e["fingerprint"] == carol_fp.as_str();
    dave.recv_until("carol's request and relayed key", |events| {
        events.iter().any(requested) && events.iter().any(relayed)
    })
    .await?;
    let accepted = dave.one(&["accept", &carol.jid]).await?;
    assert_eq!(accepted["accepted"], true);

    carol.one(&["send", &dave.jid, "hello dave, from the command line"]).await?;
    let from_carol = |e: &Value| e["from"] == carol.jid.as_str();
    let events = dave.recv_until("carol's message", |events| events.iter().any(from_carol)).await?;
    let message = events.iter().find(|e| from_carol(e)).context("carol's message")?;
    assert_eq!(message["body"], "hello dave, from the command line");
    assert_eq!(message["verified"], true);
    assert_eq!(message["trust"], "tofu");
    assert_eq!(message["warnings"], serde_json::json!([]));

    // Both see the same safety number; dave confirms it.
    let seen_by_dave = dave.one(&["verify", &carol.jid]).await?;
    let seen_by_carol = carol.one(&["verify", &dave.jid]).await?;
    assert_eq!(seen_by_dave["safety_number"], seen_by_carol["safety_number"]);
    assert_eq!(seen_by_dave["theirs"], carol_fp.as_str());
    // A number that is not the one carol read out is refused, and nothing is marked.
    let wrong = "1".repeat(60);
    let refused = dave.run(&["verify", &carol.jid, "--confirm", &wrong]).await?;
    assert!(!refused.status.success(), "a wrong number must be refused");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not match"));
    let number = seen_by_carol["safety_number"].as_str().context("carol's number")?;
    let confirmed = dave.one(&["verify", &carol.jid, "--confirm", number]).await?;
    assert_eq!(confirmed["trust"], "verified");
    carol.one(&["send", &dave.jid, "and now you know it is me"]).await?;
    let events = dave.recv_until("carol's second message", |events| events.iter().any(from_carol)).await?;
    let message = events.iter().find(|e| from_carol(e)).context("carol's second message")?;
    assert_eq!(message["body"], "and now you know it is me");
    assert_eq!(message["verified"], true);
    assert_eq!(message["trust"], "verified");

    // carol on a second device: login opens her keys with the passphrase.
    let carol_laptop = Cli { stack: &stack, jid: carol.jid.clone(), data: laptop.path() };
    let login = carol_laptop.one(&["login"]).await?;
    assert_eq!(login["setup"], "new-device");
    assert_eq!(login["fingerprint"], carol_fp.as_str());
    // ...and reads the conversation from the server's archive.
    let history = carol_laptop.ok(&["history", &dave.jid]).await?;
    let bodies: Vec<&str> = history.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["hello dave, from the command line", "and now you know it is me"], "{history:?}");
    assert!(
        history
            .iter()
            .all(|m| m["verified"] == true && m["from"] == carol.jid.as_str() && m["to"] == dave.jid.as_str())
    );
    // ...and `init` there is refused clearly: the account has keys already.
    let output =
        Cli { stack: &stack, jid: carol.jid.clone(), data: tempfile::tempdir()?.path() }.run(&["init"]).await?;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already has keyward keys"));

    // carol forgot her passphrase: on a third device, `recover` with the code from `init` sets a
    // new one (and prints a new code); a fourth device logs in with the new passphrase.
    let (phone, tablet) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let code_file = phone.path().join("code.txt");
    std::fs::write(&code_file, carol_code.to_lowercase().replace('-', " "))?;
    let new_passphrase = "carol's NEW passphrase: saffron lighthouse at dusk";
    let carol_phone = Cli { stack: &stack, jid: carol.jid.clone(), data: phone.path() };
    let code_arg = code_file.to_str().context("path")?;
    let output =
        carol_phone.run_with_passphrase(&["recover", "--recovery-code-file", code_arg], new_passphrase).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "recover: {}{stdout}", String::from_utf8_lossy(&output.stderr));
    let recovered: Value = serde_json::from_str(stdout.trim())?;
    assert_eq!(recovered["setup"], "recovered");
    assert_eq!(recovered["fingerprint"], carol_fp.as_str());
    let new_code = recovered["recovery_code"].as_str().context("a new code")?;
    assert_ne!(new_code, carol_code);
    let carol_tablet = Cli { stack: &stack, jid: carol.jid.clone(), data: tablet.path() };
    let output = carol_tablet.run_with_passphrase(&["login"], new_passphrase).await?;
    assert!(output.status.success(), "login with the new passphrase: {}", String::from_utf8_lossy(&output.stderr));
    let output = carol_tablet.run(&["login"]).await?;
    assert!(!output.status.success(), "the old passphrase still opens the keys");
    assert!(String::from_utf8_lossy(&output.stderr).contains("wrong passphrase"));

    // On the tablet, `passphrase` changes it again; login elsewhere then takes the newest one.
    let newest = "carol's NEWEST passphrase: thistle ferry at noon";
    let newest_file = tablet.path().join("newest.txt");
    std::fs::write(&newest_file, newest)?;
    let newest_arg = newest_file.to_str().context("path")?;
    let output =
        carol_tablet.run_with_passphrase(&["passphrase", "--new-passphrase-file", newest_arg], new_passphrase).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "passphrase: {}{stdout}", String::from_utf8_lossy(&output.stderr));
    let changed: Value = serde_json::from_str(stdout.trim())?;
    assert_eq!(changed["passphrase_changed"], true);
    assert!(changed["recovery_code"].as_str().is_some_and(|c| c != new_code));
    let elsewhere_dir = tempfile::tempdir()?;
    let elsewhere = Cli { stack: &stack, jid: carol.jid.clone(), data: elsewhere_dir.path() };
    let output = elsewhere.run_with_passphrase(&["login"], newest).await?;
    assert!(output.status.success(), "login with the newest passphrase: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}
