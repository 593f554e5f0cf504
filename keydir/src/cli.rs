//! The command line: `keyward-keydir migrate` and `keyward-keydir serve`.

use crate::config::{LogFormat, ServeArgs, Settings};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

/// keyward's key directory.
#[derive(Debug, Parser)]
#[command(name = "keyward-keydir", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "KEYWARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations, then exit.
    Migrate(MigrateArgs),
    /// Serve the API and the metrics until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
}

/// `migrate` needs only the database.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Postgres URL.
    #[arg(long, env = "KEYWARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretString,
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    crate::telemetry::init(cli.log_format);
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Migrate(args) => migrate(&args).await,
            Command::Serve(args) => serve(&args).await,
        }
    })
}

async fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    // Placeholder tokens: migrate uses only the database settings.
    let settings = Settings::new(args.database_url.expose_secret(), "migrate-only-token-a", "migrate-only-token-b")?;
    let pool = crate::connect(&settings)?;
    crate::migrate(&pool).await.context("applying migrations")?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(args)?;
    let api = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let metrics = tokio::net::TcpListener::bind(&args.metrics_listen)
        .await
        .with_context(|| format!("binding {}", args.metrics_listen))?;
    crate::run(settings, api, metrics, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
}
