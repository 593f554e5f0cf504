//! P7: the guess-limited restore (blinding, the OPRF round trip through the component and keydir, unblinding, the restore proof) against Argon2id alone, both with the default KDF parameters.
//!
//! One account completes first use on the bench's stack with [`KdfParams::DEFAULT`], so the
//! directory holds its bundle and a version 1 blob. The keyward side then restores from that
//! blob exactly as the client's `restore::open` does, over a raw c2s session; the anchor opens
//! a version 0 blob of the same keys, JID and passphrase sealed with the same parameters: what
//! a restore cost before the OPRF. The two alternate, round after round.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keyward_client::keyward_proto::elements::{OprfQuery, OprfResult, RestoreProof};
use keyward_client::keyward_proto::restore::{AnySecret, SecretV1, blind, finalize};
use keyward_client::keyward_proto::{BareJid, KdfParams, KdfPolicy, KeyPair, SecretBlob, VerifiedBundle, XmlElement};
use secrecy::{ExposeSecret, SecretString};

use super::Plan;
use super::loadgen::{Probe, Session};
use super::p1_lookups::{SERVERS, result_payload, server_probe};
use super::report::{Row, Section, figure};
use super::setup::{BenchStack, password};
use super::stats::Aim;

/// The part's title in the report.
pub(crate) const TITLE: &str = "the added cost of a guess-limited restore";
/// The account P7 restores (not one of the load's accounts).
const LOCAL: &str = "restore0";
/// The parameters of both blobs: what first use seals with unless told otherwise.
const PARAMS: KdfParams = KdfParams::DEFAULT;
/// The most one IQ, or one first use, may take.
const TIMEOUT: Duration = Duration::from_secs(60);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median of `values`; `None` when there are none.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) { (sorted[mid - 1] + sorted[mid]) / 2.0 } else { sorted[mid] })
}

/// The first 300 characters of an answer, for an error message.
fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}

/// One version 1 restore, each step's time (ms) from the start of the previous one.
#[derive(Debug, Clone, Copy, Default)]
struct Steps {
    blind: f64,
    /// The `oprf` get: Prosody → component → keydir (the guess counted and committed) and back.
    oprf: f64,
    /// Parsing the answer and unblinding it.
    finalize: f64,
    /// Argon2id, HKDF, the passphrase slot and the keys (on a blocking thread, as the client does).
    open: f64,
    /// Signing keydir's challenge and the `restore-proof` set (keydir verifies, clears the count).
    proof: f64,
    total: f64,
}

impl Steps {
    /// Everything a version 0 restore did not do: the total without the open.
    fn exchange(&self) -> f64 {
        self.total - self.open
    }
}

/// The restoring device: a bound c2s session of the account, its blob and what it must open to.
struct Device {
    session: Session,
    component: String,
    jid: BareJid,
    passphrase: SecretString,
    blob: Arc<SecretV1>,
    bundle: VerifiedBundle,
    next_id: u64,
}

impl Device {
    fn id(&mut self, what: &str) -> String {
        self.next_id += 1;
        format!("p7-{what}-{}", self.next_id)
    }

    /// Keys that are not the published ones are an error (the client's `check_matches`).
    fn check(&self, keys: &KeyPair, what: &str) -> Result<()> {
        if keys.identity_public() != *self.bundle.identity_key()
            || keys.encryption_public() != *self.bundle.encryption_key()
        {
            bail!("{what} opened keys that are not the ones {} published", self.jid);
        }
        Ok(())
    }

    /// One IQ to the component; its result's payload, or an error quoting the answer.
    async fn iq(&mut self, kind: &str, what: &str, payload: &str) -> Result<String> {
        let id = self.id(what);
        let iq = format!("<iq type='{kind}' id='{id}' to='{}'>{payload}</iq>", self.component);
        let answer = tokio::time::timeout(TIMEOUT, self.session.ask_id(&iq, &id))
            .await
            .with_context(|| format!("no answer to the {what} IQ within {TIMEOUT:?}"))?
            .with_context(|| format!("sending the {what} IQ"))?;
        result_payload(&answer).with_context(|| format!("the component refused the {what} IQ: {}", clip(&answer)))
    }

