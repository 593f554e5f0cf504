//! The bench's load generator: raw c2s sessions (SASL PLAIN on loopback, resource bind) sending pipelined IQs, timing every answer.
//!
//! PLAIN is for the bench only: it runs against its own servers on loopback. Targets run in
//! turn, in short slots, round after round, so that a noisy machine slows all of them alike;
//! the bench process's CPU time is charged to the slot it was spent in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use tokio::time::Instant;

use super::cpu::own_cpu;
use super::framing::attr;
use super::stats::Tally;
use super::wire::Wire;

const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long answers still on the way after a slot are awaited (and not counted).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the IQ with this id for the session of this index.
pub(crate) type MakeIq = Arc<dyn Fn(usize, u64) -> String + Send + Sync>;

/// Reads the CPU time of the server processes watched during a slot.
pub(crate) type Probe = Arc<dyn Fn() -> Vec<Duration> + Send + Sync>;

/// One target: a name and how its IQs look.
#[derive(Clone)]
pub(crate) struct IqTarget {
    pub(crate) name: String,
    pub(crate) make: MakeIq,
}

/// A bound c2s session.
pub(crate) struct Session {
    index: usize,
    wire: Wire,
    next_id: u64,
    sent: HashMap<u64, Instant>,
}

fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
         to='{domain}' version='1.0'>"
    )
}

impl Session {
    /// Opens a stream, authenticates `user` with SASL PLAIN and binds a resource.
    pub(crate) async fn login(
        index: usize,
        addr: SocketAddr,
        domain: &str,
        user: &str,
        password: &str,
    ) -> Result<Self> {
        let mut wire = Wire::connect(addr).await?;
        wire.send(&stream_header(domain)).await?;
        until_named(&mut wire, "stream:features").await?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        wire.send(&format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")).await?;
        let outcome = wire.frame(STEP_TIMEOUT).await?;
        if outcome.name.as_deref() != Some("success") {
            bail!("SASL PLAIN for {user}@{domain} failed: {}", outcome.text);
        }
        wire.send(&stream_header(domain)).await?;
        until_named(&mut wire, "stream:features").await?;
        wire.send(
            "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bench</resource></bind></iq>",
        )
        .await?;
        let bound = until_named(&mut wire, "iq").await?;
        if attr(&bound, "type") != Some("result") {
            bail!("binding a resource for {user}@{domain} failed: {bound}");
        }
        Ok(Self { index, wire, next_id: 1, sent: HashMap::new() })
    }

    /// Sends one IQ (no other in flight) and returns the element that answers it.
    pub(crate) async fn ask(&mut self, iq: &str) -> Result<String> {
        self.wire.send(iq).await?;
        until_named(&mut self.wire, "iq").await
    }

    /// Sends one IQ whose id is `id` and returns the IQ that answers it, skipping any other IQ
    /// that arrives meanwhile (a push from the server is not an answer).
    pub(crate) async fn ask_id(&mut self, iq: &str, id: &str) -> Result<String> {
        self.wire.send(iq).await?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let answer = until_named(&mut self.wire, "iq").await?;
            let start = answer.split('>').next().unwrap_or_default();
            if attr(start, "id") == Some(id) {
                return Ok(answer);
            }
            if Instant::now() >= deadline {
                bail!("no answer to IQ {id} within {STEP_TIMEOUT:?} (other IQs came instead)");
            }
        }
    }

    /// Keeps `window` IQs of `target` unanswered until `until`; the tally holds the answers that
    /// came before `until`. Answers still on the way are then awaited, not counted.
    pub(crate) async fn drive(&mut self, target: &IqTarget, window: usize, until: Instant) -> Result<Tally> {
        let mut tally = Tally::default();
        let mut out = String::new();
        while Instant::now() < until {
            while self.sent.len() < window {
                out.push_str(&(target.make)(self.index, self.next_id));
                self.sent.insert(self.next_id, Instant::now());
                self.next_id += 1;
            }
            if !out.is_empty() {
                self.wire.send(&out).await?;
                out.clear();
            }
            if !self.wire.fill_by(until.min(Instant::now() + STEP_TIMEOUT)).await? && Instant::now() < until {
                bail!("no answer for {STEP_TIMEOUT:?} with {} IQs of {} in flight", self.sent.len(), target.name);
            }
            let now = Instant::now();
            let (sent, latencies, errors) = (&mut self.sent, &mut tally.latencies_us, &mut tally.errors);
            self.wire.drain(|name, tag| {
                let Some(sent_at) = attr(tag, "id").and_then(|id| id.parse().ok()).and_then(|id| sent.remove(&id))
                else {
                    return;
                };
                if name == "iq" && attr(tag, "type") == Some("result") && now < until {
                    latencies.push(u32::try_from((now - sent_at).as_micros()).unwrap_or(u32::MAX));
                } else if now < until {
                    *errors += 1;
                }
            })?;
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while !self.sent.is_empty() {
            if !self.wire.fill_by(deadline).await? {
                bail!("{} IQs of {} unanswered {DRAIN_TIMEOUT:?} after the slot", self.sent.len(), target.name);
            }
            let sent = &mut self.sent;
            self.wire.drain(|_, tag| {
                if let Some(id) = attr(tag, "id").and_then(|id| id.parse::<u64>().ok()) {
                    sent.remove(&id);
                }
            })?;
        }
        Ok(tally)
    }
}

/// Reads frames until an element named `name`; returns its text.
async fn until_named(wire: &mut Wire, name: &str) -> Result<String> {
    loop {
        let frame = wire.frame(STEP_TIMEOUT).await?;
        match frame.name.as_deref() {
            Some("failure" | "stream:error") => bail!("the server refused: {}", frame.text),
            Some(n) if n == name => return Ok(frame.text),
            _ => {}
        }
    }
}

/// Runs `targets` in turn, `rounds` times, each for `slot` on every session at once, keeping
/// `window` IQs in flight per session; one tally per target (wall time = its slots).
pub(crate) async fn interleave(
    sessions: &mut Vec<Session>,
    targets: &[IqTarget],
    rounds: usize,
    slot: Duration,
    window: usize,
    probe: &Probe,
) -> Result<Vec<Tally>> {
    let mut tallies = vec![Tally::default(); targets.len()];
    for round in 0..rounds {
        for (target, tally) in targets.iter().zip(tallies.iter_mut()) {
            let cpu = own_cpu();
            let servers = probe();
            let started = Instant::now();
            let until = started + slot;
            let mut tasks = tokio::task::JoinSet::new();
            for mut session in sessions.drain(..) {
                let target = target.clone();
                tasks.spawn(async move {
                    let result = session.drive(&target, window, until).await;
                    (session, result)
                });
            }
            let mut slot_tally = Tally::default();
            while let Some(joined) = tasks.join_next().await {
                let (session, result) = joined.context("a load task panicked")?;
                sessions.push(session);
                slot_tally.merge(result.with_context(|| format!("round {} of {}", round + 1, target.name))?);
            }
            slot_tally.wall = slot;
            slot_tally.cpu = own_cpu().saturating_sub(cpu);
            slot_tally.servers =
                probe().iter().zip(&servers).map(|(after, before)| after.saturating_sub(*before)).collect();
            tally.merge(slot_tally);
        }
    }
    sessions.sort_by_key(|s| s.index);
    Ok(tallies)
}
