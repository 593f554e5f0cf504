//! The auditors' cosignatures of the signed heads (append-only).

use sqlx::PgPool;
use tracing::instrument;

/// A cosignature to store, already verified over the head of `size`.
pub struct NewCosignature<'a> {
    /// The head's size.
    pub size: i64,
    /// The auditor's key name.
    pub key_name: &'a str,
    /// Its 4 byte key ID.
    pub key_id: &'a [u8],
    /// The time it signed at.
    pub signed_at: i64,
    /// The signature line, without its newline.
    pub line: &'a str,
}

/// Stores a cosignature; the same one stored before is kept (a retry).
#[instrument(skip_all, fields(size = cosignature.size, auditor = cosignature.key_name))]
pub async fn insert(pool: &PgPool, cosignature: &NewCosignature<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO transparency_cosignatures (size, key_name, key_id, signed_at, line) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT ON CONSTRAINT transparency_cosignatures_once DO NOTHING",
        cosignature.size,
        cosignature.key_name,
        cosignature.key_id,
        cosignature.signed_at,
        cosignature.line
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The newest cosignature line of each key for the head of `size`, ordered by key name and ID.
#[instrument(skip(pool))]
pub async fn newest(pool: &PgPool, size: i64) -> sqlx::Result<Vec<String>> {
    let rows = sqlx::query!(
        "SELECT DISTINCT ON (key_name, key_id) line FROM transparency_cosignatures WHERE size = $1 \
         ORDER BY key_name, key_id, signed_at DESC",
        size
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|row| row.line).collect())
}
