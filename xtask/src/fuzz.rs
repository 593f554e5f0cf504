//! `cargo xtask fuzz`: builds the fuzz targets of `fuzz/` with plain cargo (no cargo-fuzz)
//! and runs each one as libFuzzer for a bounded time, from the committed seeds.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every target of `fuzz/Cargo.toml`.
pub(crate) const TARGETS: &[&str] =
    &["proto_elements", "proto_values", "keydir_requests", "client_stanzas", "component_stanzas", "stream_decoder"];

/// What cargo-fuzz passes on stable: libFuzzer's coverage instrumentation, with debug
/// assertions and overflow checks on in every profile.
const RUSTFLAGS: &[&str] = &[
    "--cfg",
    "fuzzing",
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

/// How to fuzz.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// How long each target runs.
    pub time: Duration,
    /// One target only, or all.
    pub target: Option<String>,
    /// How many targets run at once.
    pub jobs: usize,
    /// The dev profile (faster to build, slower to run) instead of release.
    pub dev: bool,
}

/// One target's run.
#[derive(Debug)]
struct Outcome {
    target: String,
    executions: u64,
    per_second: u64,
    crash: Option<String>,
    log: PathBuf,
}

/// Builds the targets, runs each for `options.time` (`options.jobs` at a time), prints a
/// table, and fails if any target crashed.
pub(crate) fn run(options: &Options) -> Result<()> {
    let root = crate::repo_root();
    let targets: Vec<&str> = match &options.target {
        Some(name) if TARGETS.contains(&name.as_str()) => vec![name.as_str()],
        Some(name) => bail!("no fuzz target {name:?}; the targets are {}", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    let bin_dir = build(&root, &targets, options.dev)?;
    let mut outcomes = Vec::new();
    for batch in targets.chunks(options.jobs.max(1)) {
        let running: Vec<_> = batch
            .iter()
            .map(|target| start(&root, &bin_dir, target, options.time).map(|child| (*target, child)))
            .collect::<Result<_>>()?;
        for (target, (child, log)) in running {
            outcomes.push(finish(&root, target, child, log)?);
        }
    }
    print_table(&outcomes);
    let crashes: Vec<_> = outcomes.iter().filter(|o| o.crash.is_some()).collect();
    if crashes.is_empty() {
        return Ok(());
    }
    for outcome in &crashes {
        let artifact = outcome.crash.as_deref().unwrap_or("(no artifact written)");
        eprintln!("xtask: {} crashed; log {}; input {artifact}", outcome.target, outcome.log.display());
        eprintln!(
            "xtask:   reproduce: {}/{} {artifact}",
            bin_dir.strip_prefix(&root).unwrap_or(&bin_dir).display(),
            outcome.target
        );
    }
    bail!("{} fuzz target(s) crashed", crashes.len())
}

/// Builds the targets into `target/fuzz`; returns the folder holding the binaries.
fn build(root: &Path, targets: &[&str], dev: bool) -> Result<PathBuf> {
    // An explicit --target keeps RUSTFLAGS off build scripts and proc macros.
    let host = host_triple()?;
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(root)
        .env("SQLX_OFFLINE", "true")
        .env("RUSTFLAGS", RUSTFLAGS.join(" "))
        .args(["build", "--quiet", "--manifest-path", "fuzz/Cargo.toml", "--target-dir", "target/fuzz"])
        .args(["--target", &host]);
    if !dev {
        command.arg("--release");
    }
    for target in targets {
        command.args(["--bin", target]);
    }
    let started = Instant::now();
    crate::install::run(&mut command)?;
    eprintln!("xtask: fuzz targets built in {:.0?}", started.elapsed());
    Ok(root.join("target/fuzz").join(host).join(if dev { "debug" } else { "release" }))
}

fn host_triple() -> Result<String> {
    let output = Command::new("rustc").arg("-vV").output().context("running rustc -vV")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().find_map(|line| line.strip_prefix("host: ")).map(str::to_owned).context("rustc -vV names no host")
}

/// Starts one target on its working corpus and seeds; its output goes to a log file.
fn start(root: &Path, bin_dir: &Path, target: &str, time: Duration) -> Result<(std::process::Child, PathBuf)> {
    let corpus = root.join("target/fuzz-corpus").join(target);
    let artifacts = root.join("target/fuzz-artifacts").join(target);
    let logs = root.join("target/fuzz-logs");
    for dir in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log = logs.join(format!("{target}.log"));
    let file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(bin_dir.join(target))
        .current_dir(root)
        .arg(format!("-max_total_time={}", time.as_secs().max(1)))
        .args(["-rss_limit_mb=2048", "-timeout=30", "-print_final_stats=1"])
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus)
        .arg(root.join("fuzz/seeds").join(target))
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting fuzz target {target} (built?)"))?;
    eprintln!("xtask: fuzzing {target} for {time:?}");
    Ok((child, log))
}

/// Waits for a target and reads its results from its log.
fn finish(root: &Path, target: &str, mut child: std::process::Child, log: PathBuf) -> Result<Outcome> {
    let status = child.wait().with_context(|| format!("waiting for {target}"))?;
    let text = std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
    let stats = Stats::parse(&text);
    let crash = (!status.success())
        .then(|| stats.artifact.clone().unwrap_or_else(|| format!("(none; {target} exited with {status})")));
    let log = log.strip_prefix(root).map(Path::to_path_buf).unwrap_or(log);
    Ok(Outcome { target: target.to_owned(), executions: stats.executions, per_second: stats.per_second, crash, log })
}

/// What libFuzzer reports at the end of a run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    executions: u64,
    per_second: u64,
    artifact: Option<String>,
}

