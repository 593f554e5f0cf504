//! Stanza building and classification: keyward elements inside XMPP messages, presences and IQs. Pure, no I/O.

pub mod archive;
pub mod carbons;

use crate::error::{Error, Result};
use keyward_proto::elements::{Eme, FALLBACK_BODY, KeyRelay, NS, Revoked, StoreHint};
use keyward_proto::xml::{Element as KElement, ParseLimits};
use keyward_proto::{BareJid, Sealed, XmlElement};
use tokio_xmpp::jid::Jid;
use tokio_xmpp::minidom::Element as MElement;
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::stanza_error::StanzaError;

/// XEP-0030 disco#info namespace.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 disco#items namespace.
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// RFC 6121 roster namespace.
pub const NS_ROSTER: &str = "jabber:iq:roster";
/// XEP-0077 in-band registration namespace.
pub const NS_REGISTER: &str = "jabber:iq:register";

/// Converts a keyward element into the XMPP library's element type.
pub fn to_minidom(element: &KElement) -> Result<MElement> {
    element.to_xml().parse::<MElement>().map_err(|e| Error::Protocol(keyward_proto::Error::Xml(e.to_string())))
}

/// Converts an element received from the network into keyward's bounded element type.
pub fn from_minidom(element: &MElement) -> Result<KElement> {
    let mut bytes = Vec::new();
    element.write_to(&mut bytes).map_err(|e| Error::Protocol(keyward_proto::Error::Xml(e.to_string())))?;
    Ok(KElement::parse(&bytes, &ParseLimits::STANZA)?)
}

/// A bare JID of the keyward crate as an XMPP library JID.
pub fn jid(bare: &BareJid) -> Result<Jid> {
    Jid::new(bare.as_str()).map_err(|e| Error::Invalid { what: "JID", reason: e.to_string() })
}

/// The bare JID of a stamped `from`, normalised like keyward compares them.
pub fn bare_from(from: Option<&Jid>) -> Option<BareJid> {
    from.and_then(|j| BareJid::from_full(&j.to_string()).ok())
}

/// Whether a stamped `from` is exactly the bare JID `jid`, without a resource: what the server
/// writes on what the account itself sends (carbons, archive results).
pub fn is_bare(from: &Jid, jid: &BareJid) -> bool {
    from.resource().is_none() && bare_from(Some(from)).as_ref() == Some(jid)
}

/// The encrypted chat message of the design: fallback body, `<sealed/>`, EME and store hint.
pub fn sealed_message(to: &BareJid, id: &str, sealed: &Sealed) -> Result<Message> {
    let mut message = Message::new_with_type(MessageType::Chat, Some(jid(to)?));
    message.id = Some(tokio_xmpp::parsers::message::Id(id.to_owned()));
    let message = message.with_body(Lang::default(), FALLBACK_BODY.to_owned()).with_payloads(vec![
        to_minidom(&sealed.to_element())?,
        to_minidom(&Eme.to_element())?,
        to_minidom(&StoreHint.to_element())?,
    ]);
    Ok(message)
}

/// What an incoming message is, from keyward's point of view.
#[derive(Debug)]
pub enum Inbound {
    /// An encrypted message from `from`.
    Sealed {
        /// The server-stamped bare sender.
        from: BareJid,
        /// The stanza id, if any.
        id: Option<String>,
        /// The sealed payload.
        sealed: Box<Sealed>,
    },
    /// A bundle relayed by the component.
    KeyRelay(Box<KeyRelay>),
    /// A revocation notice from the component.
    Revoked(Box<Revoked>),
    /// A keyward element that could not be decoded.
    Malformed {
        /// The server-stamped bare sender.
        from: BareJid,
        /// Why it was refused.
        error: Error,
    },
    /// A notice element from someone other than the component: ignored.
    ForgedNotice {
        /// Who sent it.
        from: BareJid,
    },
    /// A message without encryption: its text is not shown.
    Unencrypted {
        /// Who sent it.
        from: BareJid,
    },
    /// An error bounced back for a message we sent.
    Bounce {
        /// Who bounced it.
        from: BareJid,
        /// The condition.
        condition: String,
    },
    /// A copy of a message another device of the account sent (`sent`) or received, from the
    /// account's own bare JID (XEP-0280); `inner` is the copied message, classified.
    Carbon {
        /// A message the account sent elsewhere (else one it received elsewhere).
        sent: bool,
        /// The copied message.
        inner: Box<Inbound>,
    },
    /// A carbon wrapper from someone other than the account itself: refused unopened.
    ForgedCarbon {
        /// Who sent it.
        from: BareJid,
    },
    /// Nothing keyward handles (chat states, receipts, ...).
    Other,
}

