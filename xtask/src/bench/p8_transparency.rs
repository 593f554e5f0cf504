//! P8: the cost of key transparency: akd's epochs, lookup proofs and their client check on Postgres, against akd in memory, keydir's plain rows and one Ed25519 check.
//!
//! One directory of N accounts is built three times in the same database run: akd over
//! `PgDatabase` behind akd's size-limited cache (as keydir will run it), akd over its own
//! in-memory storage, and keydir's `bundles` table. Each figure alternates with its anchor,
//! round after round, and reports the median of every operation and the spread of the rounds.

use std::time::{Duration, Instant};

use akd::{AkdLabel, EpochHash, LookupProof};
use anyhow::{Context, Result, bail};
use keyward_client::keyward_proto::XmlElement;
use keyward_transparency::akd;
use protobuf::Message;

use super::p8_directories::{Config, Directories, jid};
use super::p8_report::{Epochs, Figures, section};
use super::report::Section;

/// The part's title in the report.
pub(crate) const TITLE: &str = "the cost of key transparency (akd's map on Postgres)";
/// Accounts in the directory unless `--transparency-accounts` says otherwise.
pub(crate) const ACCOUNTS: u64 = 1_000;
/// Updates per published epoch, and how many epochs of each are timed (full run, quick run).
const EPOCHS: [(u64, usize, usize); 3] = [(1, 15, 3), (100, 9, 3), (10_000, 3, 1)];
/// Lookups (and anchor SELECTs) per round, uncached lookups per round, and rounds (full, quick).
pub(crate) const LOOKUPS: usize = 100;
pub(crate) const COLD_LOOKUPS: usize = 20;
const ROUNDS: (usize, usize) = (5, 2);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// akd's lookup proof as it travels: its protobuf encoding.
fn encoded_len(proof: &LookupProof) -> Result<usize> {
    Ok(akd::proto::specs::types::LookupProof::from(proof).write_to_bytes()?.len())
}

/// Lookups with proofs (cached, uncached, in memory) against SELECTs of the same accounts; returns the
/// last round's proofs.
async fn lookups(dirs: &Directories, rounds: usize, f: &mut Figures) -> Result<Vec<(String, LookupProof, EpochHash)>> {
    let mut proofs = Vec::new();
    for round in 0..rounds {
        let labels: Vec<String> =
            (0..LOOKUPS as u64).map(|i| jid((round as u64 * 7_919 + i * 104_729) % dirs.accounts)).collect();
        let (warm, cold, selects) = (f.lookups.round(), f.cold.round(), f.selects.round());
        let memory = f.memory_lookups.round();
        proofs.clear();
        for proof_first in [round.is_multiple_of(2), !round.is_multiple_of(2)] {
            if proof_first {
                for label in &labels {
                    let (proof, hash, took) = dirs.lookup(label, false).await?;
                    warm.push(ms(took));
                    proofs.push((label.clone(), proof, hash));
                }
                for label in labels.iter().take(COLD_LOOKUPS) {
                    cold.push(ms(dirs.lookup(label, true).await?.2));
                }
                for label in &labels {
                    memory.push(ms(dirs.lookup_memory(label).await?));
                }
            } else {
                for label in &labels {
                    selects.push(ms(dirs.select_bundle(label).await?));
                }
            }
        }
    }
    Ok(proofs)
}

/// The client's check of each proof against one Ed25519 check of a bundle, alternating.
fn verifies(
    dirs: &Directories,
    vrf: &[u8],
    proofs: &[(String, LookupProof, EpochHash)],
    rounds: usize,
    f: &mut Figures,
) -> Result<()> {
    let bundle = dirs.bundle.bundle();
    for round in 0..rounds {
        let (verifies, ed25519) = (f.verifies.round(), f.ed25519.round());
        for proof_first in [round.is_multiple_of(2), !round.is_multiple_of(2)] {
            for (label, proof, at) in proofs {
                if proof_first {
                    let proof = proof.clone();
                    let start = Instant::now();
                    let result = akd::client::lookup_verify::<Config>(
                        vrf,
                        at.hash(),
                        at.epoch(),
                        AkdLabel::from(label.as_str()),
                        proof,
                    );
                    verifies.push(ms(start.elapsed()));
                    result.map_err(|err| anyhow::anyhow!("the lookup proof of {label} does not verify: {err:?}"))?;
                } else {
                    let start = Instant::now();
                    let result = bundle.verify();
                    ed25519.push(ms(start.elapsed()));
                    result.context("the model bundle does not verify")?;
                }
            }
        }
    }
    Ok(())
}

