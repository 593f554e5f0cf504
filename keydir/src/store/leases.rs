//! Leases of the components' answer caches: a revocation commits only after every live cache dropped the account.
//!
//! A component that answers lookups from a cache holds a short lease, renewed a few times a
//! second. Each renewal hands it the accounts whose revocation is pending since the last
//! one it reported, and records the last it has dropped. A revocation first records itself
//! as pending (committed at once), then waits until every live lease has dropped it or run
//! out, and only then commits: so no cache can answer `active` after the commit.

use crate::problem::ApiResult;
use sqlx::PgPool;
use std::time::Duration;
use tracing::instrument;

/// How long a renewed lease is valid.
pub const LEASE: Duration = Duration::from_secs(1);
/// Most pending accounts handed out by one renewal; a cache further behind is told to drop everything.
const MAX_PENDING: i64 = 1000;
/// How often a waiting revocation looks at the leases again.
const POLL: Duration = Duration::from_millis(20);

/// What a renewal tells the cache.
pub struct Renewal {
    /// The newest pending revocation (report it in the next renewal once acted on).
    pub seq: i64,
    /// Accounts to drop: their revocation is pending or committed since `seen_seq`.
    pub revoking: Vec<String>,
    /// Too many to list: drop every entry.
    pub flush: bool,
}

/// Renews `holder`'s lease for [`LEASE`], recording that it dropped every account up to
/// `seen_seq`; returns what it must drop next.
#[instrument(skip(pool))]
pub async fn renew(pool: &PgPool, holder: &str, seen_seq: i64) -> ApiResult<Renewal> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO cache_leases (holder, valid_until, seen_seq) VALUES ($1, now() + make_interval(secs => $2), $3)
         ON CONFLICT (holder) DO UPDATE
            SET valid_until = excluded.valid_until, seen_seq = GREATEST(cache_leases.seen_seq, excluded.seen_seq)",
        holder,
        LEASE.as_secs_f64(),
        seen_seq
    )
    .execute(&mut *tx)
    .await?;
    let rows = sqlx::query!(
        "SELECT seq, jid FROM revocations_pending WHERE seq > $1 ORDER BY seq LIMIT $2",
        seen_seq,
        MAX_PENDING + 1
    )
    .fetch_all(&mut *tx)
    .await?;
    let newest = sqlx::query_scalar!(r#"SELECT COALESCE(max(seq), 0) AS "seq!" FROM revocations_pending"#)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    let flush = rows.len() as i64 > MAX_PENDING;
    let revoking = if flush { Vec::new() } else { rows.into_iter().map(|r| r.jid).collect() };
    Ok(Renewal { seq: newest, revoking, flush })
}

/// Records that `jid`'s revocation is about to commit (committed at once, so renewals see
/// it); returns its sequence number.
#[instrument(skip(pool))]
pub async fn mark_pending(pool: &PgPool, jid: &str) -> ApiResult<i64> {
    Ok(sqlx::query_scalar!("INSERT INTO revocations_pending (jid) VALUES ($1) RETURNING seq", jid)
        .fetch_one(pool)
        .await?)
}

/// Waits until no live lease still needs to drop pending revocation `seq`: each has reported
/// it, or run out. At most [`LEASE`] and a little more, since every lease ends by then unless
/// renewed, and a renewal after `seq` was recorded hands `seq` out.
#[instrument(skip(pool))]
pub async fn wait_for_caches(pool: &PgPool, seq: i64) -> ApiResult<()> {
    let deadline = tokio::time::Instant::now() + LEASE * 3;
    loop {
        let waiting = sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM cache_leases WHERE valid_until > now() AND seen_seq < $1"#,
            seq
        )
        .fetch_one(pool)
        .await?;
        if waiting == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            // Only a lease renewed over and over without acting on `seq` gets here: a cache that
            // renews must act on what the renewal says. Logged; the revocation goes on.
            tracing::error!(seq, waiting, "caches did not drop a pending revocation in time");
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Deletes leases that ran out long ago and pending revocations no lease can still need.
#[instrument(skip(pool))]
pub async fn prune(pool: &PgPool) -> ApiResult<()> {
    sqlx::query!("DELETE FROM cache_leases WHERE valid_until < now() - interval '1 hour'").execute(pool).await?;
    sqlx::query!("DELETE FROM revocations_pending WHERE at < now() - interval '1 hour'").execute(pool).await?;
    Ok(())
}
