//! `cargo xtask`: keyward's project chores (the test command, the local stack, the demo).

mod demo;
mod install;
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
