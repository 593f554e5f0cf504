//! Revocation notices whose confirmation could not be asked for yet (the directory was unreachable), kept and tried again with back-off.
//!
//! A `<revoked/>` notice counts only once a fresh lookup confirms it (protocol section 8). When
//! that lookup fails for a passing reason (keydir or the component restarting, a timeout, the
//! rate limit), dropping the notice would leave a revoked key trusted until the next login: the
//! component has already handed the notice over and will not send it again. So it waits here.

use keyward_proto::elements::Revoked;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Tries before a notice is given up (and shown as refused): about half an hour in all.
pub(super) const MAX_TRIES: u32 = 40;
/// Notices kept at once; more are refused at once rather than held without bound.
const CAPACITY: usize = 256;

/// A notice waiting for its confirmation.
#[derive(Debug)]
struct Waiting {
    notice: Revoked,
    tries: u32,
    due: Instant,
}

/// The notices waiting, soonest due first.
#[derive(Debug, Default)]
pub(super) struct Retries {
    waiting: VecDeque<Waiting>,
}

/// The wait after `tries` failed tries: 2^tries seconds (2, 4, 8 ...), at most [`MAX_BACKOFF`].
fn backoff(tries: u32) -> Duration {
    Duration::from_secs(1u64 << tries.min(6)).min(MAX_BACKOFF)
}

impl Retries {
    /// Keeps `notice`, which failed its confirmation `tries` times, for another try; `false` when
    /// it has had its tries or there is no room (the caller refuses it then). A notice about the
    /// same key already waiting is not kept twice.
    pub(super) fn keep(&mut self, notice: Revoked, tries: u32, now: Instant) -> bool {
        if self.waiting.iter().any(|w| w.notice.jid == notice.jid && w.notice.fp == notice.fp) {
            return true;
        }
        if tries >= MAX_TRIES || self.waiting.len() >= CAPACITY {
            return false;
        }
        let due = now + backoff(tries);
        let at = self.waiting.iter().position(|w| w.due > due).unwrap_or(self.waiting.len());
        self.waiting.insert(at, Waiting { notice, tries, due });
        true
    }

    /// The soonest notice due at `now`, with its failed tries so far.
    pub(super) fn take_due(&mut self, now: Instant) -> Option<(Revoked, u32)> {
        if self.waiting.front().is_some_and(|w| w.due <= now) {
            return self.waiting.pop_front().map(|w| (w.notice, w.tries));
        }
        None
    }

    /// When the next notice is due, if any waits.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.waiting.front().map(|w| w.due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_proto::{BareJid, KeyPair};

    fn notice(local: &str) -> Revoked {
        Revoked {
            jid: BareJid::parse(&format!("{local}@example.test")).expect("valid"),
            fp: KeyPair::generate().expect("rng").fingerprint(),
            at: time::OffsetDateTime::UNIX_EPOCH,
            reason: "lost".into(),
        }
    }

    #[test]
    fn notices_come_back_when_due_soonest_first_and_are_given_up_after_their_tries() {
        let mut retries = Retries::default();
        let now = Instant::now();
        assert!(retries.keep(notice("late"), 3, now)); // due in 8 s
        assert!(retries.keep(notice("soon"), 1, now)); // due in 2 s
        assert!(retries.take_due(now).is_none());
        assert_eq!(retries.next_due(), Some(now + Duration::from_secs(2)));
        let (first, tries) = retries.take_due(now + Duration::from_secs(2)).expect("due");
        assert_eq!((first.jid.as_str(), tries), ("soon@example.test", 1));
        assert!(retries.take_due(now + Duration::from_secs(7)).is_none());
        assert_eq!(retries.take_due(now + Duration::from_secs(8)).expect("due").0.jid.as_str(), "late@example.test");
        // The same key is not kept twice; a notice out of tries, or past the capacity, is not kept.
        let same = notice("twice");
        assert!(retries.keep(same.clone(), 1, now));
        assert!(retries.keep(same, 2, now));
        assert_eq!(retries.waiting.len(), 1);
        assert!(!retries.keep(notice("tired"), MAX_TRIES, now));
        for i in 0..CAPACITY - 1 {
            assert!(retries.keep(notice(&format!("n{i}")), 1, now));
        }
        assert!(!retries.keep(notice("one-too-many"), 1, now));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
