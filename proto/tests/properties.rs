//! Property tests: arbitrary values round-trip through XML, and arbitrary bytes never panic a parser.

use keyward_proto::elements::{KeyRelay, KeysQuery, Publish, Relay, Revoked, RosterKeys};
use keyward_proto::xml::{Element, ParseLimits};
use keyward_proto::{
    BareJid, Bundle, Envelope, KdfParams, KdfPolicy, KeyPair, MemoryReplayCache, Recipient, Sealed, SecretBlob,
    XmlElement,
};
use proptest::prelude::*;

fn jid_strategy() -> impl Strategy<Value = BareJid> {
    ("[a-z0-9._-]{1,20}", "[a-z0-9-]{1,12}(\\.[a-z]{2,6}){1,2}")
        .prop_map(|(local, domain)| BareJid::parse(&format!("{local}@{domain}")).expect("strategy yields valid JIDs"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sealed_messages_round_trip(body in "\\PC{0,300}", msg_id in "[!-~]{1,64}", ts_ms in any::<u64>(),
                                  alice in jid_strategy(), bob in jid_strategy(), extra in 0usize..4) {
        prop_assume!(alice != bob);
        let alice_keys = KeyPair::generate().expect("rng");
        let bob_keys = KeyPair::generate().expect("rng");
        let alice_bundle = Bundle::sign(&alice_keys, alice.clone(), 1);
        let bob_bundle = Bundle::sign(&bob_keys, bob.clone(), 1);
        let others: Vec<KeyPair> = (0..extra).map(|_| KeyPair::generate().expect("rng")).collect();
        let mut recipients = vec![Recipient::from(&bob_bundle)];
        recipients.extend(others.iter().map(Recipient::from));
        let envelope = Envelope { from: alice.clone(), to: bob.clone(), ts_ms, msg_id, body };
        let sealed = Sealed::seal(&alice_keys, &envelope, &recipients).expect("seals");
        let wire = Sealed::parse(sealed.to_xml().as_bytes()).expect("parses");
        prop_assert_eq!(wire.recipients().count(), 2 + extra);
        let opened = wire.open(&bob_keys, &bob, &alice, alice_bundle.identity_key(), &mut MemoryReplayCache::default())
            .expect("opens");
        prop_assert_eq!(opened, envelope);
    }

    #[test]
    fn bundles_and_notices_round_trip(jid in jid_strategy(), created in any::<u64>(), reason in "\\PC{0,100}",
                                      at in 0i64..4_102_444_800) {
        let keys = KeyPair::generate().expect("rng");
        let bundle = Bundle::sign(&keys, jid.clone(), created).into_bundle();
        let parsed = Bundle::parse(bundle.to_xml().as_bytes()).expect("parses");
        let verified = parsed.verify_for(&jid).expect("verifies");
        prop_assert_eq!(verified.bundle(), &bundle);
        let relay = KeyRelay { from: jid.clone(), bundle };
        prop_assert_eq!(KeyRelay::parse(relay.to_xml().as_bytes()).expect("parses"), relay);
        let at = time::OffsetDateTime::from_unix_timestamp(at).expect("in range");
        let revoked = Revoked { jid, fp: keys.fingerprint(), at, reason };
        prop_assert_eq!(Revoked::parse(revoked.to_xml().as_bytes()).expect("parses"), revoked);
    }

    #[test]
    fn keys_queries_round_trip(jids in proptest::collection::vec(jid_strategy(), 1..100)) {
        let query = KeysQuery::new(jids).expect("within limits");
        prop_assert_eq!(KeysQuery::parse(query.to_xml().as_bytes()).expect("parses"), query);
    }

    #[test]
    fn any_text_and_attribute_survive_writing_and_parsing(text in any::<String>(), value in any::<String>()) {
        // Characters XML cannot carry are written as U+FFFD; everything else comes back as it was.
        let carried = |s: &str| -> String {
            s.chars()
                .map(|c| if matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..) { c } else { '\u{FFFD}' })
                .collect()
        };
        let element = Element::new("a", "urn:x").attr("v", value.as_str()).text(text.as_str());
        let parsed = Element::parse(element.to_xml().as_bytes(), &ParseLimits::STANZA).expect("parses");
        prop_assert_eq!(parsed.get_attr("v").map(str::to_owned), Some(carried(&value)));
        prop_assert_eq!(parsed.get_text().to_owned(), carried(&text));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Element::parse(&bytes, &ParseLimits::STANZA);
        let _ = Bundle::parse(&bytes);
        let _ = Sealed::parse(&bytes);
        let _ = Publish::parse(&bytes);
        let _ = RosterKeys::parse(&bytes);
        let _ = Relay::parse(&bytes);
    }

    #[test]
    fn mutated_sealed_messages_never_open(position in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let alice = BareJid::parse("alice@example.test").expect("valid");
        let bob = BareJid::parse("bob@example.test").expect("valid");
        let alice_keys = KeyPair::generate().expect("rng");
        let bob_keys = KeyPair::generate().expect("rng");
        let bob_bundle = Bundle::sign(&bob_keys, bob.clone(), 1);
        let envelope = Envelope { from: alice.clone(), to: bob.clone(), ts_ms: 1, msg_id: "m".into(), body: "hi".into() };
        let xml = Sealed::seal(&alice_keys, &envelope, &[Recipient::from(&bob_bundle)]).expect("seals").to_xml();
        let mut bytes = xml.into_bytes();
        let at = position.index(bytes.len());
        bytes[at] ^= flip;
        if let Ok(mutated) = Sealed::parse(&bytes) {
            let opened = mutated.open(&bob_keys, &bob, &alice, &alice_keys.identity_public(), &mut MemoryReplayCache::default());
            // Base64 has a little slack (e.g. white space), so a mutation may leave the bytes intact;
            // anything that opens must be exactly the original message.
            if let Ok(opened) = opened {
                prop_assert_eq!(opened, envelope);
            }
        }
    }
}

#[test]
fn secret_blob_round_trips_with_each_passphrase() {
    let policy = KdfPolicy::danger_accept_weak_for_tests();
    for passphrase in ["", "correct horse battery staple", "pässphräse ✓", &"long".repeat(100)] {
        let jid = BareJid::parse("alice@example.test").expect("valid");
        let keys = KeyPair::generate().expect("rng");
        let blob = SecretBlob::seal(&keys, &jid, passphrase.as_bytes(), KdfParams::INSECURE_TEST_ONLY).expect("seals");
        let parsed = SecretBlob::parse(blob.to_xml().as_bytes()).expect("parses");
        let opened = parsed.open(passphrase.as_bytes(), &jid, &policy).expect("opens");
        assert_eq!(opened.fingerprint(), keys.fingerprint());
        assert!(parsed.open(b"not it", &jid, &policy).is_err());
    }
}
