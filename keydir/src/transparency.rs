//! The verifiable map: akd's directory over keyward-transparency's Postgres storage, with keyward's domain label and keydir's VRF key.
//!
//! keydir is the map's only writer, and only through [`publisher`]: publishes and
//! revocations queue their (label, value) in the store of record's transaction
//! (`store::transparency`), and the publisher turns what is pending into one akd epoch at a
//! time. Reads (proofs for the endpoints) go through the same [`Map`], whose akd cache is
//! kept in step with the database when another replica published (see [`Map::sync`]), and
//! whose lookup proofs of the current epoch are kept in a [`proof_cache`].

pub mod cosignatures;
pub mod guard;
pub mod heads;
pub mod proof_cache;
pub mod publisher;

use crate::config::VrfKey;
use crate::metrics::TransparencyMetrics;
use keyward_transparency::PgDatabase;
use keyward_transparency::akd::errors::AkdError;
use keyward_transparency::akd::proto::specs::types as pb;
use keyward_transparency::akd::storage::StorageManager;
use keyward_transparency::akd::{
    AkdLabel, AkdValue, AppendOnlyProof, AzksParallelismConfig, Directory, EpochHash, HistoryParams, HistoryProof,
    LookupProof,
};
use proof_cache::{EncodedProof, ProofCache};
use protobuf::Message;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OnceCell, RwLock};

/// akd's configuration of keydir's map (its main-branch hashing with keyward's domain label),
/// the one clients check proofs with.
pub use keyward_proto::transparency::lookup::MapConfig as Config;

/// akd's directory as keydir runs it.
pub type AkdDirectory = Directory<Config, PgDatabase, VrfKey>;

/// Most bytes akd's cache of tree nodes and value states may take.
pub const CACHE_BYTES: usize = 64 << 20;
/// How long akd keeps a cached record.
const CACHE_ITEM_LIFETIME: Duration = Duration::from_secs(300);
/// How often akd cleans its cache.
const CACHE_CLEAN: Duration = Duration::from_secs(60);

/// The map, opened on first use (keydir starts while the database is down).
pub struct Map {
    pool: PgPool,
    key: VrfKey,
    opened: OnceCell<Opened>,
    /// Held (write) while this replica publishes, and (read) while [`Map::sync`] may flush:
    /// a flush in the middle of a local publish could let a reader put the tree as it was
    /// before the commit back into the cache under the new epoch.
    publishing: RwLock<()>,
    /// The lookup proofs of the latest epoch answered.
    proofs: ProofCache,
    metrics: Arc<TransparencyMetrics>,
}

struct Opened {
    directory: AkdDirectory,
    storage: StorageManager<PgDatabase>,
}

impl Map {
    /// The map in `pool`'s database with `key`, keeping at most `proof_cache_bytes` of lookup
    /// proofs (0: none); nothing is read until it is used.
    pub fn new(pool: PgPool, key: VrfKey, proof_cache_bytes: usize, metrics: Arc<TransparencyMetrics>) -> Self {
        Self {
            pool,
            key,
            opened: OnceCell::new(),
            publishing: RwLock::new(()),
            proofs: ProofCache::new(proof_cache_bytes),
            metrics,
        }
    }

    /// akd's directory, created (an empty tree at epoch 0) if the database has none yet.
    async fn opened(&self) -> Result<&Opened, AkdError> {
        self.opened
            .get_or_try_init(|| async {
                let storage = StorageManager::new(
                    PgDatabase::new(self.pool.clone()),
                    Some(CACHE_ITEM_LIFETIME),
                    Some(CACHE_BYTES),
                    Some(CACHE_CLEAN),
                );
                let directory =
                    Directory::new(storage.clone(), self.key.clone(), AzksParallelismConfig::default()).await?;
                Ok(Opened { directory, storage })
            })
            .await
    }

    /// Brings akd's cache in step with the database: when the stored epoch is not the cached
    /// one (another replica published), the cache is flushed. Returns the latest epoch and root.
    pub async fn sync(&self) -> Result<EpochHash, MapError> {
        let opened = self.opened().await?;
        let _no_local_publish = self.publishing.read().await;
        let cached = opened.directory.get_epoch_hash().await?;
        let stored = crate::store::transparency::akd_epoch(&self.pool).await?;
        if stored.and_then(|e| u64::try_from(e).ok()) == Some(cached.epoch()) {
            return Ok(cached);
        }
        opened.storage.flush_cache().await;
        Ok(opened.directory.get_epoch_hash().await?)
    }

    /// The latest epoch and its root hash.
    pub async fn epoch_hash(&self) -> Result<EpochHash, MapError> {
        self.sync().await
    }

    /// The VRF public key (32 bytes), with which clients check the labels in proofs.
    pub async fn vrf_public_key(&self) -> Result<Vec<u8>, MapError> {
        Ok(self.opened().await?.directory.get_public_key().await?.as_bytes().to_vec())
    }

    /// Publishes `updates` (distinct labels) as the next epoch.
    pub async fn publish(&self, updates: Vec<(AkdLabel, AkdValue)>) -> Result<EpochHash, MapError> {
        let opened = self.opened().await?;
        let _publishing = self.publishing.write().await;
        Ok(opened.directory.publish(updates).await?)
    }