fn first_child<'m>(message: &'m Message, name: &str) -> Option<&'m MElement> {
    message.payloads.iter().find(|p| p.is(name, NS))
}

/// Classifies a message to account `me`; notices are accepted only from `component` (its
/// server-stamped JID), carbons only from `me`.
pub fn classify_message(message: &Message, component: &BareJid, me: &BareJid) -> Inbound {
    let Some(from) = bare_from(message.from.as_ref()) else { return Inbound::Other };
    if let Some(carbon) = carbons::unwrap(message, me) {
        let (sent, inner) = match carbon {
            carbons::Carbon::Forged => return Inbound::ForgedCarbon { from },
            carbons::Carbon::Malformed => {
                return Inbound::Malformed {
                    from,
                    error: Error::Invalid { what: "carbon", reason: "malformed".into() },
                };
            }
            carbons::Carbon::Sent(inner) => (true, inner),
            carbons::Carbon::Received(inner) => (false, inner),
        };
        // Only sealed messages are taken from a carbon (notices reach every device by themselves).
        return match classify_sealed(&inner) {
            Some(inner) => Inbound::Carbon { sent, inner: Box::new(inner) },
            None => Inbound::Other,
        };
    }
    if message.type_ == MessageType::Error {
        let condition = message
            .payloads
            .iter()
            .find_map(|p| StanzaError::try_from(p.clone()).ok())
            .map(|e| condition_name(&e))
            .unwrap_or_else(|| "undefined-condition".to_owned());
        return Inbound::Bounce { from, condition };
    }
    let notice = first_child(message, "key-relay").or_else(|| first_child(message, "revoked"));
    if let Some(notice) = notice {
        // A server stamps `from`; only the component's own JID (no localpart, no resource) counts.
        let from_component =
            &from == component && message.from.as_ref().is_some_and(|f| f.resource().is_none() && f.node().is_none());
        if !from_component {
            return Inbound::ForgedNotice { from };
        }
        let parsed = from_minidom(notice).and_then(|e| {
            if e.name() == "key-relay" {
                Ok(Inbound::KeyRelay(Box::new(KeyRelay::from_element(&e)?)))
            } else {
                Ok(Inbound::Revoked(Box::new(Revoked::from_element(&e)?)))
            }
        });
        return parsed.unwrap_or_else(|error| Inbound::Malformed { from, error });
    }
    if let Some(sealed) = classify_sealed(message) {
        return sealed;
    }
    if !message.bodies.is_empty() {
        return Inbound::Unencrypted { from };
    }
    Inbound::Other
}

/// A message with a `<sealed/>` (`Sealed` or `Malformed`), else `None`.
fn classify_sealed(message: &Message) -> Option<Inbound> {
    let from = bare_from(message.from.as_ref())?;
    let sealed = first_child(message, "sealed")?;
    let id = message.id.as_ref().map(|i| i.0.clone());
    Some(match from_minidom(sealed).and_then(|e| Ok(Sealed::from_element(&e)?)) {
        Ok(sealed) => Inbound::Sealed { from, id, sealed: Box::new(sealed) },
        Err(error) => Inbound::Malformed { from, error },
    })
}

