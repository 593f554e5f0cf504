//! Fuzz target: arbitrary bytes into every keyward element parser; none may panic,
//! and whatever parses must encode to XML that parses back to the same value.
#![no_main]

use keyward_proto::elements::{
    Eme, KeyRelay, KeysQuery, KeysResult, Publish, Relay, Revoked, RosterKeys, RosterKeysQuery, SecretQuery, StoreHint,
};
use keyward_proto::xml::{Element, ParseLimits};
use keyward_proto::{Bundle, Sealed, SecretBlob, SecretSig, XmlElement};
use libfuzzer_sys::fuzz_target;

fn check<T: XmlElement + PartialEq + core::fmt::Debug>(element: &Element) {
    if let Ok(value) = T::from_element(element) {
        let again = T::parse(value.to_xml().as_bytes()).expect("re-encoded element parses");
        assert_eq!(again, value);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(element) = Element::parse(data, &ParseLimits::STANZA) else { return };
    check::<Bundle>(&element);
    check::<SecretBlob>(&element);
    check::<Sealed>(&element);
    check::<Publish>(&element);
    check::<SecretSig>(&element);
    check::<SecretQuery>(&element);
    check::<KeysQuery>(&element);
    check::<KeysResult>(&element);
    check::<RosterKeysQuery>(&element);
    check::<RosterKeys>(&element);
    check::<Relay>(&element);
    check::<KeyRelay>(&element);
    check::<Revoked>(&element);
    check::<Eme>(&element);
    check::<StoreHint>(&element);
});