/// Epochs of each size into the directory, each against the same epoch in memory and the rows anchor.
async fn epochs(dirs: &mut Directories, quick: bool, f: &mut Figures) -> Result<()> {
    let accounts = f.accounts;
    for (size, full, short) in EPOCHS {
        let rounds = if quick { short } else { full };
        println!("bench: P8: {rounds} epochs of {size} update(s) …");
        // Rotations of existing accounts, unless there are fewer accounts than updates.
        let fresh = size > accounts;
        let mut e = Epochs { size, fresh, accounts: (dirs.accounts, 0), ..Epochs::default() };
        for round in 0..rounds {
            let updates = dirs.updates(size, fresh);
            let (mut pg_hash, mut memory_hash) = (None, None);
            // Postgres, memory, rows; then rows, memory, Postgres.
            let order = if round.is_multiple_of(2) { [0, 1, 2] } else { [2, 1, 0] };
            for step in order {
                if step == 0 {
                    let (hash, took) = dirs.publish_pg(updates.clone()).await?;
                    e.pg.round().push(ms(took));
                    pg_hash = Some(hash);
                } else if step == 1 {
                    let (hash, took) = dirs.publish_memory(updates.clone()).await?;
                    e.memory.round().push(ms(took));
                    memory_hash = Some(hash);
                } else {
                    e.rows.round().push(ms(dirs.insert_rows(&updates).await?));
                }
            }
            e.disagreements += usize::from(pg_hash != memory_hash);
        }
        e.accounts.1 = dirs.accounts;
        f.epochs.push(e);
    }
    Ok(())
}

/// `cargo xtask bench --release --only <parts>` (P8, P9) again from a release build of xtask (built first).
pub(crate) fn in_release_build(quick: bool, parts: &str, accounts: Option<u64>) -> Result<()> {
    let mut command = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(crate::repo_root()).args(["run", "--quiet", "--release", "--package", "xtask", "--"]);
    command.args(["bench", "--release", "--only", parts]);
    if quick {
        command.arg("--quick");
    }
    if let Some(n) = accounts {
        command.args(["--transparency-accounts", &n.to_string()]);
    }
    println!("bench: {parts} in a release build of xtask: {command:?}");
    crate::install::run(&mut command)
}

/// Runs P8 on a directory of `accounts` accounts (a quick run times fewer rounds).
pub(crate) async fn run(quick: bool, accounts: u64) -> Result<Section> {
    if accounts == 0 {
        bail!("P8 needs at least one account");
    }
    let started = Instant::now();
    println!("bench: P8: {accounts} accounts into akd on Postgres, akd in memory and keydir's bundles table …");
    let mut dirs = Directories::start(accounts).await?;
    let mut f = Figures { accounts, seed_secs: dirs.seed_secs, ..Figures::default() };
    let rounds = if quick { ROUNDS.1 } else { ROUNDS.0 };
    println!("bench: P8: lookups …");
    let proofs = lookups(&dirs, rounds, &mut f).await?;
    for (_, proof, _) in &proofs {
        f.proof_bytes.push(encoded_len(proof)? as f64);
    }
    f.bundle_bytes = dirs.bundle.to_xml().len();
    let vrf = dirs.vrf_key().await?;
    verifies(&dirs, &vrf, &proofs, rounds, &mut f)?;
    epochs(&mut dirs, quick, &mut f).await?;
    dirs.pool.close().await;
    Ok(section(&f, started.elapsed()))
}
