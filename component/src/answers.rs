//! The cache of lookup answers: `active` keys a requester already holds, answered without keydir, under a lease.
//!
//! An entry says: keydir answered `requester` that `jid` is active, with this bundle (so the
//! holder edge is recorded; edges are never deleted). A hit needs no keydir request at all. The
//! danger is answering `active` after a revocation committed, which this rules out with keydir's
//! cache leases (`keydir/src/store/leases.rs`): a revocation commits only after every cache whose
//! lease is valid has dropped the account, and this cache answers only while its lease is valid,
//! timed from when it asked for it (so it stops before keydir stops waiting for it). Accounts
//! whose revocation is pending are not cached again until it has surely committed. A lease that
//! lapsed empties the cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use keyward_proto::BareJid;
use keyward_proto::elements::{KeyItem, KeyStatus};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::keydir::KeydirClient;

/// How often the lease is renewed.
const RENEW_EVERY: Duration = Duration::from_millis(250);
/// Taken off the lease keydir grants, for the renewal's own travel and the clocks' drift.
const MARGIN: Duration = Duration::from_millis(200);
/// How long an entry is kept at most (a bundle never changes in version 0; this bounds staleness
/// of anything else the answer carries, and memory).
const TTL: Duration = Duration::from_secs(60);
/// How long an account whose revocation is pending is not cached: longer than keydir waits
/// for caches plus the revocation's own transaction.
const PENDING_FOR: Duration = Duration::from_secs(15);

/// The cache's state, behind one lock.
#[derive(Debug, Default)]
struct State {
    /// jid → requester → (the checked item of keydir's answer, when it was cached).
    entries: HashMap<BareJid, HashMap<BareJid, (KeyItem, Instant)>>,
    /// How many entries `entries` holds.
    len: usize,
    /// Accounts whose revocation is pending, until when they are not cached.
    pending: HashMap<BareJid, Instant>,
    /// Until when nothing is cached: after dropping everything for revocations too many to list.
    nothing_until: Option<Instant>,
    /// Until when this cache may answer (its lease), if it has one.
    lease_until: Option<Instant>,
    /// The last pending revocation whose account this cache dropped.
    seen_seq: i64,
}

/// The cache of one component process.
#[derive(Debug)]
pub struct AnswerCache {
    holder: String,
    capacity: usize,
    state: Mutex<State>,
}

impl AnswerCache {
    /// An empty cache of at most `capacity` entries (0 turns it off), without a lease yet.
    pub fn new(capacity: usize) -> Self {
        let holder = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        Self { holder, capacity, state: Mutex::new(State::default()) }
    }

    /// Whether the cache is on.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The cached `active` item of `jid` for `requester`, while the lease is valid.
    pub fn get(&self, requester: &BareJid, jid: &BareJid) -> Option<KeyItem> {
        let now = Instant::now();
        let state = self.state.lock().ok()?;
        if state.lease_until.is_none_or(|until| now >= until) {
            return None;
        }
        let (item, at) = state.entries.get(jid)?.get(requester)?;
        (now.duration_since(*at) < TTL).then(|| item.clone())
    }

    /// Keeps keydir's answer `item` to `requester` (checked: its bundle verified for its JID) when
    /// it is `active` with a bundle, the lease is valid and the account's revocation is not pending.
    pub fn put(&self, requester: &BareJid, item: &KeyItem) {
        if !self.enabled() || item.status != KeyStatus::Active || item.bundle.is_none() {
            return;
        }
        let jid = &item.jid;
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else { return };
        if state.lease_until.is_none_or(|until| now >= until)
            || state.pending.get(jid).is_some_and(|t| now < *t)
            || state.nothing_until.is_some_and(|t| now < t)
        {
            return;
        }
        if state.len >= self.capacity {
            // Full: start again rather than track an eviction order (hits refill it quickly).
            state.entries.clear();
            state.len = 0;
        }
        let fresh =
            state.entries.entry(jid.clone()).or_default().insert(requester.clone(), (item.clone(), now)).is_none();
        if fresh {
            state.len += 1;
        }
    }

    /// Drops every entry, and caches nothing for [`PENDING_FOR`]: the accounts being revoked
    /// are not known one by one.
    fn drop_all(state: &mut State, now: Instant) {
        state.entries.clear();
        state.len = 0;
        state.nothing_until = Some(now + PENDING_FOR);
    }

    /// Drops `jid` for every requester, and keeps it out for [`PENDING_FOR`].
    fn drop_jid(state: &mut State, jid: BareJid, now: Instant) {
        if let Some(requesters) = state.entries.remove(&jid) {
            state.len -= requesters.len();
        }
        state.pending.insert(jid, now + PENDING_FOR);
    }

