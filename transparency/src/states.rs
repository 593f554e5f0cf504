//! akd's value state records (a label's value in an epoch): the rows of `akd_value_states`.
//!
//! Keyed by (username, epoch), the primary key; every question akd asks about one label's
//! states (all of them, the oldest, the newest, the one at or before an epoch, a version)
//! is a range of that key, answered by one query shape through a [`Selection`].

use crate::convert::{Selection, from_bigint, label, to_bigint, to_label_len};
use crate::error::database;
use akd::errors::StorageError;
use akd::storage::types::{ValueState, ValueStateKey};
use akd::{AkdLabel, AkdValue};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use tracing::instrument;

/// One row of `akd_value_states` as read.
struct Row {
    username: Vec<u8>,
    epoch: i64,
    version: i64,
    label_len: i32,
    label_val: Vec<u8>,
    value: Vec<u8>,
}

impl Row {
    fn into_state(self) -> Result<ValueState, StorageError> {
        Ok(ValueState {
            value: AkdValue(self.value),
            version: from_bigint(self.version, "akd_value_states.version")?,
            label: label(self.label_len, &self.label_val, "akd_value_states.label")?,
            epoch: from_bigint(self.epoch, "akd_value_states.epoch")?,
            username: AkdLabel(self.username),
        })
    }
}

/// The states with these keys (username, epoch) that exist, in no particular order.
#[instrument(level = "debug", skip_all, fields(keys = keys.len()))]
pub(crate) async fn get_many(pool: &PgPool, keys: &[ValueStateKey]) -> Result<Vec<ValueState>, StorageError> {
    let mut states = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(crate::CHUNK) {
        let usernames: Vec<Vec<u8>> = chunk.iter().map(|key| key.0.clone()).collect();
        let epochs =
            chunk.iter().map(|key| to_bigint(key.1, "akd_value_states.epoch")).collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query_as!(
            Row,
            "SELECT username, epoch, version, label_len, label_val, value FROM akd_value_states
             WHERE (username, epoch) IN (SELECT * FROM UNNEST($1::bytea[], $2::bigint[]))",
            &usernames,
            &epochs,
        )
        .fetch_all(pool)
        .await
        .map_err(database)?;
        for row in rows {
            states.push(row.into_state()?);
        }
    }
    Ok(states)
}

/// Every state of `username`, oldest first.
#[instrument(level = "debug", skip_all)]
pub(crate) async fn all_of(pool: &PgPool, username: &AkdLabel) -> Result<Vec<ValueState>, StorageError> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT username, epoch, version, label_len, label_val, value FROM akd_value_states
         WHERE username = $1 ORDER BY epoch",
        username.0.as_slice(),
    )
    .fetch_all(pool)
    .await
    .map_err(database)?;
    rows.into_iter().map(Row::into_state).collect()
}

/// The state of `username` that `selection` picks, if any.
#[instrument(level = "debug", skip_all, fields(?selection))]
pub(crate) async fn select(
    pool: &PgPool,
    username: &AkdLabel,
    selection: Selection,
) -> Result<Option<ValueState>, StorageError> {
    let row = sqlx::query_as!(
        Row,
        "SELECT username, epoch, version, label_len, label_val, value FROM akd_value_states
         WHERE username = $1 AND epoch BETWEEN $2 AND $3 AND ($4::bigint IS NULL OR version = $4)
         ORDER BY CASE WHEN $5::boolean THEN epoch END DESC, epoch
         LIMIT 1",
        username.0.as_slice(),
        selection.from_epoch,
        selection.to_epoch,
        selection.version,
        selection.newest,
    )
    .fetch_optional(pool)
    .await
    .map_err(database)?;
    row.map(Row::into_state).transpose()
}

/// For each of `usernames` that has a state `selection` picks: its version and value.
#[instrument(level = "debug", skip_all, fields(usernames = usernames.len(), ?selection))]
pub(crate) async fn select_versions(
    pool: &PgPool,
    usernames: &[AkdLabel],
    selection: Selection,
) -> Result<HashMap<AkdLabel, (u64, AkdValue)>, StorageError> {
    let mut versions = HashMap::with_capacity(usernames.len());
    for chunk in usernames.chunks(crate::CHUNK) {
        let names: Vec<Vec<u8>> = chunk.iter().map(|name| name.0.clone()).collect();
        let rows = sqlx::query!(
            "SELECT DISTINCT ON (username) username, version, value FROM akd_value_states
             WHERE username = ANY($1) AND epoch BETWEEN $2 AND $3 AND ($4::bigint IS NULL OR version = $4)
             ORDER BY username, CASE WHEN $5::boolean THEN epoch END DESC, epoch",
            &names,
            selection.from_epoch,
            selection.to_epoch,
            selection.version,
            selection.newest,
        )
        .fetch_all(pool)
        .await
        .map_err(database)?;
        for row in rows {
            let version = from_bigint(row.version, "akd_value_states.version")?;
            versions.insert(AkdLabel(row.username), (version, AkdValue(row.value)));
        }
    }
    Ok(versions)
}

/// Inserts or replaces `states` (distinct keys) in the publishing transaction.
#[instrument(level = "debug", skip_all, fields(states = states.len()))]
pub(crate) async fn put_many(tx: &mut PgConnection, states: &[ValueState]) -> Result<(), StorageError> {
    for chunk in states.chunks(crate::CHUNK) {
        let (mut usernames, mut epochs, mut versions) = (Vec::new(), Vec::new(), Vec::new());
        let (mut label_lens, mut label_vals, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for state in chunk {
            usernames.push(state.username.0.clone());
            epochs.push(to_bigint(state.epoch, "akd_value_states.epoch")?);
            versions.push(to_bigint(state.version, "akd_value_states.version")?);
            label_lens.push(to_label_len(state.label.label_len, "akd_value_states.label_len")?);
            label_vals.push(state.label.label_val.to_vec());
            values.push(state.value.0.clone());
        }
        sqlx::query!(
            "INSERT INTO akd_value_states (username, epoch, version, label_len, label_val, value)
             SELECT * FROM UNNEST($1::bytea[], $2::bigint[], $3::bigint[], $4::integer[], $5::bytea[], $6::bytea[])
             ON CONFLICT (username, epoch) DO UPDATE SET
                 version = excluded.version,
                 label_len = excluded.label_len,
                 label_val = excluded.label_val,
                 value = excluded.value",
            &usernames,
            &epochs,
            &versions,
            &label_lens,
            &label_vals,
            &values,
        )
        .execute(&mut *tx)
        .await
        .map_err(database)?;
    }
    Ok(())
}
