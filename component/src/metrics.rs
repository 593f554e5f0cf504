//! Prometheus metrics and `/healthz`, served on their own listener.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use keyward_service::metrics::{CONTENT_TYPE, ServiceRegistry};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts};
use tokio::net::TcpListener;

/// The component's metrics, in a registry of their own (several components can run in one process).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: ServiceRegistry,
    /// Stanzas received, by kind (`iq`, `message`, `presence`, `oversize`).
    pub stanzas: IntCounterVec,
    /// Request handling time, by request.
    pub request_seconds: HistogramVec,
    /// Errors answered or met, by condition.
    pub errors: IntCounterVec,
    /// 1 while the XMPP stream is up and authenticated.
    pub connected: IntGauge,
    /// 1 while the server refuses the stream because another component holds the JID.
    pub standby: IntGauge,
    /// Reconnections after the stream went away.
    pub reconnects: IntCounter,
    /// Looked-up accounts answered from the answer cache.
    pub answer_cache_hits: IntCounter,
    /// Looked-up accounts that needed keydir.
    pub answer_cache_misses: IntCounter,
    /// Notices delivered, by kind.
    pub notices_sent: IntCounterVec,
    /// Claimed notices handed back to keydir undelivered.
    pub notices_released: IntCounter,
    /// Requests being handled.
    pub in_flight: IntGauge,
    /// Requests waiting for an in-flight slot.
    pub queued: IntGauge,
    /// The configured most requests handled at once.
    pub max_in_flight: IntGauge,
    /// The configured most requests waiting for a slot.
    pub max_queued: IntGauge,
    /// Requests refused with `resource-constraint` because every slot was busy and the queue full.
    pub refused: IntCounter,
    /// Requests refused by a quota, by reason (`crate::quota::REASONS`).
    pub quota_refused: IntCounterVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &ServiceRegistry, metric: T) -> T {
    // Names are fixed and distinct, so registration cannot collide.
    registry.register(metric).unwrap_or_else(|_| unreachable_metric())
}

