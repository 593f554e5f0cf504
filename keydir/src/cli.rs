//! The command line: `keyward-keydir migrate`, `keyward-keydir serve` and `keyward-keydir healthcheck`.

use crate::config::{LogFormat, ServeArgs, Settings};
use crate::healthcheck::HealthcheckArgs;
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
    /// GET /healthz of the keydir serving on KEYWARD_LISTEN: exit 0 on 200, else 1.
    Healthcheck(HealthcheckArgs),
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
    crate::tls::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    if let Command::Healthcheck(args) = &cli.command {
        std::process::exit(runtime.block_on(healthcheck(args)));
    }
    crate::telemetry::init(cli.log_format);
    runtime.block_on(async {
        match cli.command {
            Command::Migrate(args) => migrate(&args).await,
            Command::Serve(args) => serve(&args).await,
            Command::Healthcheck(_) => Ok(()),
        }
    })
}

/// 0 when `/healthz` answers 200, else 1 (with the reason on standard error).
async fn healthcheck(args: &HealthcheckArgs) -> i32 {
    let timeout = std::time::Duration::from_millis(args.timeout_ms);
    match crate::healthcheck::healthz_status(&args.listen, timeout).await {
        Ok(200) => return 0,
        Ok(status) => eprintln!("unhealthy: /healthz answered {status}"),
        Err(err) => eprintln!("unhealthy: {err}"),
    }
    1
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
