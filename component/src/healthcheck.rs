//! `keyward-component healthcheck`: asks the running component's own `/healthz` (for a
//! container HEALTHCHECK in an image with no shell and no curl); the probe itself is
//! [`keyward_service::healthcheck`], shared with keydir.

use std::net::SocketAddr;

use clap::Args;

/// The arguments of `healthcheck`.
#[derive(Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// Where the component serves /metrics and /healthz (as for `serve`).
    #[arg(long, env = "KEYWARD_METRICS_LISTEN", default_value = "127.0.0.1:9102")]
    pub metrics_listen: SocketAddr,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

impl HealthcheckArgs {
    /// Asks `/healthz`: the process's exit code, 0 when the stream is up, else 1 (with the reason
    /// on standard error).
    pub async fn run(&self) -> i32 {
        let timeout = std::time::Duration::from_millis(self.timeout_ms);
        keyward_service::healthcheck::exit_code(&self.metrics_listen.to_string(), timeout).await
    }
}
