//! Prometheus metrics: one registry per running key directory, served on its own listener.

use crate::state::AppState;
use crate::store::edges::EdgeMetrics;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyward_service::metrics::{CONTENT_TYPE, ServiceRegistry};
use prometheus::{Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntGauge, Opts};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The key directory's metrics.
pub struct Metrics {
    registry: ServiceRegistry,
    requests: CounterVec,
    latency: HistogramVec,
    /// Accounts revoked (calls that changed something).
    pub revocations: Counter,
    /// Notices queued, by kind.
    pub notices_queued: CounterVec,
    /// Notices acknowledged.
    pub notices_acked: Counter,
    /// Group commit of new holder edges.
    pub edges: EdgeMetrics,
    /// Acknowledged notices deleted after their retention.
    pub notices_pruned: Counter,
    /// Lookups refused because the requester holds as many keys as allowed.
    pub holding_limit_refused: Counter,
    /// OPRF evaluations answered (each counted as a failed guess until proven).
    pub restore_evaluations: Counter,
    /// Restore proofs, by outcome (`accepted` or `refused`).
    pub restore_proofs: CounterVec,
    /// OPRF evaluations refused because the account's restore is locked.
    pub restore_locked_refused: Counter,
    /// Claims waiting for a notice (long-polls parked until a NOTIFY, the sweep or their deadline).
    pub claims_waiting: IntGauge,
    /// The transparency map's epochs, queue and refusals.
    pub transparency: Arc<TransparencyMetrics>,
    notices_pending: IntGauge,
    oldest_pending: Gauge,
    pool: GaugeVec,
    database_up: IntGauge,
}

/// The transparency map's metrics (shared with its publisher task).
pub struct TransparencyMetrics {
    /// Time akd took to publish an epoch.
    pub publish_seconds: Histogram,
    /// Map updates waiting for an epoch (at the last round).
    pub pending: IntGauge,
    /// The map's latest epoch (at the last round).
    pub epoch: IntGauge,
    /// Publisher rounds that failed.
    pub failures: Counter,
    /// Bundles not served because neither the map nor its queue commits to them.
    pub refused_bundles: Counter,
    /// Lookup proofs served from the proof cache.
    pub proof_cache_hits: Counter,
    /// Lookup proofs asked that were not in the proof cache.
    pub proof_cache_misses: Counter,
}

