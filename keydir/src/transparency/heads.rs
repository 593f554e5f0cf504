//! The epoch log and its signed heads: every recorded epoch is a leaf, the publisher signs a head of the latest size, the routes serve heads and proofs.
//!
//! Leaf `i` is epoch `i + 1` of `transparency_epochs` (keyward-proto's [`EpochLeaf`]: the epoch
//! and akd's root). Each replica keeps the log in memory, built from the table at first use and
//! extended from the table's new rows before it signs or proves anything, so the epochs another
//! replica recorded are picked up. The publisher (the advisory lock's holder) calls
//! [`Heads::sign_latest`] at the end of every round: a head lost to a crash between an epoch's
//! row and its head is signed by the next round, for the latest size.

use crate::store::transparency_heads as store;
use keyward_proto::transparency::heads::{EpochLeaf, EpochLog, Head, LogHash, NoteSigner, VerifierKey};
use sqlx::PgPool;
use tokio::sync::{Mutex, MutexGuard};

/// The epoch log's leaves, as read so far.
#[derive(Default)]
pub struct Leaves {
    log: EpochLog,
    /// akd's root of each epoch, by leaf index.
    roots: Vec<[u8; 32]>,
}

impl Leaves {
    /// The number of leaves (the latest recorded epoch).
    pub fn len(&self) -> u64 {
        self.log.len()
    }

    /// Whether no epoch is recorded yet.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// Leaf `index`: its epoch and akd root.
    pub fn leaf(&self, index: u64) -> Option<EpochLeaf> {
        let root = self.roots.get(usize::try_from(index).ok()?)?;
        Some(EpochLeaf { epoch: index + 1, akd_root: *root })
    }

    /// The consistency proof from size `from` to size `to` (`0 < from <= to <= len`).
    pub fn consistency(&self, from: u64, to: u64) -> Result<Vec<LogHash>, HeadsError> {
        Ok(self.log.consistency_proof(from, to)?)
    }

    /// The inclusion proof of leaf `index` in the tree of size `size` (`index < size <= len`).
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<LogHash>, HeadsError> {
        Ok(self.log.inclusion_proof(index, size)?)
    }

    /// The head of the whole log; `None` while it is empty.
    fn head(&self, origin: &str) -> Result<Option<Head>, HeadsError> {
        let size = self.len();
        let Some(last) = size.checked_sub(1).and_then(|i| self.leaf(i)) else { return Ok(None) };
        Ok(Some(Head::new(origin, size, self.log.root(size)?, last)?))
    }
}

/// keydir's epoch log and head signer.
pub struct Heads {
    pool: PgPool,
    signer: NoteSigner,
    leaves: Mutex<Leaves>,
}

impl Heads {
    /// The log of `pool`'s recorded epochs, signed by `signer` (named after the log's origin);
    /// nothing is read until it is used.
    pub fn new(pool: PgPool, signer: NoteSigner) -> Self {
        Self { pool, signer, leaves: Mutex::new(Leaves::default()) }
    }

    /// The log's origin (the signing key's name).
    pub fn origin(&self) -> &str {
        self.signer.verifier().name()
    }

    /// The verifier key clients pin.
    pub fn verifier(&self) -> &VerifierKey {
        self.signer.verifier()
    }

