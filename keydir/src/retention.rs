//! Notice retention: a background task deletes acknowledged notices older than the retention.

use crate::metrics::Metrics;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Most notices one DELETE removes: short transactions that never hold many row locks.
pub const PRUNE_BATCH: i64 = 1000;

/// Every `interval` (the first pass at once), deletes acknowledged notices acknowledged more
/// than `retention` ago, batch after batch until a batch comes back short, counting them in
/// `keyward_keydir_notices_pruned_total`. A failed pass is logged and retried at the next
/// interval. Returns when `stop` becomes true.
pub async fn run(
    pool: PgPool,
    metrics: Arc<Metrics>,
    retention: Duration,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        match prune_all(&pool, &metrics, retention, &stop).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "deleted acknowledged notices past their retention"),
            Err(err) => tracing::warn!(cause = %err, "pruning acknowledged notices failed"),
        }
        if let Err(err) = crate::store::leases::prune(&pool).await {
            tracing::warn!(cause = ?err, "pruning old cache leases failed");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// One pass: batches until one is short or the service stops; returns how many were deleted.
async fn prune_all(
    pool: &PgPool,
    metrics: &Metrics,
    retention: Duration,
    stop: &watch::Receiver<bool>,
) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let pruned = crate::store::notices::prune(pool, retention, PRUNE_BATCH).await?;
        metrics.notices_pruned.inc_by(pruned as f64);
        total += pruned;
        if pruned < PRUNE_BATCH.unsigned_abs() || *stop.borrow() {
            return Ok(total);
        }
    }
}
