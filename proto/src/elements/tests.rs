//! Tests of the protocol elements: round trips, hostile input and limits.

use super::*;
use crate::keys::KeyPair;
use crate::secret::{KdfParams, SecretBlob};
use time::macros::datetime;

fn jid(text: &str) -> BareJid {
    BareJid::parse(text).expect("valid")
}

fn bundle(name: &str) -> Bundle {
    let keys = KeyPair::generate().expect("rng");
    Bundle::sign(&keys, jid(&format!("{name}@example.test")), 1_764_150_000).into_bundle()
}

fn round_trip<T: XmlElement + PartialEq + core::fmt::Debug>(value: &T) {
    let xml = value.to_xml();
    assert_eq!(&T::parse(xml.as_bytes()).expect(&xml), value, "{xml}");
}

#[test]
fn every_element_round_trips() {
    let keys = KeyPair::generate().expect("rng");
    let secret =
        SecretBlob::seal(&keys, &jid("alice@example.test"), b"pw", KdfParams::INSECURE_TEST_ONLY).expect("seals");
    let alice_bundle = Bundle::sign(&keys, jid("alice@example.test"), 1_764_150_000);
    let publish = Publish::signed(&keys, &alice_bundle, secret, 1_764_150_000_123).expect("signs");
    round_trip(&publish);
    publish.verify_for(&jid("alice@example.test")).expect("a signed publish verifies");
    round_trip(&SecretQuery);
    round_trip(&RosterKeysQuery);
    round_trip(&KeysQuery::new(vec![jid("alice@example.test"), jid("bob@other.test")]).expect("valid"));
    round_trip(&KeysQuery::with_proofs(vec![jid("alice@example.test")], 7).expect("valid"));
    let items = vec![
        KeyItem {
            jid: jid("alice@example.test"),
            status: KeyStatus::Active,
            bundle: Some(bundle("alice")),
            proof: Some(vec![1, 2, 3]),
        },
        KeyItem {
            jid: jid("bob@example.test"),
            status: KeyStatus::Revoked {
                at: datetime!(2026-11-26 10:00:00 UTC),
                reason: "stolen <laptop> & 'more'".into(),
            },
            bundle: Some(bundle("bob")),
            proof: None,
        },
        KeyItem { jid: jid("carol@example.test"), status: KeyStatus::None, bundle: None, proof: None },
    ];
    round_trip(&KeysResult { items: items.clone(), transparency: None });
    let head = HeadProofs {
        note: "keyward/13d9908a70925992\n7\nroot\n\n— sig\n".into(),
        inclusion: vec![[7; 32], [8; 32]],
        consistency: Some(Consistency { from: 3, proof: vec![[9; 32]] }),
    };
    round_trip(&KeysResult { items: items.clone(), transparency: Some(head.clone()) });
    round_trip(&KeysResult {
        items: items.clone(),
        transparency: Some(HeadProofs { consistency: Some(Consistency { from: 7, proof: vec![] }), ..head }),
    });
    round_trip(&RosterKeys { items, transparency: None });
    let query = HistoryQuery { known_size: 3 };
    assert_eq!(HistoryQuery::from_element(&query.to_element()), Ok(query));
    let answer = HistoryAnswer { transparency: None, proof: Some(vec![1, 2, 3]) };
    assert_eq!(HistoryAnswer::from_element(&answer.to_element()), Ok(answer));
    round_trip(&Relay { to: jid("bob@example.test") });
    round_trip(&KeyRelay { from: jid("alice@example.test"), bundle: bundle("alice") });
    round_trip(&Revoked {
        jid: jid("alice@example.test"),
        fp: keys.fingerprint(),
        at: datetime!(2026-11-26 10:00:00.5 UTC),
        reason: "compromised".into(),
    });
    round_trip(&Eme);
    round_trip(&StoreHint);
}