impl Metrics {
    /// Fresh metrics in a new registry.
    pub fn new() -> Self {
        let registry = ServiceRegistry::new("keyward_component").unwrap_or_else(|_| unreachable_metric());
        let counter_vec = |name: &str, help: &str, label: &str| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), &[label]).unwrap_or_else(|_| unreachable_metric()),
            )
        };
        let stanzas = counter_vec("stanzas_total", "Stanzas received from the XMPP server, by kind.", "kind");
        let errors =
            counter_vec("errors_total", "Errors answered or met, by RFC 6120 condition or cause.", "condition");
        let notices_sent =
            counter_vec("notices_sent_total", "Notices delivered from keydir's outbox, by kind.", "kind");
        let notices_released = register(
            &registry,
            IntCounter::new(
                "notices_released_total",
                "Claimed notices handed back to keydir undelivered: their stream went down mid-batch.",
            )
            .unwrap_or_else(|_| unreachable_metric()),
        );
        let request_seconds = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new("request_duration_seconds", "Time to answer a request, by request.")
                    .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                &["request"],
            )
            .unwrap_or_else(|_| unreachable_metric()),
        );
        let connected = register(
            &registry,
            IntGauge::new("connected", "1 while the XMPP component stream is up and authenticated, else 0.")
                .unwrap_or_else(|_| unreachable_metric()),
        );
        let standby = register(
            &registry,
            IntGauge::new(
                "standby",
                "1 while the XMPP server refuses this component's stream with conflict because another \
                 component process holds the JID (active-standby): it retries at KEYWARD_STANDBY_RETRY_MS.",
            )
            .unwrap_or_else(|_| unreachable_metric()),
        );
        let reconnects = register(
            &registry,
            IntCounter::new("reconnects_total", "Reconnections after the XMPP stream went away.")
                .unwrap_or_else(|_| unreachable_metric()),
        );
        let answer_cache_hits = register(
            &registry,
            IntCounter::new(
                "answer_cache_hits_total",
                "Looked-up accounts answered from the answer cache (active keys the requester holds), without keydir.",
            )
            .unwrap_or_else(|_| unreachable_metric()),
        );
        let answer_cache_misses = register(
            &registry,
            IntCounter::new("answer_cache_misses_total", "Looked-up accounts that needed a keydir lookup.")
                .unwrap_or_else(|_| unreachable_metric()),
        );
        let gauge = |name: &str, help: &str| {
            register(&registry, IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric()))
        };
        let in_flight = gauge("requests_in_flight", "Requests being handled.");
        let queued = gauge("requests_queued", "Requests waiting, in arrival order, for an in-flight slot.");
        let max_in_flight =
            gauge("requests_max_in_flight", "Configured most requests handled at once (KEYWARD_MAX_IN_FLIGHT).");
        let max_queued =
            gauge("requests_max_queued", "Configured most requests waiting for a slot (KEYWARD_MAX_QUEUED).");
        let refused = register(
            &registry,
            IntCounter::new(
                "requests_refused_total",
                "Requests answered resource-constraint: every in-flight slot busy and the queue full.",
            )
            .unwrap_or_else(|_| unreachable_metric()),
        );
        let quota_refused = counter_vec(
            "quota_refused_total",
            "Requests refused by a quota, by reason: rate-limit (the sender's bucket), remote-rate-limit and \
             remote-domain-rate-limit (senders outside the served domains), relay-rate-limit, holding-limit \
             (keydir: the requester holds too many keys).",
            "reason",
        );
        for reason in crate::quota::REASONS {
            quota_refused.with_label_values(&[reason]);
        }
        Self {
            registry,
            stanzas,
            request_seconds,
            errors,
            connected,
            standby,
            reconnects,
            answer_cache_hits,
            answer_cache_misses,
            notices_sent,
            notices_released,
            in_flight,
            queued,
            max_in_flight,
            max_queued,
            refused,
            quota_refused,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        // Encoding cannot fail for well-formed metric families.
        self.registry.render().unwrap_or_default()
    }

    /// Publishes the configured request limits.
    pub fn set_limits(&self, max_in_flight: usize, max_queued: usize) {
        self.max_in_flight.set(i64::try_from(max_in_flight).unwrap_or(i64::MAX));
        self.max_queued.set(i64::try_from(max_queued).unwrap_or(i64::MAX));
    }

    /// Whether the XMPP stream is up.
    pub fn is_up(&self) -> bool {
        self.connected.get() == 1
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Metric constructors only fail on invalid or repeated names, which are distinct constants here.
fn unreachable_metric<T>() -> T {
    unreachable!("metric names and labels are valid constants")
}

async fn metrics_page(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render())
}

async fn healthz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.is_up() { (StatusCode::OK, "stream up\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "stream down\n") }
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route("/metrics", get(metrics_page)).route("/healthz", get(healthz)).with_state(metrics);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let metrics = Metrics::new();
        metrics.stanzas.with_label_values(&["iq"]).inc();
        metrics.request_seconds.with_label_values(&["keys"]).observe(0.01);
        metrics.errors.with_label_values(&["bad-request"]).inc();
        metrics.notices_sent.with_label_values(&["revoked"]).inc();
        metrics.reconnects.inc();
        metrics.set_limits(64, 1024);
        metrics.queued.set(3);
        metrics.refused.inc();
        metrics.quota_refused.with_label_values(&["remote-rate-limit"]).inc();
        let page = metrics.render();
        for name in [
            "keyward_component_stanzas_total{kind=\"iq\"} 1",
            "keyward_component_request_duration_seconds_bucket{request=\"keys\",le=\"0.01\"} 1",
            "keyward_component_errors_total{condition=\"bad-request\"} 1",
            "keyward_component_connected 0",
            "keyward_component_standby 0",
            "keyward_component_reconnects_total 1",
            "keyward_component_notices_sent_total{kind=\"revoked\"} 1",
            "keyward_component_requests_in_flight 0",
            "keyward_component_requests_queued 3",
            "keyward_component_requests_max_in_flight 64",
            "keyward_component_requests_max_queued 1024",
            "keyward_component_requests_refused_total 1",
            "keyward_component_quota_refused_total{reason=\"remote-rate-limit\"} 1",
            "keyward_component_quota_refused_total{reason=\"holding-limit\"} 0",
        ] {
            assert!(page.contains(name), "{name} missing from\n{page}");
        }
    }
}
