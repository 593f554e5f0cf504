//! `cargo xtask chaos`: under a steady mixed load, SIGKILL Postgres, keydir, the component and the XMPP server in turn, start each again, and check that nothing was lost.
//!
//! Per fault it reports the requests that failed during the outage, the time from the part's
//! return to a client being served again, and whether the component process ever died (it
//! must not: it reconnects by itself). Per server it checks that every published bundle is
//! still served and every holder of a revoked key got the notice. The exit code is non-zero
//! when any of these "musts" fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keyward_tests::stack::{Stack, StackOptions};
use keyward_tests::xmpp::ServerKind;

use crate::audit::{self, Audit};
use crate::fault::{self, Fault, Outage, Probe};
use crate::load::{Load, LoadOptions, Record, Target};

/// How long each phase lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Load before the first fault.
    pub(crate) warmup: Duration,
    /// How long a killed part stays down.
    pub(crate) down: Duration,
    /// Load after serving again, before the next fault.
    pub(crate) settle: Duration,
    /// The longest wait for serving again.
    pub(crate) deadline: Duration,
}

impl Timing {
    pub(crate) fn new(short: bool) -> Self {
        let secs = Duration::from_secs;
        if short {
            Self { warmup: secs(3), down: secs(2), settle: secs(3), deadline: secs(30) }
        } else {
            Self { warmup: secs(10), down: secs(5), settle: secs(10), deadline: secs(60) }
        }
    }
}

/// Everything one server kind's run found.
#[derive(Debug)]
pub(crate) struct ServerRun {
    pub(crate) kind: ServerKind,
    pub(crate) outages: Vec<Outage>,
    pub(crate) record: Record,
    pub(crate) audit: Audit,
    /// How long the notices took to arrive after the load stopped.
    pub(crate) drain: Duration,
    /// The component died by itself at some point.
    pub(crate) component_exited: bool,
    pub(crate) duration: Duration,
}

/// `cargo xtask chaos`.
pub(crate) fn run(short: bool, servers: &str, report: Option<PathBuf>) -> Result<()> {
    let (kinds, bin_dir) = crate::stack::prepare(servers)?;
    run_on(&kinds, &bin_dir, short, report)
}

/// The chaos run on `kinds` with the binaries already built in `bin_dir` (the test command's
/// short run: its build step built them, its first step installed the servers).
pub(crate) fn run_on(kinds: &[ServerKind], bin_dir: &Path, short: bool, report: Option<PathBuf>) -> Result<()> {
    let timing = Timing::new(short);
    let started = Instant::now();
    let runs = crate::runtime()?.block_on(async {
        let mut runs = Vec::new();
        for &kind in kinds {
            println!("chaos: {} …", kind.name());
            let run = tokio::time::timeout(Duration::from_secs(600), one(kind, timing, bin_dir.to_path_buf()))
                .await
                .with_context(|| format!("the chaos run with {} took over 10 minutes", kind.name()))??;
            print!("{}", crate::report::summary(&run));
            runs.push(run);
        }
        anyhow::Ok(runs)
    })?;
    let path = report.unwrap_or_else(|| crate::repo_root().join("target/chaos/report.md"));
    write(&path, &crate::report::markdown(&runs, &timing, short, started.elapsed()))?;
    println!("chaos: report in {} ({:.0?} in all)", path.display(), started.elapsed());
    let failed = crate::report::failed_musts(&runs);
    if !failed.is_empty() {
        bail!("chaos: {} must(s) failed:\n  {}", failed.len(), failed.join("\n  "));
    }
    println!("chaos: every must held");
    Ok(())
}

pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The stack with its own Postgres cluster (so that it can be killed), for chaos and soak.
pub(crate) async fn start_stack(kind: ServerKind, bin_dir: PathBuf) -> Result<Stack> {
    let options = StackOptions {
        bin_dir: Some(bin_dir),
        log_filter: "info".into(),
        own_postgres: true,
        component: crate::load::unthrottled,
        ..StackOptions::default()
    };
    Stack::start(kind, options).await.with_context(|| format!("starting the stack with {}", kind.name()))
}

/// One server kind: the stack, the load, every fault in turn, then the checks.
async fn one(kind: ServerKind, timing: Timing, bin_dir: PathBuf) -> Result<ServerRun> {
    let started = Instant::now();
    let mut stack = start_stack(kind, bin_dir).await?;
    let mut load = Load::start(Target::of(&stack)?, LoadOptions::default()).await?;
    let mut probe = Probe::new(load.account("probe", Duration::from_secs(2))?, load.steady_jid()?).await?;
    tokio::time::sleep(timing.warmup).await;
    let mut outages = Vec::new();
    for fault in Fault::ALL {
        let outage = fault::inject(&mut stack, fault, timing.down, &mut probe, load.t0(), timing.deadline).await?;
        println!(
            "chaos: {}: {} killed, back after {:.1?}, serving again {} later",
            kind.name(),
            fault.name(),
            outage.back - outage.killed,
            outage.recovery().map_or("never".to_owned(), |d| format!("{d:.2?}")),
        );
        outages.push(outage);
        tokio::time::sleep(timing.settle).await;
    }
    probe.close().await;
    // A notice claimed but not delivered is delivered again after its 30 s lease.
    let drain = load.drain(Duration::from_secs(45)).await;
    let published = load.published();
    let audit = audit::bundles(&load.account("auditor", Duration::from_secs(5))?, &published).await?;
    let component_exited = fault::component_exited(&mut stack, None) || outages.iter().any(|o| o.component_exited);
    let record = load.finish().await;
    if let Err(err) = stack.stop().await {
        eprintln!("chaos: stopping the stack: {err:#}");
    }
    Ok(ServerRun { kind, outages, record, audit, drain, component_exited, duration: started.elapsed() })
}
