//! The epoch log's rows: the recorded epochs in order (its leaves) and the signed heads (append-only).

use sqlx::PgPool;
use tracing::instrument;

/// Most recorded epochs read at once when the log catches up.
pub const EPOCHS_PER_READ: i64 = 100_000;

/// A recorded epoch, as a leaf of the log.
pub struct Leaf {
    /// The epoch (leaf `epoch - 1`).
    pub epoch: i64,
    /// akd's root hash at it.
    pub root_hash: Vec<u8>,
}

/// The recorded epochs after `after`, in order, at most [`EPOCHS_PER_READ`].
#[instrument(skip(pool))]
pub async fn epochs_after(pool: &PgPool, after: i64) -> sqlx::Result<Vec<Leaf>> {
    sqlx::query_as!(
        Leaf,
        "SELECT epoch, root_hash FROM transparency_epochs WHERE epoch > $1 ORDER BY epoch LIMIT $2",
        after,
        EPOCHS_PER_READ
    )
    .fetch_all(pool)
    .await
}

/// A stored signed head.
pub struct StoredHead {
    /// The log's size.
    pub size: i64,
    /// Its newest epoch.
    pub epoch: i64,
    /// The signed note.
    pub note: String,
}

/// The newest signed head (the largest size), if any.
#[instrument(skip_all)]
pub async fn latest_head(pool: &PgPool) -> sqlx::Result<Option<StoredHead>> {
    sqlx::query_as!(StoredHead, "SELECT size, epoch, note FROM transparency_heads ORDER BY size DESC LIMIT 1")
        .fetch_optional(pool)
        .await
}

/// The stored head of `size`, if one was signed.
#[instrument(skip(pool))]
pub async fn head_of_size(pool: &PgPool, size: i64) -> sqlx::Result<Option<StoredHead>> {
    sqlx::query_as!(StoredHead, "SELECT size, epoch, note FROM transparency_heads WHERE size = $1", size)
        .fetch_optional(pool)
        .await
}

/// Stores the head of `size`; a head of that size stored before (by another replica: Ed25519
/// signatures are deterministic, so it is the same note) is kept.
#[instrument(skip(pool, note))]
pub async fn store_head(pool: &PgPool, size: i64, epoch: i64, note: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO transparency_heads (size, epoch, note) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING",
        size,
        epoch,
        note
    )
    .execute(pool)
    .await?;
    Ok(())
}
