//! Fuzz target: what the component decides about an inbound stanza before any I/O: the
//! IQ view, the route to a handler, privilege advertisements, and the replies it would
//! send. Nothing may panic; a reply always goes back to the sender with the same id.
#![no_main]

use keyward_component::privilege::parse_advertisement;
use keyward_component::route::{Request, route};
use keyward_component::stanza::{Condition, Iq, IqType, StanzaError};
use keyward_proto::BareJid;
use keyward_proto::xml::{Element, ParseLimits};
use libfuzzer_sys::fuzz_target;

fn check_reply(request: &Element, reply: &Element, kind: &str) {
    assert_eq!(reply.name(), request.name());
    assert_eq!(reply.get_attr("type"), Some(kind));
    assert_eq!(reply.get_attr("id"), request.get_attr("id"));
    assert_eq!(reply.get_attr("to"), request.get_attr("from"));
    assert_eq!(reply.get_attr("from"), request.get_attr("to"));
    let text = reply.to_xml();
    Element::parse(text.as_bytes(), &ParseLimits::STANZA).expect("a reply parses");
}

fuzz_target!(|data: &[u8]| {
    let Ok(stanza) = Element::parse(data, &ParseLimits::STANZA) else { return };
    let _ = parse_advertisement(&stanza);
    let Some(iq) = Iq::from_element(stanza.clone()) else {
        assert!(
            stanza.name() != "iq"
                || stanza.get_attr("id").is_none()
                || stanza.get_attr("type").is_none()
                || !matches!(stanza.get_attr("type"), Some("get" | "set" | "result" | "error"))
        );
        return;
    };
    let component = BareJid::parse("keys.example.test").expect("valid JID");
    let routed = route(&iq, &component);
    assert_eq!(format!("{routed:?}"), format!("{:?}", route(&iq, &component)));
    match &routed {
        Ok(request) => {
            let payload = iq.payload().expect("a routed request has one payload");
            assert!(matches!(iq.kind, IqType::Get | IqType::Set));
            assert!(!request.name().is_empty());
            if *request == Request::Ping {
                assert_eq!(payload.name(), "ping");
            }
            check_reply(&stanza, &iq.result(None), "result");
        }
        Err((label, error)) => {
            assert!(!label.is_empty());
            check_reply(&stanza, &error.reply_to(&stanza), "error");
        }
    }
    let refused = StanzaError::new(Condition::BadRequest).text("fuzz");
    check_reply(&stanza, &refused.reply_to(&stanza), "error");
});
