//! P9: keydir's lookups with transparency proofs over HTTP against the same lookups without, in alternating slots of one run, with keydir's proof cache off and warm.
//!
//! Two keydir replicas on one database whose map holds N published accounts: one with the
//! proof cache (default size), one with it off (every proof computed by akd). Each slot sends,
//! from 8 clients at once, batches of 8 JIDs (what the component asks for one `keys` query) as
//! the bundle lookup (`POST /v0/component/lookup`, the anchor), the proof lookup (`POST
//! /v0/component/transparency/lookups`, proofs and the signed head), or both in sequence (what
//! one `keys` answer with proofs costs the component).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_client::keyward_proto::{BareJid, Bundle, KeyPair};
use keyward_tests::keydir::{Keydir, KeydirOptions};
use keyward_tests::postgres::Postgres;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::time::Instant;

use super::Plan;
use super::cpu::{own_cpu, postmaster, process_cpu};
use super::p8_directories::{fill_accounts, jid};
use super::report::{Row, Section, figure, targets_table};
use super::setup::random32;
use super::stats::{Aim, Summary, Tally, ratio};

/// The part's title in the report.
pub(crate) const TITLE: &str = "lookups with transparency proofs through keydir's HTTP";
/// JIDs per request: what the component asks keydir for one `keys` query.
const BATCH: u64 = 8;
/// Requests in flight.
const CLIENTS: usize = 8;
/// The accounts the warm-cache slots ask for (all of them when there are fewer): a working set
/// that the default 64 MiB proof cache holds whole.
const HOT: u64 = 10_000;
/// keydir's epoch interval while the accounts are published.
const EPOCH_MS: &str = "250";

/// What a request asks keydir.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// The bundles (no proofs).
    Bundles,
    /// The proofs and the signed head.
    Proofs,
    /// The bundles, then the proofs.
    Both,
}

/// One load of the run.
struct Target {
    name: &'static str,
    ask: Ask,
    /// Whether it goes to the replica with the proof cache.
    cached: bool,
    /// Whether it asks for the hot accounts only.
    hot: bool,
}

const TARGETS: [Target; 5] = [
    Target { name: "bundles, no proofs", ask: Ask::Bundles, cached: true, hot: false },
    Target { name: "proofs, cache off", ask: Ask::Proofs, cached: false, hot: false },
    Target { name: "bundles + proofs, cache off", ask: Ask::Both, cached: false, hot: false },
    Target { name: "proofs, cache warm", ask: Ask::Proofs, cached: true, hot: true },
    Target { name: "bundles + proofs, cache warm", ask: Ask::Both, cached: true, hot: true },
];

/// The two replicas, their database and what a request needs.
struct Replicas {
    cached: Keydir,
    uncached: Keydir,
    pool: PgPool,
    token: String,
    client: reqwest::Client,
    /// The map's epoch (the log's size), sent as the size the component knows.
    epoch: u64,
    accounts: u64,
    /// Seconds from the accounts' rows to their signed epoch.
    publish_secs: f64,
}

impl Replicas {
    async fn start(bin_dir: PathBuf, accounts: u64) -> Result<Self> {
        let postgres = tokio::task::spawn_blocking(Postgres::shared).await.context("starting Postgres")??;
        let url = postgres.fresh_database().await?;
        let token = hex::encode(random32()?);
        let admin = hex::encode(random32()?);
        let (vrf, signing) = (STANDARD.encode(random32()?), STANDARD.encode(random32()?));
        let options = |cache_mb: &str, migrate: bool| KeydirOptions {
            admin_token: admin.clone(),
            component_token: token.clone(),
            log_filter: "warn".into(),
            bin_dir: Some(bin_dir.clone()),
            migrate,
            env: vec![
                ("KEYWARD_VRF_KEY".into(), vrf.clone()),
                ("KEYWARD_TRANSPARENCY_SIGNING_KEY".into(), signing.clone()),
                ("KEYWARD_TRANSPARENCY_EPOCH_MS".into(), EPOCH_MS.into()),
                ("KEYWARD_TRANSPARENCY_PROOF_CACHE_MB".into(), cache_mb.into()),
            ],
            ..KeydirOptions::new(&url)
        };
        let cached = Keydir::start(options("64", true)).await.context("starting keydir (proof cache)")?;
        let uncached = Keydir::start(options("0", false)).await.context("starting keydir (no proof cache)")?;
        let pool = PgPoolOptions::new().max_connections(2).connect(&url).await.context("connecting to Postgres")?;
        let started = std::time::Instant::now();
        seed(&pool, accounts).await?;
        let client = reqwest::Client::new();
        let mut this = Replicas { cached, uncached, pool, token, client, epoch: 0, accounts, publish_secs: 0.0 };
        this.epoch = this.wait_published().await?;
        this.publish_secs = started.elapsed().as_secs_f64();
        Ok(this)
    }

