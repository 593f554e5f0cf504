//! P1: `keys` lookups through Prosody and the keyward component, against the same load to the null component and to Prosody's own XEP-0199 ping.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::Plan;
use super::cpu::{postmaster, process_cpu};
use super::loadgen::{IqTarget, Probe, interleave};
use super::report::{Row, Section, targets_table};
use super::setup::BenchStack;
use super::stats::{Aim, Summary, Tally};

/// A `keys` lookup of one other published account, addressed to `to`.
pub(crate) fn keys_iq(to: &str, domain: &str, users: &[String], session: usize, id: u64) -> String {
    let n = users.len().max(2);
    let other = (session + 1 + (id as usize % (n - 1))) % n;
    let user = users.get(other).map_or("nobody", String::as_str);
    format!("<iq type='get' id='{id}' to='{to}'><keys xmlns='urn:keyward:0'><item jid='{user}@{domain}'/></keys></iq>")
}

/// What an IQ result carries inside `<iq>`: empty for `<iq …/>`; `None` for anything but a result.
pub(crate) fn result_payload(answer: &str) -> Option<String> {
    let open_end = answer.find('>')?;
    let start = &answer[..open_end];
    if super::framing::attr(start, "type") != Some("result") {
        return None;
    }
    if start.ends_with('/') {
        return Some(String::new());
    }
    Some(answer[open_end + 1..].strip_suffix("</iq>")?.to_owned())
}

/// The lookup through the keyward component, as [`IqTarget`].
pub(crate) fn lookup_target(bench: &BenchStack) -> IqTarget {
    let (to, domain, users) =
        (bench.stack.component_jid().to_owned(), bench.stack.domain().to_owned(), bench.users.clone());
    IqTarget { name: "keyward lookup".into(), make: Arc::new(move |s, id| keys_iq(&to, &domain, &users, s, id)) }
}

/// Runs P1; returns its section and the per-target summaries.
pub(crate) async fn run(bench: &BenchStack, plan: &Plan, out: &Path) -> Result<Section> {
    let null = {
        let (to, domain, users) = (bench.null_jid.clone(), bench.stack.domain().to_owned(), bench.users.clone());
        IqTarget { name: "null component".into(), make: Arc::new(move |s, id| keys_iq(&to, &domain, &users, s, id)) }
    };
    let sized = {
        let (to, domain, users) = (bench.sized_jid.clone(), bench.stack.domain().to_owned(), bench.users.clone());
        IqTarget {
            name: "null component, same-size answer".into(),
            make: Arc::new(move |s, id| keys_iq(&to, &domain, &users, s, id)),
        }
    };
    let ping = {
        let domain = bench.stack.domain().to_owned();
        IqTarget {
            name: "Prosody ping".into(),
            make: Arc::new(move |_, id| {
                format!("<iq type='get' id='{id}' to='{domain}'><ping xmlns='urn:xmpp:ping'/></iq>")
            }),
        }
    };
    let targets = [lookup_target(bench), null, sized, ping];
    let mut sessions = bench.sessions().await?;
    let probe = server_probe(bench)?;
    // A short warm-up of every target, not counted.
    interleave(&mut sessions, &targets, 1, plan.warmup, plan.window, &probe).await?;
    let mut tallies = interleave(&mut sessions, &targets, plan.rounds, plan.slot, plan.window, &probe).await?;
    let cpu_table = cpu_per_iq(&targets, &mut tallies);
    let summaries: Vec<(String, Summary)> =
        targets.iter().zip(tallies).map(|(t, mut tally)| (t.name.clone(), tally.summary())).collect();
    let [keyward, null, sized, ping] = [&summaries[0].1, &summaries[1].1, &summaries[2].1, &summaries[3].1];
    let same = "null component, same-size answer";
    let rows = vec![
        row("throughput", "iq/s", keyward.per_sec, "null component", null.per_sec, Aim::RatioAtLeast(0.9)),
        row_opt("p99 latency", keyward.p99_ms, "null component", null.p99_ms, Aim::RatioAtMost(1.2)),
        row_opt("p50 latency", keyward.p50_ms, "null component", null.p50_ms, Aim::None),
        row("throughput", "iq/s", keyward.per_sec, same, sized.per_sec, Aim::None),
        row_opt("p99 latency", keyward.p99_ms, same, sized.p99_ms, Aim::None),
        row("throughput", "iq/s", keyward.per_sec, "Prosody ping", ping.per_sec, Aim::None),
        row_opt("p99 latency", keyward.p99_ms, "Prosody ping", ping.p99_ms, Aim::None),
    ];
    let plots = super::plot_load(out, "p1", "P1 lookups through Prosody", "iq/s", &summaries)?;
    Ok(Section {
        id: "P1",
        title: "key lookups through Prosody",
        method: format!(
            "{} c2s sessions (SASL PLAIN, loopback), each keeping {} IQs in flight. Targets in turn, {} rounds of {:.0} s \
             slots each (after a {:.0} s warm-up of each): a `keys` get of one published account to the keyward \
             component (Prosody → component → keydir → Postgres, the bundle verified by the component), the same \
             IQ to the null component (answers every IQ at once with an empty result), the same IQ to a second \
             null component that answers every IQ at once with the bytes of one real keyward answer ({} bytes: the \
             server's own cost of routing an answer that size), and an XEP-0199 ping to the server itself. \
             Latency: from writing the IQ to reading its answer.",
            bench.users.len(),
            plan.window,
            plan.rounds,
            plan.slot.as_secs_f64(),
            plan.warmup.as_secs_f64(),
            bench.sized_payload_len,
        ),
        rows,
        detail: format!("{}\n{cpu_table}", targets_table("iq/s", &summaries)),
        plots,
        not_measured: None,
    })
}

