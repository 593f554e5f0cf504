//! Key transparency for keyward: akd's storage on Postgres, the tables of `migrations/*_transparency.sql`.
//!
//! [akd](https://docs.rs/akd/0.13) (facebook's auditable key directory) keeps its
//! verifiable map in three kinds of records: the azks (latest epoch, tree size), tree
//! nodes by label, and value states by (label, epoch). It reads and writes them through
//! its [`Database`] trait, which [`PgDatabase`] implements over a `sqlx` pool of keydir's
//! database (keydir applies the migration with the others).
//!
//! Nothing is cached here: every call is a query. Caching is the job of akd's own
//! [`StorageManager`](akd::storage::StorageManager) layer, configured with a size limit by
//! the caller, so a directory of 1,000,000 labels does not need the whole tree in memory.
//! Reads and writes of many records are one statement per [`CHUNK`] records; a `batch_set`
//! (akd's commit of one epoch) is one transaction.
//!
//! Errors are akd's [`StorageError`], as the trait demands: a missing record is `NotFound`,
//! a lost database `Connection`, and anything else `Other`, including a stored row that no
//! record of akd's can be (a label or hash of the wrong length, a negative epoch, an
//! unknown node type): such a row is reported, never decoded into a wrong record, and
//! never a panic. Queries are `sqlx` macros checked against the schema at build time, with
//! their offline data in the repository's `.sqlx/` (`keydir/sqlx-prepare.sh`).

#![forbid(unsafe_code)]

mod azks;
mod batch;
mod convert;
mod error;
mod nodes;
mod states;

use akd::append_only_zks::Azks;
use akd::errors::StorageError;
use akd::storage::types::{DbRecord, KeyData, StorageType, ValueState, ValueStateRetrievalFlag};
use akd::storage::{Database, DbSetState, Storable};
use akd::tree_node::TreeNodeWithPreviousValue;
use akd::{AkdLabel, AkdValue};
use async_trait::async_trait;
use convert::Selection;
use sqlx::PgPool;
use std::collections::HashMap;

pub use akd;

/// Most records in one statement. A publish of 10,000 updates writes some 200,000 nodes:
/// twenty statements of a few megabytes each, in one transaction.
pub const CHUNK: usize = 10_000;

/// akd's storage on Postgres: its three tables in the database of `pool`.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    pool: PgPool,
}

impl PgDatabase {
    /// Storage over `pool`, whose database has the transparency migration applied.
    pub fn new(pool: PgPool) -> PgDatabase {
        PgDatabase { pool }
    }

    /// The pool it queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// akd's typed key of a `Storable`, from its binary form (the only way to it through the trait's generics).
fn key_of<St: Storable, K>(id: &St::StorageKey, parse: fn(&[u8]) -> Result<K, String>) -> Result<K, StorageError> {
    parse(&St::get_full_binary_key_id(id))
        .map_err(|why| StorageError::Other(format!("{:?} key: {why}", St::data_type())))
}

#[async_trait]
impl Database for PgDatabase {
    async fn set(&self, record: DbRecord) -> Result<(), StorageError> {
        self.batch_set(vec![record], DbSetState::General).await
    }

    /// One transaction, whatever the state: a general write is a batch of one epoch's records too.
    /// akd's commit of an epoch (`TransactionCommit`) must move the azks to a later epoch, so
    /// that two publishers cannot both commit one epoch.
    async fn batch_set(&self, records: Vec<DbRecord>, state: DbSetState) -> Result<(), StorageError> {
        let commit = matches!(state, DbSetState::TransactionCommit);
        batch::Batch::new(records).write(&self.pool, commit).await
    }

    async fn get<St: Storable>(&self, id: &St::StorageKey) -> Result<DbRecord, StorageError> {
        self.batch_get::<St>(std::slice::from_ref(id))
            .await?
            .pop()
            .ok_or_else(|| StorageError::NotFound(format!("no {:?} record with this key", St::data_type())))
    }

    /// The records that exist, in no particular order; missing ones are left out.
    async fn batch_get<St: Storable>(&self, ids: &[St::StorageKey]) -> Result<Vec<DbRecord>, StorageError> {
        match St::data_type() {
            StorageType::Azks => {
                for id in ids {
                    key_of::<St, _>(id, Azks::key_from_full_binary)?;
                }
                let azks = if ids.is_empty() { None } else { azks::get(&self.pool).await? };
                Ok(azks.into_iter().map(DbRecord::Azks).collect())
            }
            StorageType::TreeNode => {
                let labels = ids
                    .iter()
                    .map(|id| key_of::<St, _>(id, TreeNodeWithPreviousValue::key_from_full_binary).map(|key| key.0))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(nodes::get_many(&self.pool, &labels).await?.into_iter().map(DbRecord::TreeNode).collect())
            }
            StorageType::ValueState => {
                let keys = ids
                    .iter()
                    .map(|id| key_of::<St, _>(id, ValueState::key_from_full_binary))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(states::get_many(&self.pool, &keys).await?.into_iter().map(DbRecord::ValueState).collect())
            }
        }
    }

    async fn get_user_data(&self, username: &AkdLabel) -> Result<KeyData, StorageError> {
        let states = states::all_of(&self.pool, username).await?;
        if states.is_empty() {
            return Err(StorageError::NotFound("no ValueState records for the label".into()));
        }
        Ok(KeyData { states })
    }

    async fn get_user_state(
        &self,
        username: &AkdLabel,
        flag: ValueStateRetrievalFlag,
    ) -> Result<ValueState, StorageError> {
        let found = match Selection::of(flag) {
            Some(selection) => states::select(&self.pool, username, selection).await?,
            None => None,
        };
        found.ok_or_else(|| StorageError::NotFound(format!("no ValueState of the label for {flag:?}")))
    }

    /// Each label's version and value, for the labels that have a state `flag` picks.
    async fn get_user_state_versions(
        &self,
        usernames: &[AkdLabel],
        flag: ValueStateRetrievalFlag,
    ) -> Result<HashMap<AkdLabel, (u64, AkdValue)>, StorageError> {
        match Selection::of(flag) {
            Some(selection) => states::select_versions(&self.pool, usernames, selection).await,
            None => Ok(HashMap::new()),
        }
    }
}
