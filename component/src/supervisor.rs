//! Keeps a stream up: connects, runs the session, and reconnects with capped jittered backoff.
//!
//! A server that refuses the stream with `conflict` (Prosody, while another component process
//! holds the JID) makes this process a standby: it retries at the short steady
//! `standby_retry` interval instead of backing off, so that it takes over within about that
//! long of the active process's death.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::connection::Connection;
use crate::context::{SessionContext, Shared};
use crate::error::Error;
use crate::session;
use crate::stream::DecoderLimits;

/// A stream that stayed up this long resets the backoff.
const STABLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Connects and reconnects until `stop`; publishes the current stream's context on `streams`.
pub async fn run(shared: Arc<Shared>, streams: watch::Sender<Option<Arc<SessionContext>>>, stop: CancellationToken) {
    let config = &shared.config;
    let metrics = &shared.metrics;
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    let mut standby_retry = Backoff::new(config.standby_retry, config.standby_retry);
    let mut down_since: Option<Instant> = None;
    let mut standby = false;
    loop {
        let attempt = tokio::select! {
            () = stop.cancelled() => return,
            attempt = Connection::establish(
                &config.xmpp_addr,
                &config.component_jid,
                &config.component_secret,
                DecoderLimits::default(),
                config.connect_timeout,
            ) => attempt,
        };
        match attempt {
            Ok((connection, socket)) => {
                if standby {
                    standby = false;
                    metrics.standby.set(0);
                    info!(jid = %config.component_jid, "standby: taking over, the other component is gone");
                }
                match down_since {
                    Some(since) => {
                        metrics.reconnects.inc();
                        info!(addr = %config.xmpp_addr, down_ms = since.elapsed().as_millis(), "stream up again");
                    }
                    None => info!(addr = %config.xmpp_addr, jid = %config.component_jid, "stream up"),
                }
                metrics.connected.set(1);
                let up_at = Instant::now();
                let ended = session::run(connection, socket, shared.clone(), stop.clone(), |ctx| {
                    streams.send_replace(Some(ctx));
                })
                .await;
                streams.send_replace(None);
                metrics.connected.set(0);
                down_since = Some(Instant::now());
                if stop.is_cancelled() {
                    info!("stream closed");
                    return;
                }
                match ended {
                    Ok(()) => warn!("stream ended"),
                    Err(err) => warn!(cause = %err, "stream down"),
                }
                metrics.errors.with_label_values(&["stream-down"]).inc();
                if up_at.elapsed() >= STABLE {
                    backoff.reset();
                }
            }
            Err(err) if is_conflict(&err) => {
                if !standby {
                    standby = true;
                    metrics.standby.set(1);
                    info!(jid = %config.component_jid, retry_ms = config.standby_retry.as_millis(), "standby: another component holds {}", config.component_jid);
                }
                let delay = standby_retry.next_delay();
                debug!(delay_ms = delay.as_millis(), "standby: retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                continue;
            }
            Err(err) => {
                if standby {
                    standby = false;
                    metrics.standby.set(0);
                }
                warn!(addr = %config.xmpp_addr, cause = %err, "could not connect");
                metrics.errors.with_label_values(&["connect-failed"]).inc();
            }
        }
        let delay = backoff.next_delay();
        info!(delay_ms = delay.as_millis(), "reconnecting");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Whether the server refused the stream because another connection holds the component's JID
/// (Prosody's `conflict` at the handshake, under its default `component_conflict_resolve`).
fn is_conflict(err: &Error) -> bool {
    matches!(err, Error::ServerStreamError { condition, .. } if condition == "conflict")
}
