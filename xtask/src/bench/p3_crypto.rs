//! P3: the client's seal and open against the raw primitives they are built from, folded in from the criterion benches of `keyward-proto`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::report::{Row, Section};
use super::stats::Aim;

/// The labels of the `message` group of `proto/benches/crypto.rs` (criterion's folder names).
const LABELS: [&str; 6] = ["1rcpt_100B", "1rcpt_10240B", "2rcpt_100B", "2rcpt_10240B", "10rcpt_100B", "10rcpt_10240B"];

/// The median (ns) of criterion's `estimates.json`.
pub(crate) fn median_ns(estimates: &str) -> Option<f64> {
    let value: serde_json::Value = serde_json::from_str(estimates).ok()?;
    value.get("median")?.get("point_estimate")?.as_f64()
}

fn read(criterion: &Path, function: &str, label: &str) -> Option<f64> {
    let path = criterion.join("message").join(function).join(label).join("new/estimates.json");
    median_ns(&std::fs::read_to_string(path).ok()?)
}

/// Runs `cargo bench -p keyward-proto --bench crypto -- --quick message` and reads its figures.
pub(crate) fn run(quick: bool) -> Result<Section> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.current_dir(crate::repo_root()).args([
        "bench",
        "-p",
        "keyward-proto",
        "--bench",
        "crypto",
        "--",
        "--quick",
    ]);
    if quick {
        command.args(["--warm-up-time", "1", "--measurement-time", "2"]);
    }
    command.arg("message/");
    println!("bench: P3: {command:?}");
    let started = Instant::now();
    let status = command.status().context("running cargo bench")?;
    if !status.success() {
        bail!("cargo bench -p keyward-proto failed: {status}");
    }
    let took = started.elapsed();
    let criterion = crate::stack::debug_dir().parent().map(|t| t.join("criterion")).context("no target folder")?;
    let mut rows = Vec::new();
    for (op, raw) in [("seal", "raw_seal"), ("open", "raw_open")] {
        for label in LABELS {
            let (k, a) = (read(&criterion, op, label), read(&criterion, raw, label));
            let to_us = |ns: Option<f64>| ns.map(|ns| ns / 1000.0);
            rows.push(Row {
                what: format!("{op} {}", label.replace('_', " ")),
                unit: "µs",
                keyward: to_us(k),
                anchor: to_us(a).map(|a| (raw.to_owned(), a)),
                aim: Aim::RatioAtMost(1.15),
            });
        }
    }
    if rows.iter().all(|r| r.keyward.is_none()) {
        bail!("no criterion estimates under {}", criterion.display());
    }
    Ok(Section {
        id: "P3",
        title: "client seal and open against the raw primitives",
        method: format!(
            "criterion's median time of `Sealed::seal` (plus `to_xml`) and of `Sealed::parse` plus `open` (with a replay \
             cache), against the sum of the primitives they use in the same bench binary (`raw_seal`: one Ed25519 \
             signature, one XSalsa20-Poly1305 of the body, one X25519 public key (the ephemeral one), per recipient \
             (and the sender's own copy) one X25519, one HKDF and one AEAD of the 32-byte key; `raw_open`: one \
             X25519, one HKDF, the AEAD of the 32-byte key and of the body, one Ed25519 verification), \
             from `proto/benches/crypto.rs` (`cargo bench -p keyward-proto --bench crypto -- --quick{}`; bench \
             profile, took {:.0} s including the build). \"n rcpt\" = n recipients besides the sender's own copy.",
            if quick { " --warm-up-time 1 --measurement-time 2" } else { "" },
            took.as_secs_f64()
        ),
        rows,
        detail: String::new(),
        plots: Vec::new(),
        not_measured: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterions_median() {
        let json = r#"{"mean":{"point_estimate":1500.0},"median":{"confidence_interval":{"lower_bound":1.0},"point_estimate":1234.5}}"#;
        assert_eq!(median_ns(json), Some(1234.5));
        assert_eq!(median_ns("{}"), None);
        assert_eq!(median_ns("not json"), None);
    }
}
