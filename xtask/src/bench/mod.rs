//! `cargo xtask bench`: the real stack measured beside anchors in the same run, written to `target/bench/report.md` with SVG plots.
//!
//! Each part (P1 to P9, see `report.md`) compares a keyward figure with an anchor measured in
//! the same run, in alternating slots where it can, so that ratios hold on a noisy machine. The
//! load generator is the bench's own (raw c2s, pipelined IQs; HTTP for keydir), bounded in count
//! and time; its CPU time is reported beside each figure. Not part of the test command.

mod cpu;
mod framing;
mod loadgen;
mod null_component;
mod p1_lookups;
mod p2_keydir;
mod p3_crypto;
mod p4_fanout;
mod p5_memory;
mod p6_scale;
mod p7_restore;
mod p8_directories;
mod p8_report;
mod p8_transparency;
mod p9_proof_lookups;
mod plot;
mod report;
mod setup;
mod stats;
mod wire;

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use report::Section;
use stats::Summary;

/// Every part, in the order they run.
const PARTS: [&str; 9] = ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9"];
/// Published accounts, each one c2s session of the load.
const USERS: usize = 4;
/// Filler accounts (and holders) in the directory for P1, P2 and P6's first half.
const SMALL: u64 = 1_000;

/// How long each load runs.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) rounds: usize,
    pub(crate) slot: Duration,
    pub(crate) warmup: Duration,
    /// IQs in flight per session.
    pub(crate) window: usize,
    /// P6's large directory.
    pub(crate) large: u64,
    /// P4's offline holders.
    pub(crate) holders: u64,
    /// P7's rounds (one restore and one anchor each).
    pub(crate) restores: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                rounds: 2,
                slot: Duration::from_secs(3),
                warmup: Duration::from_secs(1),
                window: 8,
                large: 100_000,
                holders: 1_000,
                restores: 8,
            }
        } else {
            Plan {
                rounds: 5,
                slot: Duration::from_secs(8),
                warmup: Duration::from_secs(3),
                window: 8,
                large: 1_000_000,
                holders: 10_000,
                restores: 30,
            }
        }
    }
}

/// Which parts `--only` names (all when empty); P5 needs a load, so it brings P1.
pub(crate) fn selected(only: &[String]) -> Result<BTreeSet<&'static str>> {
    if only.is_empty() {
        return Ok(PARTS.into_iter().collect());
    }
    let mut parts = BTreeSet::new();
    for name in only {
        let part = PARTS
            .into_iter()
            .find(|p| p.eq_ignore_ascii_case(name.trim()))
            .with_context(|| format!("unknown part {name:?} (known: {})", PARTS.join(", ")))?;
        parts.insert(part);
    }
    if parts.contains("P5") {
        parts.insert("P1");
    }
    Ok(parts)
}

/// Throughput and latency bar charts of a load's targets; returns the files' names.
pub(crate) fn plot_load(
    out: &Path,
    stem: &str,
    title: &str,
    unit: &str,
    targets: &[(String, Summary)],
) -> Result<Vec<String>> {
    let throughput: Vec<(String, f64)> = targets.iter().map(|(n, s)| (n.clone(), s.per_sec)).collect();
    let mut latency = Vec::new();
    for (name, s) in targets {
        for (q, value) in [("p50", s.p50_ms), ("p99", s.p99_ms)] {
            if let Some(v) = value {
                latency.push((format!("{name} {q}"), v));
            }
        }
    }
    let mut files = vec![format!("{stem}-throughput.svg")];
    plot::bars(&out.join(&files[0]), &format!("{title}: throughput"), unit, &throughput)?;
    if !latency.is_empty() {
        files.push(format!("{stem}-latency.svg"));
        plot::bars(&out.join(&files[1]), &format!("{title}: latency percentiles"), "ms", &latency)?;
    }
    Ok(files)
}