    /// The full version 1 restore: blind, `oprf` get, finalize, open, sign, `restore-proof` set.
    async fn restore(&mut self) -> Result<(Steps, KeyPair)> {
        let start = Instant::now();
        let (state, blinded) = blind(self.passphrase.expose_secret().as_bytes()).context("blinding the passphrase")?;
        let blind_done = start.elapsed();
        let answer = self.iq("get", "oprf", &OprfQuery { blinded }.to_xml()).await?;
        let oprf_done = start.elapsed();
        let result = OprfResult::parse(answer.as_bytes())
            .with_context(|| format!("the component's OPRF answer is unreadable: {}", clip(&answer)))?;
        let output = finalize(state, &result.evaluated).context("unblinding keydir's answer")?;
        let finalize_done = start.elapsed();
        let (blob, passphrase, jid) = (self.blob.clone(), self.passphrase.clone(), self.jid.clone());
        let opened = tokio::task::spawn_blocking(move || {
            blob.open_with_passphrase(passphrase.expose_secret().as_bytes(), &output, &jid, &KdfPolicy::STRICT)
        })
        .await
        .context("the Argon2id task failed")?
        .context("opening the version 1 blob with the passphrase")?;
        let keys = opened.into_keys();
        self.check(&keys, "the version 1 blob")?;
        let open_done = start.elapsed();
        let proof = RestoreProof::sign(&keys, &self.jid, result.challenge);
        let answer = self.iq("set", "restore-proof", &proof.to_xml()).await?;
        if !answer.trim().is_empty() {
            bail!("the restore proof's result carries a payload: {}", clip(&answer));
        }
        let total = start.elapsed();
        let steps = Steps {
            blind: ms(blind_done),
            oprf: ms(oprf_done - blind_done),
            finalize: ms(finalize_done - oprf_done),
            open: ms(open_done - finalize_done),
            proof: ms(total - open_done),
            total: ms(total),
        };
        Ok((steps, keys))
    }

    /// The anchor: a version 0 open, Argon2id alone (on a blocking thread too); its time (ms).
    async fn open_v0(&self, blob: &Arc<SecretBlob>) -> Result<f64> {
        let start = Instant::now();
        let (blob, passphrase, jid) = (blob.clone(), self.passphrase.clone(), self.jid.clone());
        let keys = tokio::task::spawn_blocking(move || {
            blob.open(passphrase.expose_secret().as_bytes(), &jid, &KdfPolicy::STRICT)
        })
        .await
        .context("the Argon2id task failed")?
        .context("opening the version 0 blob")?;
        self.check(&keys, "the version 0 blob")?;
        Ok(ms(start.elapsed()))
    }
}

/// Registers the account, completes first use (bundle and version 1 blob published, proven) and
/// logs a raw c2s session in; returns it with the blob read from the device's store.
async fn device(bench: &BenchStack, dir: &std::path::Path) -> Result<Device> {
    let target = crate::load::Target::of(&bench.stack)?;
    let mut account = target.account(LOCAL, dir, TIMEOUT)?;
    account.kdf = PARAMS;
    let session = crate::load::create(&account).await.with_context(|| format!("first use of {LOCAL}"))?;
    drop(session);
    let jid = account.connect.jid.clone();
    let state = keyward_client::Store::open(dir, &jid)?
        .account()?
        .with_context(|| format!("no keys cached for {jid} after first use"))?;
    let AnySecret::V1(blob) = state.secret()? else {
        bail!("first use of {jid} sealed a version 0 blob, not version 1");
    };
    if *blob.params() != PARAMS {
        bail!("the version 1 blob has KDF parameters {:?}, not {PARAMS:?}", blob.params());
    }
    let bundle = state.bundle(&jid)?;
    let stack = &bench.stack;
    let session = Session::login(0, stack.c2s_addr(), stack.domain(), LOCAL, &password(LOCAL)).await?;
    Ok(Device {
        session,
        component: stack.component_jid().to_owned(),
        jid,
        passphrase: account.passphrase.clone(),
        blob: Arc::new(blob),
        bundle,
        next_id: 0,
    })
}

fn add(total: &mut [Duration], before: &[Duration], after: &[Duration]) {
    for ((t, b), a) in total.iter_mut().zip(before).zip(after) {
        *t += a.saturating_sub(*b);
    }
}

