//! keyward-service: the plumbing keydir and the component share, so that it exists once.
//!
//! - [`healthcheck`]: the `healthcheck` subcommand of both binaries (a container probe
//!   without a shell or curl) asks the running service's own `/healthz`.
//! - [`shutdown`]: the future that completes on SIGTERM or Ctrl-C.
//! - [`telemetry`]: the log set-up, JSON or human lines filtered by `RUST_LOG`.
//! - [`metrics`]: a Prometheus registry with the service's namespace, rendered as text.
//! - [`tls`]: the one rustls crypto provider (ring) every reqwest client needs.
//! - [`secret`]: configuration secrets that never print, and bearer tokens compared in
//!   constant time.

#![forbid(unsafe_code)]

pub mod healthcheck;
pub mod metrics;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use secret::{Secret, Token};
pub use telemetry::LogFormat;

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bearer token too short to resist guessing.
    #[error("tokens must be at least {min} bytes long")]
    TokenTooShort {
        /// The shortest token accepted.
        min: usize,
    },
    /// The healthcheck could not ask the service.
    #[error("asking {url}: {reason}")]
    Healthcheck {
        /// What was asked.
        url: String,
        /// Why it failed.
        reason: String,
        /// Whether it gave up waiting.
        timed_out: bool,
    },
    /// The metrics could not be registered or encoded.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
