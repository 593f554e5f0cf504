//! The command line: `keyward-keydir migrate`, `keyward-keydir serve` and `keyward-keydir healthcheck`.

use crate::config::{LogFormat, Secret, ServeArgs, Settings};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};

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
    Serve(Box<ServeArgs>),
    /// GET /healthz of the keydir serving on KEYWARD_LISTEN: exit 0 on 200, else 1.
    Healthcheck(HealthcheckArgs),
}

/// `migrate` needs only the database.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Postgres URL.
    #[arg(long, env = "KEYWARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,
}

/// The arguments of `healthcheck` (for a container HEALTHCHECK in an image with no shell and no curl).
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// host:port of the HTTP API (as for `serve`).
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    crate::tls::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    if let Command::Healthcheck(args) = &cli.command {
        let timeout = std::time::Duration::from_millis(args.timeout_ms);
        std::process::exit(runtime.block_on(keyward_service::healthcheck::exit_code(&args.listen, timeout)));
    }
    keyward_service::telemetry::init(cli.log_format);
    runtime.block_on(async {
        match cli.command {
            Command::Migrate(args) => migrate(&args).await,
            Command::Serve(args) => serve(&args).await,
            Command::Healthcheck(_) => Ok(()),
        }
    })
}

async fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    // Placeholder tokens: migrate uses only the database settings.
    let settings = Settings::new(args.database_url.expose(), "migrate-only-token-a", "migrate-only-token-b")?;
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
    crate::run(settings, api, metrics, keyward_service::shutdown::signal()).await?;
    Ok(())
}
