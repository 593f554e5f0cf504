//! The notice outbox: leased claims, acknowledgements, and the backlog for metrics.

use crate::problem::ApiResult;
use sqlx::PgPool;
use std::time::Duration;
use tracing::instrument;

/// A claimed notice.
pub struct Claimed {
    /// Its id, to acknowledge it with.
    pub id: i64,
    /// Who must receive it.
    pub recipient: String,
    /// `key-relay` or `revoked`.
    pub kind: String,
    /// The XML element to send.
    pub payload: String,
}

/// Leases up to `max` due notices (never acknowledged, lease absent or run
/// out) for `lease`, oldest first. Concurrent claimers get disjoint sets.
#[instrument(skip(pool))]
pub async fn claim(pool: &PgPool, max: i64, lease: Duration) -> ApiResult<Vec<Claimed>> {
    let mut rows = sqlx::query_as!(
        Claimed,
        "WITH due AS (
             SELECT id FROM notices
              WHERE acked_at IS NULL AND (lease_until IS NULL OR lease_until <= now())
              ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
         UPDATE notices n SET lease_until = now() + make_interval(secs => $2), attempts = n.attempts + 1
           FROM due WHERE n.id = due.id
         RETURNING n.id, n.recipient, n.kind, n.payload",
        max,
        lease.as_secs_f64()
    )
    .fetch_all(pool)
    .await?;
    rows.sort_by_key(|row| row.id);
    Ok(rows)
}

/// Marks notices delivered; returns how many were not already.
#[instrument(skip(pool), fields(count = ids.len()))]
pub async fn ack(pool: &PgPool, ids: &[i64]) -> ApiResult<u64> {
    let done = sqlx::query!("UPDATE notices SET acked_at = now() WHERE id = ANY($1) AND acked_at IS NULL", ids)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Ends the lease of claimed, unacknowledged notices; returns how many. Wakes the waiting
/// claimers (in every keydir) when there were any.
#[instrument(skip(pool), fields(count = ids.len()))]
pub async fn release(pool: &PgPool, ids: &[i64]) -> ApiResult<u64> {
    let mut tx = pool.begin().await?;
    let released = sqlx::query!("UPDATE notices SET lease_until = NULL WHERE id = ANY($1) AND acked_at IS NULL", ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if released > 0 {
        // NOTIFY is delivered at commit, like the one the insert trigger sends.
        sqlx::query!("SELECT pg_notify('keyward_notices', '')").execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(released)
}

/// The outbox backlog.
pub struct Backlog {
    /// Unacknowledged notices.
    pub pending: i64,
    /// Age of the oldest one, 0 if none.
    pub oldest_age_seconds: f64,
}

/// Counts unacknowledged notices and the age of the oldest.
pub async fn backlog(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "pending!",
                  COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0) AS "oldest_age_seconds!"
             FROM notices WHERE acked_at IS NULL"#
    )
    .fetch_one(pool)
    .await?;
    Ok(Backlog { pending: row.pending, oldest_age_seconds: row.oldest_age_seconds })
}