    /// Waits until nothing is pending and the latest epoch's head is signed; returns that epoch.
    async fn wait_published(&self) -> Result<u64> {
        let mut reported = Instant::now();
        loop {
            let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM transparency_pending")
                .fetch_one(&self.pool)
                .await
                .context("counting pending updates")?;
            let recorded: Option<i64> = sqlx::query_scalar("SELECT max(epoch) FROM transparency_epochs")
                .fetch_one(&self.pool)
                .await
                .context("reading the last epoch")?;
            let signed: Option<i64> = sqlx::query_scalar("SELECT max(size) FROM transparency_heads")
                .fetch_one(&self.pool)
                .await
                .context("reading the last head")?;
            if pending == 0 && recorded.is_some() && recorded == signed {
                return Ok(u64::try_from(recorded.unwrap_or(0))?);
            }
            if reported.elapsed() > Duration::from_secs(30) {
                println!("bench: P9: {pending} accounts still to publish (epoch {})", recorded.unwrap_or(0));
                reported = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn keydir(&self, cached: bool) -> &Keydir {
        if cached { &self.cached } else { &self.uncached }
    }

    /// One request of `ask` for `jids`; the answer's body length, or `None` on a failure.
    async fn ask(&self, base: &str, ask: Ask, jids: &[String]) -> Option<usize> {
        let bundles = serde_json::json!({ "requester": null, "jids": jids });
        let proofs = serde_json::json!({ "jids": jids, "known_size": self.epoch });
        let mut bytes = 0;
        let (lookup, with_proofs) =
            (("/v0/component/lookup", &bundles), ("/v0/component/transparency/lookups", &proofs));
        let steps = match ask {
            Ask::Bundles => vec![lookup],
            Ask::Proofs => vec![with_proofs],
            Ask::Both => vec![lookup, with_proofs],
        };
        for (path, body) in steps {
            let response = self
                .client
                .post(format!("{base}{path}"))
                .bearer_auth(&self.token)
                .json(body)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .ok()?;
            if !response.status().is_success() {
                return None;
            }
            bytes += response.bytes().await.ok()?.len();
        }
        Some(bytes)
    }

    /// The proof cache's hits and misses on the caching replica.
    async fn cache_counts(&self) -> Result<(f64, f64)> {
        let page = self.client.get(self.cached.metrics_url()).send().await?.text().await?;
        let value = |name: &str| {
            page.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or(f64::NAN)
        };
        Ok((
            value("keyward_keydir_transparency_proof_cache_hits_total "),
            value("keyward_keydir_transparency_proof_cache_misses_total "),
        ))
    }
}

/// `accounts` accounts with a copy of one real signed bundle each, and their map values
/// queued for keydir's publisher (as keydir's migration queues the accounts from before the map).
async fn seed(pool: &PgPool, accounts: u64) -> Result<()> {
    let keys = KeyPair::generate()?;
    let bundle = Bundle::sign(&keys, BareJid::parse(&jid(0))?, 1_700_000_000);
    let mut tx = pool.begin().await?;
    fill_accounts(&mut tx, accounts, &bundle).await?;
    sqlx::query(
        "INSERT INTO transparency_pending (label, value)
         SELECT convert_to(b.jid, 'UTF8'), '\\x01'::bytea || sha256(convert_to(b.xml, 'UTF8'))
           FROM bundles b ORDER BY b.jid",
    )
    .execute(&mut *tx)
    .await
    .context("queueing the map values")?;
    tx.commit().await?;
    for vacuum in ["VACUUM ANALYZE accounts", "VACUUM ANALYZE bundles"] {
        sqlx::raw_sql(vacuum).execute(pool).await.context("VACUUM ANALYZE")?;
    }
    Ok(())
}

/// The CPU time of both keydirs and Postgres (its postmaster and backends).
fn servers(replicas: &Replicas, postgres: Option<u32>) -> Vec<Duration> {
    let pids = [replicas.cached.pid(), replicas.uncached.pid(), postgres];
    pids.iter().enumerate().map(|(i, pid)| pid.map_or(Duration::ZERO, |pid| process_cpu(pid, i == 2))).collect()
}

/// One slot of `target`: `CLIENTS` workers sending requests of `BATCH` pseudo-random accounts
/// (consecutive from a random start) until `slot` is over.
async fn slot(
    replicas: &Arc<Replicas>,
    target: &Target,
    slot: Duration,
    seed: u64,
    postgres: Option<u32>,
) -> Result<Tally> {
    let range = if target.hot { replicas.accounts.min(HOT) } else { replicas.accounts };
    let base = replicas.keydir(target.cached).url();
    let until = Instant::now() + slot;
    let (cpu, before) = (own_cpu(), servers(replicas, postgres));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CLIENTS as u64 {
        let (replicas, base, ask) = (replicas.clone(), base.clone(), target.ask);
        tasks.spawn(async move {
            let mut tally = Tally::default();
            let mut k = (seed * 7919 + worker * 104_729) % range;
            while Instant::now() < until {
                k = (k * 48_271 + 11) % range;
                let jids: Vec<String> = (0..BATCH).map(|i| jid((k + i) % range)).collect();
                let sent = Instant::now();
                let answered = replicas.ask(&base, ask, &jids).await;
                if Instant::now() >= until {
                    break;
                }
                match answered {
                    Some(_) => tally.latencies_us.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    None => tally.errors += 1,
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
    tally.servers = servers(replicas, postgres).iter().zip(before).map(|(after, b)| after.saturating_sub(b)).collect();
    Ok(tally)
}

/// Asks the caching replica for every hot account once: its cache then holds their proofs.
async fn warm(replicas: &Replicas) -> Result<()> {
    let base = replicas.cached.url();
    let hot = replicas.accounts.min(HOT);
    for start in (0..hot).step_by(BATCH as usize) {
        let jids: Vec<String> = (start..(start + BATCH).min(hot)).map(jid).collect();
        replicas.ask(&base, Ask::Proofs, &jids).await.with_context(|| format!("proofs of accounts {start}…"))?;
    }
    Ok(())
}

/// Body bytes per JID of each kind of answer (one request of the first accounts).
async fn answer_bytes(replicas: &Replicas) -> Result<(f64, f64)> {
    let jids: Vec<String> = (0..BATCH).map(jid).collect();
    let base = replicas.cached.url();
    let bundles = replicas.ask(&base, Ask::Bundles, &jids).await.context("a bundle lookup")?;
    let proofs = replicas.ask(&base, Ask::Proofs, &jids).await.context("a proof lookup")?;
    Ok((bundles as f64 / BATCH as f64, proofs as f64 / BATCH as f64))
}

/// Builds keydir (release or debug) and returns the folder of its binary.
pub(crate) fn keydir_binary(release: bool) -> Result<PathBuf> {
    println!("building keydir{} …", if release { " (release)" } else { "" });
    let mut build = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.current_dir(crate::repo_root()).args(["build", "--quiet", "--bin", "keyward-keydir"]);
    if release {
        build.arg("--release");
    }
    crate::install::run(&mut build)?;
    let debug = crate::stack::debug_dir();
    Ok(if release { debug.with_file_name("release") } else { debug })
}

/// Runs P9 on a map of `accounts` accounts, with keydir from `bin_dir`.
pub(crate) async fn run(plan: &Plan, accounts: u64, bin_dir: PathBuf, out: &Path) -> Result<Section> {
    if accounts < BATCH {
        bail!("P9 needs at least {BATCH} accounts");
    }
    println!("bench: P9: two keydir replicas, {accounts} accounts published into the map …");
    let replicas = Arc::new(Replicas::start(bin_dir, accounts).await?);
    let postgres = postmaster(Postgres::shared()?.port());
    println!(
        "bench: P9: published in {:.1} s (epoch {}); warming the proof cache …",
        replicas.publish_secs, replicas.epoch
    );
    warm(&replicas).await?;
    let bytes = answer_bytes(&replicas).await?;
    for (i, target) in TARGETS.iter().enumerate() {
        slot(&replicas, target, plan.warmup, i as u64, postgres).await?;
    }
    let mut tallies: Vec<Tally> = TARGETS.iter().map(|_| Tally::default()).collect();
    let mut per_round: Vec<Vec<f64>> = Vec::new();
    let mut warm_counts = (0.0, 0.0);
    for round in 0..plan.rounds {
        println!("bench: P9: round {} of {} …", round + 1, plan.rounds);
        let mut rates = vec![0.0; TARGETS.len()];
        // The order turns every round, so that no target always follows the same one.
        for step in 0..TARGETS.len() {
            let index = (step + round) % TARGETS.len();
            let target = &TARGETS[index];
            let before = replicas.cache_counts().await?;
            let mut tally =
                slot(&replicas, target, plan.slot, (round * TARGETS.len() + index + 10) as u64, postgres).await?;
            if target.cached && target.ask != Ask::Bundles {
                let after = replicas.cache_counts().await?;
                warm_counts.0 += after.0 - before.0;
                warm_counts.1 += after.1 - before.1;
            }
            rates[index] = tally.clone().summary().per_sec;
            tallies[index].merge(std::mem::take(&mut tally));
        }
        per_round.push(rates);
    }
    let summaries: Vec<(String, Summary)> =
        TARGETS.iter().zip(tallies.iter_mut()).map(|(t, tally)| (t.name.to_owned(), tally.summary())).collect();
    let cpu_ms: Vec<(f64, f64)> = tallies
        .iter()
        .map(|t| {
            let answered = t.latencies_us.len().max(1) as f64;
            let keydir = t.servers.iter().take(2).map(Duration::as_secs_f64).sum::<f64>();
            let postgres = t.servers.get(2).map_or(0.0, Duration::as_secs_f64);
            (keydir * 1e3 / answered, postgres * 1e3 / answered)
        })
        .collect();
    let section = section(&Figures {
        accounts,
        epoch: replicas.epoch,
        publish_secs: replicas.publish_secs,
        plan,
        summaries,
        per_round,
        bytes,
        warm_counts,
        cpu_ms,
        out,
    })?;
    let Ok(mut replicas) = Arc::try_unwrap(replicas) else { bail!("a lookup task still holds the replicas") };
    replicas.pool.close().await;
    replicas.uncached.stop().await?;
    replicas.cached.stop().await?;
    Ok(section)
}

/// What [`section`] reports.
struct Figures<'a> {
    accounts: u64,
    epoch: u64,
    publish_secs: f64,
    plan: &'a Plan,
    /// Per target, in [`TARGETS`]' order.
    summaries: Vec<(String, Summary)>,
    /// Each round's requests per second, per target.
    per_round: Vec<Vec<f64>>,
    /// Answer bytes per JID: bundles, proofs.
    bytes: (f64, f64),
    /// Proof cache hits and misses during the warm slots.
    warm_counts: (f64, f64),
    /// keydir's and Postgres' CPU milliseconds per request, per target.
    cpu_ms: Vec<(f64, f64)>,
    out: &'a Path,
}

/// The smallest and largest of the rounds' ratios of target `of` to the anchor (target 0).
fn spread(per_round: &[Vec<f64>], of: usize) -> String {
    let ratios: Vec<f64> = per_round.iter().filter_map(|r| ratio(*r.get(of)?, *r.first()?)).collect();
    let (low, high) = ratios.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), r| (l.min(*r), h.max(*r)));
    if ratios.is_empty() { "—".into() } else { format!("{low:.2}x to {high:.2}x") }
}

fn section(f: &Figures<'_>) -> Result<Section> {
    let rate = |i: usize| f.summaries[i].1.per_sec;
    let anchor = || Some(("bundle lookup alone (no proofs)".to_owned(), rate(0)));
    let row = |what: &str, i: usize, aim: Aim| Row {
        what: format!("{what} ({} accounts)", f.accounts),
        unit: "req/s",
        keyward: Some(rate(i)),
        anchor: anchor(),
        aim,
    };
    let mut rows = vec![
        row("`keys` answer with proofs: bundle lookup + proof lookup, proof cache warm", 4, Aim::RatioAtLeast(0.5)),
        row("the same, proof cache off (every proof computed)", 2, Aim::RatioAtLeast(0.5)),
        row("proof lookup alone (proofs and signed head), cache warm", 3, Aim::None),
        row("proof lookup alone, cache off", 1, Aim::None),
    ];
    rows.push(Row {
        what: "answer bytes per JID: proof lookup (JSON, base64 proofs, head)".into(),
        unit: "B",
        keyward: Some(f.bytes.1),
        anchor: Some(("bundle lookup".into(), f.bytes.0)),
        aim: Aim::None,
    });
    let hit_rate = |(hits, misses): (f64, f64)| {
        let total = hits + misses;
        if total > 0.0 { format!("{:.1} %", hits * 100.0 / total) } else { "—".into() }
    };
    let mut detail = targets_table("requests/s", &f.summaries);
    detail.push_str("\n| target | ratio to the anchor, per round | keydir CPU per request | Postgres CPU per request |\n|---|---|---|---|\n");
    for (i, (name, _)) in f.summaries.iter().enumerate() {
        let (keydir, postgres) = f.cpu_ms[i];
        detail.push_str(&format!(
            "| {name} | {} | {} ms | {} ms |\n",
            if i == 0 { "anchor".into() } else { spread(&f.per_round, i) },
            figure(keydir),
            figure(postgres)
        ));
    }
    detail.push_str(&format!(
        "\nThe proof cache's hit rate during the warm slots: {} ({} hits, {} misses); the accounts were published \
         (rows to signed head) in {:.1} s, as {} epochs of at most 10,000 updates.",
        hit_rate(f.warm_counts),
        f.warm_counts.0,
        f.warm_counts.1,
        f.publish_secs,
        f.epoch
    ));
    let plots =
        super::plot_load(f.out, "p9", "P9 keydir lookups with and without proofs (8 JIDs)", "req/s", &f.summaries)?;
    Ok(Section {
        id: "P9",
        title: TITLE,
        method: format!(
            "Two keydir replicas on one fresh database whose map holds {accounts} accounts (a copy of one real signed \
             bundle each, published by keydir's own publisher, the head signed): one with the proof cache \
             (`KEYWARD_TRANSPARENCY_PROOF_CACHE_MB=64`), one without (`0`: every proof computed by akd, akd's own 64 MiB \
             node cache in front of Postgres). {CLIENTS} requests at once over HTTP/1.1 keep-alive, each for {BATCH} JIDs \
             (what the component asks for one `keys` query; consecutive accounts from a pseudo-random start): the \
             bundle lookup `POST /v0/component/lookup` (`requester` null, so nothing is written; the anchor), the proof \
             lookup `POST /v0/component/transparency/lookups` (with `known_size`, so the answer carries the head, its \
             inclusion and consistency proofs), or both in sequence, what one `keys` answer with proofs costs the \
             component. The anchor and the cache-off targets ask for any account; the warm-cache targets for the first \
             {hot} (the cache was filled with them first). {rounds} rounds of {slot:.0} s slots per target, the order \
             turning each round, after a {warmup:.0} s warm-up of each.",
            accounts = f.accounts,
            hot = f.accounts.min(HOT),
            rounds = f.plan.rounds,
            slot = f.plan.slot.as_secs_f64(),
            warmup = f.plan.warmup.as_secs_f64(),
        ),
        rows,
        detail,
        plots,
        not_measured: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_is_of_each_rounds_ratio_to_the_anchor() {
        let rounds = vec![vec![100.0, 50.0], vec![200.0, 160.0], vec![0.0, 10.0]];
        assert_eq!(spread(&rounds, 1), "0.50x to 0.80x");
        assert_eq!(spread(&[], 1), "—");
    }
}
