//! The epoch publisher: a background task that, on one replica at a time, publishes the pending map updates as one akd epoch.
//!
//! Every interval, on every replica: bring akd's cache in step with the database, then try
//! Postgres' advisory lock [`PUBLISHER_LOCK`] on a connection held for the whole round. The
//! holder (one replica) then:
//!
//! 1. compares akd's latest epoch `A` with the last recorded epoch `R` (`transparency_epochs`):
//!    `A = R` is the normal case; `A = R + 1` means a publisher died after akd committed
//!    epoch `A` but before recording it: it records `A` now (akd's root) and deletes the rows
//!    claimed for `A`. Anything else is an alarm and nothing is published.
//! 2. claims the oldest pending rows for epoch `A + 1` (committed before akd is called);
//! 3. keeps each label's newest value and calls akd's `publish`, which commits epoch `A + 1`
//!    in one transaction (or nothing, when every value already is its label's current one);
//! 4. records `A + 1` and deletes its claimed rows in one transaction.
//!
//! 5. signs the head of the epoch log at its latest size and stores it ([`Heads::sign_latest`]),
//!    at the end of every round (also when nothing was pending), so a head lost to a crash
//!    after step 4 is signed by the next round of whichever replica holds the lock.
//!
//! A crash before 3 commits leaves claimed rows that the next round claims again; a crash
//! between 3 and 4 is the `A = R + 1` case of the next round. So akd's epochs and the epochs
//! table never diverge by more than that one step, every claimed row is published exactly
//! once, and a row queued during a round waits for the next one.

use super::heads::{Heads, HeadsError};
use super::{Map, MapError};
use crate::metrics::TransparencyMetrics;
use crate::store::transparency::{self as queue, PUBLISHER_LOCK};
use keyward_transparency::akd::{AkdLabel, AkdValue};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Most queued rows one epoch takes (the rest wait for the next).
pub const MAX_EPOCH_UPDATES: i64 = 10_000;

/// What a round did.
#[derive(Debug, PartialEq, Eq)]
pub enum Round {
    /// Another replica holds the lock.
    NotLeader,
    /// Nothing was pending.
    Idle,
    /// This epoch was published (and recorded).
    Published(u64),
    /// The claimed rows changed nothing (each value was its label's current one); no epoch.
    Unchanged,
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The map or the database failed.
    #[error(transparent)]
    Map(#[from] MapError),
    /// The epoch log could not be read or its head signed.
    #[error("epoch heads: {0}")]
    Heads(#[from] HeadsError),
    /// akd's epochs and the recorded ones disagree beyond the one step a crash leaves.
    #[error("akd is at epoch {akd}, the epochs table at {recorded}: refusing to publish")]
    Diverged {
        /// akd's latest epoch.
        akd: u64,
        /// The last recorded epoch.
        recorded: i64,
    },
}

impl From<sqlx::Error> for PublishError {
    fn from(err: sqlx::Error) -> Self {
        Self::Map(MapError::Database(err))
    }
}

/// Every `interval` until `stop`, one round (see the module's documentation); failures are
/// logged and retried at the next interval.
pub async fn run(
    pool: PgPool,
    map: Arc<Map>,
    heads: Option<Arc<Heads>>,
    metrics: Arc<TransparencyMetrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        match round(&pool, &map, heads.as_deref(), &metrics).await {
            Ok(Round::Published(epoch)) => tracing::debug!(epoch, "published a transparency epoch"),
            Ok(_) => {}
            Err(err @ PublishError::Diverged { .. }) => {
                metrics.failures.inc();
                tracing::error!(alarm = "transparency-epochs-diverged", cause = %err, "the map's epochs diverged");
            }
            Err(
                err @ PublishError::Heads(HeadsError::Gap { .. } | HeadsError::Root { .. } | HeadsError::Forked { .. }),
            ) => {
                metrics.failures.inc();
                tracing::error!(alarm = "transparency-log-inconsistent", cause = %err, "the epoch log is inconsistent");
            }
            Err(err) => {
                metrics.failures.inc();
                tracing::warn!(cause = %err, "publishing a transparency epoch failed");
            }
        }
    }
}

/// One round: sync, then publish under the advisory lock if this replica gets it, and sign the
/// log's latest head (with `heads`, if this keydir has a signing key) under the same lock.
pub async fn round(
    pool: &PgPool,
    map: &Map,
    heads: Option<&Heads>,
    metrics: &TransparencyMetrics,
) -> Result<Round, PublishError> {
    let latest = map.sync().await?;
    metrics.epoch.set(i64::try_from(latest.epoch()).unwrap_or(i64::MAX));
    metrics.pending.set(queue::pending_count(pool).await?);
    let mut lock = pool.acquire().await?;
    let leader: bool = sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, PUBLISHER_LOCK)
        .fetch_one(&mut *lock)
        .await?;
    if !leader {
        return Ok(Round::NotLeader);
    }
    let mut result = lead(pool, map, metrics).await;
    if let (Ok(_), Some(heads)) = (&result, heads)
        && let Err(err) = heads.sign_latest().await
    {
        result = Err(err.into());
    }
    let unlocked = sqlx::query_scalar!(r#"SELECT pg_advisory_unlock($1) AS "unlocked!""#, PUBLISHER_LOCK)
        .fetch_one(&mut *lock)
        .await;
    if !matches!(unlocked, Ok(true)) {
        // A session lock ends with its session: never hand this connection back still locked.
        lock.close_on_drop();
    }
    result
}

/// The leader's part of a round.
async fn lead(pool: &PgPool, map: &Map, metrics: &TransparencyMetrics) -> Result<Round, PublishError> {
    // Another replica may have published since the sync above: akd must start from the stored tree.
    let akd = map.sync().await?;
    let recorded = queue::last_epoch(pool).await?;
    let akd_epoch = i64::try_from(akd.epoch()).map_err(|_| PublishError::Diverged { akd: akd.epoch(), recorded })?;
    if akd_epoch == recorded + 1 {
        tracing::warn!(epoch = akd_epoch, "recording an epoch akd committed before the last publisher stopped");
        queue::record_epoch(pool, akd_epoch, &akd.hash()).await?;
    } else if akd_epoch != recorded {
        return Err(PublishError::Diverged { akd: akd.epoch(), recorded });
    }
    let next = akd_epoch + 1;
    let claimed = queue::claim(pool, next, MAX_EPOCH_UPDATES).await?;
    if claimed.is_empty() {
        return Ok(Round::Idle);
    }
    // Each label's newest value (rows are in id order: a later one replaces an earlier one).
    let newest: BTreeMap<Vec<u8>, Vec<u8>> = claimed.into_iter().map(|row| (row.label, row.value)).collect();
    let updates = newest.into_iter().map(|(label, value)| (AkdLabel(label), AkdValue(value))).collect();
    let started = Instant::now();
    let published = map.publish(updates).await?;
    metrics.publish_seconds.observe(started.elapsed().as_secs_f64());
    if published.epoch() == akd.epoch() {
        queue::drop_claimed(pool, next).await?;
        return Ok(Round::Unchanged);
    }
    if i64::try_from(published.epoch()) != Ok(next) {
        return Err(PublishError::Diverged { akd: published.epoch(), recorded: akd_epoch });
    }
    queue::record_epoch(pool, next, &published.hash()).await?;
    metrics.epoch.set(next);
    metrics.pending.set(queue::pending_count(pool).await?);
    Ok(Round::Published(published.epoch()))
}
