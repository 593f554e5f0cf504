//! The replay rule (protocol section 7): per sender, a window on the signed `ts_ms` and the ids inside it.

use crate::error::{Error, Result};
use crate::jid::BareJid;
use std::collections::{BTreeSet, HashMap};

/// The replay rule's parameters: the window on `ts_ms` and the ids remembered per sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayRule {
    /// A message more than this much older (in ms) than the sender's newest accepted one is refused.
    pub window_ms: u64,
    /// At most this many ids are remembered per sender; the oldest beyond it raise the sender's floor.
    pub per_sender: usize,
}

impl ReplayRule {
    /// The protocol's rule: a 7 day window, 10 000 ids per sender.
    pub const V0: Self = Self { window_ms: 7 * 24 * 3600 * 1000, per_sender: 10_000 };

    /// Whether a message of `ts_ms` may be accepted from a sender in `state`; `seen` says
    /// whether its id is remembered for that sender. Checks only; records nothing.
    pub fn check(&self, state: &SenderState, ts_ms: u64, seen: bool) -> Result<()> {
        if state.newest.is_some_and(|newest| ts_ms.saturating_add(self.window_ms) < newest)
            || state.floor.is_some_and(|floor| ts_ms <= floor)
        {
            return Err(Error::TooOld);
        }
        if seen {
            return Err(Error::Replay);
        }
        Ok(())
    }

    /// The `ts_ms` below which remembered ids of a sender whose newest is `newest` are
    /// forgotten: the window refuses them anyway.
    pub fn forget_below(&self, newest: u64) -> u64 {
        newest.saturating_sub(self.window_ms)
    }
}

/// What a reader remembers of one sender, besides the ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderState {
    /// The largest `ts_ms` accepted from the sender.
    pub newest: Option<u64>,
    /// Messages with `ts_ms` at or below this are refused (raised when ids are evicted over the cap).
    pub floor: Option<u64>,
}

/// Where a reader keeps its replay state: [`crate::Sealed::open`] calls [`ReplayCache::admit`]
/// after every other check passed. Implementations persist (the client keeps it in its database).
pub trait ReplayCache {
    /// Applies the replay rule to `(from, msg_id, ts_ms)`: records it and returns `Ok`, or
    /// returns [`Error::Replay`] or [`Error::TooOld`] and records nothing.
    fn admit(&mut self, from: &BareJid, msg_id: &str, ts_ms: u64) -> Result<()>;
}

#[derive(Debug, Clone, Default)]
struct Sender {
    state: SenderState,
    /// `(ts_ms, msg_id)`, ordered so the oldest comes first.
    ids: BTreeSet<(u64, String)>,
    by_id: HashMap<String, u64>,
}

/// The replay rule in memory, for tests and short-lived readers.
#[derive(Debug, Clone)]
pub struct MemoryReplayCache {
    rule: ReplayRule,
    senders: HashMap<BareJid, Sender>,
}

impl MemoryReplayCache {
    /// An empty cache applying `rule`.
    pub fn new(rule: ReplayRule) -> Self {
        Self { rule, senders: HashMap::new() }
    }

    /// How many ids are remembered for `from`.
    pub fn remembered(&self, from: &BareJid) -> usize {
        self.senders.get(from).map_or(0, |s| s.ids.len())
    }

    /// What is remembered of `from`.
    pub fn state(&self, from: &BareJid) -> SenderState {
        self.senders.get(from).map(|s| s.state).unwrap_or_default()
    }
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::new(ReplayRule::V0)
    }
}