impl Stats {
    fn parse(log: &str) -> Self {
        let mut stats = Self::default();
        for line in log.lines() {
            if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
                stats.executions = n.trim().parse().unwrap_or(stats.executions);
            } else if let Some(n) = line.strip_prefix("stat::average_exec_per_sec:") {
                stats.per_second = n.trim().parse().unwrap_or(stats.per_second);
            } else if let Some((_, path)) = line.split_once("Test unit written to ") {
                stats.artifact = Some(path.trim().to_owned());
            }
        }
        stats
    }
}

fn print_table(outcomes: &[Outcome]) {
    println!("{:<20} {:>12} {:>9}  crashes", "target", "executions", "exec/s");
    for o in outcomes {
        let crashes = if o.crash.is_some() { "1" } else { "0" };
        println!("{:<20} {:>12} {:>9}  {crashes}", o.target, o.executions, o.per_second);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzers_final_stats_and_artifact() {
        let log = "#1024\tpulse  cov: 3\nINFO: seed corpus: files: 3\n\
                   ==12== ERROR: libFuzzer: deadly signal\n\
                   artifact_prefix='target/fuzz-artifacts/x/'; Test unit written to target/fuzz-artifacts/x/crash-ab12\n\
                   stat::number_of_executed_units: 35811\nstat::average_exec_per_sec:     1790\n";
        assert_eq!(
            Stats::parse(log),
            Stats { executions: 35811, per_second: 1790, artifact: Some("target/fuzz-artifacts/x/crash-ab12".into()) }
        );
        assert_eq!(Stats::parse(""), Stats::default());
    }

    #[test]
    fn every_target_is_a_bin_of_the_fuzz_crate_with_seeds() {
        let root = crate::repo_root();
        let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
        for target in TARGETS {
            assert!(manifest.contains(&format!("name = \"{target}\"")), "{target} is not in fuzz/Cargo.toml");
            let seeds = root.join("fuzz/seeds").join(target);
            assert!(std::fs::read_dir(&seeds).map(|d| d.count() > 0).unwrap_or(false), "no seeds for {target}");
        }
        assert_eq!(manifest.matches("[[bin]]").count(), TARGETS.len());
    }
}
