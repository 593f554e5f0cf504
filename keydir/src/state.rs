//! The state every handler shares: pool, settings, metrics and the outbox wake-up.

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::store::edges::EdgeWriter;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// Cheap to clone: everything is behind `Arc`s.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// Tokens and tuning.
    pub settings: Arc<Settings>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Woken when Postgres says notices were queued.
    pub wake: Arc<Notify>,
    /// Records the holder edges of lookups that hand out keys for the first time (group commit).
    pub edges: EdgeWriter,
    /// The key transparency map; `None` without a VRF key.
    pub map: Option<Arc<crate::transparency::Map>>,
    /// The epoch log and its head signer; `None` without a VRF key or a head signing key.
    pub heads: Option<Arc<crate::transparency::heads::Heads>>,
    /// Becomes true when the service shuts down: waiting claims return.
    pub stopping: watch::Receiver<bool>,
}
