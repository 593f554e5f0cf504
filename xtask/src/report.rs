//! The chaos report: per fault and per server figures as markdown and as a console summary, and which "musts" failed.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::chaos::{ServerRun, Timing};
use crate::load::{Op, OpKind};

/// The aim for the time from a part's return to serving again.
const RECOVERY_AIM: Duration = Duration::from_secs(2);

/// Requests around one outage.
struct Window {
    /// Requests started between the kill and serving again.
    total: usize,
    failed: usize,
    /// Failed requests started after serving again, before the next fault.
    failed_after: usize,
}

fn window(run: &ServerRun, index: usize) -> Window {
    let outage = &run.outages[index];
    let end = outage.serving.unwrap_or(outage.back);
    let next = run.outages.get(index + 1).map_or(Duration::MAX, |o| o.killed);
    let during: Vec<&Op> = run.record.ops.iter().filter(|op| op.start >= outage.killed && op.start <= end).collect();
    Window {
        total: during.len(),
        failed: during.iter().filter(|op| !op.ok).count(),
        failed_after: run.record.ops.iter().filter(|op| op.start > end && op.start < next && !op.ok).count(),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn mark(ok: bool) -> &'static str {
    if ok { "✅" } else { "❌" }
}

/// Every "must" that failed, one line each.
pub(crate) fn failed_musts(runs: &[ServerRun]) -> Vec<String> {
    let mut failed = Vec::new();
    for run in runs {
        let server = run.kind.name();
        for outage in &run.outages {
            if outage.serving.is_none() {
                failed.push(format!("{server}: never served again after the {} came back", outage.fault.name()));
            }
        }
        if run.component_exited {
            failed.push(format!("{server}: the component process exited by itself"));
        }
        if !run.audit.lost.is_empty() {
            failed.push(format!("{server}: {} published bundle(s) lost: {:?}", run.audit.lost.len(), run.audit.lost));
        }
        let missing = run.record.missing_notices();
        if !missing.is_empty() {
            failed.push(format!("{server}: {} revocation notice(s) never delivered: {missing:?}", missing.len()));
        }
    }
    failed
}

/// A few console lines about one server's run.
pub(crate) fn summary(run: &ServerRun) -> String {
    let record = &run.record;
    let failed = record.ops.iter().filter(|op| !op.ok).count();
    format!(
        "chaos: {}: {} requests ({failed} failed), {} bundles published ({} lost), {} revocations ({} notices missing), component exited: {}\n",
        run.kind.name(),
        record.ops.len(),
        record.published.len(),
        run.audit.lost.len(),
        record.revocations.len(),
        record.missing_notices().len(),
        run.component_exited,
    )
}

/// The whole markdown report.
pub(crate) fn markdown(runs: &[ServerRun], timing: &Timing, short: bool, took: Duration) -> String {
    let mut out = String::new();
    let mode = if short { "short (`--short`)" } else { "full" };
    let _ = writeln!(out, "# keyward chaos report\n");
    let _ = writeln!(
        out,
        "Run: {mode}, {} server(s), {:.0} s in all. Each fault: SIGKILL, down for {}, started again on the same \
         ports and data, then {} of load before the next one (first fault after {} of load).\n",
        runs.len(),
        took.as_secs_f64(),
        secs(timing.down),
        secs(timing.settle),
        secs(timing.warmup),
    );
    let _ = writeln!(
        out,
        "Load: 4 steady users with real client sessions, one request each per 300 ms (key lookups, sealed \
         messages to each other, a relay every tenth), a new account registered and published every second, and \
         an admin revocation every 3 s of an account some steady users looked up (they hold its key and must get \
         the notice). *Served again*: a probe client's key lookup through the XMPP server, the component, keydir \
         and Postgres is answered; timed from the part's return (listening again; Postgres: accepting connections).\n"
    );
    for run in runs {
        server_section(&mut out, run);
    }
    let failed = failed_musts(runs);
    let _ = writeln!(out, "## Verdict\n");
    if failed.is_empty() {
        let _ =
            writeln!(out, "Every must held: no bundle lost, no revocation notice lost, the component never exited.");
    }
    for line in failed {
        let _ = writeln!(out, "- ❌ {line}");
    }
    out
}

fn server_section(out: &mut String, run: &ServerRun) {
    let record = &run.record;
    let _ = writeln!(out, "## {} ({:.0} s)\n", run.kind.name(), run.duration.as_secs_f64());
    let _ = writeln!(
        out,
        "| fault | killed at | back after | requests failed during the outage | served again after the return (aim < 2 s) | failed after recovery | component process |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (index, outage) in run.outages.iter().enumerate() {
        let w = window(run, index);
        let recovery = match outage.recovery() {
            Some(d) => format!("{} {}", secs(d), if d < RECOVERY_AIM { "✅" } else { "⚠️" }),
            None => "never ❌".to_owned(),
        };
        let component = match (outage.fault, outage.component_exited) {
            (crate::fault::Fault::Component, false) => "killed by us; back ✅",
            (_, false) => "never exited ✅",
            (_, true) => "exited ❌",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} of {} | {recovery} | {} | {component} |",
            outage.fault.name(),
            secs(outage.killed),
            secs(outage.back - outage.killed),
            w.failed,
            w.total,
            w.failed_after,
        );
    }
    let _ = writeln!(out);
    let mut by_kind: BTreeMap<OpKind, (usize, usize)> = BTreeMap::new();
    for op in &record.ops {
        let entry = by_kind.entry(op.kind).or_default();
        entry.0 += 1;
        entry.1 += usize::from(!op.ok);
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, (n, f))| format!("{k:?} {n} ({f} failed)")).collect();
    let _ = writeln!(out, "- Requests: {}.", kinds.join(", "));
    let _ = writeln!(
        out,
        "- Bundles: {} published, {} checked afterwards, {} lost {}.",
        record.published.len(),
        run.audit.checked,
        run.audit.lost.len(),
        mark(run.audit.lost.is_empty()),
    );
    for (jid, what) in &run.audit.lost {
        let _ = writeln!(out, "  - {jid}: {what}");
    }
    let expected: usize = record.revocations.iter().map(|r| r.holders.len()).sum();
    let missing = record.missing_notices();
    let _ = writeln!(
        out,
        "- Revocations: {} confirmed, {expected} notices owed to holders, {} never delivered {}; the slowest \
         arrived {} after its revocation; the last {} after the load stopped.",
        record.revocations.len(),
        missing.len(),
        mark(missing.is_empty()),
        record.slowest_notice().map_or("-".to_owned(), secs),
        secs(run.drain),
    );
    for (holder, revoked) in &missing {
        let at = record.revocations.iter().find(|r| &r.jid == revoked).map_or(Duration::ZERO, |r| r.at);
        let _ = writeln!(out, "  - {holder} never heard that {revoked} was revoked (at {})", secs(at));
    }
    for diagnosis in &record.diagnosis {
        let _ = writeln!(out, "  - {diagnosis}");
    }
    if !record.learned_by_lookup.is_empty() {
        let _ = writeln!(
            out,
            "  - {} holder(s) learned a revocation from their own lookup, racing it, before the notice came.",
            record.learned_by_lookup.len()
        );
    }
    let delivered = record.sent.intersection(&record.received).count();
    let _ = writeln!(
        out,
        "- Messages: {} sent, {delivered} received (not a must: a crash may drop one in flight).",
        record.sent.len()
    );
    let _ = writeln!(out, "- Stanzas refused or bounced at the clients: {}.", record.rejected.len());
    let _ =
        writeln!(out, "- Component process: {}.\n", if run.component_exited { "exited ❌" } else { "never exited ✅" });
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for op in record.ops.iter().filter(|op| !op.ok) {
        let text = op.error.clone().unwrap_or_default();
        *errors.entry(format!("{:?}: {}", op.kind, text.chars().take(160).collect::<String>())).or_default() += 1;
    }
    if !errors.is_empty() {
        let _ = writeln!(out, "<details><summary>Errors seen ({} distinct)</summary>\n", errors.len());
        for (text, count) in errors.iter().take(30) {
            let _ = writeln!(out, "- {count}× {text}");
        }
        for text in record.rejected.iter().take(10) {
            let _ = writeln!(out, "- refused: {text}");
        }
        let _ = writeln!(out, "\n</details>\n");
    }
}
