//! The bench report: one markdown table per measurement (keyward, the anchor measured in the same run, the ratio, the aim, met or not).

use std::fmt::Write;

use super::stats::{Aim, Summary, ratio};

/// One compared figure.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) what: String,
    pub(crate) unit: &'static str,
    pub(crate) keyward: Option<f64>,
    /// The anchor's name and figure, measured in the same run (none for an absolute aim).
    pub(crate) anchor: Option<(String, f64)>,
    pub(crate) aim: Aim,
}

/// One measurement (P1 to P8).
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    /// What exactly was measured, and how.
    pub(crate) method: String,
    pub(crate) rows: Vec<Row>,
    /// More markdown: per-target figures, notes.
    pub(crate) detail: String,
    /// SVG plots beside the report (file names).
    pub(crate) plots: Vec<String>,
    /// Why there are no figures, when there are none.
    pub(crate) not_measured: Option<String>,
}

impl Section {
    /// A measurement this run did not make.
    pub(crate) fn not_measured(id: &'static str, title: &'static str, why: &str) -> Self {
        Section {
            id,
            title,
            method: String::new(),
            rows: Vec::new(),
            detail: String::new(),
            plots: Vec::new(),
            not_measured: Some(why.to_owned()),
        }
    }

    /// The aims this section met and missed: (met, missed).
    pub(crate) fn verdicts(&self) -> (usize, usize) {
        let verdicts: Vec<bool> =
            self.rows.iter().filter_map(|r| r.aim.met(r.keyward, r.anchor.as_ref().map(|a| a.1))).collect();
        (verdicts.iter().filter(|v| **v).count(), verdicts.iter().filter(|v| !**v).count())
    }
}

/// A figure with a sensible number of digits.
pub(crate) fn figure(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        v if v >= 1.0 => format!("{value:.2}"),
        _ => format!("{value:.3}"),
    }
}

fn cell(value: Option<f64>, unit: &str) -> String {
    value.map_or("—".to_owned(), |v| if unit.is_empty() { figure(v) } else { format!("{} {unit}", figure(v)) })
}

/// The markdown table of one section.
pub(crate) fn table(section: &Section) -> String {
    let mut out =
        String::from("| figure | keyward | anchor (same run) | ratio | aim | met |\n|---|---|---|---|---|---|\n");
    for row in &section.rows {
        let anchor_value = row.anchor.as_ref().map(|a| a.1);
        let anchor =
            row.anchor.as_ref().map_or("—".to_owned(), |(name, v)| format!("{name}: {}", cell(Some(*v), row.unit)));
        let ratio = match (row.keyward, anchor_value) {
            (Some(k), Some(a)) => ratio(k, a).map_or("—".to_owned(), |r| format!("{r:.2}x")),
            _ => "—".to_owned(),
        };
        let met = match row.aim.met(row.keyward, anchor_value) {
            Some(true) => "✅ met",
            Some(false) => "❌ not met",
            None => "—",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {anchor} | {ratio} | {} | {met} |",
            row.what,
            cell(row.keyward, row.unit),
            row.aim.text(row.unit)
        );
    }
    out
}

/// Per-target figures of a load: throughput, percentiles, errors and the load generator's CPU.
pub(crate) fn targets_table(unit: &str, targets: &[(String, Summary)]) -> String {
    let mut out = format!(
        "| target | answered | {unit} | p50 | p99 | errors | load generator CPU |\n|---|---|---|---|---|---|---|\n"
    );
    for (name, s) in targets {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {:.0}% of a core |",
            s.count,
            figure(s.per_sec),
            cell(s.p50_ms, "ms"),
            cell(s.p99_ms, "ms"),
            s.errors,
            s.cpu_share * 100.0
        );
    }
    out
}

/// The whole report.
pub(crate) fn markdown(preamble: &str, sections: &[Section]) -> String {
    let mut out = String::from("# keyward bench report\n\n");
    out.push_str(preamble);
    out.push_str("\n## Summary\n\n| part | measurement | aims met | aims not met |\n|---|---|---|---|\n");
    for s in sections {
        let (met, missed) = s.verdicts();
        let status = if s.not_measured.is_some() { "not measured yet".to_owned() } else { met.to_string() };
        let _ = writeln!(
            out,
            "| {} | {} | {status} | {} |",
            s.id,
            s.title,
            if s.not_measured.is_some() { "—".into() } else { missed.to_string() }
        );
    }
    for s in sections {
        let _ = writeln!(out, "\n## {}: {}\n", s.id, s.title);
        if let Some(why) = &s.not_measured {
            let _ = writeln!(out, "Not measured yet: {why}");
            continue;
        }
        let _ = writeln!(out, "{}\n", s.method.trim());
        out.push_str(&table(s));
        if !s.detail.trim().is_empty() {
            let _ = writeln!(out, "\n{}", s.detail.trim());
        }
        for plot in &s.plots {
            let _ = writeln!(out, "\n![{} {plot}]({plot})", s.id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> Section {
        Section {
            id: "P1",
            title: "lookups",
            method: "Interleaved slots.".into(),
            rows: vec![
                Row {
                    what: "throughput".into(),
                    unit: "iq/s",
                    keyward: Some(950.0),
                    anchor: Some(("null component".into(), 1000.0)),
                    aim: Aim::RatioAtLeast(0.9),
                },
                Row {
                    what: "p99".into(),
                    unit: "ms",
                    keyward: Some(13.0),
                    anchor: Some(("null component".into(), 10.0)),
                    aim: Aim::RatioAtMost(1.2),
                },
                Row { what: "RSS".into(), unit: "MiB", keyward: Some(20.5), anchor: None, aim: Aim::AtMost(32.0) },
                Row { what: "missing".into(), unit: "ms", keyward: None, anchor: None, aim: Aim::None },
            ],
            detail: String::new(),
            plots: vec!["p1.svg".into()],
            not_measured: None,
        }
    }

    #[test]
    fn table_rows_carry_ratio_aim_and_verdict() {
        let text = table(&section());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "| throughput | 950 iq/s | null component: 1000 iq/s | 0.95x | ≥ 0.9x | ✅ met |");
        assert_eq!(lines[3], "| p99 | 13.0 ms | null component: 10.0 ms | 1.30x | ≤ 1.2x | ❌ not met |");
        assert_eq!(lines[4], "| RSS | 20.5 MiB | — | — | ≤ 32 MiB | ✅ met |");
        assert_eq!(lines[5], "| missing | — | — | — | — | — |");
        assert_eq!(section().verdicts(), (2, 1));
    }

    #[test]
    fn report_lists_every_part_and_what_was_not_measured() {
        let sections = [section(), Section::not_measured("P4", "revocation fan-out", "needs 10,000 accounts.")];
        let text = markdown("Run: quick.\n", &sections);
        assert!(text.starts_with("# keyward bench report\n\nRun: quick.\n"));
        assert!(text.contains("| P1 | lookups | 2 | 1 |"));
        assert!(text.contains("| P4 | revocation fan-out | not measured yet | — |"));
        assert!(text.contains("## P4: revocation fan-out\n\nNot measured yet: needs 10,000 accounts."));
        assert!(text.contains("![P1 p1.svg](p1.svg)"));
    }

    #[test]
    fn figures_keep_a_few_digits() {
        assert_eq!(figure(12345.678), "12346");
        assert_eq!(figure(12.345), "12.3");
        assert_eq!(figure(1.2345), "1.23");
        assert_eq!(figure(0.012345), "0.012");
    }
}
