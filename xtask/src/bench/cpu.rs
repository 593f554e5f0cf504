//! The bench's own CPU time (the load generator's cost) and its children's, from `/proc/self/stat`.

use std::sync::OnceLock;
use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`, 100 if that fails).
fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// User plus system time from the text of a `/proc/PID/stat` (fields 14 and 15, or with
/// `children` the waited-for children's, 16 and 17), in ticks.
pub(crate) fn stat_ticks(stat: &str, children: bool) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(if children { 13 } else { 11 });
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

fn ticks(path: &str, children: bool) -> Duration {
    let ticks = std::fs::read_to_string(path).ok().as_deref().and_then(|s| stat_ticks(s, children)).unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / ticks_per_second() as f64)
}

/// The bench process's own CPU time: the load generator and everything else it runs in-process.
pub(crate) fn own_cpu() -> Duration {
    ticks("/proc/self/stat", false)
}

/// The CPU time of the bench's children that have exited and been waited for (pgbench, cargo).
pub(crate) fn children_cpu() -> Duration {
    ticks("/proc/self/stat", true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime() {
        let stat = "1234 (xtask (bench)) S 1 1234 1234 0 -1 4194304 500 0 0 0 250 75 3 4 20 0 4 0 100 0 0";
        assert_eq!(stat_ticks(stat, false), Some(325));
        assert_eq!(stat_ticks(stat, true), Some(7));
        assert_eq!(stat_ticks("garbage", false), None);
    }
}
