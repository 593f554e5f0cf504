//! P2: keydir's batch lookups over HTTP against pgbench running the same SELECT on the same rows, in alternating slots of one run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::time::Instant;

use super::Plan;
use super::cpu::{children_cpu, own_cpu};
use super::p1_lookups::row;
use super::report::{Section, targets_table};
use super::setup::BenchStack;
use super::stats::{Aim, Summary, Tally};

/// JIDs per lookup.
const BATCH: u64 = 10;
/// Concurrent HTTP requests, and pgbench clients.
const CLIENTS: usize = 8;

/// The SQL keydir runs for a lookup without a requester (`read_known`: a plain read, no lock),
/// on ten consecutive filler accounts from a random start.
fn pgbench_script(domain: &str, accounts: u64) -> String {
    format!(
        "\\set k random(0, {})\nSELECT a.jid, a.status, a.revoked_at, a.reason, b.xml, EXISTS (SELECT 1 FROM \
         holders h WHERE h.jid = a.jid AND h.holder = '') FROM accounts a LEFT JOIN bundles b ON b.jid = a.jid \
         WHERE a.jid = ANY(ARRAY(SELECT 'filler' || g || '@{domain}' FROM generate_series(:k, :k + {}) g)) \
         ORDER BY a.jid;\n",
        accounts.saturating_sub(BATCH),
        BATCH - 1
    )
}