#[test]
fn literal_design_examples_parse() {
    let relay = Relay::parse(b"<relay xmlns='urn:keyward:0' to='bob@example.test'/>").expect("parses");
    assert_eq!(relay.to, jid("bob@example.test"));
    let keys = KeysQuery::parse(
        b"<keys xmlns='urn:keyward:0'><item jid='Alice@Example.test'/><item jid='alice@example.test'/></keys>",
    )
    .expect("parses");
    assert_eq!(keys.items(), &[jid("alice@example.test")], "normalised and deduplicated");
    let eme =
        Eme::parse(b"<encryption xmlns='urn:xmpp:eme:0' namespace='urn:keyward:0' name='keyward'/>").expect("parses");
    assert_eq!(eme, Eme);
    assert!(StoreHint::parse(b"<store xmlns='urn:xmpp:hints'/>").is_ok());
    let revoked = Revoked::parse(
        format!(
            "<revoked xmlns='urn:keyward:0' jid='alice@example.test' fp='{}' at='2026-11-26T10:00:00Z' reason='x'/>",
            "ab".repeat(32)
        )
        .as_bytes(),
    )
    .expect("parses");
    assert_eq!(revoked.at, datetime!(2026-11-26 10:00:00 UTC));
}

#[test]
fn hostile_elements_are_typed_errors() {
    let cases: &[(&str, crate::error::ErrorCheck)] = &[
        ("<relay xmlns='urn:keyward:0'/>", |e| matches!(e, Error::Missing("to"))),
        ("<relay xmlns='urn:keyward:0' to='bob@example.test/res'/>", |e| matches!(e, Error::InvalidJid { .. })),
        ("<relay xmlns='urn:keyward:1' to='bob@example.test'/>", |e| matches!(e, Error::UnexpectedElement { .. })),
        ("<keys xmlns='urn:keyward:0'/>", |e| matches!(e, Error::Missing("item"))),
        ("<keys xmlns='urn:keyward:0'><item/></keys>", |e| matches!(e, Error::Missing("jid"))),
        ("<secret xmlns='urn:keyward:0'><x/></secret>", |e| matches!(e, Error::InvalidValue(_))),
        ("<publish xmlns='urn:keyward:0'/>", |e| matches!(e, Error::Missing("bundle"))),
        ("<revoked xmlns='urn:keyward:0' jid='a@b' fp='zz' at='2026-11-26T10:00:00Z'/>", |e| {
            matches!(e, Error::InvalidValue("fingerprint"))
        }),
        ("<encryption xmlns='urn:xmpp:eme:0' namespace='urn:other' name='x'/>", |e| {
            matches!(e, Error::InvalidValue("namespace"))
        }),
    ];
    for (xml, check) in cases {
        let err = match *xml {
            x if x.starts_with("<relay") => Relay::parse(x.as_bytes()).err(),
            x if x.starts_with("<keys") => KeysQuery::parse(x.as_bytes()).err(),
            x if x.starts_with("<secret") => SecretQuery::parse(x.as_bytes()).err(),
            x if x.starts_with("<publish") => Publish::parse(x.as_bytes()).err(),
            x if x.starts_with("<revoked") => Revoked::parse(x.as_bytes()).err(),
            x => Eme::parse(x.as_bytes()).err(),
        };
        let err = err.unwrap_or_else(|| panic!("accepted {xml}"));
        assert!(check(&err), "{xml}: {err:?}");
    }
    let revoked_without_time = "<keys xmlns='urn:keyward:0'><item jid='a@b.test' status='revoked'/></keys>";
    assert!(matches!(KeysResult::parse(revoked_without_time.as_bytes()), Err(Error::Missing("revoked-at"))));
    let active_without_bundle = "<keys xmlns='urn:keyward:0'><item jid='a@b.test' status='active'/></keys>";
    assert!(matches!(KeysResult::parse(active_without_bundle.as_bytes()), Err(Error::Missing("bundle"))));
    let odd_status = "<keys xmlns='urn:keyward:0'><item jid='a@b.test' status='maybe'/></keys>";
    assert!(matches!(KeysResult::parse(odd_status.as_bytes()), Err(Error::InvalidValue("status"))));
    let bad_known_size = "<keys xmlns='urn:keyward:0' known-size='-1'><item jid='a@b.test'/></keys>";
    assert!(matches!(KeysQuery::parse(bad_known_size.as_bytes()), Err(Error::InvalidValue("known-size"))));
    let bad_proof = "<keys xmlns='urn:keyward:0'><item jid='a@b.test' status='none'><proof>!!</proof></item></keys>";
    assert!(matches!(KeysResult::parse(bad_proof.as_bytes()), Err(Error::Base64 { field: "proof" })));
    let headless = "<keys xmlns='urn:keyward:0'><transparency><inclusion/></transparency></keys>";
    assert!(matches!(KeysResult::parse(headless.as_bytes()), Err(Error::Missing("head"))));
    let ragged =
        "<keys xmlns='urn:keyward:0'><transparency><head>YQ==</head><inclusion>AAAA</inclusion></transparency></keys>";
    assert!(matches!(KeysResult::parse(ragged.as_bytes()), Err(Error::LogProof(_))));
}

