//! The figures of a benchmark: latency percentiles, throughput, the ratio to an anchor and whether it meets its aim.

use std::time::Duration;

/// The `q`-quantile (0 to 1) of sorted samples, nearest rank; `None` when there are none.
pub(crate) fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// What one target of a load did: answered requests, their latencies (µs), errors, wall and
/// load-generator CPU time spent on it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) errors: u64,
    pub(crate) wall: Duration,
    pub(crate) cpu: Duration,
    /// CPU time of the watched server processes meanwhile, in the probe's order.
    pub(crate) servers: Vec<Duration>,
}

impl Tally {
    /// Adds another slot's tally.
    pub(crate) fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.wall += other.wall;
        self.cpu += other.cpu;
        if self.servers.len() < other.servers.len() {
            self.servers.resize(other.servers.len(), Duration::ZERO);
        }
        for (mine, theirs) in self.servers.iter_mut().zip(other.servers) {
            *mine += theirs;
        }
    }

    /// The summary; sorts the latencies.
    pub(crate) fn summary(&mut self) -> Summary {
        self.latencies_us.sort_unstable();
        let secs = self.wall.as_secs_f64();
        let ms = |q| percentile(&self.latencies_us, q).map(|us| f64::from(us) / 1000.0);
        Summary {
            count: self.latencies_us.len() as u64,
            errors: self.errors,
            per_sec: if secs > 0.0 { self.latencies_us.len() as f64 / secs } else { 0.0 },
            p50_ms: ms(0.50),
            p99_ms: ms(0.99),
            cpu_share: if secs > 0.0 { self.cpu.as_secs_f64() / secs } else { 0.0 },
        }
    }
}

/// Throughput and latency of one target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) per_sec: f64,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    /// The load generator's CPU time over the wall time (1.0 = one core busy).
    pub(crate) cpu_share: f64,
}

/// What a figure should achieve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Aim {
    /// keyward / anchor at least this.
    RatioAtLeast(f64),
    /// keyward / anchor at most this.
    RatioAtMost(f64),
    /// The keyward figure itself at most this.
    AtMost(f64),
    /// Shown for context; no aim.
    None,
}

impl Aim {
    /// Whether `keyward` (against `anchor`) meets the aim; `None` when there is no aim or a figure is missing.
    pub(crate) fn met(self, keyward: Option<f64>, anchor: Option<f64>) -> Option<bool> {
        match self {
            Aim::RatioAtLeast(x) => ratio(keyward?, anchor?).map(|r| r >= x),
            Aim::RatioAtMost(x) => ratio(keyward?, anchor?).map(|r| r <= x),
            Aim::AtMost(x) => keyward.map(|k| k <= x),
            Aim::None => None,
        }
    }

    /// The aim as the report shows it (`unit` for an absolute aim).
    pub(crate) fn text(self, unit: &str) -> String {
        match self {
            Aim::RatioAtLeast(x) => format!("≥ {x}x"),
            Aim::RatioAtMost(x) => format!("≤ {x}x"),
            Aim::AtMost(x) => format!("≤ {x} {unit}"),
            Aim::None => "—".into(),
        }
    }
}

/// keyward / anchor, when both are finite and the anchor is positive.
pub(crate) fn ratio(keyward: f64, anchor: f64) -> Option<f64> {
    (keyward.is_finite() && anchor.is_finite() && anchor > 0.0).then(|| keyward / anchor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.5), Some(50));
        assert_eq!(percentile(&sorted, 0.99), Some(99));
        assert_eq!(percentile(&sorted, 1.0), Some(100));
        assert_eq!(percentile(&sorted, 0.0), Some(1));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&sorted, 1.5), None);
    }

    #[test]
    fn summary_of_merged_slots() {
        let mut tally = Tally {
            latencies_us: vec![3000, 1000],
            errors: 1,
            wall: Duration::from_secs(1),
            cpu: Duration::from_millis(250),
            servers: vec![Duration::from_millis(100)],
        };
        tally.merge(Tally {
            latencies_us: vec![2000, 4000],
            errors: 0,
            wall: Duration::from_secs(1),
            cpu: Duration::from_millis(250),
            servers: vec![Duration::from_millis(10), Duration::from_millis(20)],
        });
        assert_eq!(tally.servers, [Duration::from_millis(110), Duration::from_millis(20)]);
        let s = tally.summary();
        assert_eq!((s.count, s.errors), (4, 1));
        assert_eq!(s.per_sec, 2.0);
        assert_eq!(s.p50_ms, Some(2.0));
        assert_eq!(s.p99_ms, Some(4.0));
        assert_eq!(s.cpu_share, 0.25);
        assert_eq!(Tally::default().summary().per_sec, 0.0);
    }

    #[test]
    fn verdicts() {
        assert_eq!(Aim::RatioAtLeast(0.9).met(Some(95.0), Some(100.0)), Some(true));
        assert_eq!(Aim::RatioAtLeast(0.9).met(Some(80.0), Some(100.0)), Some(false));
        assert_eq!(Aim::RatioAtMost(1.2).met(Some(1.1), Some(1.0)), Some(true));
        assert_eq!(Aim::RatioAtMost(1.2).met(Some(1.3), Some(1.0)), Some(false));
        assert_eq!(Aim::RatioAtMost(1.2).met(Some(1.0), Some(0.0)), None);
        assert_eq!(Aim::RatioAtMost(1.2).met(None, Some(1.0)), None);
        assert_eq!(Aim::AtMost(32.0).met(Some(31.5), None), Some(true));
        assert_eq!(Aim::AtMost(32.0).met(Some(33.0), None), Some(false));
        assert_eq!(Aim::None.met(Some(1.0), Some(1.0)), None);
        assert_eq!(Aim::RatioAtLeast(0.5).text(""), "≥ 0.5x");
        assert_eq!(Aim::AtMost(64.0).text("MiB"), "≤ 64 MiB");
        assert_eq!(ratio(1.0, f64::NAN), None);
    }
}
