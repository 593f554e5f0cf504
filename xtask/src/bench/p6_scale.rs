//! P6: lookup latency through the component with many accounts and holders in the directory against few.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use super::Plan;
use std::sync::Arc;

use super::loadgen::{Probe, interleave};
use super::p1_lookups::{lookup_target, row};
use super::report::{Section, targets_table};
use super::setup::BenchStack;
use super::stats::{Aim, Summary};

async fn measure(bench: &BenchStack, plan: &Plan) -> Result<Summary> {
    let mut sessions = bench.sessions().await?;
    let targets = [lookup_target(bench)];
    let probe: Probe = Arc::new(Vec::new);
    interleave(&mut sessions, &targets, 1, plan.warmup, plan.window, &probe).await?;
    let mut tallies = interleave(&mut sessions, &targets, plan.rounds, plan.slot, plan.window, &probe).await?;
    Ok(tallies.remove(0).summary())
}

/// Measures at the current size (`small` accounts), seeds up to `large`, measures again.
pub(crate) async fn run(bench: &BenchStack, plan: &Plan, small: u64, large: u64, out: &Path) -> Result<Section> {
    let before = measure(bench, plan).await?;
    println!("bench: P6: seeding up to {large} accounts and holders …");
    let started = Instant::now();
    bench.seed(small, large).await?;
    let seeding = started.elapsed();
    let after = measure(bench, plan).await?;
    let summaries = [(format!("{small} accounts"), before.clone()), (format!("{large} accounts"), after.clone())];
    let name = format!("{small} accounts");
    let mut rows = Vec::new();
    if let (Some(k), Some(a)) = (after.p99_ms, before.p99_ms) {
        rows.push(row("p99 lookup latency", "ms", k, &name, a, Aim::RatioAtMost(1.2)));
    }
    if let (Some(k), Some(a)) = (after.p50_ms, before.p50_ms) {
        rows.push(row("p50 lookup latency", "ms", k, &name, a, Aim::None));
    }
    rows.push(row("throughput", "iq/s", after.per_sec, &name, before.per_sec, Aim::None));
    let plots = super::plot_load(out, "p6", "P6 lookups with few and many accounts", "iq/s", &summaries)?;
    Ok(Section {
        id: "P6",
        title: "lookup latency with many accounts and holders",
        method: format!(
            "The P1 lookup load (through Prosody and the component) with {small} accounts and holders in the \
             directory, then again after seeding filler accounts (with bundles) and one holder each, up to {large} \
             (SQL `INSERT … SELECT generate_series` in one transaction, then `VACUUM ANALYZE`; took {:.0} s). The \
             looked-up accounts are the same real ones both times. The two cannot alternate (the seeding is one-way), \
             so this ratio is more exposed to the machine's noise than the others.",
            seeding.as_secs_f64()
        ),
        rows,
        detail: targets_table("iq/s", &summaries),
        plots,
        not_measured: None,
    })
}
