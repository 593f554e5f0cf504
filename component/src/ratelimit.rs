//! Per-sender rate limit (token bucket), for `relay`.

use std::collections::HashMap;
use std::sync::Mutex;

use keyward_proto::BareJid;
use tokio::time::{Duration, Instant};

/// Most senders tracked at once; full buckets are forgotten first.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Allows `per_minute` events per sender and minute, with bursts up to `per_minute`.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<BareJid, Bucket>>,
}

impl RateLimiter {
    /// A limiter of `per_minute` events per sender (0 refuses everything).
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let capacity = f64::from(self.per_minute);
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * capacity / 60.0).min(capacity);
        bucket.updated = now;
    }

    /// Takes one token for `sender`; `false` when the sender is over the limit.
    pub fn allow(&self, sender: &BareJid) -> bool {
        let now = Instant::now();
        let capacity = f64::from(self.per_minute);
        let Ok(mut buckets) = self.buckets.lock() else { return false };
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(sender) {
            let stale: Vec<BareJid> = buckets
                .iter()
                .filter(|(_, b)| now.saturating_duration_since(b.updated) >= Duration::from_secs(60))
                .map(|(jid, _)| jid.clone())
                .collect();
            for jid in stale {
                buckets.remove(&jid);
            }
            if buckets.len() >= MAX_TRACKED {
                return false;
            }
        }
        let bucket = buckets.entry(sender.clone()).or_insert(Bucket { tokens: capacity, updated: now });
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn thirty_a_minute_per_sender() {
        let limiter = RateLimiter::new(30);
        let alice = BareJid::parse("alice@example.test").expect("valid");
        let bob = BareJid::parse("bob@example.test").expect("valid");
        assert_eq!((0..30).filter(|_| limiter.allow(&alice)).count(), 30);
        assert!(!limiter.allow(&alice));
        assert!(limiter.allow(&bob), "senders are independent");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(limiter.allow(&alice), "one token back after two seconds");
        assert!(!limiter.allow(&alice));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!((0..40).filter(|_| limiter.allow(&alice)).count(), 30);
    }
}
