//! The lookup proofs of one epoch, kept so that a label asked again before the next epoch costs no akd work: bounded in bytes, least recently used out first, dropped whole when the epoch changes.
//!
//! A label's lookup proof changes only when an epoch is published (by this replica or
//! another), so a proof computed for epoch `e` is the proof of every lookup answered at `e`.
//! The cache holds proofs of one epoch (number and root hash) only: [`ProofCache::get`] at
//! another epoch answers nothing, and a newer epoch empties it. [`super::Map::batch_lookup`]
//! serves cached proofs only with the epoch they are for, so that every answer's proofs are
//! for one epoch, and verify against the root it names.

use keyward_transparency::akd::EpochHash;
use lru::LruCache;
use std::sync::{Arc, Mutex, MutexGuard};

/// A lookup proof as the routes serve it: the proven version and value, and akd's proof in
/// its protobuf encoding.
#[derive(Debug, PartialEq, Eq)]
pub struct EncodedProof {
    /// The value's version (how many values the label had, this one included).
    pub version: u64,
    /// The proven value (keyward-proto's map value).
    pub value: Vec<u8>,
    /// akd's `LookupProof`, protobuf.
    pub proof: Vec<u8>,
}

/// What an entry costs beyond its bytes (the map's node, the `Arc`, the vectors' headers).
const ENTRY_OVERHEAD: usize = 128;

impl EncodedProof {
    /// The bytes an entry of `label` with this proof is counted as.
    fn weight(&self, label: &[u8]) -> usize {
        label.len() + self.value.len() + self.proof.len() + ENTRY_OVERHEAD
    }
}

/// An epoch's number and root hash.
type At = (u64, [u8; 32]);

fn at(epoch: &EpochHash) -> At {
    (epoch.epoch(), epoch.hash())
}

struct Entries {
    /// The epoch every entry is for; `None` before the first proof.
    at: Option<At>,
    entries: LruCache<Vec<u8>, Arc<EncodedProof>>,
    bytes: usize,
}

impl Entries {
    fn reset(&mut self, epoch: At) {
        self.entries.clear();
        self.bytes = 0;
        self.at = Some(epoch);
    }

    /// Moves the cache to `epoch` when that is newer than its own (or the same number with
    /// another root: the database was rolled back and published again); whether the cache is
    /// now at `epoch`.
    fn follow(&mut self, epoch: At) -> bool {
        match self.at {
            Some(own) if own == epoch => true,
            Some((number, _)) if number > epoch.0 => false,
            _ => {
                self.reset(epoch);
                true
            }
        }
    }
}

/// The lookup proofs of the latest epoch a lookup was answered at.
pub struct ProofCache {
    /// Most bytes the entries may take (0: nothing is kept).
    limit: usize,
    entries: Mutex<Entries>,
}

impl ProofCache {
    /// An empty cache of at most `limit` bytes of proofs (0: off).
    pub fn new(limit: usize) -> Self {
        Self { limit, entries: Mutex::new(Entries { at: None, entries: LruCache::unbounded(), bytes: 0 }) }
    }

    /// The entries; a panic of another holder left nothing half-done (every change completes
    /// before the lock is released), so a poisoned lock is taken all the same.
    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached proof of each of `labels` for `epoch` (in their order), `None` where there is
    /// none. A newer epoch than the cache's empties it; an older one answers nothing.
    pub fn get(&self, epoch: &EpochHash, labels: &[Vec<u8>]) -> Vec<Option<Arc<EncodedProof>>> {
        if self.limit == 0 {
            return vec![None; labels.len()];
        }
        let mut entries = self.lock();
        if !entries.follow(at(epoch)) {
            return vec![None; labels.len()];
        }
        labels.iter().map(|label| entries.entries.get(label).cloned()).collect()
    }

    /// Keeps `proofs`, computed for `epoch`, unless the cache is at a newer epoch; with
    /// `replace`, the cache is moved to `epoch` whatever it was at. The least recently used
    /// entries make room.
    pub fn put(&self, epoch: &EpochHash, proofs: &[(Vec<u8>, Arc<EncodedProof>)], replace: bool) {
        if self.limit == 0 {
            return;
        }
        let mut entries = self.lock();
        let epoch = at(epoch);
        if replace && entries.at != Some(epoch) {
            entries.reset(epoch);
        } else if !entries.follow(epoch) {
            return;
        }
        for (label, proof) in proofs {
            let weight = proof.weight(label);
            if weight > self.limit {
                continue;
            }
            if let Some(old) = entries.entries.put(label.clone(), proof.clone()) {
                entries.bytes = entries.bytes.saturating_sub(old.weight(label));
            }
            entries.bytes += weight;
            while entries.bytes > self.limit {
                let Some((label, old)) = entries.entries.pop_lru() else { break };
                entries.bytes = entries.bytes.saturating_sub(old.weight(&label));
            }
        }
    }

