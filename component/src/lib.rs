//! keyward's XEP-0114 external component: attaches the key directory to any XMPP server.
//!
//! The component connects to the server's component port, authenticates with the
//! shared secret, and answers the keyward requests of `docs/protocol.md` by calling
//! keydir's component API (`docs/keydir-api.md`). It also drains keydir's notice
//! outbox and delivers each notice as a stored message.
//!
//! Layers, from the wire up: [`stream`] (pure codec, no I/O), [`connection`] (owns the
//! socket's read side), [`writer`] (the one writer), `session` (one connected stream:
//! dispatch with bounded concurrency and a bounded FIFO queue, `backlog`, the per-sender
//! request quotas, `quota`, graceful shutdown), `supervisor` (reconnects), `handlers` (one module per request), [`keydir`]
//! (the HTTP client), `notices` (outbox delivery), [`metrics`], and [`run`], which ties
//! them together.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod answers;
mod backlog;
mod backoff;
pub mod config;
pub mod connection;
mod context;
mod error;
mod handlers;
pub mod healthcheck;
pub mod keydir;
pub mod metrics;
mod notices;
pub mod privilege;
mod quota;
mod ratelimit;
pub mod route;
mod session;
pub mod stanza;
pub mod stream;
mod supervisor;
mod transparency;
pub mod writer;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::{Config, Secret, ServeArgs};
pub use error::{Error, Result};
pub use healthcheck::HealthcheckArgs;
pub use metrics::Metrics;

use context::Shared;
use keydir::KeydirClient;
use quota::Quotas;
use ratelimit::RateLimiter;

/// Runs the component until `shutdown` completes: the XMPP stream (reconnecting as
/// needed), notice delivery, and `/metrics` + `/healthz` on `metrics_listener`.
///
/// On shutdown it stops claiming notices (finishing the batch in hand), answers queued
/// requests `service-unavailable`, finishes in-flight requests, closes the stream, then
/// stops the metrics listener.
pub async fn run(
    config: Config,
    metrics_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    metrics.set_limits(config.max_in_flight, config.max_queued);
    let keydir = KeydirClient::with_ca(
        &config.keydir_url,
        config.component_token.clone(),
        config.keydir_timeout,
        config.keydir_ca.as_deref(),
    )?;
    keydir.log_transport();
    let shared = Arc::new(Shared {
        relay_limit: RateLimiter::new(config.relay_per_minute, config.relay_per_minute),
        quotas: Quotas::new(&config.requests),
        answers: answers::AnswerCache::new(config.answer_cache_entries),
        transparency: transparency::DirectoryKeys::default(),
        config,
        keydir,
        metrics: metrics.clone(),
    });
    // Known before the first disco#info when keydir is up (never waited for: a slow keydir
    // must not hold the stream back); asked again by lookups otherwise.
    let transparency_task = {
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.transparency.get(&shared.keydir).await;
        })
    };
    let stop_notices = CancellationToken::new();
    let stop_stream = CancellationToken::new();
    let stop_metrics = CancellationToken::new();
    if let Ok(addr) = metrics_listener.local_addr() {
        info!(%addr, "serving /metrics and /healthz");
    }
    let metrics_task = tokio::spawn(metrics::serve(metrics_listener, metrics, stop_metrics.clone().cancelled_owned()));
    let (streams, streams_rx) = watch::channel(None);
    let notices_task = tokio::spawn(notices::run(shared.clone(), streams_rx, stop_notices.clone()));
    let lease_task = {
        let shared = shared.clone();
        let stop = stop_stream.clone();
        tokio::spawn(async move { shared.answers.keep_lease(shared.keydir.clone(), stop).await })
    };
    let supervisor_task = tokio::spawn(supervisor::run(shared, streams, stop_stream.clone()));

    shutdown.await;
    info!("shutdown requested");
    stop_notices.cancel();
    if notices_task.await.is_err() {
        warn!("notice delivery ended abnormally");
    }
    stop_stream.cancel();
    if supervisor_task.await.is_err() {
        warn!("the stream supervisor ended abnormally");
    }
    let _ = lease_task.await;
    // A fetch still waiting on keydir has nothing left to serve.
    transparency_task.abort();
    stop_metrics.cancel();
    match metrics_task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(Error::Io(err)),
        Err(_) => Ok(()),
    }
}
