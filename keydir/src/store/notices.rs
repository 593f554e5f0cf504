//! The notice outbox: leased claims, acknowledgements, and the backlog for metrics.

use super::Kind;
use crate::problem::ApiResult;
use keyward_contract::component::{Notice, NoticeEvent};
use sqlx::PgPool;
use std::time::Duration;
use time::OffsetDateTime;
use tracing::instrument;

/// A claimed notice's row, joined with its subject's rows.
struct ClaimedRow {
    id: i64,
    recipient: String,
    kind: Kind,
    subject: String,
    revoked_at: Option<OffsetDateTime>,
    reason: Option<String>,
    fingerprint: Option<String>,
    bundle: Option<String>,
}

impl ClaimedRow {
    /// The notice, or `None` when the subject's rows lack what its kind needs (the schema
    /// rules this out: an account's bundle is stored with it, and a revoked account always
    /// has its time and reason).
    fn notice(self) -> Option<Notice> {
        let event = match self.kind {
            Kind::KeyRelay => NoticeEvent::KeyRelay { bundle: self.bundle? },
            Kind::Revoked => NoticeEvent::Revoked {
                fingerprint: self.fingerprint?,
                revoked_at: self.revoked_at?,
                reason: self.reason?,
            },
        };
        Some(Notice { id: self.id, to: self.recipient, subject: self.subject, event })
    }
}

/// Leases up to `max` due notices (never acknowledged, lease absent or run
/// out) for `lease`, oldest first, with what each tells from its subject's rows.
/// Concurrent claimers get disjoint sets.
///
/// A notice whose subject lacks the data its kind needs cannot happen by the schema's
/// rules; should one appear it is logged and left leased (it comes back after the lease,
/// and `notices_oldest_pending_age_seconds` shows it), never sent half-made.
#[instrument(skip(pool))]
pub async fn claim(pool: &PgPool, max: i64, lease: Duration) -> ApiResult<Vec<Notice>> {
    let mut rows = sqlx::query_as!(
        ClaimedRow,
        r#"WITH due AS (
               SELECT id FROM notices
                WHERE acked_at IS NULL AND (lease_until IS NULL OR lease_until <= now())
                ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED),
           leased AS (
               UPDATE notices n SET lease_until = now() + make_interval(secs => $2), attempts = n.attempts + 1
                 FROM due WHERE n.id = due.id
               RETURNING n.id, n.recipient, n.kind, n.subject)
           SELECT l.id AS "id!", l.recipient AS "recipient!", l.kind AS "kind!: Kind", l.subject AS "subject!",
                  a.revoked_at, a.reason, b.fingerprint AS "fingerprint?", b.xml AS "bundle?"
             FROM leased l JOIN accounts a ON a.jid = l.subject LEFT JOIN bundles b ON b.jid = l.subject"#,
        max,
        lease.as_secs_f64()
    )
    .fetch_all(pool)
    .await?;
    rows.sort_by_key(|row| row.id);
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let id = row.id;
            let notice = row.notice();
            if notice.is_none() {
                tracing::error!(id, "a notice's subject lacks the data its kind needs; left leased");
            }
            notice
        })
        .collect())
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

/// Deletes up to `batch` acknowledged notices acknowledged more than `retention` ago, oldest
/// first; returns how many. Unacknowledged notices are never deleted. Replicas pruning at
/// the same time skip each other's rows.
#[instrument(skip(pool))]
pub async fn prune(pool: &PgPool, retention: Duration, batch: i64) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM notices WHERE id IN (
             SELECT id FROM notices
              WHERE acked_at IS NOT NULL AND acked_at < now() - make_interval(secs => $1)
              ORDER BY acked_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        retention.as_secs_f64(),
        batch
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
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
