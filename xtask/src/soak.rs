//! `cargo xtask soak --minutes N`: the chaos load held for N minutes without faults, sampling the resident memory of every service, written as a CSV and an SVG plot under `target/soak/`.
//!
//! It prints the errors the load met (aim: none) and whether memory looks flat: the mean of
//! the last quarter of the samples against the mean of the second quarter (the first quarter
//! is warm-up). The exit code is non-zero when a bundle or a revocation notice was lost or
//! the component exited, as for `chaos`.

use std::fmt::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use keyward_tests::stack::Stack;
use keyward_tests::xmpp::ServerKind;

use crate::load::{Load, LoadOptions, Target};

/// The sampled services, in CSV column order.
const SERVICES: [&str; 4] = ["keydir", "component", "xmpp", "postgres"];

/// More growth than this from the second to the last quarter does not look flat.
const FLAT_GROWTH: f64 = 0.10;

/// `cargo xtask soak`.
pub(crate) fn run(minutes: f64, servers: &str) -> Result<()> {
    if !(minutes > 0.0 && minutes <= 24.0 * 60.0) {
        bail!("--minutes must be more than 0 and at most a day");
    }
    let (kinds, bin_dir) = crate::stack::prepare(servers)?;
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let mut failed = Vec::new();
    crate::runtime()?.block_on(async {
        for kind in kinds {
            failed.extend(one(kind, duration, bin_dir.clone()).await?);
        }
        anyhow::Ok(())
    })?;
    if !failed.is_empty() {
        bail!("soak: {}", failed.join("; "));
    }
    Ok(())
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/PID/status`).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of a process and its children (Postgres: the postmaster and its backends).
fn tree_rss_kib(pid: u32) -> Option<u64> {
    let own = rss_kib(pid)?;
    let children: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok()) == Some(pid)
        })
        .filter_map(rss_kib)
        .sum();
    Some(own + children)
}

fn sample(stack: &Stack) -> [Option<u64>; 4] {
    let (keydir, component) = stack.pids();
    [
        keydir.and_then(rss_kib),
        component.and_then(rss_kib),
        stack.xmpp_pid().and_then(rss_kib),
        stack.postgres_pid().and_then(tree_rss_kib),
    ]
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 }
}

/// One server kind: returns the musts that failed.
async fn one(kind: ServerKind, duration: Duration, bin_dir: PathBuf) -> Result<Vec<String>> {
    let server = kind.name();
    println!("soak: {server} for {:.0} s …", duration.as_secs_f64());
    let mut stack = crate::chaos::start_stack(kind, bin_dir).await?;
    let mut load = Load::start(Target::of(&stack)?, LoadOptions::default()).await?;
    let every = if duration > Duration::from_secs(1200) { Duration::from_secs(10) } else { Duration::from_secs(2) };
    let started = Instant::now();
    let mut samples: Vec<(f64, [Option<u64>; 4])> = Vec::new();
    while started.elapsed() < duration {
        samples.push((started.elapsed().as_secs_f64(), sample(&stack)));
        tokio::time::sleep(every).await;
    }
    // A notice claimed but not delivered is delivered again after its 30 s lease.
    let drain = load.drain(Duration::from_secs(45)).await;
    let published = load.published();
    let audit = crate::audit::bundles(&load.account("auditor", Duration::from_secs(5))?, &published).await?;
    let component_exited = crate::fault::component_exited(&mut stack, None);
    let record = load.finish().await;
    if let Err(err) = stack.stop().await {
        eprintln!("soak: stopping the stack: {err:#}");
    }

    let dir = crate::repo_root().join("target/soak");
    let mut csv = format!("seconds,{}\n", SERVICES.map(|s| format!("{s}_rss_kib")).join(","));
    for (t, values) in &samples {
        let cells: Vec<String> = values.iter().map(|v| v.map(|v| v.to_string()).unwrap_or_default()).collect();
        let _ = writeln!(csv, "{t:.1},{}", cells.join(","));
    }
    let csv_path = dir.join(format!("rss-{server}.csv"));
    crate::chaos::write(&csv_path, &csv)?;
    let mut series = Vec::new();
    let mut verdicts = Vec::new();
    for (index, service) in SERVICES.iter().enumerate() {
        let points: Vec<(f64, f64)> =
            samples.iter().filter_map(|(t, v)| Some((*t, v[index]? as f64 / 1024.0))).collect();
        let values: Vec<f64> = points.iter().map(|p| p.1).collect();
        let n = values.len();
        let (second, last) = (mean(&values[n / 4..n / 2]), mean(&values[n * 3 / 4..]));
        let growth = if second > 0.0 { last / second - 1.0 } else { 0.0 };
        let flat = growth < FLAT_GROWTH;
        verdicts.push(format!(
            "{service}: {second:.1} MiB (2nd quarter) -> {last:.1} MiB (last quarter), {:+.1}% {}",
            growth * 100.0,
            if flat { "flat" } else { "GROWING" }
        ));
        let name = if *service == "xmpp" { server } else { service };
        series.push((name.to_owned(), points));
    }
    let svg_path = dir.join(format!("rss-{server}.svg"));
    crate::plot::rss(&svg_path, &format!("keyward soak with {server}: resident memory"), &series)?;

    let failures: Vec<&crate::load::Op> = record.ops.iter().filter(|op| !op.ok).collect();
    let missing = record.missing_notices();
    println!("soak: {server}: {} samples every {every:?}; {}", samples.len(), csv_path.display());
    println!("soak: {server}: plot {}", svg_path.display());
    for verdict in &verdicts {
        println!("soak: {server}: memory {verdict}");
    }
    println!(
        "soak: {server}: {} requests, {} errors (aim 0), {} stanzas refused; {} bundles published, {} lost; \
         {} revocations, {} notices missing (drained in {drain:.1?}); {} messages sent, {} received",
        record.ops.len(),
        failures.len(),
        record.rejected.len(),
        published.len(),
        audit.lost.len(),
        record.revocations.len(),
        missing.len(),
        record.sent.len(),
        record.sent.intersection(&record.received).count(),
    );
    for op in failures.iter().take(10) {
        println!("soak: {server}:   {:?} at {:.1?}: {}", op.kind, op.start, op.error.as_deref().unwrap_or(""));
    }
    let mut failed = Vec::new();
    if !audit.lost.is_empty() {
        failed.push(format!("{server}: {} bundles lost", audit.lost.len()));
    }
    if !missing.is_empty() {
        failed.push(format!("{server}: {} revocation notices never delivered", missing.len()));
    }
    if component_exited {
        failed.push(format!("{server}: the component exited"));
    }
    Ok(failed)
}
