//! Per-key rate limit (token bucket): the general request bucket, the remote buckets and `relay`'s.

use std::collections::HashMap;
use std::sync::Mutex;

use keyward_proto::BareJid;
use tokio::time::{Duration, Instant};

/// Most keys (senders or domains) tracked at once by one limiter; full buckets are forgotten
/// first, and a new key is refused while every tracked bucket is still refilling.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Allows `per_minute` events per key and minute on average, with bursts up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    burst: u32,
    buckets: Mutex<HashMap<BareJid, Bucket>>,
}

impl RateLimiter {
    /// A limiter of `per_minute` events per key with bursts of `burst` (0 for either refuses everything).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_minute, burst, buckets: Mutex::new(HashMap::new()) }
    }

    /// The configured rate, for error texts.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// How long an empty bucket takes to be full again: after that long untouched, a bucket
    /// is the same as no bucket and may be forgotten.
    fn refill_time(&self) -> Duration {
        let minutes = f64::from(self.burst) / f64::from(self.per_minute.max(1));
        Duration::from_secs_f64((minutes * 60.0).min(86_400.0))
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let capacity = f64::from(self.burst);
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * f64::from(self.per_minute) / 60.0).min(capacity);
        bucket.updated = now;
    }

    /// Takes one token for `key`; `false` when the key is over the limit.
    pub fn allow(&self, key: &BareJid) -> bool {
        if self.per_minute == 0 || self.burst == 0 {
            return false;
        }
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else { return false };
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(key) {
            let full_after = self.refill_time();
            buckets.retain(|_, b| now.saturating_duration_since(b.updated) < full_after);
            if buckets.len() >= MAX_TRACKED {
                return false;
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket { tokens: f64::from(self.burst), updated: now });
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How many keys are tracked.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(text: &str) -> BareJid {
        BareJid::parse(text).expect("valid")
    }

    #[tokio::test(start_paused = true)]
    async fn thirty_a_minute_per_sender() {
        let limiter = RateLimiter::new(30, 30);
        let (alice, bob) = (jid("alice@example.test"), jid("bob@example.test"));
        assert_eq!((0..30).filter(|_| limiter.allow(&alice)).count(), 30);
        assert!(!limiter.allow(&alice));
        assert!(limiter.allow(&bob), "senders are independent");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(limiter.allow(&alice), "one token back after two seconds");
        assert!(!limiter.allow(&alice));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!((0..40).filter(|_| limiter.allow(&alice)).count(), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn the_burst_is_separate_from_the_rate() {
        let limiter = RateLimiter::new(120, 5);
        let alice = jid("alice@example.test");
        assert_eq!((0..10).filter(|_| limiter.allow(&alice)).count(), 5, "the burst");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(limiter.allow(&alice), "two a second come back");
        assert!(!limiter.allow(&alice));
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!((0..10).filter(|_| limiter.allow(&alice)).count(), 5, "never more than the burst");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_refuses_everything() {
        assert!(!RateLimiter::new(0, 10).allow(&jid("alice@example.test")));
        assert!(!RateLimiter::new(10, 0).allow(&jid("alice@example.test")));
    }

    #[tokio::test(start_paused = true)]
    async fn memory_stays_bounded_and_full_buckets_are_forgotten_first() {
        let limiter = RateLimiter::new(60, 1);
        for i in 0..MAX_TRACKED {
            assert!(limiter.allow(&jid(&format!("u{i}@example.test"))));
        }
        assert!(!limiter.allow(&jid("new@example.test")), "every bucket still refilling: refused");
        assert_eq!(limiter.tracked(), MAX_TRACKED);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limiter.allow(&jid("new@example.test")), "full buckets were forgotten");
        assert_eq!(limiter.tracked(), 1);
    }
}