    /// The log with every epoch recorded so far (by any replica) appended; the guard keeps it
    /// still while the caller proves.
    pub async fn sync(&self) -> Result<MutexGuard<'_, Leaves>, HeadsError> {
        let mut leaves = self.leaves.lock().await;
        loop {
            // A log of 2^63 epochs is out of reach; at worst nothing more is read.
            let after = i64::try_from(leaves.len()).unwrap_or(i64::MAX);
            let rows = store::epochs_after(&self.pool, after).await?;
            let read = rows.len();
            for row in rows {
                let expected = leaves.len() + 1;
                if u64::try_from(row.epoch) != Ok(expected) {
                    return Err(HeadsError::Gap { expected, found: row.epoch });
                }
                let root: [u8; 32] =
                    row.root_hash.as_slice().try_into().map_err(|_| HeadsError::Root { epoch: row.epoch })?;
                leaves.log.push(EpochLeaf { epoch: expected, akd_root: root }.hash());
                leaves.roots.push(root);
            }
            if i64::try_from(read).unwrap_or(i64::MAX) < store::EPOCHS_PER_READ {
                return Ok(leaves);
            }
        }
    }

    /// Signs and stores the head of the log's latest size, unless a head of that size (or a
    /// larger one) is stored; returns the size signed. A stored head this log does not have is
    /// [`HeadsError::Forked`].
    pub async fn sign_latest(&self) -> Result<Option<u64>, HeadsError> {
        let leaves = self.sync().await?;
        let stored = store::latest_head(&self.pool).await?;
        if let Some(stored) = &stored {
            self.check_stored(&leaves, stored)?;
        }
        let Some(head) = leaves.head(self.origin())? else { return Ok(None) };
        if stored.is_some_and(|s| u64::try_from(s.size).is_ok_and(|size| size >= head.size())) {
            return Ok(None);
        }
        let note = head.sign(&self.signer)?.encode();
        // The size is a recorded epoch number, an i64.
        let size = i64::try_from(head.size()).unwrap_or(i64::MAX);
        store::store_head(&self.pool, size, size, &note).await?;
        Ok(Some(head.size()))
    }

    /// Checks that a stored head is this key's signature of this log at its size.
    fn check_stored(&self, leaves: &Leaves, stored: &store::StoredHead) -> Result<(), HeadsError> {
        let size = u64::try_from(stored.size).map_err(|_| HeadsError::Forked { size: 0 })?;
        let (head, _) = Head::open(stored.note.as_bytes(), self.origin(), self.verifier())
            .map_err(|_| HeadsError::Forked { size })?;
        if size > leaves.len() {
            // Signed by a replica that read more epochs than this one: this log catches up at its next sync.
            return Ok(());
        }
        let root = leaves.log.root(size)?;
        if head.size() != size || head.root() != &root || Some(*head.last_leaf()) != leaves.leaf(size - 1) {
            return Err(HeadsError::Forked { size });
        }
        Ok(())
    }

    /// The stored head of `size`, checked against this log, with the inclusion proof of its
    /// last leaf and the consistency proof from `known` (when `0 < known <= size`); `None`
    /// when no head of that size is signed (yet).
    pub async fn proofs_at(&self, size: u64, known: Option<u64>) -> Result<Option<HeadProofs>, HeadsError> {
        let Ok(wanted) = i64::try_from(size) else { return Ok(None) };
        let leaves = self.sync().await?;
        let Some(stored) = store::head_of_size(&self.pool, wanted).await? else { return Ok(None) };
        if size == 0 || size > leaves.len() {
            return Ok(None);
        }
        self.check_stored(&leaves, &stored)?;
        let inclusion = leaves.inclusion(size - 1, size)?;
        let consistency = match known {
            Some(known) if known > 0 && known <= size => Some(leaves.consistency(known, size)?),
            _ => None,
        };
        Ok(Some(HeadProofs { note: stored.note, inclusion, consistency }))
    }

    /// The newest stored head, checked against this log.
    pub async fn latest(&self) -> Result<Option<store::StoredHead>, HeadsError> {
        let leaves = self.sync().await?;
        let Some(stored) = store::latest_head(&self.pool).await? else { return Ok(None) };
        self.check_stored(&leaves, &stored)?;
        Ok(Some(stored))
    }
}

/// A stored head with the log proofs a client checks it by.
#[derive(Debug)]
pub struct HeadProofs {
    /// The signed note.
    pub note: String,
    /// The inclusion proof of the head's last leaf.
    pub inclusion: Vec<LogHash>,
    /// The consistency proof from the size the client knows, if asked.
    pub consistency: Option<Vec<LogHash>>,
}

/// Why the log could not be read, signed or proven.
#[derive(Debug, thiserror::Error)]
pub enum HeadsError {
    /// keydir's tables failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A format or range check of keyward-proto refused.
    #[error("epoch log: {0}")]
    Proto(#[from] keyward_proto::Error),
    /// The recorded epochs do not follow each other.
    #[error("the recorded epochs have a gap: expected epoch {expected}, found {found}")]
    Gap {
        /// The epoch the log needs next.
        expected: u64,
        /// The one the table holds.
        found: i64,
    },
    /// A recorded root is not 32 bytes.
    #[error("the recorded root of epoch {epoch} is not 32 bytes")]
    Root {
        /// The epoch.
        epoch: i64,
    },
    /// A stored head is not this key's signature of this log.
    #[error("the stored head of size {size} is not this log's")]
    Forked {
        /// Its size.
        size: u64,
    },
}
