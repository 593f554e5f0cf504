//! P8's figures (times by round, sizes) and the report section made of them.

use std::fmt::Write;
use std::time::Duration;

use super::p7_restore::median;
use super::p8_directories::CACHE_BYTES;
use super::p8_transparency::{COLD_LOOKUPS, LOOKUPS, TITLE};
use super::report::{Row, Section, figure};
use super::stats::Aim;

/// Times of one kind of operation, each round's kept apart for the spread.
#[derive(Debug, Default)]
pub(crate) struct Times(Vec<Vec<f64>>);

impl Times {
    pub(crate) fn round(&mut self) -> &mut Vec<f64> {
        self.0.push(Vec::new());
        self.0.last_mut().expect("just pushed")
    }
    pub(crate) fn median(&self) -> Option<f64> {
        median(&self.0.concat())
    }
    /// The lowest and highest of the rounds' medians.
    fn spread(&self) -> String {
        let medians: Vec<f64> = self.0.iter().filter_map(|r| median(r)).collect();
        let low = medians.iter().copied().reduce(f64::min);
        let high = medians.iter().copied().reduce(f64::max);
        match (low, high) {
            (Some(l), Some(h)) => format!("{} to {}", figure(l), figure(h)),
            _ => "—".into(),
        }
    }
    fn count(&self) -> usize {
        self.0.iter().map(Vec::len).sum()
    }
}