/// The processes whose CPU time P1 charges to each target, in [`SERVERS`] order.
pub(crate) const SERVERS: [&str; 4] = ["Prosody", "component", "keydir", "Postgres (all backends)"];

/// Reads the CPU time of the processes in [`SERVERS`].
pub(crate) fn server_probe(bench: &BenchStack) -> Result<Probe> {
    let postgres = postmaster(keyward_tests::postgres::Postgres::shared()?.port());
    let pids = [bench.stack.xmpp_pid(), bench.stack.pids().1, bench.keydir.pid(), postgres];
    Ok(Arc::new(move || {
        pids.iter().enumerate().map(|(i, pid)| pid.map_or(Duration::ZERO, |pid| process_cpu(pid, i == 3))).collect()
    }))
}

/// Where the CPU went: per answered IQ, each server process's CPU time and the bench's own.
fn cpu_per_iq(targets: &[IqTarget], tallies: &mut [Tally]) -> String {
    let mut out = format!(
        "CPU time per answered IQ (µs), over the measured slots:\n\n| target | {} | bench process |\n|---|",
        SERVERS.join(" | ")
    );
    out.push_str(&"---|".repeat(SERVERS.len() + 1));
    out.push('\n');
    for (target, tally) in targets.iter().zip(tallies.iter()) {
        let n = tally.latencies_us.len().max(1) as f64;
        let per = |d: &Duration| format!("{:.0}", d.as_secs_f64() * 1e6 / n);
        let cells: Vec<String> = tally.servers.iter().map(per).collect();
        let _ = writeln!(out, "| {} | {} | {} |", target.name, cells.join(" | "), per(&tally.cpu));
    }
    out
}

pub(crate) fn row(what: &str, unit: &'static str, keyward: f64, anchor: &str, value: f64, aim: Aim) -> Row {
    Row { what: what.into(), unit, keyward: Some(keyward), anchor: Some((anchor.into(), value)), aim }
}

fn row_opt(what: &str, keyward: Option<f64>, anchor: &str, value: Option<f64>, aim: Aim) -> Row {
    Row { what: what.into(), unit: "ms", keyward, anchor: value.map(|v| (anchor.into(), v)), aim }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_of_a_result_is_what_the_iq_holds() {
        assert_eq!(result_payload("<iq type='result' id='1'/>").as_deref(), Some(""));
        assert_eq!(result_payload("<iq id='1' type='result'><keys/></iq>").as_deref(), Some("<keys/>"));
        assert_eq!(result_payload("<iq type='error' id='1'><error/></iq>"), None);
    }

    #[test]
    fn lookups_go_round_the_other_accounts() {
        let users: Vec<String> = ["bench0", "bench1", "bench2"].map(String::from).to_vec();
        let looked: Vec<String> = (0..4).map(|id| keys_iq("keys.e", "e", &users, 0, id)).collect();
        assert_eq!(
            looked[0],
            "<iq type='get' id='0' to='keys.e'><keys xmlns='urn:keyward:0'><item jid='bench1@e'/></keys></iq>"
        );
        assert!(looked[1].contains("bench2@e") && looked[2].contains("bench1@e"));
        assert!(looked.iter().all(|iq| !iq.contains("bench0@e")));
    }
}
