//! Stanzas as the component sees them: typed IQ views and RFC 6120 error replies.

use core::fmt;
use keyward_proto::xml::Element;

use crate::stream::NS_COMPONENT;

/// The namespace of stanza error conditions.
pub const NS_STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// The four IQ types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IqType {
    /// A request for data.
    Get,
    /// A request to change data.
    Set,
    /// A successful answer.
    Result,
    /// A failed answer.
    Error,
}

/// An IQ stanza: its addressing and (for get and set) its single payload.
#[derive(Debug, Clone)]
pub struct Iq {
    /// The `id` attribute.
    pub id: String,
    /// The server-stamped sender.
    pub from: Option<String>,
    /// The addressee.
    pub to: Option<String>,
    /// The type.
    pub kind: IqType,
    /// The child elements.
    pub element: Element,
}

impl Iq {
    /// Views an `<iq/>` element; `None` if it is not one or has no valid `type` and `id`.
    pub fn from_element(element: Element) -> Option<Self> {
        if element.name() != "iq" {
            return None;
        }
        let kind = match element.get_attr("type")? {
            "get" => IqType::Get,
            "set" => IqType::Set,
            "result" => IqType::Result,
            "error" => IqType::Error,
            _ => return None,
        };
        Some(Self {
            id: element.get_attr("id")?.to_owned(),
            from: element.get_attr("from").map(str::to_owned),
            to: element.get_attr("to").map(str::to_owned),
            kind,
            element,
        })
    }

    /// The single payload of a get or set; `None` when there is not exactly one child.
    pub fn payload(&self) -> Option<&Element> {
        match self.element.children() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// An empty or carrying result answering this request.
    pub fn result(&self, payload: Option<Element>) -> Element {
        let reply = reply_to(&self.element, "result");
        match payload {
            Some(payload) => reply.child(payload),
            None => reply,
        }
    }
}

/// An answer to `stanza`: same name and id, `from` and `to` swapped.
fn reply_to(stanza: &Element, kind: &str) -> Element {
    let mut reply = Element::new(stanza.name(), NS_COMPONENT).attr("type", kind);
    if let Some(id) = stanza.get_attr("id") {
        reply.set_attr("id", id);
    }
    if let Some(to) = stanza.get_attr("to") {
        reply.set_attr("from", to);
    }
    if let Some(from) = stanza.get_attr("from") {
        reply.set_attr("to", from);
    }
    reply
}

/// The RFC 6120 stanza error conditions the component answers with.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// Malformed request, bad signature, bundle of someone else.
    BadRequest,
    /// A different bundle is already stored.
    Conflict,
    /// A request in keyward's namespace that this component does not implement, or an ungranted privilege.
    FeatureNotImplemented,
    /// The server denied a privileged request.
    Forbidden,
    /// The component or keydir failed unexpectedly.
    InternalServerError,
    /// Nothing stored for the account.
    ItemNotFound,
    /// The account is revoked, or not on a served domain.
    NotAllowed,
    /// A size limit or the rate limit.
    PolicyViolation,
    /// Too many requests in flight.
    ResourceConstraint,
    /// Unknown namespace, or keydir unavailable.
    ServiceUnavailable,
    /// The server did not answer a request of the component in time.
    RemoteServerTimeout,
    /// A secret update whose seq is not greater than the stored one (replayed or out of order).
    UnexpectedRequest,
}

/// The `type` attribute of a stanza error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// Do not retry.
    Cancel,
    /// Retry after changing the request.
    Modify,
    /// Retry later.
    Wait,
    /// Retry after authenticating.
    Auth,
}

impl Condition {
    /// The condition's element name.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Conflict => "conflict",
            Self::FeatureNotImplemented => "feature-not-implemented",
            Self::Forbidden => "forbidden",
            Self::InternalServerError => "internal-server-error",
            Self::ItemNotFound => "item-not-found",
            Self::NotAllowed => "not-allowed",
            Self::PolicyViolation => "policy-violation",
            Self::ResourceConstraint => "resource-constraint",
            Self::ServiceUnavailable => "service-unavailable",
            Self::RemoteServerTimeout => "remote-server-timeout",
            Self::UnexpectedRequest => "unexpected-request",
        }
    }

    /// The error type RFC 6120 suggests for the condition.
    pub fn default_type(self) -> ErrorType {
        match self {
            Self::BadRequest | Self::PolicyViolation | Self::UnexpectedRequest => ErrorType::Modify,
            Self::Forbidden => ErrorType::Auth,
            Self::ResourceConstraint | Self::RemoteServerTimeout => ErrorType::Wait,
            _ => ErrorType::Cancel,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ErrorType {
    fn name(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Modify => "modify",
            Self::Wait => "wait",
            Self::Auth => "auth",
        }
    }
}

/// A stanza error: a condition, its type and an optional explanation for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    /// The condition.
    pub condition: Condition,
    /// The type.
    pub kind: ErrorType,
    /// Human-readable text (never secret).
    pub text: Option<String>,
}

impl StanzaError {
    /// An error with the condition's default type.
    pub fn new(condition: Condition) -> Self {
        Self { condition, kind: condition.default_type(), text: None }
    }

    /// Adds an explanation, builder style.
    #[must_use]
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Changes the type, builder style.
    #[must_use]
    pub fn kind(mut self, kind: ErrorType) -> Self {
        self.kind = kind;
        self
    }

    /// The error reply to `stanza` (an IQ, message or presence).
    pub fn reply_to(&self, stanza: &Element) -> Element {
        let mut error = Element::new("error", NS_COMPONENT)
            .attr("type", self.kind.name())
            .child(Element::new(self.condition.name(), NS_STANZA_ERRORS));
        if let Some(text) = &self.text {
            error.push_child(Element::new("text", NS_STANZA_ERRORS).text(text.as_str()));
        }
        reply_to(stanza, "error").child(error)
    }
}

impl From<Condition> for StanzaError {
    fn from(condition: Condition) -> Self {
        Self::new(condition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::encode;

    #[test]
    fn error_reply_swaps_addresses_and_carries_condition() {
        let iq = Element::new("iq", NS_COMPONENT)
            .attr("type", "get")
            .attr("id", "q1")
            .attr("from", "alice@example.test/x")
            .attr("to", "keys.example.test")
            .child(Element::new("nope", "urn:unknown"));
        let reply = StanzaError::new(Condition::ServiceUnavailable).text("no").reply_to(&iq);
        assert_eq!(
            encode::stanza(&reply),
            "<iq type='error' id='q1' from='keys.example.test' to='alice@example.test/x'><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error></iq>"
        );
    }

    #[test]
    fn iq_view_requires_type_and_id() {
        let iq =
            |attrs: &[(&str, &str)]| attrs.iter().fold(Element::new("iq", NS_COMPONENT), |e, (k, v)| e.attr(*k, *v));
        assert!(Iq::from_element(iq(&[("type", "get"), ("id", "1")])).is_some());
        assert!(Iq::from_element(iq(&[("type", "get")])).is_none());
        assert!(Iq::from_element(iq(&[("type", "weird"), ("id", "1")])).is_none());
        let two = iq(&[("type", "get"), ("id", "1")]).child(Element::new("a", "x")).child(Element::new("b", "x"));
        assert!(Iq::from_element(two).and_then(|iq| iq.payload().cloned()).is_none());
    }
}
