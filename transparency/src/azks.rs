//! akd's azks record (the tree's latest epoch and size): the one row of `akd_azks`.

use crate::convert::{from_bigint, to_bigint};
use crate::error::database;
use akd::Azks;
use akd::append_only_zks::DEFAULT_AZKS_KEY;
use akd::errors::StorageError;
use sqlx::{PgConnection, PgPool};
use tracing::instrument;

/// The stored azks, if a directory was ever created here.
#[instrument(level = "debug", skip_all)]
pub(crate) async fn get(pool: &PgPool) -> Result<Option<Azks>, StorageError> {
    let row = sqlx::query!("SELECT latest_epoch, num_nodes FROM akd_azks WHERE id = $1", i16::from(DEFAULT_AZKS_KEY))
        .fetch_optional(pool)
        .await
        .map_err(database)?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Azks {
        latest_epoch: from_bigint(row.latest_epoch, "akd_azks.latest_epoch")?,
        num_nodes: from_bigint(row.num_nodes, "akd_azks.num_nodes")?,
    }))
}

/// Stores `azks` as the commit of an epoch: only over a stored azks of an earlier epoch (or
/// none). Two writers committing the same epoch (two publishers that both believe they hold
/// the publishing lock) cannot both succeed: the second one's azks is refused, and with it
/// its whole transaction, its nodes and states included.
#[instrument(level = "debug", skip_all, fields(epoch = azks.latest_epoch))]
pub(crate) async fn advance(tx: &mut PgConnection, azks: &Azks) -> Result<(), StorageError> {
    let done = sqlx::query!(
        "INSERT INTO akd_azks (id, latest_epoch, num_nodes) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET latest_epoch = excluded.latest_epoch, num_nodes = excluded.num_nodes
          WHERE akd_azks.latest_epoch < excluded.latest_epoch",
        i16::from(DEFAULT_AZKS_KEY),
        to_bigint(azks.latest_epoch, "akd_azks.latest_epoch")?,
        to_bigint(azks.num_nodes, "akd_azks.num_nodes")?,
    )
    .execute(tx)
    .await
    .map_err(database)?;
    if done.rows_affected() != 1 {
        return Err(StorageError::Other(format!(
            "akd_azks: epoch {} is not after the stored one (another writer committed it)",
            azks.latest_epoch
        )));
    }
    Ok(())
}

/// Stores `azks` in the publishing transaction (after the epoch's nodes and states).
#[instrument(level = "debug", skip_all, fields(epoch = azks.latest_epoch))]
pub(crate) async fn put(tx: &mut PgConnection, azks: &Azks) -> Result<(), StorageError> {
    sqlx::query!(
        "INSERT INTO akd_azks (id, latest_epoch, num_nodes) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET latest_epoch = excluded.latest_epoch, num_nodes = excluded.num_nodes",
        i16::from(DEFAULT_AZKS_KEY),
        to_bigint(azks.latest_epoch, "akd_azks.latest_epoch")?,
        to_bigint(azks.num_nodes, "akd_azks.num_nodes")?,
    )
    .execute(tx)
    .await
    .map_err(database)?;
    Ok(())
}