/// `tps = …` of pgbench's output.
fn pgbench_tps(output: &str) -> Option<f64> {
    output.lines().find_map(|line| line.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
}

/// `latency average = … ms` of pgbench's output.
fn pgbench_latency_ms(output: &str) -> Option<f64> {
    output.lines().find_map(|line| line.strip_prefix("latency average = ")?.split_whitespace().next()?.parse().ok())
}

async fn keydir_slot(bench: &BenchStack, accounts: u64, slot: Duration, seed: u64) -> Result<Tally> {
    let client = reqwest::Client::new();
    let url = format!("{}/v0/component/lookup", bench.keydir.url());
    let domain = bench.stack.domain().to_owned();
    let token = Arc::new(bench.component_token.clone());
    let until = Instant::now() + slot;
    let cpu = own_cpu();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CLIENTS as u64 {
        let (client, url, domain, token) = (client.clone(), url.clone(), domain.clone(), token.clone());
        tasks.spawn(async move {
            let mut tally = Tally::default();
            let mut k = (seed * 7919 + worker * 104_729) % accounts.saturating_sub(BATCH).max(1);
            while Instant::now() < until {
                k = (k * 48_271 + 11) % accounts.saturating_sub(BATCH).max(1);
                let jids: Vec<String> = (k..k + BATCH).map(|i| format!("filler{i}@{domain}")).collect();
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(token.as_str())
                    .json(&serde_json::json!({ "requester": null, "jids": jids }))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                let ok = match response {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
                if Instant::now() >= until {
                    break;
                }
                if ok {
                    tally.latencies_us.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                } else {
                    tally.errors += 1;
                }
            }
            tally
        });
    }
    let mut tally = Tally::default();
    while let Some(done) = tasks.join_next().await {
        tally.merge(done.context("a lookup task panicked")?);
    }
    tally.wall = slot;
    tally.cpu = own_cpu().saturating_sub(cpu);
    Ok(tally)
}

/// One pgbench slot: (transactions per second, average latency in ms, pgbench's CPU time).
async fn pgbench_slot(bench: &BenchStack, script: &Path, slot: Duration) -> Result<(f64, f64, Duration)> {
    let pgbench = crate::stack::pg_tool("pgbench")?;
    let cpu = children_cpu();
    let output = tokio::process::Command::new(&pgbench)
        .args(["-n", "-M", "prepared", "-c", &CLIENTS.to_string(), "-j", "2", "-T"])
        .arg(slot.as_secs().max(1).to_string())
        .arg("-f")
        .arg(script)
        .arg(&bench.database_url)
        .output()
        .await
        .with_context(|| format!("running {} (Debian package postgresql)", pgbench.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed: {}{}", text, String::from_utf8_lossy(&output.stderr));
    }
    let tps = pgbench_tps(&text).with_context(|| format!("no tps in pgbench's output:\n{text}"))?;
    Ok((tps, pgbench_latency_ms(&text).unwrap_or(f64::NAN), children_cpu().saturating_sub(cpu)))
}

/// Runs P2 on the `accounts` filler accounts seeded before.
pub(crate) async fn run(bench: &BenchStack, plan: &Plan, accounts: u64, out: &Path) -> Result<Section> {
    let script = out.join("p2-lookup.sql");
    std::fs::write(&script, pgbench_script(bench.stack.domain(), accounts))?;
    keydir_slot(bench, accounts, plan.warmup, 0).await?;
    let mut keydir = Tally::default();
    let (mut transactions, mut latency_sum, mut pg_cpu, mut pg_wall) = (0.0, 0.0, Duration::ZERO, Duration::ZERO);
    for round in 0..plan.rounds {
        keydir.merge(keydir_slot(bench, accounts, plan.slot, round as u64 + 1).await?);
        let (tps, latency, cpu) = pgbench_slot(bench, &script, plan.slot).await?;
        transactions += tps * plan.slot.as_secs().max(1) as f64;
        latency_sum += latency;
        pg_cpu += cpu;
        pg_wall += Duration::from_secs(plan.slot.as_secs().max(1));
    }
    let keydir = keydir.summary();
    let pg_tps = transactions / pg_wall.as_secs_f64().max(f64::MIN_POSITIVE);
    let pg = Summary {
        count: transactions as u64,
        errors: 0,
        per_sec: pg_tps,
        p50_ms: None,
        p99_ms: None,
        cpu_share: pg_cpu.as_secs_f64() / pg_wall.as_secs_f64().max(f64::MIN_POSITIVE),
    };
    let batch = BATCH as f64;
    let rows = vec![
        row(
            "JIDs looked up per second",
            "JID/s",
            keydir.per_sec * batch,
            "pgbench",
            pg_tps * batch,
            Aim::RatioAtLeast(0.5),
        ),
        row(
            "mean latency of a batch (clients ÷ throughput)",
            "ms",
            mean_ms(&keydir),
            "pgbench",
            latency_sum / plan.rounds.max(1) as f64,
            Aim::None,
        ),
    ];
    let summaries = [("keydir HTTP lookup".to_owned(), keydir.clone()), ("pgbench, same SQL".to_owned(), pg.clone())];
    let plots = super::plot_load(out, "p2", "P2 keydir batch lookups (batches of 10)", "batches/s", &summaries)?;
    Ok(Section {
        id: "P2",
        title: "keydir batch lookups over HTTP",
        method: format!(
            "`POST /v0/component/lookup` of {BATCH} JIDs (consecutive filler accounts from a pseudo-random start, \
             `requester` null so nothing is written), {CLIENTS} requests at once over HTTP/1.1 keep-alive (reqwest), \
             against `pgbench -M prepared -c {CLIENTS} -j 2` running keydir's own lookup SELECT (the plain read of a \
             lookup without requester) on the same {accounts} accounts, with a random start. {} rounds of {:.0} s slots, \
             alternating. keydir runs with its default pool of 10 connections. The load generator's CPU is the \
             bench process's; pgbench's is its own (children's CPU time).",
            plan.rounds,
            plan.slot.as_secs_f64(),
        ),
        rows,
        detail: format!(
            "{}\nThe pgbench row's CPU column is pgbench's own CPU time; its latency is pgbench's average only \
             ({:.2} ms), so p50 and p99 are keydir's alone.",
            targets_table("batches/s", &summaries),
            latency_sum / plan.rounds.max(1) as f64
        ),
        plots,
        not_measured: None,
    })
}

/// Mean latency by Little's law (requests in flight over throughput), as pgbench computes its own.
fn mean_ms(summary: &Summary) -> f64 {
    if summary.per_sec > 0.0 { CLIENTS as f64 * 1000.0 / summary.per_sec } else { f64::NAN }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_output() {
        let out = "number of transactions actually processed: 1234\nlatency average = 3.456 ms\n\
                   initial connection time = 5.1 ms\ntps = 2313.637 (without initial connection time)\n";
        assert_eq!(pgbench_tps(out), Some(2313.637));
        assert_eq!(pgbench_latency_ms(out), Some(3.456));
        assert_eq!(pgbench_tps("nothing"), None);
    }

    #[test]
    fn the_script_looks_up_ten_accounts_in_range() {
        let script = pgbench_script("example.test", 1000);
        assert!(script.starts_with("\\set k random(0, 990)\n"));
        assert!(script.contains("generate_series(:k, :k + 9)"));
        assert!(script.contains("EXISTS (SELECT 1 FROM holders"));
        assert!(!script.contains("FOR SHARE"), "keydir's read takes no lock");
    }
}
