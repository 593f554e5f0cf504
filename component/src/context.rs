//! What request handlers share: process-wide state and the state of the current stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyward_proto::BareJid;
use keyward_proto::xml::Element;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::Config;
use crate::handlers::disco::NS_PING;
use crate::keydir::KeydirClient;
use crate::metrics::Metrics;
use crate::privilege::Privileges;
use crate::quota::Quotas;
use crate::ratelimit::RateLimiter;
use crate::stanza::{Condition, Iq, IqType, StanzaError};
use crate::stream::NS_COMPONENT;
use crate::writer::Outbox;

/// State that lives as long as the component process.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The keydir client.
    pub keydir: KeydirClient,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The per-sender relay limit.
    pub relay_limit: RateLimiter,
    /// The request buckets every request is checked against before it is queued.
    pub quotas: Quotas,
    /// The cache of lookup answers, under keydir's lease.
    pub answers: crate::answers::AnswerCache,
    /// keydir's transparency keys, for disco#info.
    pub transparency: crate::transparency::DirectoryKeys,
}

/// How long after the handshake a server may take to send its privilege advertisement.
const ADVERTISEMENT_WAIT: Duration = Duration::from_secs(2);

/// How long one copy of a request to the server waits before another copy is sent. A server
/// that balances a component domain over several connections (ejabberd, components running
/// active-active) routes the answer to any of them: a copy whose answer went to another process
/// is replaced by a new one, and an answer to any copy is the answer.
const ANSWER_RETRY: Duration = Duration::from_millis(250);

/// A request the component sent to the server, waiting for its answer.
#[derive(Debug)]
struct Waiting {
    from: String,
    answer: mpsc::Sender<Iq>,
}

/// State of one connected stream, shared by its handlers.
#[derive(Debug)]
pub struct SessionContext {
    /// Process-wide state.
    pub shared: Arc<Shared>,
    /// The stream's writer.
    pub outbox: Outbox,
    privileges: Mutex<HashMap<String, Privileges>>,
    waiting: Mutex<HashMap<String, Waiting>>,
    started: Instant,
}

impl SessionContext {
    /// The context of a new stream.
    pub fn new(shared: Arc<Shared>, outbox: Outbox) -> Self {
        Self { shared, outbox, privileges: Mutex::default(), waiting: Mutex::default(), started: Instant::now() }
    }

    /// Records what `domain` granted.
    pub fn grant(&self, domain: &str, privileges: Privileges) {
        if let Ok(mut map) = self.privileges.lock() {
            map.insert(domain.to_owned(), privileges);
        }
    }

    /// What `domain` granted on this stream.
    pub fn privileges(&self, domain: &str) -> Privileges {
        self.privileges.lock().ok().and_then(|map| map.get(domain).copied()).unwrap_or_default()
    }

    /// What `domain` granted, waiting (briefly, just after the handshake) for its advertisement
    /// when none arrived yet: servers send it right after the handshake, but not always before
    /// the component has work to do.
    pub async fn settled_privileges(&self, domain: &str) -> Privileges {
        let deadline = self.started + ADVERTISEMENT_WAIT;
        loop {
            let known = self.privileges.lock().ok().and_then(|map| map.get(domain).copied());
            match known {
                Some(privileges) => return privileges,
                None if Instant::now() >= deadline => return Privileges::default(),
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The stream is gone: requests still waiting for an answer learn it at once (their
    /// answer can no longer come) instead of at their timeout.
    pub fn stream_ended(&self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.clear();
        }
    }

    /// Hands an IQ result or error to the request waiting for it; `false` if none was.
    ///
    /// The answer must come from exactly the address asked (a user's full JID cannot
    /// answer a request sent to their bare JID).
    pub fn resolve(&self, iq: Iq) -> bool {
        let Ok(mut waiting) = self.waiting.lock() else { return false };
        match waiting.get(&iq.id) {
            Some(w) if iq.from.as_deref() == Some(w.from.as_str()) => {}
            _ => return false,
        }
        match waiting.remove(&iq.id) {
            Some(w) => w.answer.try_send(iq).is_ok(),
            None => false,
        }
    }

    /// Sends an IQ get to `to` (as the component) and waits for the answer.
    pub async fn ask_server(&self, to: &BareJid, payload: Element) -> Result<Iq, StanzaError> {
        match self.exchange(to, payload, self.shared.config.roster_timeout).await {
            Exchange::Answered(answer) if answer.kind == IqType::Result => Ok(answer),
            Exchange::Answered(_) => {
                Err(StanzaError::new(Condition::FeatureNotImplemented).text("the server refused the request"))
            }
            Exchange::TimedOut => Err(StanzaError::new(Condition::RemoteServerTimeout)),
            Exchange::StreamDown => Err(StanzaError::new(Condition::ServiceUnavailable).text("the stream went down")),
        }
    }

    /// Whether the server has handled every stanza written to this stream so far.
    ///
    /// Sends an XEP-0199 ping to `domain` and waits for its answer: a server handles a
    /// stream's stanzas in order, so any answer, a result or an error, comes after everything
    /// written before it was routed (stored for an offline recipient, or handed to an online
    /// one). `false` when the stream went down or no answer came within half the notice
    /// lease (a slow server is waited for; a batch is not sent twice for mere slowness).
    pub async fn server_caught_up(&self, domain: &str) -> bool {
        let Ok(to) = BareJid::parse(domain) else { return false };
        let timeout = self.shared.config.claim_lease / 2;
        matches!(self.exchange(&to, Element::new("ping", NS_PING), timeout).await, Exchange::Answered(_))
    }

    /// Sends the IQ get and waits up to `timeout` for its answer, sending a new copy (new id)
    /// every [`ANSWER_RETRY`] (250 ms) while none came: every copy stays awaited, so a slow answer to an
    /// early copy counts too. The request must be safe to repeat (reads and pings only).
    async fn exchange(&self, to: &BareJid, payload: Element, timeout: Duration) -> Exchange {
        let deadline = Instant::now() + timeout;
        let (first, mut receiver) = mpsc::channel(1);
        // Only the waiting map holds the senders: when the stream ends and clears it, the
        // receiver learns it at once.
        let weak = first.downgrade();
        let mut first = Some(first);
        let mut sent = Vec::new();
        let outcome = loop {
            let Some(answer) = first.take().or_else(|| weak.upgrade()) else { break Exchange::StreamDown };
            let id = format!("kw-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            if let Ok(mut waiting) = self.waiting.lock() {
                waiting.insert(id.clone(), Waiting { from: to.as_str().to_owned(), answer });
            }
            let iq = Element::new("iq", NS_COMPONENT)
                .attr("type", "get")
                .attr("id", id.as_str())
                .attr("from", self.shared.config.component_jid.as_str())
                .attr("to", to.as_str())
                .child(payload.clone());
            sent.push(id);
            if !self.outbox.send(&iq).await {
                break Exchange::StreamDown;
            }
            let wait_until = deadline.min(Instant::now() + ANSWER_RETRY);
            match tokio::time::timeout_at(wait_until, receiver.recv()).await {
                Ok(Some(answer)) => break Exchange::Answered(answer),
                // Every sender is gone: the stream ended and cleared the waiting requests.
                Ok(None) => break Exchange::StreamDown,
                Err(_) if Instant::now() >= deadline => break Exchange::TimedOut,
                Err(_) => {}
            }
        };
        if let Ok(mut waiting) = self.waiting.lock() {
            for id in &sent {
                waiting.remove(id);
            }
        }
        outcome
    }
}

/// How a request to the server ended.
enum Exchange {
    Answered(Iq),
    TimedOut,
    StreamDown,
}
