//! `cargo xtask`: keyward's project chores (the test command, the local stack, the demo, chaos and soak runs, benchmarks, fuzzing).

mod audit;
mod bench;
mod chaos;
mod demo;
mod fault;
mod fuzz;
mod install;
mod load;
mod plot;
mod report;
mod soak;
mod stack;
mod test;
mod tidy;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use keyward_tests::xmpp::ServerKind;
use std::path::PathBuf;

/// keyward's project chores.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what is missing, then run every check and test (the CI test command).
    Test,
    /// Run the local stack (Postgres, XMPP server, keydir, component) until interrupted.
    Stack {
        #[command(subcommand)]
        action: StackAction,
    },
    /// Install what is missing, bring the stack up and narrate a scenario with the real CLI.
    Demo {
        /// The XMPP server to run: prosody or ejabberd.
        #[arg(long, default_value = "prosody")]
        server: String,
    },
    /// Under a steady mixed load, SIGKILL Postgres, keydir, the component and the XMPP server in
    /// turn, start each again, and report what failed, how fast it recovered and what was lost.
    Chaos {
        /// Short phases (about a minute per server), for the test command.
        #[arg(long)]
        short: bool,
        /// The XMPP server: prosody, ejabberd or both.
        #[arg(long, default_value = "both")]
        server: String,
        /// Where to write the markdown report (default target/chaos/report.md).
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Hold the chaos load for N minutes without faults, sampling each service's memory
    /// (CSV and SVG plot under target/soak/), and report errors and whether memory looks flat.
    Soak {
        /// How long to hold the load, per server.
        #[arg(long)]
        minutes: f64,
        /// The XMPP server: prosody, ejabberd or both.
        #[arg(long, default_value = "prosody")]
        server: String,
    },
    /// Start the real stack and measure it beside anchors in the same run (not part of the test
    /// command): target/bench/report.md and SVG plots.
    Bench {
        /// A short smoke run (a minute or two).
        #[arg(long)]
        quick: bool,
        /// Run keydir and the component as release builds (built first: about 5 minutes and 700 MB
        /// the first time on 2 cores) instead of the debug builds the test stack runs; with
        /// `--only P8`, `P9` or `P8,P9`, run them (measured from this process) from a release
        /// build of xtask.
        #[arg(long)]
        release: bool,
        /// Only these parts, e.g. `P1,P2` (default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// P8's and P9's directory size (default 1,000); 1000000 is the large case, run on its own
        /// with `--only P8` or `--only P9` (see README's Performance section for its time).
        #[arg(long)]
        transparency_accounts: Option<u64>,
    },
    /// Build the fuzz targets of fuzz/ and run each for a bounded time from its seeds
    /// (working corpus in target/fuzz-corpus, crashes in target/fuzz-artifacts).
    Fuzz {
        /// Minutes per target.
        #[arg(long, conflicts_with = "seconds")]
        minutes: Option<f64>,
        /// Seconds per target (default 60).
        #[arg(long)]
        seconds: Option<u64>,
        /// One target only (default: all).
        #[arg(long)]
        target: Option<String>,
        /// How many targets run at once.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Build with the dev profile (faster to build, slower to run) instead of release.
        #[arg(long)]
        dev: bool,
    },
}

#[derive(Debug, Subcommand)]
enum StackAction {
    /// Start everything and write the env file.
    Up {
        /// The XMPP server to run: prosody or ejabberd.
        #[arg(long, default_value = "prosody")]
        server: String,
        /// Where to write the env file.
        #[arg(long, default_value = "target/keyward-stack.env")]
        env_file: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Test => test::run(),
        Task::Stack { action: StackAction::Up { server, env_file } } => {
            let server = ServerKind::parse(&server)?;
            let env_file = if env_file.is_absolute() { env_file } else { repo_root().join(env_file) };
            runtime()?.block_on(stack::up(server, &env_file))
        }
        Task::Demo { server } => demo::run(ServerKind::parse(&server)?),
        Task::Chaos { short, server, report } => chaos::run(short, &server, report),
        Task::Soak { minutes, server } => soak::run(minutes, &server),
        Task::Bench { quick, release, only, transparency_accounts } => {
            bench::run(quick, release, &only, transparency_accounts)
        }
        Task::Fuzz { minutes, seconds, target, jobs, dev } => {
            let time = match (minutes, seconds) {
                (Some(minutes), _) => std::time::Duration::try_from_secs_f64(minutes * 60.0)
                    .map_err(|_| anyhow::anyhow!("--minutes must be a positive number"))?,
                (None, Some(seconds)) => std::time::Duration::from_secs(seconds),
                (None, None) => std::time::Duration::from_secs(60),
            };
            fuzz::run(&fuzz::Options { time, target, jobs, dev })
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

/// The repository root (the parent of this crate's folder).
pub(crate) fn repo_root() -> PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}