#[test]
fn too_many_items_and_oversized_fields_are_refused() {
    let items: String = (0..=limits::KEYS_ITEMS).map(|i| format!("<item jid='u{i}@example.test'/>")).collect();
    let query = format!("<keys xmlns='urn:keyward:0'>{items}</keys>");
    assert!(matches!(KeysQuery::parse(query.as_bytes()), Err(Error::TooLarge { .. })));
    let jids = (0..=limits::KEYS_ITEMS).map(|i| jid(&format!("u{i}@example.test"))).collect();
    assert!(matches!(KeysQuery::new(jids), Err(Error::TooLarge { .. })));
    let with_proofs: Vec<BareJid> = (0..=KEYS_PROOF_ITEMS).map(|i| jid(&format!("u{i}@example.test"))).collect();
    assert!(matches!(KeysQuery::with_proofs(with_proofs.clone(), 0), Err(Error::TooLarge { .. })));
    let items: String = with_proofs.iter().map(|j| format!("<item jid='{j}'/>")).collect();
    let query = format!("<keys xmlns='urn:keyward:0' known-size='0'>{items}</keys>");
    assert!(matches!(KeysQuery::parse(query.as_bytes()), Err(Error::TooLarge { .. })));
    let long_reason = format!(
        "<revoked xmlns='urn:keyward:0' jid='a@b.test' fp='{}' at='2026-11-26T10:00:00Z' reason='{}'/>",
        "ab".repeat(32),
        "r".repeat(limits::REASON_BYTES + 1)
    );
    assert!(matches!(Revoked::parse(long_reason.as_bytes()), Err(Error::TooLarge { .. })));
    let mut oversized = bundle("alice").to_element();
    oversized.set_attr("jid", format!("{}@example.test", "a".repeat(1000)));
    assert!(matches!(Bundle::from_element(&oversized), Err(Error::TooLarge { what: "bundle", .. })));
    let stanza =
        format!("<relay xmlns='urn:keyward:0' to='bob@example.test'>{}</relay>", " ".repeat(limits::STANZA_BYTES));
    assert!(matches!(Relay::parse(stanza.as_bytes()), Err(Error::TooLarge { .. })));
}

#[test]
fn publish_needs_the_secret_update_of_the_bundles_key() {
    let alice = jid("alice@example.test");
    let keys = KeyPair::generate().expect("rng");
    let bundle = Bundle::sign(&keys, alice.clone(), 1_764_150_000);
    let secret = SecretBlob::seal(&keys, &alice, b"pw", KdfParams::INSECURE_TEST_ONLY).expect("seals");
    let publish = Publish::signed(&keys, &bundle, secret.clone(), 42).expect("signs");
    assert_eq!(publish.verify_for(&jid("bob@example.test")), Err(Error::JidMismatch));

    // Someone with the password but not the key: alice's bundle, a blob of their own.
    let mallory = KeyPair::generate().expect("rng");
    let foreign = SecretBlob::seal(&mallory, &alice, b"pw", KdfParams::INSECURE_TEST_ONLY).expect("seals");
    let forged =
        Publish { secret_sig: SecretSig::sign(&mallory, &alice, 43, &foreign).expect("signs"), ..publish.clone() };
    assert_eq!(forged.verify_for(&alice), Err(Error::SecretSignature));
    // Alice's own signature moved onto another blob.
    let moved = Publish { secret: foreign.into(), ..publish.clone() };
    assert_eq!(moved.verify_for(&alice), Err(Error::SecretSignature));

    // Without <secret-sig/>, a publish does not even parse.
    let xml = publish.to_xml();
    let start = xml.find("<secret-sig").expect("has secret-sig");
    let end = xml.find("</publish>").expect("ends");
    let bare = format!("{}{}", &xml[..start], &xml[end..]);
    assert_eq!(Publish::parse(bare.as_bytes()), Err(Error::Missing("secret-sig")));
}

