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
/// Rounds of the paced anchor and keyward, in turn.
const ROUNDS: usize = 3;
/// The component's batch: notices claimed at once, then a ping (`component/src/notices.rs`).
const BATCH: u64 = 100;
const CLAIM_ROUTE: &str = "/v0/component/notices/claim";
const ACK_ROUTE: &str = "/v0/component/notices/ack";

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

/// `(seconds, requests)` keydir spent answering `route` so far, from its latency histogram.
fn route_time(page: &str, route: &str) -> (f64, f64) {
    let route = format!("route=\"{route}\"");
    let value = |name: &str| {
        page.lines()
            .filter(|line| line.starts_with(name) && line.contains(&route))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (
        value("keyward_keydir_http_request_duration_seconds_sum"),
        value("keyward_keydir_http_request_duration_seconds_count"),
    )
}

/// keydir's metrics page.
async fn metrics(bench: &BenchStack) -> Result<String> {
    Ok(keyward_tests::net::http_get(bench.keydir.metrics_addr(), "/metrics").await?.1)
}

/// What keydir spent on the claims and acknowledgements of one fan-out: `(seconds, requests)`.
#[derive(Default)]
struct KeydirShare {
    claims: (f64, f64),
    acks: (f64, f64),
}

/// The revocation of `victim` (held by `fan0..fan{holders}`) through keyward: (the POST's
/// answer, the last notice acknowledged), from the POST, and keydir's share of the time.
async fn keyward(bench: &BenchStack, holders: u64, victim: &str) -> Result<(Duration, Duration, KeydirShare)> {
    let domain = bench.stack.domain();
    let model = format!("{}@{domain}", bench.users.first().context("no published account")?);
    let victim = format!("{victim}@{domain}");
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
    let before = metrics(bench).await?;
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
            let took = started.elapsed();
            let after = metrics(bench).await?;
            let delta = |route| {
                let ((s0, n0), (s1, n1)) = (route_time(&before, route), route_time(&after, route));
                (s1 - s0, n1 - n0)
            };
            let share = KeydirShare { claims: delta(CLAIM_ROUTE), acks: delta(ACK_ROUTE) };
            return Ok((answered, took, share));
        }
        if started.elapsed() > DEADLINE {
            bail!("notices still pending {DEADLINE:?} after the revocation");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The anchor: `count` notice-shaped messages to the accounts `{prefix}N` written by a bare component; a
/// ping after every `batch` of them (or only after the last), each answered before the next
/// batch goes out, as the component paces its own batches.
async fn bare(bench: &BenchStack, prefix: &str, count: u64, batch: Option<u64>) -> Result<Duration> {
    let domain = bench.stack.domain().to_owned();
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

/// Runs P4 with `holders` offline holders: the burst once, then [`ROUNDS`] rounds of the paced
/// anchor and keyward in turn, all to the same offline accounts.
pub(crate) async fn run(bench: &BenchStack, holders: u64, _out: &Path) -> Result<Section> {
    let n = holders + 1;
    accounts(bench, "fan", n)?;
    accounts(bench, "p4victim", ROUNDS as u64)?;
    let burst = bare(bench, "fan", n, None).await?;
    let (mut paced, mut fanned, mut answered) = (Vec::new(), Vec::new(), Vec::new());
    let mut share = KeydirShare::default();
    for round in 0..ROUNDS {
        paced.push(bare(bench, "fan", n, Some(BATCH)).await?.as_secs_f64());
        let (post, took, keydir) = keyward(bench, holders, &format!("p4victim{round}")).await?;
        fanned.push(took.as_secs_f64());
        answered.push(post.as_secs_f64());
        share.claims = (share.claims.0 + keydir.claims.0, share.claims.1 + keydir.claims.1);
        share.acks = (share.acks.0 + keydir.acks.0, share.acks.1 + keydir.acks.1);
    }
    let rounds: Vec<String> = fanned.iter().zip(&paced).map(|(k, a)| format!("{k:.2} s / {a:.2} s")).collect();
    let (seconds, paced_median) = (median(&fanned), median(&paced));
    Ok(Section {
        id: "P4",
        title: "revocation fan-out to offline holders",
        method: format!(
            "One admin revocation of an account held by {holders} Prosody accounts that are offline: {n} notices \
             (one per holder and one to the account), each stored by Prosody's offline storage (internal file \
             storage). keyward: from the admin's POST to keydir's `notices_pending` reaching 0 (polled every 20 ms; \
             the component sends batches of {BATCH}, each once the server answered a ping sent behind the previous \
             one, and acknowledges a batch once its ping is answered). Anchors: a bare component writing {n} \
             messages of the same shape to the same offline accounts, in batches of {BATCH} each followed by a ping \
             that is awaited (the component's own pacing, without keydir), and in one burst followed by one ping; \
             each timed to the last ping's answer. The burst runs once first, then {ROUNDS} rounds of the batches \
             and keyward in turn (a new revoked account each round, the same holders); the figures are medians.",
        ),
        rows: vec![
            row(
                "seconds to the last notice stored",
                "s",
                seconds,
                &format!("bare component, batches of {BATCH}"),
                paced_median,
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
            "Each round, keyward / batches: {}. keydir answered the admin's POST (one transaction: the status, an \
             audit row and {n} notices, after the answer caches' leases dropped the account) after a median {:.2} s. \
             From keydir's own latency histogram, over the {ROUNDS} rounds: {:.0} claims took {:.2} s (this includes \
             a long-poll that waited for the revocation's notices) and {:.0} acknowledgements {:.2} s; both overlap \
             the server's handling of a batch.",
            rounds.join(", "),
            median(&answered),
            share.claims.1,
            share.claims.0,
            share.acks.1,
            share.acks.0,
        ),
        plots: Vec::new(),
        not_measured: None,
    })
}

/// The median of a few figures.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_routes_time_from_the_latency_histogram() {
        let page = "keyward_keydir_http_request_duration_seconds_sum{method=\"POST\",route=\"/a\"} 1.5\n\
                    keyward_keydir_http_request_duration_seconds_count{method=\"POST\",route=\"/a\"} 3\n\
                    keyward_keydir_http_request_duration_seconds_sum{method=\"POST\",route=\"/b\"} 9\n";
        assert_eq!(route_time(page, "/a"), (1.5, 3.0));
        assert_eq!(route_time(page, "/c"), (0.0, 0.0));
    }

    #[test]
    fn encodes_names_as_prosody_does() {
        assert_eq!(encode("example.test"), "example%2etest");
        assert_eq!(encode("fan_12"), "fan_12");
    }
}