impl ReplayCache for MemoryReplayCache {
    fn admit(&mut self, from: &BareJid, msg_id: &str, ts_ms: u64) -> Result<()> {
        let sender = self.senders.entry(from.clone()).or_default();
        self.rule.check(&sender.state, ts_ms, sender.by_id.contains_key(msg_id))?;
        sender.ids.insert((ts_ms, msg_id.to_owned()));
        sender.by_id.insert(msg_id.to_owned(), ts_ms);
        let newest = sender.state.newest.map_or(ts_ms, |n| n.max(ts_ms));
        sender.state.newest = Some(newest);
        let below = self.rule.forget_below(newest);
        while let Some((ts, _)) = sender.ids.first()
            && (*ts < below || sender.ids.len() > self.rule.per_sender.max(1))
        {
            let over_cap = *ts >= below;
            let Some((ts, id)) = sender.ids.pop_first() else { break };
            sender.by_id.remove(&id);
            if over_cap {
                sender.state.floor = Some(sender.state.floor.map_or(ts, |f| f.max(ts)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(local: &str) -> BareJid {
        BareJid::parse(&format!("{local}@example.test")).expect("valid")
    }

    const DAY: u64 = 24 * 3600 * 1000;

    #[test]
    fn a_repeat_is_refused_and_ids_are_per_sender() {
        let (alice, bob) = (jid("alice"), jid("bob"));
        let mut cache = MemoryReplayCache::default();
        assert_eq!(cache.admit(&alice, "1", 5), Ok(()));
        assert_eq!(cache.admit(&alice, "1", 5), Err(Error::Replay));
        assert_eq!(cache.admit(&alice, "1", 6), Err(Error::Replay), "the id alone decides");
        assert_eq!(cache.admit(&bob, "1", 5), Ok(()), "ids are per sender");
    }

    #[test]
    fn the_window_follows_the_senders_newest_message() {
        let alice = jid("alice");
        let mut cache = MemoryReplayCache::default();
        let start = 1_000 * DAY;
        assert_eq!(cache.admit(&alice, "old", start), Ok(()));
        assert_eq!(cache.admit(&alice, "new", start + 8 * DAY), Ok(()));
        // The first id was forgotten, but its replay is refused by the window.
        assert_eq!(cache.remembered(&alice), 1);
        assert_eq!(cache.admit(&alice, "old", start), Err(Error::TooOld));
        // Late but inside the window: accepted once.
        assert_eq!(cache.admit(&alice, "late", start + 2 * DAY), Ok(()));
        assert_eq!(cache.admit(&alice, "late", start + 2 * DAY), Err(Error::Replay));
        // Months offline: everything stored arrives in order and is accepted.
        assert_eq!(cache.admit(&alice, "after months", start + 200 * DAY), Ok(()));
    }

    #[test]
    fn a_flood_from_one_sender_never_evicts_another_senders_ids() {
        let (alice, mallory) = (jid("alice"), jid("mallory"));
        let mut cache = MemoryReplayCache::new(ReplayRule { window_ms: 7 * DAY, per_sender: 3 });
        assert_eq!(cache.admit(&alice, "a1", 10), Ok(()));
        for i in 0..100u64 {
            assert_eq!(cache.admit(&mallory, &format!("m{i}"), 10 + i), Ok(()));
        }
        assert_eq!(cache.admit(&alice, "a1", 10), Err(Error::Replay), "alice's id is still remembered");
        assert_eq!(cache.remembered(&mallory), 3);
    }

    #[test]
    fn ids_evicted_over_the_cap_raise_the_floor() {
        let alice = jid("alice");
        let mut cache = MemoryReplayCache::new(ReplayRule { window_ms: 7 * DAY, per_sender: 2 });
        for (id, ts) in [("a", 1), ("b", 2), ("c", 3)] {
            assert_eq!(cache.admit(&alice, id, ts), Ok(()));
        }
        assert_eq!(cache.state(&alice), SenderState { newest: Some(3), floor: Some(1) });
        assert_eq!(cache.admit(&alice, "a", 1), Err(Error::TooOld), "an evicted id is never accepted again");
        assert_eq!(cache.admit(&alice, "other", 1), Err(Error::TooOld));
        assert_eq!(cache.admit(&alice, "b", 2), Err(Error::Replay));
        assert_eq!(cache.admit(&alice, "d", 2), Ok(()), "above the floor and new");
    }

    #[test]
    fn refusals_record_nothing() {
        let alice = jid("alice");
        let mut cache = MemoryReplayCache::default();
        assert_eq!(cache.admit(&alice, "new", 100 * DAY), Ok(()));
        assert_eq!(cache.admit(&alice, "ancient", DAY), Err(Error::TooOld));
        assert_eq!(cache.remembered(&alice), 1);
        assert_eq!(cache.state(&alice).newest, Some(100 * DAY));
    }
}
