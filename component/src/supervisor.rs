//! Keeps a stream up: connects, runs the session, and reconnects with capped jittered backoff.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::connection::Connection;
use crate::context::{SessionContext, Shared};
use crate::session;
use crate::stream::DecoderLimits;

/// A stream that stayed up this long resets the backoff.
const STABLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Connects and reconnects until `stop`; publishes the current stream's context on `streams`.
pub async fn run(shared: Arc<Shared>, streams: watch::Sender<Option<Arc<SessionContext>>>, stop: CancellationToken) {
    let config = &shared.config;
    let metrics = &shared.metrics;
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    let mut down_since: Option<Instant> = None;
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
            Err(err) => {
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
