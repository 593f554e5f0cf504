//! P4: one revocation fanned out to many offline holders, stored by Prosody, against a bare component writing the same number of messages.
//!
//! The holders are real Prosody accounts (account files written straight into its internal
//! storage, which is all offline storage asks of them) that are never online, so every notice
//! goes to offline storage. keyward's time runs from the admin's POST to keydir holding no
//! unacknowledged notice: the component acknowledges a batch only once Prosody answered a ping
//! sent behind it, so by then Prosody stored them all. The anchor writes the same number of
//! messages of the same shape on a component stream of its own, then a ping, and stops the
//! clock at the ping's answer: the server's own limit.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::framing::attr;
use super::null_component;
use super::p1_lookups::row;
use super::report::Section;
use super::setup::BenchStack;
use super::stats::Aim;

const DEADLINE: Duration = Duration::from_secs(900);
/// The component's batch: notices claimed at once, then a ping (`component/src/notices.rs`).
const BATCH: u64 = 100;

/// A name as Prosody's internal storage writes it in a file name.
pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02x}") })
        .collect()
}

/// Creates Prosody accounts `{prefix}{0..count}` (never logged in: their keys are placeholders).
fn accounts(bench: &BenchStack, prefix: &str, count: u64) -> Result<()> {
    let dir = bench.stack.server_data_dir().join("data").join(encode(bench.stack.domain())).join("accounts");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = "return {\n\t[\"iteration_count\"] = 4096;\n\t[\"salt\"] = \"bench\";\n\t[\"stored_key\"] = \"00\";\n\t[\"server_key\"] = \"00\";\n};\n";
    for index in 0..count {
        std::fs::write(dir.join(format!("{}.dat", encode(&format!("{prefix}{index}")))), text)?;
    }
    Ok(())
}

/// keydir's `keyward_keydir_notices_pending`.
async fn pending(bench: &BenchStack) -> Result<f64> {
    let (_, page) = keyward_tests::net::http_get(bench.keydir.metrics_addr(), "/metrics").await?;
    page.lines()
        .find_map(|line| line.strip_prefix("keyward_keydir_notices_pending ")?.trim().parse().ok())
        .with_context(|| "no keyward_keydir_notices_pending on keydir's metrics page")
}