/// A subscription-related presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// `from` asks to see our presence (a contact request).
    Request(BareJid),
    /// `from` accepted our request.
    Accepted(BareJid),
    /// `from` removed or refused the subscription.
    Ended(BareJid),
}

/// Classifies a presence; `None` for availability presences.
pub fn classify_presence(presence: &Presence) -> Option<Subscription> {
    let from = bare_from(presence.from.as_ref())?;
    match presence.type_ {
        PresenceType::Subscribe => Some(Subscription::Request(from)),
        PresenceType::Subscribed => Some(Subscription::Accepted(from)),
        PresenceType::Unsubscribe | PresenceType::Unsubscribed => Some(Subscription::Ended(from)),
        _ => None,
    }
}

/// A subscription presence (`subscribe`, `subscribed`) to `to`.
pub fn subscription(to: &BareJid, type_: PresenceType) -> Result<Presence> {
    Ok(Presence::new(type_).with_to(jid(to)?))
}

/// The RFC 6120 name of a stanza error's condition, e.g. `item-not-found`.
pub fn condition_name(error: &StanzaError) -> String {
    let debug = format!("{:?}", error.defined_condition);
    let word = debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default();
    let mut out = String::with_capacity(word.len() + 4);
    for (i, c) in word.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The text of a stanza error, if the server gave one.
pub fn error_text(error: &StanzaError) -> Option<String> {
    error.texts.values().next().cloned()
}

/// `<query xmlns='http://jabber.org/protocol/disco#info'/>`.
pub fn disco_info_query() -> MElement {
    MElement::builder("query", NS_DISCO_INFO).build()
}

/// The features listed in a disco#info answer.
pub fn disco_features(answer: &MElement) -> Vec<String> {
    answer
        .children()
        .filter(|c| c.is("feature", NS_DISCO_INFO))
        .filter_map(|c| c.attr("var").map(str::to_owned))
        .collect()
}

/// `<query xmlns='http://jabber.org/protocol/disco#items'/>`.
pub fn disco_items_query() -> MElement {
    MElement::builder("query", NS_DISCO_ITEMS).build()
}

/// The JIDs of a disco#items answer that can be services: bare JIDs of items without a node,
/// in the order given, each once.
pub fn disco_item_jids(answer: &MElement) -> Vec<BareJid> {
    let mut jids: Vec<BareJid> = Vec::new();
    let items = answer.children().filter(|c| c.is("item", NS_DISCO_ITEMS) && c.attr("node").is_none());
    for jid in items.filter_map(|c| c.attr("jid")).filter_map(|j| BareJid::parse(j).ok()) {
        if !jids.contains(&jid) {
            jids.push(jid);
        }
    }
    jids
}

/// Whether a disco#info answer is a keyward component's: it lists the feature `urn:keyward:0`.
pub fn is_keyward_component(answer: &MElement) -> bool {
    answer.is("query", NS_DISCO_INFO) && disco_features(answer).iter().any(|f| f == NS)
}

/// `<query xmlns='jabber:iq:roster'/>`.
pub fn roster_query() -> MElement {
    MElement::builder("query", NS_ROSTER).build()
}

/// The JIDs in a roster answer (items with a valid bare JID only).
pub fn roster_jids(answer: &MElement) -> Vec<BareJid> {
    answer
        .children()
        .filter(|c| c.is("item", NS_ROSTER))
        .filter_map(|c| c.attr("jid"))
        .filter_map(|j| BareJid::parse(j).ok())
        .collect()
}

/// Whether the roster answer shows that we asked for `jid`'s presence ourselves: a
/// subscription `to` or `both`, or our request pending (`ask='subscribe'`). Only our own
/// `subscribe` creates these states; an item someone else caused (e.g. by pre-approving
/// us) has `none` or `from` and no `ask`, so it never counts.
pub fn roster_we_asked(answer: &MElement, jid: &BareJid) -> bool {
    answer
        .children()
        .filter(|c| c.is("item", NS_ROSTER))
        .filter(|c| c.attr("jid").and_then(|j| BareJid::parse(j).ok()).as_ref() == Some(jid))
        .any(|c| matches!(c.attr("subscription"), Some("to" | "both")) || c.attr("ask") == Some("subscribe"))
}

/// XEP-0077 registration request for `username` with `password`.
pub fn register_query(username: &str, password: &str) -> MElement {
    MElement::builder("query", NS_REGISTER)
        .append(MElement::builder("username", NS_REGISTER).append(username))
        .append(MElement::builder("password", NS_REGISTER).append(password))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_proto::{Bundle, Envelope, KeyPair, Recipient};
    use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType};

    fn jids() -> (BareJid, BareJid, BareJid) {
        (
            BareJid::parse("alice@example.test").expect("valid"),
            BareJid::parse("bob@example.test").expect("valid"),
            BareJid::parse("keys.example.test").expect("valid"),
        )
    }

    /// The reader of the messages below.
    fn me() -> BareJid {
        BareJid::parse("bob@example.test").expect("valid")
    }

    fn message_from(xml: &str) -> Message {
        let element: MElement = xml.parse().expect("well-formed");
        Message::try_from(element).expect("a message")
    }

    fn sealed_for(alice: &BareJid, bob: &BareJid) -> (KeyPair, KeyPair, Sealed) {
        let alice_keys = KeyPair::generate().expect("rng");
        let bob_keys = KeyPair::generate().expect("rng");
        let envelope =
            Envelope { from: alice.clone(), to: bob.clone(), ts_ms: 1, msg_id: "m1".into(), body: "hi".into() };
        let sealed = Sealed::seal(&alice_keys, &envelope, &[Recipient::from(&bob_keys)]).expect("seals");
        (alice_keys, bob_keys, sealed)
    }

    #[test]
    fn sealed_message_has_the_design_shape_and_classifies_back() {
        let (alice, bob, component) = jids();
        let (_, _, sealed) = sealed_for(&alice, &bob);
        let mut message = sealed_message(&bob, "m1", &sealed).expect("builds");
        assert_eq!(message.type_, MessageType::Chat);
        assert_eq!(message.bodies.values().next().map(String::as_str), Some(FALLBACK_BODY));
        let xml = String::from(&MElement::from(message.clone()));
        for needle in ["urn:keyward:0", "urn:xmpp:eme:0", "urn:xmpp:hints", "<store", "<sealed", "type='chat'"] {
            assert!(xml.contains(needle), "{needle} missing in {xml}");
        }
        // As received: the server stamps a full `from`.
        message.from = Some(Jid::new("alice@example.test/laptop").expect("valid"));
        match classify_message(&message, &component, &me()) {
            Inbound::Sealed { from, id, sealed: got } => {
                assert_eq!(from, alice);
                assert_eq!(id.as_deref(), Some("m1"));
                assert_eq!(*got, sealed);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn carbons_count_only_from_the_own_bare_jid() {
        let (alice, bob, component) = jids();
        let (_, _, sealed) = sealed_for(&alice, &bob);
        let inner = |from: &str, to: &str| {
            let mut message = sealed_message(&BareJid::parse(to).expect("valid"), "m1", &sealed).expect("builds");
            message.from = Some(Jid::new(from).expect("valid"));
            String::from(&MElement::from(message))
        };
        let wrap = |outer_from: &str, kind: &str, inner: &str| {
            message_from(&format!(
                "<message xmlns='jabber:client' from='{outer_from}' to='bob@example.test/phone' type='chat'>\
                 <{kind} xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>{inner}</forwarded></{kind}></message>"
            ))
        };
        // Received elsewhere: alice's message to bob, copied by bob's own server.
        match classify_message(
            &wrap("bob@example.test", "received", &inner("alice@example.test/laptop", "bob@example.test")),
            &component,
            &me(),
        ) {
            Inbound::Carbon { sent: false, inner } => {
                assert!(matches!(*inner, Inbound::Sealed { ref from, .. } if *from == alice), "{inner:?}")
            }
            other => panic!("unexpected {other:?}"),
        }
        // Sent elsewhere: bob's own message from another resource.
        match classify_message(
            &wrap("bob@example.test", "sent", &inner("bob@example.test/laptop", "alice@example.test")),
            &component,
            &me(),
        ) {
            Inbound::Carbon { sent: true, inner } => {
                assert!(matches!(*inner, Inbound::Sealed { ref from, .. } if *from == bob), "{inner:?}")
            }
            other => panic!("unexpected {other:?}"),
        }
        // A wrapper from anyone else, or from a resource, is refused unopened.
        for forger in ["alice@example.test", "alice@example.test/laptop", "bob@example.test/laptop", "example.test"] {
            let forged = wrap(forger, "received", &inner("carol@example.test/x", "bob@example.test"));
            assert!(
                matches!(classify_message(&forged, &component, &me()), Inbound::ForgedCarbon { .. }),
                "accepted a carbon from {forger}"
            );
        }
        let broken = message_from(
            "<message xmlns='jabber:client' from='bob@example.test'><sent xmlns='urn:xmpp:carbons:2'/></message>",
        );
        assert!(matches!(classify_message(&broken, &component, &me()), Inbound::Malformed { .. }));
    }

    #[test]
    fn notices_count_only_from_the_component() {
        let (alice, _, component) = jids();
        let keys = KeyPair::generate().expect("rng");
        let relay = KeyRelay { from: alice.clone(), bundle: Bundle::sign(&keys, alice.clone(), 1).into_bundle() };
        let body = relay.to_xml();
        let from_component = message_from(&format!(
            "<message xmlns='jabber:client' from='keys.example.test' type='normal'>{body}</message>"
        ));
        assert!(matches!(classify_message(&from_component, &component, &me()), Inbound::KeyRelay(r) if *r == relay));
        for forger in ["mallory@example.test", "mallory@example.test/x", "keys.example.test/res", "evil.test"] {
            let forged =
                message_from(&format!("<message xmlns='jabber:client' from='{forger}' type='normal'>{body}</message>"));
            assert!(
                matches!(classify_message(&forged, &component, &me()), Inbound::ForgedNotice { .. }),
                "accepted a notice from {forger}"
            );
        }
        let revoked = format!(
            "<revoked xmlns='urn:keyward:0' jid='alice@example.test' fp='{}' at='2026-01-02T03:04:05Z' reason='lost'/>",
            keys.fingerprint().to_hex()
        );
        let notice =
            message_from(&format!("<message xmlns='jabber:client' from='keys.example.test'>{revoked}</message>"));
        match classify_message(&notice, &component, &me()) {
            Inbound::Revoked(r) => {
                assert_eq!(r.jid, alice);
                assert_eq!(r.reason, "lost");
            }
            other => panic!("unexpected {other:?}"),
        }
        let broken = message_from(
            "<message xmlns='jabber:client' from='keys.example.test'><revoked xmlns='urn:keyward:0' jid='a@b'/></message>",
        );
        assert!(matches!(classify_message(&broken, &component, &me()), Inbound::Malformed { .. }));
    }

    #[test]
    fn plain_and_error_messages_are_classified() {
        let (_, _, component) = jids();
        let plain = message_from(
            "<message xmlns='jabber:client' from='bob@example.test/x' type='chat'><body>psst</body></message>",
        );
        assert!(matches!(classify_message(&plain, &component, &me()), Inbound::Unencrypted { .. }));
        let bad_sealed = message_from(
            "<message xmlns='jabber:client' from='bob@example.test/x' type='chat'><sealed xmlns='urn:keyward:0' v='0'/></message>",
        );
        assert!(matches!(classify_message(&bad_sealed, &component, &me()), Inbound::Malformed { .. }));
        let bounce = message_from(
            "<message xmlns='jabber:client' from='bob@example.test' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        );
        assert!(
            matches!(classify_message(&bounce, &component, &me()), Inbound::Bounce { condition, .. } if condition == "service-unavailable")
        );
        let chat_state = message_from("<message xmlns='jabber:client' from='bob@example.test/x' type='chat'/>");
        assert!(matches!(classify_message(&chat_state, &component, &me()), Inbound::Other));
    }

    #[test]
    fn presences_and_helpers() {
        let (alice, bob, _) = jids();
        let request: Presence = "<presence xmlns='jabber:client' from='Bob@Example.test' type='subscribe'/>"
            .parse::<MElement>()
            .ok()
            .and_then(|e| Presence::try_from(e).ok())
            .expect("presence");
        assert_eq!(classify_presence(&request), Some(Subscription::Request(bob.clone())));
        let online = Presence::available().with_from(jid(&alice).expect("valid"));
        assert_eq!(classify_presence(&online), None);
        let error = StanzaError::new(ErrorType::Cancel, DefinedCondition::ItemNotFound, "en", "nope");
        assert_eq!(condition_name(&error), "item-not-found");
        assert_eq!(error_text(&error).as_deref(), Some("nope"));
        let answer: MElement =
            "<query xmlns='jabber:iq:roster'><item jid='bob@example.test'/><item jid='bad jid'/></query>"
                .parse()
                .expect("xml");
        assert_eq!(roster_jids(&answer), vec![bob.clone()]);
        for (item, asked) in [
            ("<item jid='bob@example.test' subscription='to'/>", true),
            ("<item jid='bob@example.test' subscription='both'/>", true),
            ("<item jid='bob@example.test' subscription='none' ask='subscribe'/>", true),
            ("<item jid='bob@example.test' subscription='from' ask='subscribe'/>", true),
            ("<item jid='bob@example.test' subscription='none'/>", false),
            ("<item jid='bob@example.test' subscription='from'/>", false),
            ("<item jid='bob@example.test'/>", false),
            ("<item jid='carol@example.test' subscription='both'/>", false),
        ] {
            let answer: MElement = format!("<query xmlns='jabber:iq:roster'>{item}</query>").parse().expect("xml");
            assert_eq!(roster_we_asked(&answer, &bob), asked, "{item}");
        }
        let disco: MElement = "<query xmlns='http://jabber.org/protocol/disco#info'><feature var='urn:keyward:0'/><feature var='urn:keyward:0#roster-keys'/></query>".parse().expect("xml");
        assert_eq!(disco_features(&disco), vec!["urn:keyward:0", "urn:keyward:0#roster-keys"]);
        assert!(is_keyward_component(&disco));
        for not_keyward in [
            "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text'/><feature var='http://jabber.org/protocol/muc'/></query>",
            "<query xmlns='http://jabber.org/protocol/disco#info'><feature var='urn:keyward:0#roster-keys'/><feature var='urn:keyward:1'/></query>",
            "<query xmlns='http://jabber.org/protocol/disco#items'><feature var='urn:keyward:0'/></query>",
            "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='component' type='generic' name='keyward'/></query>",
        ] {
            assert!(!is_keyward_component(&not_keyward.parse().expect("xml")), "{not_keyward}");
        }
        let items: MElement = "<query xmlns='http://jabber.org/protocol/disco#items'><item jid='keys.example.test'/><item jid='Keyward.Example.test' name='k'/><item jid='pubsub.example.test' node='x'/><item jid='bad jid'/><item jid='keys.example.test'/></query>".parse().expect("xml");
        let found: Vec<String> = disco_item_jids(&items).iter().map(ToString::to_string).collect();
        assert_eq!(found, ["keys.example.test", "keyward.example.test"]);
        let reg = String::from(&register_query("alice", "s3cret"));
        assert!(reg.contains("<username>alice</username>") && reg.contains("jabber:iq:register"));
    }
}