    /// The entries and the bytes they are counted as.
    #[cfg(test)]
    fn size(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.entries.len(), entries.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(number: u64, root: u8) -> EpochHash {
        EpochHash(number, [root; 32])
    }

    fn proof(size: usize) -> Arc<EncodedProof> {
        Arc::new(EncodedProof { version: 1, value: vec![1; 33], proof: vec![7; size] })
    }

    fn labels(names: &[&str]) -> Vec<Vec<u8>> {
        names.iter().map(|n| n.as_bytes().to_vec()).collect()
    }

    fn hits(cache: &ProofCache, at: &EpochHash, names: &[&str]) -> Vec<bool> {
        cache.get(at, &labels(names)).iter().map(Option::is_some).collect()
    }

    #[test]
    fn proofs_are_served_only_at_their_epoch_and_a_newer_epoch_drops_them() {
        let cache = ProofCache::new(1 << 20);
        let (one, two) = (epoch(1, 1), epoch(2, 2));
        assert_eq!(hits(&cache, &one, &["a"]), [false]);
        cache.put(&one, &[(b"a".to_vec(), proof(100)), (b"b".to_vec(), proof(100))], false);
        assert_eq!(hits(&cache, &one, &["a", "c", "b"]), [true, false, true]);
        assert_eq!(cache.get(&one, &labels(&["a"]))[0], Some(proof(100)));
        // Another root at the same number is another epoch.
        assert_eq!(hits(&cache, &epoch(1, 9), &["a"]), [false]);
        cache.put(&one, &[(b"a".to_vec(), proof(100))], false);
        // A newer epoch empties the cache; proofs of the older one are not kept any more.
        assert_eq!(hits(&cache, &two, &["a"]), [false]);
        assert_eq!(cache.size().0, 0);
        cache.put(&one, &[(b"a".to_vec(), proof(100))], false);
        assert_eq!(hits(&cache, &two, &["a"]), [false]);
        assert_eq!(hits(&cache, &one, &["a"]), [false], "an older epoch answers nothing");
        cache.put(&two, &[(b"a".to_vec(), proof(100))], false);
        assert_eq!(hits(&cache, &two, &["a"]), [true]);
        // Replacing moves it back (akd answered at an older epoch: a rolled back database).
        cache.put(&one, &[(b"b".to_vec(), proof(100))], true);
        assert_eq!(hits(&cache, &one, &["a", "b"]), [false, true]);
    }

    #[test]
    fn the_least_recently_used_proofs_make_room() {
        let weight = proof(1000).weight(b"a");
        let cache = ProofCache::new(3 * weight);
        let at = epoch(5, 5);
        cache.put(&at, &[(b"a".to_vec(), proof(1000)), (b"b".to_vec(), proof(1000))], false);
        cache.put(&at, &[(b"c".to_vec(), proof(1000))], false);
        assert_eq!(hits(&cache, &at, &["a"]), [true]);
        cache.put(&at, &[(b"d".to_vec(), proof(1000))], false);
        assert_eq!(hits(&cache, &at, &["a", "b", "c", "d"]), [true, false, true, true]);
        assert_eq!(cache.size(), (3, 3 * weight));
        // The same label again replaces its entry, counted once.
        cache.put(&at, &[(b"d".to_vec(), proof(1000))], false);
        assert_eq!(cache.size(), (3, 3 * weight));
        // A proof larger than the whole cache is not kept.
        cache.put(&at, &[(b"e".to_vec(), proof(4 * weight))], false);
        assert_eq!(hits(&cache, &at, &["e", "a"]), [false, true]);
    }

    #[test]
    fn a_cache_of_zero_bytes_keeps_nothing() {
        let cache = ProofCache::new(0);
        let at = epoch(1, 1);
        cache.put(&at, &[(b"a".to_vec(), proof(10))], false);
        assert_eq!(hits(&cache, &at, &["a"]), [false]);
        assert_eq!(cache.size(), (0, 0));
    }
}