/// The revocation through keyward: (the POST's answer, the last notice acknowledged), from the POST.
async fn keyward(bench: &BenchStack, holders: u64) -> Result<(Duration, Duration)> {
    let domain = bench.stack.domain();
    let model = format!("{}@{domain}", bench.users.first().context("no published account")?);
    let victim = format!("p4victim@{domain}");
    accounts(bench, "p4victim", 1)?;
    // The victim's account file is `p4victim0`: rename it to the account name.
    let dir = bench.stack.server_data_dir().join("data").join(encode(domain)).join("accounts");
    std::fs::rename(dir.join("p4victim0.dat"), dir.join("p4victim.dat"))?;
    accounts(bench, "fan", holders)?;
    bench
        .psql(&format!(
            "BEGIN;
             INSERT INTO accounts (jid) VALUES ('{victim}');
             INSERT INTO bundles (jid, fingerprint, ik, ek, created_unix, sig, xml)
               SELECT '{victim}', fingerprint, ik, ek, created_unix, sig, xml FROM bundles WHERE jid = '{model}';
             INSERT INTO holders (jid, holder) SELECT '{victim}', 'fan' || g || '@{domain}' FROM generate_series(0, {holders} - 1) g;
             COMMIT;"
        ))
        .await?;
    if pending(bench).await? != 0.0 {
        bail!("notices were pending before the revocation");
    }
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/v0/admin/accounts/{victim}/revoke", bench.keydir.url()))
        .bearer_auth(&bench.admin_token)
        .json(&serde_json::json!({ "reason": "bench" }))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .context("revoking")?;
    if !response.status().is_success() {
        bail!("the revocation failed: {} {}", response.status(), response.text().await.unwrap_or_default());
    }
    let answered = started.elapsed();
    loop {
        if pending(bench).await? == 0.0 {
            return Ok((answered, started.elapsed()));
        }
        if started.elapsed() > DEADLINE {
            bail!("notices still pending {DEADLINE:?} after the revocation");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The anchor: `count` notice-shaped messages to `{prefix}N` written by a bare component; a
/// ping after every `batch` of them (or only after the last), each answered before the next
/// batch goes out, as the component paces its own batches.
async fn bare(bench: &BenchStack, prefix: &str, count: u64, batch: Option<u64>) -> Result<Duration> {
    let domain = bench.stack.domain().to_owned();
    accounts(bench, prefix, count)?;
    let (jid, secret) = &bench.bare;
    let mut wire = null_component::connect(bench.stack.xmpp().extra_component_addr(), jid, secret).await?;
    let fp = "0".repeat(64);
    let batch = batch.unwrap_or(count).max(1);
    let started = Instant::now();
    let mut chunk = String::new();
    let mut errors = 0u64;
    for index in 0..count {
        chunk.push_str(&format!(
            "<message type='normal' from='{jid}' to='{prefix}{index}@{domain}' id='n{index}'><revoked \
             xmlns='urn:keyward:0' jid='p4victim@{domain}' fp='{fp}' at='2026-12-06T00:00:00Z' reason='bench'/><store \
             xmlns='urn:xmpp:hints'/></message>"
        ));
        let last = index + 1 == count;
        if last || (index + 1) % batch == 0 {
            chunk.push_str(&format!(
                "<iq type='get' id='p{index}' from='{jid}' to='{domain}'><ping xmlns='urn:xmpp:ping'/></iq>"
            ));
            wire.send(&chunk).await?;
            chunk.clear();
            let ping = format!("p{index}");
            loop {
                let frame = wire.frame(DEADLINE).await?;
                match frame.name.as_deref() {
                    Some("iq") if attr(&frame.tag, "id") == Some(ping.as_str()) => break,
                    Some("message") if attr(&frame.tag, "type") == Some("error") => errors += 1,
                    _ => {}
                }
            }
        } else if chunk.len() > 32 * 1024 {
            wire.send(&chunk).await?;
            chunk.clear();
        }
    }
    if errors > 0 {
        bail!("the server refused {errors} of the bare component's messages");
    }
    Ok(started.elapsed())
}

/// Runs P4 with `holders` offline holders.
pub(crate) async fn run(bench: &BenchStack, holders: u64, _out: &Path) -> Result<Section> {
    let burst = bare(bench, "burst", holders + 1, None).await?;
    let paced = bare(bench, "paced", holders + 1, Some(BATCH)).await?;
    let (answered, revocation) = keyward(bench, holders).await?;
    let seconds = revocation.as_secs_f64();
    Ok(Section {
        id: "P4",
        title: "revocation fan-out to offline holders",
        method: format!(
            "One admin revocation of an account held by {holders} Prosody accounts that are offline: {n} notices \
             (one per holder and one to the account), each stored by Prosody's offline storage (internal file \
             storage). keyward: from the admin's POST to keydir's `notices_pending` reaching 0 (polled every 20 ms; \
             the component sends batches of {BATCH} and acknowledges one once Prosody answered a ping sent behind \
             it). Anchors: a bare component writing {n} messages of the same shape to other offline accounts, in \
             batches of {BATCH} each followed by a ping that is awaited (the component's own pacing, without \
             keydir), and in one burst followed by one ping; each timed to the last ping's answer. Run once each, \
             in that order: burst, batches, keyward.",
            n = holders + 1,
        ),
        rows: vec![
            row(
                "seconds to the last notice stored",
                "s",
                seconds,
                &format!("bare component, batches of {BATCH}"),
                paced.as_secs_f64(),
                Aim::RatioAtMost(1.1),
            ),
            row(
                "seconds to the last notice stored",
                "s",
                seconds,
                "bare component, one burst",
                burst.as_secs_f64(),
                Aim::None,
            ),
        ],
        detail: format!(
            "keydir answered the admin's POST (one transaction: the status, an audit row and {} notices) after {:.2} s \
             of the {seconds:.2} s.",
            holders + 1,
            answered.as_secs_f64()
        ),
        plots: Vec::new(),
        not_measured: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_names_as_prosody_does() {
        assert_eq!(encode("example.test"), "example%2etest");
        assert_eq!(encode("fan_12"), "fan_12");
    }
}
