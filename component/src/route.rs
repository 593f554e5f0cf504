//! Which handler an IQ request goes to: decided from the stanza alone (pure, no I/O).

use keyward_proto::BareJid;
use keyward_proto::elements::NS;

use crate::stanza::{Condition, Iq, IqType, StanzaError};

/// XEP-0030 disco#info namespace.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0199 ping namespace.
pub const NS_PING: &str = "urn:xmpp:ping";

/// A request the component handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `<publish/>` (set).
    Publish,
    /// `<secret/>` (get).
    Secret,
    /// `<keys/>` (get).
    Keys,
    /// `<roster-keys/>` (get).
    RosterKeys,
    /// `<history/>` (get): the map's history of the sender's own account.
    History,
    /// `<relay/>` (set).
    Relay,
    /// `<oprf/>` (get): one guess of the guess-limited restore.
    Oprf,
    /// `<restore-proof/>` (set).
    RestoreProof,
    /// disco#info (get).
    DiscoInfo,
    /// XEP-0199 ping (get).
    Ping,
}

impl Request {
    /// The request's name (a metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Secret => "secret",
            Self::Keys => "keys",
            Self::RosterKeys => "roster-keys",
            Self::History => "history",
            Self::Relay => "relay",
            Self::Oprf => "oprf",
            Self::RestoreProof => "restore-proof",
            Self::DiscoInfo => "disco-info",
            Self::Ping => "ping",
        }
    }
}

/// A request refused before any handler runs: its metrics label and the error to answer.
pub type Refusal = (&'static str, StanzaError);

/// Routes an IQ get or set addressed to `component` (its bare JID): the request it is,
/// or why it is refused.
pub fn route(iq: &Iq, component: &BareJid) -> Result<Request, Refusal> {
    let Some(payload) = iq.payload() else {
        return Err(("malformed", bad_request("an IQ get or set carries exactly one element")));
    };
    let addressed_to_us =
        iq.to.as_deref().and_then(|to| BareJid::from_full(to).ok()).is_some_and(|to| &to == component);
    if !addressed_to_us {
        return Err(("other", StanzaError::new(Condition::ServiceUnavailable)));
    }
    match (payload.ns(), payload.name(), iq.kind) {
        (NS, "publish", IqType::Set) => Ok(Request::Publish),
        (NS, "secret", IqType::Get) => Ok(Request::Secret),
        (NS, "keys", IqType::Get) => Ok(Request::Keys),
        (NS, "roster-keys", IqType::Get) => Ok(Request::RosterKeys),
        (NS, "history", IqType::Get) => Ok(Request::History),
        (NS, "relay", IqType::Set) => Ok(Request::Relay),
        (NS, "oprf", IqType::Get) => Ok(Request::Oprf),
        (NS, "restore-proof", IqType::Set) => Ok(Request::RestoreProof),
        (NS, "publish" | "secret" | "keys" | "roster-keys" | "history" | "relay" | "oprf" | "restore-proof", _) => {
            Err(("malformed", bad_request("wrong IQ type for this request")))
        }
        (NS, _, _) => Err(("unknown", StanzaError::new(Condition::FeatureNotImplemented))),
        (NS_DISCO_INFO, "query", IqType::Get) => Ok(Request::DiscoInfo),
        (NS_PING, "ping", IqType::Get) => Ok(Request::Ping),
        _ => Err(("other", StanzaError::new(Condition::ServiceUnavailable))),
    }
}

/// A `bad-request` with an explanation.
pub(crate) fn bad_request(text: &str) -> StanzaError {
    StanzaError::new(Condition::BadRequest).text(text)
}