#[test]
fn restore_elements_round_trip_and_the_proof_verifies() {
    use crate::restore::{OprfSeed, blind, evaluate};
    let alice = jid("alice@example.test");
    let keys = KeyPair::generate().expect("rng");
    let (_, blinded) = blind(b"pw").expect("blinds");
    let query = OprfQuery { blinded: blinded.clone() };
    round_trip(&query);
    let seed = OprfSeed::generate().expect("rng");
    let challenge = RestoreChallenge::generate().expect("rng");
    let result =
        OprfResult { challenge, evaluated: evaluate(&seed, &alice, &blinded).expect("evaluates"), left: Some(7) };
    round_trip(&result);
    round_trip(&OprfResult { left: None, ..result.clone() });
    let bad_left = result.to_xml().replace("left='7'", "left='-1'");
    assert!(OprfResult::parse(bad_left.as_bytes()).is_err(), "a negative count is refused");
    let proof = RestoreProof::sign(&keys, &alice, challenge);
    round_trip(&proof);
    let parsed = RestoreProof::parse(proof.to_xml().as_bytes()).expect("parses");
    parsed.verify(&keys.identity_public(), &alice).expect("verifies");
    assert_eq!(parsed.verify(&keys.identity_public(), &jid("bob@example.test")), Err(Error::BadSignature));
    let other = RestoreProof { challenge: RestoreChallenge::generate().expect("rng"), ..parsed };
    assert_eq!(other.verify(&keys.identity_public(), &alice), Err(Error::BadSignature));
}

#[test]
fn restore_elements_refuse_bad_fields() {
    let b64_32 = |byte: u8| b64(&[byte; 32]);
    // The identity (all zero) and a non-canonical encoding are refused as group elements.
    for bytes in [0u8, 0xff] {
        let xml = format!("<oprf xmlns='urn:keyward:0'>{}</oprf>", b64_32(bytes));
        assert_eq!(OprfQuery::parse(xml.as_bytes()), Err(Error::InvalidElement("oprf")));
        let xml =
            format!("<oprf-result xmlns='urn:keyward:0' challenge='{}'>{}</oprf-result>", b64_32(1), b64_32(bytes));
        assert_eq!(OprfResult::parse(xml.as_bytes()), Err(Error::InvalidElement("oprf-result")));
    }
    for (xml, expected) in [
        (
            "<oprf xmlns='urn:keyward:0'>AAAA</oprf>".to_owned(),
            Error::Length { field: "oprf", expected: 32, actual: 3 },
        ),
        ("<oprf xmlns='urn:keyward:0'>!!!!</oprf>".to_owned(), Error::Base64 { field: "oprf" }),
        (format!("<oprf xmlns='urn:keyward:0'><x/>{}</oprf>", b64_32(2)), Error::InvalidValue("oprf")),
        (
            format!("<oprf xmlns='urn:keyward:1'>{}</oprf>", b64_32(2)),
            Error::UnexpectedElement { expected: "{urn:keyward:0}oprf", found: "{urn:keyward:1}oprf".into() },
        ),
        (
            format!("<restore-proof xmlns='urn:keyward:0'>{}</restore-proof>", b64(&[0; 64])),
            Error::Missing("challenge"),
        ),
        (
            format!("<restore-proof xmlns='urn:keyward:0' challenge='AAAA'>{}</restore-proof>", b64(&[0; 64])),
            Error::Length { field: "challenge", expected: 32, actual: 3 },
        ),
        (
            format!("<restore-proof xmlns='urn:keyward:0' challenge='{}'>{}</restore-proof>", b64_32(1), b64_32(1)),
            Error::Length { field: "restore-proof", expected: 64, actual: 32 },
        ),
    ] {
        let err = if xml.starts_with("<oprf") {
            OprfQuery::parse(xml.as_bytes()).err()
        } else {
            RestoreProof::parse(xml.as_bytes()).err()
        };
        assert_eq!(err, Some(expected), "{xml}");
    }
}
