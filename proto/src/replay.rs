//! The replay cache: which `(sender, message id)` pairs a client has already accepted.

use crate::jid::BareJid;
use std::collections::{HashSet, VecDeque};

/// Remembers accepted messages so that a replayed one is refused.
///
/// Implementations are expected to persist (the client stores its cache with
/// its other local state); [`MemoryReplayCache`] can be saved and restored
/// through [`MemoryReplayCache::entries`] and [`MemoryReplayCache::from_entries`].
pub trait ReplayCache {
    /// Records that a message was accepted. Returns `false`, recording nothing,
    /// if this sender's message id was seen before.
    fn insert(&mut self, from: &BareJid, msg_id: &str, ts_ms: u64) -> bool;
}

/// One remembered message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplayEntry {
    /// The sender.
    pub from: BareJid,
    /// The sender's message id.
    pub msg_id: String,
    /// The signed timestamp (Unix ms).
    pub ts_ms: u64,
}

/// A bounded in-memory replay cache that forgets the oldest entries first.
///
/// Its capacity should comfortably exceed the number of messages a user
/// receives between two key changes; the default holds 100 000.
#[derive(Debug, Clone)]
pub struct MemoryReplayCache {
    seen: HashSet<(BareJid, String)>,
    order: VecDeque<ReplayEntry>,
    capacity: usize,
}

impl MemoryReplayCache {
    /// The default capacity.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self { seen: HashSet::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// Restores a cache saved with [`Self::entries`], oldest first.
    pub fn from_entries(capacity: usize, entries: impl IntoIterator<Item = ReplayEntry>) -> Self {
        let mut cache = Self::new(capacity);
        for entry in entries {
            cache.insert(&entry.from, &entry.msg_id, entry.ts_ms);
        }
        cache
    }

    /// The remembered entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &ReplayEntry> {
        self.order.iter()
    }

    /// How many entries are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl ReplayCache for MemoryReplayCache {
    fn insert(&mut self, from: &BareJid, msg_id: &str, ts_ms: u64) -> bool {
        if !self.seen.insert((from.clone(), msg_id.to_owned())) {
            return false;
        }
        self.order.push_back(ReplayEntry { from: from.clone(), msg_id: msg_id.to_owned(), ts_ms });
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&(old.from, old.msg_id));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_repeats_and_survives_save_restore() {
        let alice = BareJid::parse("alice@example.test").expect("valid");
        let bob = BareJid::parse("bob@example.test").expect("valid");
        let mut cache = MemoryReplayCache::new(10);
        assert!(cache.insert(&alice, "1", 5));
        assert!(!cache.insert(&alice, "1", 6));
        assert!(cache.insert(&bob, "1", 5), "ids are per sender");
        let restored = MemoryReplayCache::from_entries(10, cache.entries().cloned());
        let mut restored = restored;
        assert!(!restored.insert(&alice, "1", 7));
        assert_eq!(restored.len(), 2);
    }

    #[test]
    fn forgets_oldest_beyond_capacity() {
        let alice = BareJid::parse("alice@example.test").expect("valid");
        let mut cache = MemoryReplayCache::new(2);
        assert!(cache.insert(&alice, "a", 1));
        assert!(cache.insert(&alice, "b", 2));
        assert!(cache.insert(&alice, "c", 3));
        assert_eq!(cache.len(), 2);
        assert!(!cache.insert(&alice, "c", 3));
        assert!(cache.insert(&alice, "a", 1), "evicted entries are forgotten");
    }
}