    /// Renews the lease once: acts on what keydir says must be dropped, then extends the lease.
    /// True when keydir named revocations not reported yet (the next renewal reports them).
    async fn renew(&self, keydir: &KeydirClient) -> crate::error::Result<bool> {
        let asked = Instant::now();
        let seen_seq = self.state.lock().map(|s| s.seen_seq).unwrap_or(0);
        let renewal = keydir.renew_cache_lease(&self.holder, seen_seq).await?;
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else { return Ok(false) };
        // Too many pending to list: drop everything, and cache nothing while they may still commit.
        if renewal.flush {
            Self::drop_all(&mut state, now);
        }
        // A lapsed lease: revocations may have been missed meanwhile (and pruned since); they have
        // all committed by now (keydir stopped waiting for this lease), so keydir answers say so.
        if state.lease_until.is_none_or(|until| now >= until) {
            state.entries.clear();
            state.len = 0;
        }
        for jid in renewal.revoking {
            match BareJid::parse(&jid) {
                Ok(jid) => Self::drop_jid(&mut state, jid, now),
                // Not a JID this cache can hold, so none of its entries: but be safe.
                Err(_) => Self::drop_all(&mut state, now),
            }
        }
        state.pending.retain(|_, until| now < *until);
        let advanced = renewal.seq > state.seen_seq;
        state.seen_seq = state.seen_seq.max(renewal.seq);
        let lease = Duration::from_millis(u64::try_from(renewal.lease_ms).unwrap_or(0));
        state.lease_until = lease.checked_sub(MARGIN).map(|usable| asked + usable);
        Ok(advanced)
    }

    /// Renews the lease every [`RENEW_EVERY`] until `stop`; at once again after dropping
    /// revoked accounts, so that the revocations waiting for this cache learn it without delay.
    pub async fn keep_lease(&self, keydir: KeydirClient, stop: CancellationToken) {
        if !self.enabled() {
            return;
        }
        loop {
            match self.renew(&keydir).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => tracing::debug!(cause = %err, "answer cache lease not renewed"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RENEW_EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_proto::{Bundle, KeyPair};

    fn jid(text: &str) -> BareJid {
        BareJid::parse(text).expect("valid")
    }

    fn active(of: &BareJid) -> KeyItem {
        let bundle = Bundle::sign(&KeyPair::generate().expect("rng"), of.clone(), 1_764_150_000).into_bundle();
        KeyItem { jid: of.clone(), status: KeyStatus::Active, bundle: Some(bundle), proof: None }
    }

    fn leased(cache: &AnswerCache) {
        cache.state.lock().expect("lock").lease_until = Some(Instant::now() + Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_are_answered_only_under_a_lease_and_for_their_requester() {
        let cache = AnswerCache::new(10);
        let (alice, bob, carol) = (jid("alice@example.test"), jid("bob@example.test"), jid("carol@example.test"));
        cache.put(&bob, &active(&alice));
        assert!(cache.get(&bob, &alice).is_none(), "no lease, nothing cached");
        leased(&cache);
        cache.put(&bob, &active(&alice));
        assert!(cache.get(&bob, &alice).is_some());
        assert!(cache.get(&carol, &alice).is_none(), "carol's edge is not bob's");
        cache.state.lock().expect("lock").lease_until = Some(Instant::now());
        assert!(cache.get(&bob, &alice).is_none(), "a lease that ran out answers nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_account_or_a_flush_keeps_answers_out() {
        let cache = AnswerCache::new(10);
        let (alice, bob) = (jid("alice@example.test"), jid("bob@example.test"));
        leased(&cache);
        cache.put(&bob, &active(&alice));
        {
            let mut state = cache.state.lock().expect("lock");
            AnswerCache::drop_jid(&mut state, alice.clone(), Instant::now());
        }
        assert!(cache.get(&bob, &alice).is_none(), "dropped");
        cache.put(&bob, &active(&alice));
        assert!(cache.get(&bob, &alice).is_none(), "an answer from before the commit does not come back");
        tokio::time::advance(PENDING_FOR).await;
        leased(&cache);
        cache.put(&bob, &active(&alice));
        assert!(cache.get(&bob, &alice).is_some(), "after the pending window, cached again");
        {
            let mut state = cache.state.lock().expect("lock");
            AnswerCache::drop_all(&mut state, Instant::now());
        }
        cache.put(&bob, &active(&alice));
        assert!(cache.get(&bob, &alice).is_none(), "after a flush nothing is cached for a while");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_starts_again_and_a_zero_capacity_cache_is_off() {
        let cache = AnswerCache::new(2);
        leased(&cache);
        let bob = jid("bob@example.test");
        for n in 0..3 {
            cache.put(&bob, &active(&jid(&format!("user{n}@example.test"))));
        }
        assert_eq!(cache.state.lock().expect("lock").len, 1, "emptied when full, then one added");
        let off = AnswerCache::new(0);
        leased(&off);
        off.put(&bob, &active(&jid("alice@example.test")));
        assert!(off.get(&bob, &jid("alice@example.test")).is_none());
        assert!(!off.enabled());
    }
}