fn memory_plot(out: &Path, samples: &[(f64, f64, f64)]) -> Result<Vec<String>> {
    let series = vec![
        ("component".to_owned(), samples.iter().map(|s| (s.0, s.1)).collect()),
        ("keydir".to_owned(), samples.iter().map(|s| (s.0, s.2)).collect()),
    ];
    crate::plot::rss(&out.join("p5-rss.svg"), "P5 resident memory during the bench", &series)?;
    Ok(vec!["p5-rss.svg".into()])
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|m| m.1.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cores} cores ({model}), load average at the start {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

/// Installs Prosody and Postgres if missing and builds keydir and the component: the debug
/// builds the stack always runs, or optimised ones with `release`. Returns their folder.
fn binaries(release: bool) -> Result<std::path::PathBuf> {
    if !release {
        return Ok(crate::stack::prepare("prosody")?.1);
    }
    crate::install::apt_packages(crate::stack::packages(keyward_tests::xmpp::ServerKind::Prosody))?;
    println!("building keydir and the component (release) …");
    let mut build = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.current_dir(crate::repo_root()).args(["build", "--quiet", "--release"]);
    for bin in ["keyward-keydir", "keyward-component"] {
        build.args(["--bin", bin]);
    }
    crate::install::run(&mut build)?;
    Ok(crate::stack::debug_dir().with_file_name("release"))
}

/// `cargo xtask bench`.
/// `transparency_accounts`: P8's and P9's directory size (default [`p8_transparency::ACCOUNTS`]).
pub(crate) fn run(quick: bool, release: bool, only: &[String], transparency_accounts: Option<u64>) -> Result<()> {
    let parts = selected(only)?;
    // P8 measures akd in this process, P9 loads keydir from it: `--release --only P8,P9` runs
    // them in an optimised build.
    if release && cfg!(debug_assertions) && !only.is_empty() && parts.iter().all(|p| ["P8", "P9"].contains(p)) {
        let parts: Vec<&str> = parts.into_iter().collect();
        return p8_transparency::in_release_build(quick, &parts.join(","), transparency_accounts);
    }
    let plan = Plan::new(quick);
    let out = crate::repo_root().join("target/bench");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let started = Instant::now();
    let machine = machine();
    let cpu_start = cpu::own_cpu();
    let mut sections: Vec<Section> = Vec::new();
    let stack_parts = ["P1", "P2", "P4", "P5", "P6", "P7"];
    if stack_parts.iter().any(|p| parts.contains(p)) {
        let bin_dir = binaries(release)?;
        let mut measured = crate::runtime()?.block_on(with_stack(&parts, &plan, bin_dir, &out))?;
        sections.append(&mut measured);
    }
    if parts.contains("P3") {
        sections.push(p3_crypto::run(quick)?);
    }
    if parts.contains("P8") {
        let accounts = transparency_accounts.unwrap_or(p8_transparency::ACCOUNTS);
        let result = crate::runtime()?.block_on(p8_transparency::run(quick, accounts));
        sections.push(or_failed("P8", p8_transparency::TITLE, result));
    }
    if parts.contains("P9") {
        let accounts = transparency_accounts.unwrap_or(p8_transparency::ACCOUNTS);
        let bin_dir = p9_proof_lookups::keydir_binary(release)?;
        let result = crate::runtime()?.block_on(p9_proof_lookups::run(&plan, accounts, bin_dir, &out));
        sections.push(or_failed("P9", p9_proof_lookups::TITLE, result));
    }
    sections.sort_by_key(|s| s.id);
    let mut preamble = String::new();
    let _ = writeln!(
        preamble,
        "Run: `cargo xtask bench{}{}{}{}`, {:.0} s in all, on {machine}. The machine is shared: read the ratios, not \
         the bare figures. keydir and the component are {}; the XMPP server is Prosody with the test fixtures' \
         configuration but logging at `info` as in production (the tests log every stanza at `debug`). The bench process (the load generator, the null component and \
         the HTTP client{}) used {:.1} s of CPU in all.",
        if quick { " --quick" } else { "" },
        if release { " --release" } else { "" },
        if only.is_empty() { String::new() } else { format!(" --only {}", only.join(",")) },
        transparency_accounts.map_or(String::new(), |n| format!(" --transparency-accounts {n}")),
        started.elapsed().as_secs_f64(),
        if release {
            "release builds (`--release`)"
        } else {
            "the debug builds the test stack runs (dependencies unoptimised but for the cryptography); `--release` \
             measures optimised ones"
        },
        match (parts.contains("P7"), parts.contains("P8") || parts.contains("P9")) {
            (true, true) => ", P7's client side with its Argon2id, and P8's directories and their client checks",
            (true, false) => ", and P7's client side with its Argon2id",
            (false, true) => ", and P8's directories and their client checks or P9's HTTP client",
            (false, false) => "",
        },
        cpu::own_cpu().saturating_sub(cpu_start).as_secs_f64(),
    );
    let text = report::markdown(&preamble, &sections);
    let path = out.join("report.md");
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    for s in &sections {
        let (met, missed) = s.verdicts();
        match &s.not_measured {
            Some(_) => println!("bench: {}: not measured yet", s.id),
            None => println!("bench: {}: {met} aim(s) met, {missed} not met", s.id),
        }
    }
    println!("bench: report {}", path.display());
    Ok(())
}

async fn with_stack(
    parts: &BTreeSet<&str>,
    plan: &Plan,
    bin_dir: std::path::PathBuf,
    out: &Path,
) -> Result<Vec<Section>> {
    println!("bench: starting Postgres, keydir, Prosody, the component and the null component …");
    let mut bench = setup::BenchStack::start(bin_dir, USERS).await?;
    bench.seed(0, SMALL).await?;
    let (keydir_pid, component_pid) = (bench.keydir.pid(), bench.stack.pids().1);
    let sampler = p5_memory::Sampler::start(component_pid, keydir_pid);
    let mut sections = Vec::new();
    let mut during = Vec::new();
    let result: Result<()> = async {
        if parts.contains("P1") {
            println!("bench: P1 …");
            sections.push(p1_lookups::run(&bench, plan, out).await?);
            during.push("P1");
        }
        if parts.contains("P2") {
            println!("bench: P2 …");
            sections.push(p2_keydir::run(&bench, plan, SMALL, out).await?);
            during.push("P2");
        }
        // One more account, restored again and again: before the parts that grow the directory.
        if parts.contains("P7") {
            println!("bench: P7 …");
            let result = p7_restore::run(&bench, plan).await;
            sections.push(or_failed("P7", p7_restore::TITLE, result));
            during.push("P7");
        }
        // The later parts change the directory for good; a failure there is reported, not fatal.
        if parts.contains("P4") {
            println!("bench: P4 …");
            let result = p4_fanout::run(&bench, plan.holders, out).await;
            sections.push(or_failed("P4", "revocation fan-out to offline holders", result));
            during.push("P4");
        }
        if parts.contains("P6") {
            println!("bench: P6 …");
            let result = p6_scale::run(&bench, plan, SMALL, plan.large, out).await;
            sections.push(or_failed("P6", "lookup latency with many accounts and holders", result));
            during.push("P6");
        }
        Ok(())
    }
    .await;
    let samples = sampler.samples();
    drop(sampler);
    if let Err(err) = bench.stack.stop().await {
        eprintln!("bench: stopping the stack: {err:#}");
    }
    if let Err(err) = bench.keydir.stop().await {
        eprintln!("bench: stopping keydir: {err:#}");
    }
    result?;
    if parts.contains("P5") {
        if samples.is_empty() {
            bail!("no memory samples were taken");
        }
        let text = format!("during {}", during.join(", "));
        sections.push(p5_memory::section(&samples, &text, memory_plot(out, &samples)?));
    }
    Ok(sections)
}

/// The section, or one saying the part failed in this run (and why).
fn or_failed(id: &'static str, title: &'static str, result: Result<Section>) -> Section {
    result.unwrap_or_else(|err| {
        eprintln!("bench: {id} failed: {err:#}");
        Section::not_measured(id, title, &format!("this run failed: {err:#}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_selects_parts_and_p5_brings_a_load() -> Result<()> {
        assert_eq!(selected(&[])?.len(), 9);
        assert_eq!(selected(&["p2".into(), "P3".into()])?.into_iter().collect::<Vec<_>>(), ["P2", "P3"]);
        assert_eq!(selected(&["P5".into()])?.into_iter().collect::<Vec<_>>(), ["P1", "P5"]);
        assert!(selected(&["P10".into()]).is_err());
        Ok(())
    }
}