/// Runs P7: `plan.restores` rounds, each one anchor open and one version 1 restore (in turn
/// first), after one of each not counted.
pub(crate) async fn run(bench: &BenchStack, plan: &Plan) -> Result<Section> {
    let dir = keyward_tests::temp_dir("keyward-bench-restore-")?;
    println!("bench: P7: first use of {LOCAL} (Argon2id with the default parameters) …");
    let mut device = device(bench, dir.path()).await?;
    // The warm-up restore also yields the keys that the anchor's version 0 blob seals.
    let (_, keys) = device.restore().await.context("the first (warm-up) restore")?;
    let (jid, passphrase) = (device.jid.clone(), device.passphrase.clone());
    let v0 = tokio::task::spawn_blocking(move || {
        SecretBlob::seal(&keys, &jid, passphrase.expose_secret().as_bytes(), PARAMS)
    })
    .await
    .context("the Argon2id task failed")?
    .context("sealing the anchor's version 0 blob")?;
    let v0 = Arc::new(v0);
    device.open_v0(&v0).await.context("the first (warm-up) version 0 open")?;
    let probe: Probe = server_probe(bench)?;
    let mut server_cpu = vec![Duration::ZERO; SERVERS.len()];
    let (mut anchors, mut restores) = (Vec::new(), Vec::new());
    println!("bench: P7: {} rounds …", plan.restores);
    for round in 0..plan.restores {
        for keyward in [!round.is_multiple_of(2), round.is_multiple_of(2)] {
            if keyward {
                let before = probe();
                let (steps, _) = device.restore().await.with_context(|| format!("restore of round {}", round + 1))?;
                add(&mut server_cpu, &before, &probe());
                restores.push(steps);
            } else {
                anchors.push(device.open_v0(&v0).await.with_context(|| format!("anchor of round {}", round + 1))?);
            }
        }
    }
    Ok(section(plan.restores, &anchors, &restores, &server_cpu))
}

fn section(rounds: usize, anchors: &[f64], restores: &[Steps], server_cpu: &[Duration]) -> Section {
    let of = |f: fn(&Steps) -> f64| median(&restores.iter().map(f).collect::<Vec<_>>());
    let (anchor, total, exchange, open) = (median(anchors), of(|s| s.total), of(Steps::exchange), of(|s| s.open));
    let anchor_name = "version 0 open (Argon2id alone)";
    let row = |what: &str, keyward: Option<f64>, aim| Row {
        what: what.into(),
        unit: "ms",
        keyward,
        anchor: anchor.map(|a| (anchor_name.to_owned(), a)),
        aim,
    };
    let rows = vec![
        row("restore, median", total, Aim::RatioAtMost(1.05)),
        // The same aim, on the part that differs: steadier than a ratio of two noisy Argon2id medians.
        row(
            "the exchange alone (both IQ round trips, blind, finalize, sign), median",
            exchange,
            Aim::RatioAtMost(0.05),
        ),
        row("Argon2id and the slot inside the version 1 restore, median", open, Aim::None),
    ];
    let method = format!(
        "One account (`{LOCAL}`) completes first use on the stack with the default KDF parameters (Argon2id m = \
         {} KiB, t = {}, p = {}), so the directory holds its bundle and a version 1 blob. Then {rounds} rounds (after \
         one of each not counted), each an anchor and a restore, which goes first alternating: **keyward**: the \
         whole version 1 restore as the client's `restore::open` does it: blind the passphrase, an `oprf` get to \
         the component over a c2s session (Prosody → component → keydir, which counts the guess and commits it \
         before it answers), finalize, Argon2id + HKDF + the passphrase slot + the keys, a check that they are the \
         published ones, then the `restore-proof` set signed with them (keydir verifies it and clears the count, \
         so every round proves). **Anchor**: what a version 0 restore does with the same blob inputs, \
         `SecretBlob::open` of a version 0 blob of the same keys, JID and passphrase sealed with the same \
         parameters (Argon2id + XSalsa20-Poly1305 + the keys) and the same check. Fetching the blob and logging \
         in are the same for both versions and are in neither. Both Argon2id runs happen in the bench process (argon2 \
         is built optimised in every profile) on a blocking thread, as the client's `run_kdf` does. The IQs go \
         over the bench's own c2s session (SASL PLAIN on loopback) rather than the SDK's `Connection`, whose \
         tokio-xmpp parsing of two stanzas adds microseconds. The exchange is a restore's time without its open. \
         The aim (under 5 % more than Argon2id alone) is checked twice: on the ratio of the two medians, which \
         carries the noise of two Argon2id runs on a shared machine (see each round's figures below), and on the \
         exchange measured directly against the anchor, the steadier figure (the open inside the restore does the \
         anchor's work plus an HKDF and a second 32-byte XSalsa20-Poly1305 open, microseconds).",
        PARAMS.m_kib, PARAMS.t, PARAMS.p,
    );
    Section {
        id: "P7",
        title: TITLE,
        method,
        rows,
        detail: detail(anchors, restores, server_cpu),
        plots: Vec::new(),
        not_measured: None,
    }
}

