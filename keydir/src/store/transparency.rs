//! The transparency map's queue and its published epochs: what publishes and revocations enqueue, what the publisher claims, records and deletes.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tracing::instrument;

/// The advisory lock key of the epoch publisher ("kwtransp"): one replica publishes at a time.
pub const PUBLISHER_LOCK: i64 = 0x6b77_7472_616e_7370;

/// Queues `value` for `label` in the caller's transaction (the one that writes the store of record).
#[instrument(skip_all)]
pub async fn enqueue(tx: &mut PgConnection, label: &[u8], value: &[u8]) -> sqlx::Result<()> {
    sqlx::query!("INSERT INTO transparency_pending (label, value) VALUES ($1, $2)", label, value).execute(tx).await?;
    Ok(())
}

/// A queued update.
pub struct Pending {
    /// Its row.
    pub id: i64,
    /// The label (the account's bare JID).
    pub label: Vec<u8>,
    /// The map value.
    pub value: Vec<u8>,
}

/// Claims the oldest `max` queued rows (claimed before for this epoch or not at all) for
/// `epoch`, committed before akd is called; returns them in id order.
#[instrument(skip(pool))]
pub async fn claim(pool: &PgPool, epoch: i64, max: i64) -> sqlx::Result<Vec<Pending>> {
    let mut rows = sqlx::query_as!(
        Pending,
        "UPDATE transparency_pending SET epoch = $1
          WHERE id IN (SELECT id FROM transparency_pending ORDER BY id LIMIT $2)
         RETURNING id, label, value",
        epoch,
        max
    )
    .fetch_all(pool)
    .await?;
    rows.sort_by_key(|row| row.id);
    Ok(rows)
}

/// Records a published epoch and deletes the rows claimed for it, in one transaction.
#[instrument(skip(pool, root_hash))]
pub async fn record_epoch(pool: &PgPool, epoch: i64, root_hash: &[u8]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!("INSERT INTO transparency_epochs (epoch, root_hash) VALUES ($1, $2)", epoch, root_hash)
        .execute(&mut *tx)
        .await?;
    delete_claimed(&mut tx, epoch).await?;
    tx.commit().await
}

/// Deletes the rows claimed for `epoch`.
async fn delete_claimed(conn: &mut PgConnection, epoch: i64) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM transparency_pending WHERE epoch = $1", epoch).execute(conn).await?;
    Ok(())
}

/// Deletes the rows claimed for `epoch` when akd found nothing new in them (every value was
/// already the label's current one), so no epoch was published.
#[instrument(skip(pool))]
pub async fn drop_claimed(pool: &PgPool, epoch: i64) -> sqlx::Result<()> {
    delete_claimed(&mut *pool.acquire().await?, epoch).await
}

/// The last recorded epoch, 0 before the first.
#[instrument(skip_all)]
pub async fn last_epoch(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT COALESCE(max(epoch), 0) AS "epoch!" FROM transparency_epochs"#).fetch_one(pool).await
}

/// akd's latest epoch as stored (no cache), `None` before akd created its tree.
#[instrument(skip_all)]
pub async fn akd_epoch(pool: &PgPool) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!("SELECT latest_epoch FROM akd_azks WHERE id = 1").fetch_optional(pool).await
}

/// How many updates wait for an epoch.
#[instrument(skip_all)]
pub async fn pending_count(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM transparency_pending"#).fetch_one(pool).await
}

/// A recorded epoch.
pub struct Epoch {
    /// akd's root hash.
    pub root_hash: Vec<u8>,
    /// When it was recorded.
    pub published_at: OffsetDateTime,
}

/// The recorded epochs `from..=to`, in order (the caller checks that none is missing).
#[instrument(skip(pool))]
pub async fn epochs(pool: &PgPool, from: i64, to: i64) -> sqlx::Result<Vec<Epoch>> {
    sqlx::query_as!(
        Epoch,
        "SELECT root_hash, published_at FROM transparency_epochs WHERE epoch BETWEEN $1 AND $2 ORDER BY epoch",
        from,
        to
    )
    .fetch_all(pool)
    .await
}

/// What the map and the queue hold for one label.
pub struct Commitments {
    /// The label.
    pub label: Vec<u8>,
    /// The map's value at akd's latest epoch, if the label is in the map.
    pub current: Option<Vec<u8>>,
    /// Every value the label had up to akd's latest epoch, oldest first.
    pub published: Vec<Vec<u8>>,
    /// The values queued for the label (not published yet, or published but not yet deleted).
    pub pending: Vec<Vec<u8>>,
}

/// The map's current value and the queued values of each of `labels`, in one query.
#[instrument(skip_all, fields(count = labels.len()))]
pub async fn commitments(pool: &PgPool, labels: &[Vec<u8>]) -> sqlx::Result<Vec<Commitments>> {
    sqlx::query_as!(
        Commitments,
        r#"SELECT l.label AS "label!",
                  (SELECT v.value FROM akd_value_states v
                    WHERE v.username = l.label
                      AND v.epoch <= (SELECT latest_epoch FROM akd_azks WHERE id = 1)
                    ORDER BY v.epoch DESC LIMIT 1) AS "current?",
                  ARRAY(SELECT v.value FROM akd_value_states v
                         WHERE v.username = l.label
                           AND v.epoch <= (SELECT latest_epoch FROM akd_azks WHERE id = 1)
                         ORDER BY v.epoch) AS "published!",
                  ARRAY(SELECT p.value FROM transparency_pending p WHERE p.label = l.label ORDER BY p.id) AS "pending!"
           FROM unnest($1::bytea[]) AS l(label)"#,
        labels
    )
    .fetch_all(pool)
    .await
}