    /// The lookup proof of `label`'s current value; `Ok(None)`: the label is not in the map.
    pub async fn lookup(&self, label: &[u8]) -> Result<Option<(LookupProof, EpochHash)>, MapError> {
        let opened = self.opened().await?;
        self.sync().await?;
        if !self.has_label(label).await? {
            return Ok(None);
        }
        Ok(Some(opened.directory.lookup(AkdLabel(label.to_vec())).await?))
    }

    /// Lookup proofs of the labels among `labels` (distinct) that are in the map, each with its
    /// label, all for one epoch, with that epoch; the labels not in the map are left out.
    ///
    /// Proofs cached for the latest epoch are served as they are; the others are akd's
    /// `batch_lookup` and are kept for the next lookups of the same epoch. akd answers at its
    /// own latest epoch: if that is not the epoch of the cached proofs (one was published
    /// meanwhile), every proof of the answer is akd's, at akd's epoch.
    pub async fn batch_lookup(
        &self,
        labels: &[Vec<u8>],
    ) -> Result<(Vec<(Vec<u8>, Arc<EncodedProof>)>, EpochHash), MapError> {
        let opened = self.opened().await?;
        let latest = self.sync().await?;
        let (mut found, mut missed) = (Vec::new(), Vec::new());
        for (label, cached) in labels.iter().zip(self.proofs.get(&latest, labels)) {
            match cached {
                Some(proof) => found.push((label.clone(), proof)),
                None => missed.push(label.clone()),
            }
        }
        self.metrics.proof_cache_hits.inc_by(found.len() as f64);
        self.metrics.proof_cache_misses.inc_by(missed.len() as f64);
        if missed.is_empty() {
            return Ok((found, latest));
        }
        // A label is in the map for good once it is: the cached ones need no check.
        let present: Vec<AkdLabel> = crate::store::transparency::commitments(&self.pool, &missed)
            .await?
            .into_iter()
            .filter(|c| c.current.is_some())
            .map(|c| AkdLabel(c.label))
            .collect();
        if present.is_empty() {
            // Not in the map now, so not at `latest` either.
            return Ok((found, latest));
        }
        let (computed, at) = Self::prove(&opened.directory, present).await?;
        if at == latest {
            self.proofs.put(&at, &computed, false);
            found.extend(computed);
            return Ok((found, at));
        }
        // akd moved to another epoch since the sync: the cached proofs are not for it.
        if found.is_empty() {
            self.proofs.put(&at, &computed, true);
            return Ok((computed, at));
        }
        let all =
            found.into_iter().map(|(label, _)| AkdLabel(label)).chain(computed.into_iter().map(|(l, _)| AkdLabel(l)));
        let (computed, at) = Self::prove(&opened.directory, all.collect()).await?;
        self.proofs.put(&at, &computed, true);
        Ok((computed, at))
    }

    /// akd's lookup proofs of `labels` (all in the map), encoded, with the epoch they are for.
    async fn prove(
        directory: &AkdDirectory,
        labels: Vec<AkdLabel>,
    ) -> Result<(Vec<(Vec<u8>, Arc<EncodedProof>)>, EpochHash), MapError> {
        // akd answers in the order it was asked.
        let (proofs, at) = directory.batch_lookup(&labels).await?;
        let encoded = labels
            .into_iter()
            .zip(proofs)
            .map(|(label, proof)| {
                let encoded = EncodedProof {
                    version: proof.version,
                    proof: pb::LookupProof::from(&proof).write_to_bytes()?,
                    value: proof.value.0,
                };
                Ok((label.0, Arc::new(encoded)))
            })
            .collect::<Result<Vec<_>, protobuf::Error>>()?;
        Ok((encoded, at))
    }

    /// The proof of `label`'s whole history; `Ok(None)`: the label is not in the map.
    pub async fn key_history(&self, label: &[u8]) -> Result<Option<(HistoryProof, EpochHash)>, MapError> {
        let opened = self.opened().await?;
        self.sync().await?;
        if !self.has_label(label).await? {
            return Ok(None);
        }
        Ok(Some(opened.directory.key_history(&AkdLabel(label.to_vec()), HistoryParams::Complete).await?))
    }

    /// The append-only proof from epoch `start` to `end`.
    pub async fn audit(&self, start: u64, end: u64) -> Result<AppendOnlyProof, MapError> {
        self.sync().await?;
        Ok(self.opened().await?.directory.audit(start, end).await?)
    }

    /// Whether the label has a value at akd's latest stored epoch (akd's lookup of a label it
    /// does not have is an error, not a proof of absence).
    async fn has_label(&self, label: &[u8]) -> Result<bool, MapError> {
        let found = crate::store::transparency::commitments(&self.pool, &[label.to_vec()]).await?;
        Ok(found.iter().any(|c| c.current.is_some()))
    }
}

/// Why the map could not answer.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// akd refused or failed (including its storage's errors).
    #[error("akd: {0}")]
    Akd(#[from] AkdError),
    /// keydir's own tables failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A proof did not encode (protobuf).
    #[error("a proof does not encode: {0}")]
    Encode(#[from] protobuf::Error),
}
