//! The `keyward-component` binary: `serve` runs the component, `healthcheck` asks a running one.

use anyhow::Context;
use clap::{Parser, Subcommand};
use keyward_component::{Config, HealthcheckArgs, ServeArgs};
use keyward_service::LogFormat;

/// keyward's XEP-0114 external component.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format.
    #[arg(long, env = "KEYWARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to the XMPP server and serve keyward requests.
    Serve(Box<ServeArgs>),
    /// GET /healthz of the component on KEYWARD_METRICS_LISTEN: exit 0 when the stream is up, else 1.
    Healthcheck(HealthcheckArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keyward_component::keydir::install_crypto_provider();
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Healthcheck(args) => std::process::exit(args.run().await),
    };
    keyward_service::telemetry::init(cli.log_format);
    let config = Config::from_args(&args).context("invalid configuration")?;
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("binding the metrics listener {}", args.metrics_listen))?;
    keyward_component::run(config, listener, keyward_service::shutdown::signal()).await.context("component failed")
}