impl TransparencyMetrics {
    fn register(registry: &ServiceRegistry) -> Result<Self, keyward_service::Error> {
        let publish_seconds = Histogram::with_opts(
            HistogramOpts::new("transparency_publish_duration_seconds", "Time akd took to publish one map epoch.")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        )?;
        let pending = IntGauge::with_opts(opts(
            "transparency_pending_updates",
            "Map updates (publishes, revocations) waiting for the next epoch, at the publisher's last round.",
        ))?;
        let epoch = IntGauge::with_opts(opts("transparency_epoch", "The transparency map's latest epoch."))?;
        let failures = Counter::with_opts(opts(
            "transparency_publish_failures_total",
            "Epoch publisher rounds that failed (retried at the next interval).",
        ))?;
        let refused_bundles = Counter::with_opts(opts(
            "transparency_refused_bundles_total",
            "Bundles not served because neither the map nor its queue commits to them (the database was edited).",
        ))?;
        let proof_cache_hits = Counter::with_opts(opts(
            "transparency_proof_cache_hits_total",
            "Lookup proofs served from the cache of the current epoch's proofs.",
        ))?;
        let proof_cache_misses = Counter::with_opts(opts(
            "transparency_proof_cache_misses_total",
            "Lookup proofs asked that the cache did not hold (computed by akd, or the label is not in the map).",
        ))?;
        Ok(Self {
            publish_seconds: registry.register(publish_seconds)?,
            pending: registry.register(pending)?,
            epoch: registry.register(epoch)?,
            failures: registry.register(failures)?,
            refused_bundles: registry.register(refused_bundles)?,
            proof_cache_hits: registry.register(proof_cache_hits)?,
            proof_cache_misses: registry.register(proof_cache_misses)?,
        })
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new(pool_max: u32) -> Result<Self, keyward_service::Error> {
        let registry = ServiceRegistry::new("keyward_keydir")?;
        let requests = CounterVec::new(
            opts("http_requests_total", "HTTP requests answered, by route, method and status."),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "Time to answer an HTTP request, by route and method.")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["route", "method"],
        )?;
        let revocations = Counter::with_opts(opts("revocations_total", "Accounts revoked by an admin."))?;
        let notices_queued =
            CounterVec::new(opts("notices_queued_total", "Notices written to the outbox, by kind."), &["kind"])?;
        let notices_acked = Counter::with_opts(opts("notices_acked_total", "Outbox notices acknowledged."))?;
        let notices_pruned = Counter::with_opts(opts(
            "notices_pruned_total",
            "Acknowledged notices deleted once older than KEYWARD_NOTICE_RETENTION_HOURS.",
        ))?;
        let holding_limit_refused = Counter::with_opts(opts(
            "holding_limit_refused_total",
            "Lookups refused with holding-limit: they would give the requester new keys past KEYWARD_MAX_HOLDINGS.",
        ))?;
        let restore_evaluations = Counter::with_opts(opts(
            "restore_evaluations_total",
            "OPRF evaluations answered for the guess-limited restore (each a failed guess until a valid proof).",
        ))?;
        let restore_proofs = CounterVec::new(
            opts("restore_proofs_total", "Restore proofs, by outcome (accepted or refused)."),
            &["outcome"],
        )?;
        let restore_locked_refused = Counter::with_opts(opts(
            "restore_locked_refused_total",
            "OPRF evaluations refused with restore-locked: the account reached KEYWARD_RESTORE_MAX_ATTEMPTS.",
        ))?;
        let claims_waiting = IntGauge::with_opts(opts(
            "claims_waiting",
            "Notice claims parked until a notice arrives or their wait ends (the component's long-polls).",
        ))?;
        let notices_pending =
            IntGauge::with_opts(opts("notices_pending", "Outbox notices not yet acknowledged (at the last scrape)."))?;
        let oldest_pending = Gauge::with_opts(opts(
            "notices_oldest_pending_age_seconds",
            "Age of the oldest unacknowledged outbox notice, 0 when there is none.",
        ))?;
        let pool = GaugeVec::new(
            opts("db_pool_connections", "Database pool connections, by state (idle or in_use)."),
            &["state"],
        )?;
        let pool_max_gauge =
            IntGauge::with_opts(opts("db_pool_max_connections", "Largest size of the database pool."))?;
        let database_up =
            IntGauge::with_opts(opts("database_up", "1 if the last scrape could query the database, else 0."))?;
        let edge_lookups = Counter::with_opts(opts(
            "holder_edge_lookups_total",
            "Lookups that handed out a key for the first time and recorded the holder edge.",
        ))?;
        let edge_commits = Counter::with_opts(opts(
            "holder_edge_commits_total",
            "Transactions that recorded holder edges (group commit: one for every lookup waiting).",
        ))?;
        let requests = registry.register(requests)?;
        let edges =
            EdgeMetrics { lookups: registry.register(edge_lookups)?, commits: registry.register(edge_commits)? };
        let latency = registry.register(latency)?;
        let revocations = registry.register(revocations)?;
        let notices_queued = registry.register(notices_queued)?;
        let notices_acked = registry.register(notices_acked)?;
        let notices_pruned = registry.register(notices_pruned)?;
        let holding_limit_refused = registry.register(holding_limit_refused)?;
        let claims_waiting = registry.register(claims_waiting)?;
        let restore_evaluations = registry.register(restore_evaluations)?;
        let restore_proofs = registry.register(restore_proofs)?;
        let restore_locked_refused = registry.register(restore_locked_refused)?;
        for outcome in ["accepted", "refused"] {
            restore_proofs.with_label_values(&[outcome]);
        }
        let transparency = Arc::new(TransparencyMetrics::register(&registry)?);
        let notices_pending = registry.register(notices_pending)?;
        let oldest_pending = registry.register(oldest_pending)?;
        let pool = registry.register(pool)?;
        let pool_max_gauge = registry.register(pool_max_gauge)?;
        let database_up = registry.register(database_up)?;
        pool_max_gauge.set(i64::from(pool_max));
        for kind in ["key-relay", "revoked"] {
            notices_queued.with_label_values(&[kind]);
        }
        Ok(Self {
            registry,
            requests,
            latency,
            revocations,
            notices_queued,
            notices_acked,
            edges,
            notices_pruned,
            holding_limit_refused,
            restore_evaluations,
            restore_proofs,
            restore_locked_refused,
            claims_waiting,
            transparency,
            notices_pending,
            oldest_pending,
            pool,
            database_up,
        })
    }

    fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.latency.with_label_values(&[route, method]).observe(elapsed.as_secs_f64());
    }
}

/// Middleware counting and timing every request by its route template.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(&route, &method, response.status().as_u16(), started.elapsed());
    response
}

/// Reads the outbox and pool gauges, then renders every metric.
pub async fn render(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let size = state.pool.size();
    let idle = u32::try_from(state.pool.num_idle()).unwrap_or(size);
    metrics.pool.with_label_values(&["idle"]).set(f64::from(idle));
    metrics.pool.with_label_values(&["in_use"]).set(f64::from(size.saturating_sub(idle)));
    let outbox = tokio::time::timeout(Duration::from_secs(2), crate::store::notices::backlog(&state.pool)).await;
    match outbox {
        Ok(Ok(backlog)) => {
            metrics.database_up.set(1);
            metrics.notices_pending.set(backlog.pending);
            metrics.oldest_pending.set(backlog.oldest_age_seconds);
        }
        Ok(Err(err)) => {
            tracing::warn!(cause = %err, "metrics: outbox query failed");
            metrics.database_up.set(0);
        }
        Err(_) => {
            tracing::warn!("metrics: outbox query timed out");
            metrics.database_up.set(0);
        }
    }
    let body = match metrics.registry.render() {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(cause = %err, "metrics encoding failed");
            return crate::problem::ApiError::Internal.into_response();
        }
    };
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