/// Epochs of one size: on Postgres, in memory, and the rows anchor.
#[derive(Debug, Default)]
pub(crate) struct Epochs {
    pub(crate) size: u64,
    /// Whether its updates are new accounts (more updates than accounts) rather than rotations.
    pub(crate) fresh: bool,
    pub(crate) pg: Times,
    pub(crate) memory: Times,
    pub(crate) rows: Times,
    pub(crate) accounts: (u64, u64),
    /// Epochs whose root hash on Postgres differed from the one in memory.
    pub(crate) disagreements: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Figures {
    pub(crate) accounts: u64,
    pub(crate) seed_secs: (f64, f64),
    pub(crate) epochs: Vec<Epochs>,
    pub(crate) lookups: Times,
    pub(crate) cold: Times,
    pub(crate) memory_lookups: Times,
    pub(crate) selects: Times,
    pub(crate) verifies: Times,
    pub(crate) ed25519: Times,
    pub(crate) proof_bytes: Vec<f64>,
    pub(crate) bundle_bytes: usize,
}

pub(crate) fn section(f: &Figures, took: Duration) -> Section {
    type Spec<'a> = (String, &'static str, Option<f64>, &'a str, Option<f64>, Aim);
    let select = "SELECT of the bundle row by JID";
    let mut specs: Vec<Spec> = Vec::new();
    for e in &f.epochs {
        let kind = if e.fresh { "new accounts" } else { "key rotations" };
        let what = format!("publish an epoch of {} update(s) ({kind}) on Postgres, median", e.size);
        let pg = e.pg.median();
        specs.push((what.clone(), "ms", pg, "the same epoch in akd's memory storage", e.memory.median(), Aim::None));
        specs.push((what, "ms", pg, "as many bundle rows upserted in one transaction", e.rows.median(), Aim::None));
    }
    let (proof, bundle) = (median(&f.proof_bytes), Some(f.bundle_bytes as f64));
    specs.extend([
        (
            format!("lookup proof at {} accounts (protobuf), median", f.accounts),
            "B",
            proof,
            "the bundle's XML",
            bundle,
            Aim::None,
        ),
        (
            "client `lookup_verify` of one proof, median".into(),
            "ms",
            f.verifies.median(),
            "one Ed25519 bundle check (`Bundle::verify`)",
            f.ed25519.median(),
            Aim::AtMost(2.0),
        ),
        (
            "lookup proof generated on Postgres (cached), median".into(),
            "ms",
            f.lookups.median(),
            select,
            f.selects.median(),
            Aim::RatioAtMost(2.0),
        ),
        (
            "lookup proof generated on Postgres (cached), median".into(),
            "ms",
            f.lookups.median(),
            "the same lookup in akd's memory storage",
            f.memory_lookups.median(),
            Aim::None,
        ),
        (
            "lookup proof generated on Postgres, no cache, median".into(),
            "ms",
            f.cold.median(),
            select,
            f.selects.median(),
            Aim::None,
        ),
    ]);
    let rows = specs
        .into_iter()
        .map(|(what, unit, keyward, anchor, value, aim)| Row {
            what,
            unit,
            keyward,
            anchor: value.map(|v| (anchor.to_owned(), v)),
            aim,
        })
        .collect();
    Section {
        id: "P8",
        title: TITLE,
        method: method(f, took),
        rows,
        detail: detail(f),
        plots: Vec::new(),
        not_measured: None,
    }
}

fn method(f: &Figures, took: Duration) -> String {
    format!(
        "In the bench's own process ({}), on a fresh database of the bench's throwaway Postgres (`fsync` and \
         `synchronous_commit` off) with keydir's migrations applied. {} accounts (labels `userN@bench.example.test`, \
         33-byte values shaped like keyward's commitment `0x01 || SHA-256`) are published into akd 0.13 \
         (`ExperimentalConfiguration`, akd's hard-coded VRF key) twice, in epochs of at most 10,000: over `PgDatabase` \
         behind akd's `StorageManager` with a {} MiB cache ({:.1} s), and over akd's `AsyncInMemoryDatabase` ({:.1} \
         s); and as rows of keydir's `accounts` and `bundles` tables (copies of one real signed bundle). **Lookups**: \
         {} rounds of {LOOKUPS} lookup proofs of member labels from the cached directory, {COLD_LOOKUPS} from a second \
         directory over the same tables with no cache and {LOOKUPS} from the directory in memory, alternating with \
         {LOOKUPS} SELECTs of the same accounts' bundle rows by JID (keydir's lookup without transparency); each \
         operation timed alone. The proofs' size is their protobuf encoding (`akd::proto`). **Client check**: the last \
         round's proofs each verified by `akd::client::lookup_verify` (a clone of the proof made before the clock \
         starts), alternating by rounds with `Bundle::verify` of a bundle (one Ed25519 check, what the client does per \
         key today). **Epochs**: for each size, epochs timed on Postgres, in memory and as the rows anchor (each \
         update's bundle row upserted, a new account's `accounts` row first, one statement each, one transaction), \
         their order reversed every round. An epoch's updates are new values of existing accounts (key rotations, \
         round robin), or, for a size larger than the directory it started from, new accounts (first publishes), which \
         grow the directory (see below). The whole part took {:.0} s.",
        if cfg!(debug_assertions) {
            "xtask's debug build, with akd, akd_core, blake3, keyward-transparency, sqlx-core, sqlx-postgres and the \
             curve and hash crates optimised but tokio not: absolute times are higher than in a release build, which \
             `--release --only P8` runs"
        } else {
            "a release build of xtask"
        },
        f.accounts,
        CACHE_BYTES >> 20,
        f.seed_secs.0,
        f.seed_secs.1,
        f.lookups.0.len(),
        took.as_secs_f64(),
    )
}

fn detail(f: &Figures) -> String {
    let mut out = String::from(
        "Each figure: operations timed, their median, and the lowest to the highest of the rounds' medians (an \
         epoch is a round of its own).\n\n\
         | operation | timed | median | rounds' medians |\n|---|---|---|---|\n",
    );
    let mut line = |name: String, t: &Times, unit: &str| {
        let cell = t.median().map_or("—".into(), |m| format!("{} {unit}", figure(m)));
        let _ = writeln!(out, "| {name} | {} | {cell} | {} {unit} |", t.count(), t.spread());
    };
    line("lookup proof, cached".into(), &f.lookups, "ms");
    line("lookup proof, no cache".into(), &f.cold, "ms");
    line("lookup proof, in memory".into(), &f.memory_lookups, "ms");
    line("SELECT of a bundle row".into(), &f.selects, "ms");
    line("`lookup_verify`".into(), &f.verifies, "ms");
    line("`Bundle::verify` (Ed25519)".into(), &f.ed25519, "ms");
    for e in &f.epochs {
        line(format!("epoch of {} on Postgres", e.size), &e.pg, "ms");
        line(format!("epoch of {} in memory", e.size), &e.memory, "ms");
        line(format!("{} bundle rows in one transaction", e.size), &e.rows, "ms");
    }
    let bytes = |pick: fn(f64, f64) -> f64| f.proof_bytes.iter().copied().reduce(pick).map_or("—".into(), figure);
    let _ = writeln!(
        out,
        "\nLookup proofs: {} encoded, {} to {} bytes.",
        f.proof_bytes.len(),
        bytes(f64::min),
        bytes(f64::max)
    );
    for e in &f.epochs {
        let _ = writeln!(
            out,
            "Epochs of {} ({}): the directory held {} accounts before and {} after; root hashes on Postgres and in \
             memory {}.",
            e.size,
            if e.fresh { "new accounts" } else { "key rotations" },
            e.accounts.0,
            e.accounts.1,
            if e.disagreements == 0 {
                "equal in every epoch".to_owned()
            } else {
                format!("differ in {} epochs", e.disagreements)
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_report_medians_and_the_spread_of_rounds() {
        let mut t = Times::default();
        t.round().extend([1.0, 2.0, 3.0]);
        t.round().extend([5.0, 6.0]);
        assert_eq!(t.median(), Some(3.0));
        assert_eq!(t.count(), 5);
        assert_eq!(t.spread(), "2.00 to 5.50");
        assert_eq!(Times::default().spread(), "—");
    }

    #[test]
    fn the_section_compares_each_figure_with_its_anchor() {
        let mut f = Figures { accounts: 1_000, bundle_bytes: 359, proof_bytes: vec![4000.0], ..Figures::default() };
        f.verifies.round().push(0.7);
        f.ed25519.round().push(0.05);
        f.lookups.round().push(1.5);
        f.selects.round().push(1.0);
        let s = section(&f, Duration::from_secs(1));
        let verify = s.rows.iter().find(|r| r.what.contains("lookup_verify")).expect("a verify row");
        assert_eq!((verify.keyward, verify.anchor.as_ref().map(|a| a.1)), (Some(0.7), Some(0.05)));
        // Verify under 2 ms met; a proof within 2x of a SELECT met; the uncached row has no aim.
        assert_eq!(s.verdicts(), (2, 0));
        assert!(s.rows.iter().any(|r| r.unit == "B" && r.keyward == Some(4000.0)));
    }
}
