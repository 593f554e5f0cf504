//! The `keyward-component` binary: `serve` runs the component, `healthcheck` asks a running one.

use anyhow::Context;
use clap::{Parser, Subcommand};
use keyward_component::{Config, HealthcheckArgs, ServeArgs};
use tracing_subscriber::EnvFilter;

/// keyward's XEP-0114 external component.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to the XMPP server and serve keyward requests.
    Serve(ServeArgs),
    /// GET /healthz of the component on KEYWARD_METRICS_LISTEN: exit 0 when the stream is up, else 1.
    Healthcheck(HealthcheckArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keyward_component::keydir::install_crypto_provider();
    let args = match Cli::parse().command {
        Command::Serve(args) => args,
        Command::Healthcheck(args) => std::process::exit(healthcheck(&args).await),
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let config = Config::from_args(&args).context("invalid configuration")?;
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("binding the metrics listener {}", args.metrics_listen))?;
    keyward_component::run(config, listener, shutdown_signal()).await.context("component failed")
}

/// Exits 0 when `/healthz` answers 200, else 1 (with the reason on standard error).
async fn healthcheck(args: &HealthcheckArgs) -> i32 {
    let timeout = std::time::Duration::from_millis(args.timeout_ms);
    match keyward_component::healthcheck::healthz_status(args.metrics_listen, timeout).await {
        Ok(200) => return 0,
        Ok(status) => eprintln!("unhealthy: /healthz answered {status}"),
        Err(err) => eprintln!("unhealthy: {err}"),
    }
    1
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
