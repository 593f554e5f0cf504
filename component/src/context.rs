//! What request handlers share: process-wide state and the state of the current stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyward_proto::BareJid;
use keyward_proto::xml::Element;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::Config;
use crate::keydir::KeydirClient;
use crate::metrics::Metrics;
use crate::privilege::Privileges;
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
}

/// How long after the handshake a server may take to send its privilege advertisement.
const ADVERTISEMENT_WAIT: Duration = Duration::from_secs(2);

/// A request the component sent to the server, waiting for its answer.
#[derive(Debug)]
struct Waiting {
    from: String,
    answer: oneshot::Sender<Iq>,
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
            Some(w) => w.answer.send(iq).is_ok(),
            None => false,
        }
    }

    /// Sends an IQ get to `to` (as the component) and waits for the answer.
    pub async fn ask_server(&self, to: &BareJid, payload: Element) -> Result<Iq, StanzaError> {
        let id = format!("kw-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let (answer, receiver) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id.clone(), Waiting { from: to.as_str().to_owned(), answer });
        }
        let iq = Element::new("iq", NS_COMPONENT)
            .attr("type", "get")
            .attr("id", id.as_str())
            .attr("from", self.shared.config.component_jid.as_str())
            .attr("to", to.as_str())
            .child(payload);
        let timeout = self.shared.config.roster_timeout;
        let outcome = if self.outbox.send(&iq).await {
            match tokio::time::timeout(timeout, receiver).await {
                Ok(Ok(answer)) => Some(Some(answer)),
                Ok(Err(_)) => None,
                Err(_) => Some(None),
            }
        } else {
            None
        };
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&id);
        }
        match outcome {
            Some(Some(answer)) if answer.kind == IqType::Result => Ok(answer),
            Some(Some(_)) => {
                Err(StanzaError::new(Condition::FeatureNotImplemented).text("the server refused the request"))
            }
            Some(None) => Err(StanzaError::new(Condition::RemoteServerTimeout)),
            None => Err(StanzaError::new(Condition::ServiceUnavailable).text("the stream went down")),
        }
    }
}
