//! CPU time from `/proc`: the bench's own (the load generator's cost), its children's, and the servers'.

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

/// CPU time of a process; with `tree`, also of its children, live (their own time) and exited
/// (the waited-for time it holds): Postgres's postmaster and its backends.
pub(crate) fn process_cpu(pid: u32, tree: bool) -> Duration {
    let path = format!("/proc/{pid}/stat");
    let mut total = ticks(&path, false);
    if tree {
        total += ticks(&path, true);
        for child in children(pid) {
            total += ticks(&format!("/proc/{child}/stat"), false);
        }
    }
    total
}

/// The `postgres` process listening on `port`: the postmaster.
pub(crate) fn postmaster(port: u16) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .find(|pid| keyward_tests::net::listens_on(*pid, port).unwrap_or(false))
}

/// The live direct children of a process.
fn children(pid: u32) -> Vec<u32> {
    let parent = |child: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<u32>().ok()
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| parent(*child) == Some(pid))
        .collect()
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
