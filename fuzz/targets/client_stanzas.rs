//! Fuzz target: the client's classification of incoming stanzas. Arbitrary XML in, as a
//! message, a presence and a roster or disco answer; nothing may panic, classifying twice
//! gives the same answer, and what is classified agrees with the stanza (notices only from the
//! component, carbons and archive results only from the own account).
#![no_main]

use keyward_client::keyward_proto::{BareJid, XmlElement};
use keyward_client::stanzas::archive::{self, Delivered};
use keyward_client::stanzas::{
    Inbound, Subscription, bare_from, classify_message, classify_presence, condition_name, disco_features,
    from_minidom, roster_jids, roster_we_asked,
};
use libfuzzer_sys::fuzz_target;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::message::Message;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::stanza_error::StanzaError;

fn component() -> BareJid {
    BareJid::parse("keys.example.test").expect("valid JID")
}

/// The reader.
fn me() -> BareJid {
    BareJid::parse("bob@example.test").expect("valid JID")
}

fn message(element: &Element) {
    let Ok(message) = Message::try_from(element.clone()) else { return };
    let (component, me) = (component(), me());
    let first = classify_message(&message, &component, &me);
    let second = classify_message(&message, &component, &me);
    assert_eq!(format!("{first:?}"), format!("{second:?}"), "classification is not deterministic");
    let from = bare_from(message.from.as_ref());
    match &first {
        Inbound::Other => {}
        Inbound::KeyRelay(relay) => {
            assert_eq!(from.as_ref(), Some(&component), "a notice accepted from someone else");
            let _ = relay.to_xml();
        }
        Inbound::Revoked(_) => assert_eq!(from.as_ref(), Some(&component), "a notice accepted from someone else"),
        Inbound::Sealed { from: sender, sealed, .. } => {
            assert_eq!(Some(sender), from.as_ref());
            let again = keyward_client::keyward_proto::Sealed::parse(sealed.to_xml().as_bytes());
            assert_eq!(again.as_ref().ok(), Some(sealed.as_ref()));
        }
        Inbound::Carbon { inner, .. } => {
            assert_eq!(from.as_ref(), Some(&me), "a carbon accepted from someone else");
            assert!(message.from.as_ref().is_some_and(|f| f.resource().is_none()), "a carbon from a resource");
            assert!(matches!(**inner, Inbound::Sealed { .. } | Inbound::Malformed { .. }), "{inner:?}");
        }
        Inbound::Malformed { from: sender, .. }
        | Inbound::ForgedCarbon { from: sender }
        | Inbound::ForgedNotice { from: sender }
        | Inbound::Unencrypted { from: sender }
        | Inbound::Bounce { from: sender, .. } => assert_eq!(Some(sender), from.as_ref()),
    }
    if let Delivered::Result(_) = archive::classify(&message, &me, "q1") {
        let own = message.from.as_ref().is_none_or(|f| f.resource().is_none() && from.as_ref() == Some(&me));
        assert!(own, "an archive result accepted from someone else");
    }
}

fn presence(element: &Element) {
    let Ok(presence) = Presence::try_from(element.clone()) else { return };
    let first = classify_presence(&presence);
    assert_eq!(first, classify_presence(&presence));
    if let Some(Subscription::Request(jid) | Subscription::Accepted(jid) | Subscription::Ended(jid)) = &first {
        assert_eq!(Some(jid), bare_from(presence.from.as_ref()).as_ref());
    }
}

fn answers(element: &Element) {
    let _ = disco_features(element);
    for jid in roster_jids(element) {
        assert_eq!(BareJid::parse(jid.as_str()).as_ref(), Ok(&jid));
        assert!(roster_we_asked(element, &jid) || !roster_we_asked(element, &jid));
    }
    if let Ok(error) = StanzaError::try_from(element.clone()) {
        assert!(!condition_name(&error).is_empty());
    }
    let _ = from_minidom(element);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else { return };
    let Ok(element) = text.parse::<Element>() else { return };
    message(&element);
    presence(&element);
    answers(&element);
});