fn detail(anchors: &[f64], restores: &[Steps], server_cpu: &[Duration]) -> String {
    let of = |f: fn(&Steps) -> f64| median(&restores.iter().map(f).collect::<Vec<_>>());
    let cell = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{} ms", figure(v)));
    let mut out =
        String::from("The version 1 restore step by step (medians over the rounds):\n\n| step | time |\n|---|---|\n");
    for (step, value) in [
        ("blind the passphrase", of(|s| s.blind)),
        ("`oprf` get (Prosody → component → keydir → Postgres, counted)", of(|s| s.oprf)),
        ("parse and finalize (unblind)", of(|s| s.finalize)),
        ("Argon2id, HKDF, the slot and the keys", of(|s| s.open)),
        ("sign and `restore-proof` set (verified, count cleared)", of(|s| s.proof)),
        ("the exchange (all but the open)", of(Steps::exchange)),
        ("the whole restore", of(|s| s.total)),
    ] {
        let _ = writeln!(out, "| {step} | {} |", cell(value));
    }
    let _ = writeln!(out, "| anchor: version 0 open | {} |", cell(median(anchors)));
    if let (Some(exchange), Some(total)) = (of(Steps::exchange), of(|s| s.total)) {
        let _ = writeln!(out, "\nThe exchange is {:.1} % of the median restore.", 100.0 * exchange / total);
        if let Some(anchor) = median(anchors) {
            let _ = writeln!(out, "It adds {:.1} % to the median anchor.", 100.0 * exchange / anchor);
        }
    }
    let paired: Vec<f64> = anchors.iter().zip(restores).map(|(a, k)| k.total / a).collect();
    if let Some(r) = median(&paired) {
        let _ = writeln!(out, "The median of the rounds' own ratios (restore / anchor of the same round): {r:.3}x.");
    }
    let n = restores.len().max(1) as f64;
    let cpu: Vec<String> =
        SERVERS.iter().zip(server_cpu).map(|(name, d)| format!("{name} {:.1} ms", d.as_secs_f64() * 1e3 / n)).collect();
    let _ = writeln!(
        out,
        "Server CPU per restore (both IQs; /proc clock ticks summed over the rounds, so coarse): {}.",
        cpu.join(", ")
    );
    let rounds: Vec<String> = anchors
        .iter()
        .zip(restores)
        .map(|(a, k)| format!("{} / {} ({})", figure(*a), figure(k.total), figure(k.exchange())))
        .collect();
    let _ = writeln!(out, "\nEach round, anchor / restore (exchange), ms: {}.", rounds.join(", "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_none() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn the_section_compares_the_restore_with_the_anchor() {
        let steps = |open: f64| Steps { blind: 0.1, oprf: 2.0, finalize: 0.1, open, proof: 1.8, total: open + 4.0 };
        let section = section(2, &[100.0, 102.0], &[steps(100.0), steps(101.0)], &[Duration::ZERO; 4]);
        assert_eq!(section.rows[0].keyward, Some(104.5));
        assert_eq!(section.rows[0].anchor.as_ref().map(|a| a.1), Some(101.0));
        assert_eq!(section.rows[1].keyward, Some(4.0));
        assert_eq!(section.verdicts(), (2, 0));
        assert!(section.detail.contains("The exchange is 3.8 % of the median restore."));
    }
}
