//! Tests of sealing and opening: round trips, tampering, binding, forwarding and replay.

use super::*;
use crate::bundle::Bundle;
use crate::replay::MemoryReplayCache;

struct Party {
    jid: BareJid,
    keys: KeyPair,
    bundle: VerifiedBundle,
}

fn party(name: &str) -> Party {
    let jid = BareJid::parse(&format!("{name}@example.test")).expect("valid");
    let keys = KeyPair::generate().expect("rng");
    let bundle = Bundle::sign(&keys, jid.clone(), 1_764_150_000);
    Party { jid, keys, bundle }
}

fn envelope(from: &Party, to: &Party, id: &str, body: &str) -> Envelope {
    Envelope {
        from: from.jid.clone(),
        to: to.jid.clone(),
        ts_ms: 1_764_150_000_123,
        msg_id: id.into(),
        body: body.into(),
    }
}

fn open_as(reader: &Party, sealed: &Sealed, stanza_from: &Party, sender: &Party) -> Result<Envelope> {
    sealed.open(
        &reader.keys,
        &reader.jid,
        &stanza_from.jid,
        sender.bundle.identity_key(),
        &mut MemoryReplayCache::default(),
    )
}

#[test]
fn recipient_and_sender_can_both_read() {
    let (alice, bob) = (party("alice"), party("bob"));
    let env = envelope(&alice, &bob, "m1", "hello bob");
    let sealed = Sealed::seal(&alice.keys, &env, &[Recipient::from(&bob.bundle)]).expect("seals");
    let wire = Sealed::parse(sealed.to_xml().as_bytes()).expect("parses");
    assert_eq!(open_as(&bob, &wire, &alice, &alice).expect("bob opens"), env);
    // Alice's other device reads her own copy (stanza from alice, e.g. a carbon or archive).
    assert_eq!(open_as(&alice, &wire, &alice, &alice).expect("alice opens"), env);
    assert_eq!(wire.recipients().count(), 2);
}

#[test]
fn a_third_party_cannot_read() {
    let (alice, bob, eve) = (party("alice"), party("bob"), party("eve"));
    let sealed =
        Sealed::seal(&alice.keys, &envelope(&alice, &bob, "m1", "x"), &[Recipient::from(&bob.bundle)]).expect("seals");
    assert_eq!(open_as(&eve, &sealed, &alice, &alice), Err(Error::NotARecipient));
}

#[test]
fn tampering_anywhere_is_detected() {
    let (alice, bob) = (party("alice"), party("bob"));
    let sealed = Sealed::seal(&alice.keys, &envelope(&alice, &bob, "m1", "pay 10"), &[Recipient::from(&bob.bundle)])
        .expect("seals");
    let mut ct = sealed.clone();
    ct.ct[5] ^= 0x20;
    assert_eq!(open_as(&bob, &ct, &alice, &alice), Err(Error::Decrypt));
    let mut wrapped = sealed.clone();
    wrapped.keys[0].wrapped[30] ^= 1;
    assert_eq!(open_as(&bob, &wrapped, &alice, &alice), Err(Error::Decrypt));
    let mut eph = sealed.clone();
    eph.eph[0] ^= 1;
    assert!(open_as(&bob, &eph, &alice, &alice).is_err());
    let mut nonce = sealed;
    nonce.nonce[0] ^= 1;
    assert_eq!(open_as(&bob, &nonce, &alice, &alice), Err(Error::Decrypt));
}

#[test]
fn wrong_pinned_key_is_a_bad_signature() {
    let (alice, bob, mallory) = (party("alice"), party("bob"), party("mallory"));
    let sealed =
        Sealed::seal(&alice.keys, &envelope(&alice, &bob, "m1", "x"), &[Recipient::from(&bob.bundle)]).expect("seals");
    // Bob's pin for alice is mallory's key (e.g. a swapped key): the signature fails.
    assert_eq!(open_as(&bob, &sealed, &alice, &mallory), Err(Error::BadSignature));
}

#[test]
fn mallory_cannot_sign_as_alice() {
    let (alice, bob, mallory) = (party("alice"), party("bob"), party("mallory"));
    // Mallory seals a message claiming to be from alice, with her own key.
    let forged = Sealed::seal(&mallory.keys, &envelope(&alice, &bob, "m1", "x"), &[Recipient::from(&bob.bundle)])
        .expect("seals");
    assert_eq!(open_as(&bob, &forged, &alice, &alice), Err(Error::BadSignature));
}

#[test]
fn surreptitious_forwarding_is_refused() {
    let (alice, bob, carol) = (party("alice"), party("bob"), party("carol"));
    let env = envelope(&alice, &bob, "m1", "I love you, bob");
    let payload = signed_payload(&alice.keys, &env).expect("signs");
    // Bob re-seals alice's signed payload, unchanged, to carol.
    let forwarded =
        Sealed::encrypt_payload(SealedVersion::V0, &payload, &[Recipient::from(&carol.bundle)], &mut os_random)
            .expect("seals");
    // The stanza comes from bob: the signed sender is alice, so it is refused.
    assert!(open_as(&carol, &forwarded, &bob, &alice).is_err());
    assert_eq!(open_as(&carol, &forwarded, &bob, &bob), Err(Error::BadSignature));
    // Even if carol believed it came from alice, it was addressed to bob.
    assert_eq!(open_as(&carol, &forwarded, &alice, &alice), Err(Error::Binding("recipient")));
}

#[test]
fn sender_binding_is_checked_against_the_stanza() {
    let (alice, bob, mallory) = (party("alice"), party("bob"), party("mallory"));
    let sealed =
        Sealed::seal(&alice.keys, &envelope(&alice, &bob, "m1", "x"), &[Recipient::from(&bob.bundle)]).expect("seals");
    // Mallory replays alice's stanza from her own account, verified with alice's key.
    assert_eq!(open_as(&bob, &sealed, &mallory, &alice), Err(Error::Binding("sender")));
}

#[test]
fn replay_is_refused_and_failures_do_not_poison_the_cache() {
    let (alice, bob) = (party("alice"), party("bob"));
    let sealed =
        Sealed::seal(&alice.keys, &envelope(&alice, &bob, "m1", "x"), &[Recipient::from(&bob.bundle)]).expect("seals");
    let mut cache = MemoryReplayCache::default();
    let ik = alice.bundle.identity_key();
    // A failed open (wrong stanza sender) records nothing.
    assert!(sealed.open(&bob.keys, &bob.jid, &bob.jid, ik, &mut cache).is_err());
    assert_eq!(cache.remembered(&alice.jid), 0);
    sealed.open(&bob.keys, &bob.jid, &alice.jid, ik, &mut cache).expect("first time");
    assert_eq!(sealed.open(&bob.keys, &bob.jid, &alice.jid, ik, &mut cache), Err(Error::Replay));
}

#[test]
fn padding_hides_length_within_64_bytes() {
    let (alice, bob) = (party("alice"), party("bob"));
    let seal = |body: &str| {
        Sealed::seal(&alice.keys, &envelope(&alice, &bob, "m", body), &[Recipient::from(&bob.bundle)]).expect("seals")
    };
    assert_eq!(seal("").ct.len(), seal(&"x".repeat(60)).ct.len());
    assert!(seal(&"x".repeat(61)).ct.len() > seal(&"x".repeat(60)).ct.len());
    assert!(unpad(&[0, 0, 0, 1, b'a']).is_err(), "not a multiple of 64");
    // `put_padded` writes lp(pad(body)): the padded field follows its 4-byte length.
    let padded = |body: &[u8]| {
        let mut out = Vec::new();
        put_padded(&mut out, body);
        out.split_off(4)
    };
    assert_eq!(unpad(&padded(b"abc")).expect("well padded"), b"abc");
    assert_eq!(padded(b"abc").len(), 64);
    let mut extra = padded(b"abc");
    extra.extend_from_slice(&[0; 64]);
    assert!(unpad(&extra).is_err(), "more padding than needed");
    let mut dirty = padded(b"abc");
    dirty[63] = 1;
    assert!(unpad(&dirty).is_err(), "non-zero padding");
}

#[test]
fn limits_and_bad_inputs_are_errors() {
    let (alice, bob) = (party("alice"), party("bob"));
    let big = envelope(&alice, &bob, "m", &"x".repeat(limits::BODY_BYTES + 1));
    assert!(matches!(Sealed::seal(&alice.keys, &big, &[]), Err(Error::TooLarge { .. })));
    assert!(Sealed::seal(&alice.keys, &envelope(&alice, &bob, "", "x"), &[]).is_err());
    let sealed =
        Sealed::seal(&alice.keys, &envelope(&alice, &bob, "m", "x"), &[Recipient::from(&bob.bundle)]).expect("seals");
    let xml = sealed.to_xml();
    assert!(matches!(Sealed::parse(xml.replace("v='1'", "v='2'").as_bytes()), Err(Error::InvalidValue("v"))));
    let no_keys = Sealed { keys: vec![], ..sealed.clone() }.to_xml();
    assert!(matches!(Sealed::parse(no_keys.as_bytes()), Err(Error::Missing("key"))));
    let mut short = sealed.clone();
    short.keys[0].wrapped.truncate(10);
    assert!(matches!(Sealed::parse(short.to_xml().as_bytes()), Err(Error::Length { field: "key", .. })));
    let many = Sealed { keys: vec![sealed.keys[0].clone(); limits::SEALED_KEYS + 1], ..sealed };
    assert!(matches!(Sealed::parse(many.to_xml().as_bytes()), Err(Error::TooLarge { .. })));
}

#[test]
fn low_order_recipient_key_is_refused() {
    let alice = party("alice");
    let bad = Recipient { fp: alice.keys.fingerprint(), ek: EncryptionPublic::from_bytes(&[0; 32]) };
    let bob = party("bob");
    assert_eq!(Sealed::seal(&alice.keys, &envelope(&alice, &bob, "m", "x"), &[bad]).err(), Some(Error::InvalidKey));
}

#[test]
fn the_reader_holds_the_envelope_to_the_senders_limits() {
    // A peer signs its own `inner`: an empty or overlong msg_id must be refused on reading
    // as it is on sealing, or the replay cache would key on ids no sender can produce.
    let (alice, bob) = (party("alice"), party("bob"));
    let good = envelope(&alice, &bob, "m1", "hi");
    let inner = good.to_inner().expect("valid envelope");
    assert_eq!(Envelope::from_inner(&inner).expect("parses"), good);
    let mut empty_id = inner.to_vec();
    // DOMAIN, lp(from), lp(to), ts: then the msg_id's 4-byte length and its 2 bytes.
    let at = DOMAIN.len() + 4 + good.from.as_str().len() + 4 + good.to.as_str().len() + 8;
    empty_id.splice(at..at + 4 + 2, 0u32.to_be_bytes());
    assert!(matches!(Envelope::from_inner(&empty_id), Err(Error::InvalidValue("msg_id"))));
}

#[test]
fn a_message_from_the_own_account_opens_only_with_the_own_key() {
    // The server's key for "alice" (a directory entry it controls) signs a message from alice to alice.
    let alice = party("alice");
    let impostor = Party { jid: alice.jid.clone(), ..party("impostor") };
    let forged = Sealed::seal(
        &impostor.keys,
        &envelope(&impostor, &alice, "m1", "it is me, really"),
        &[Recipient::from(&alice.bundle)],
    )
    .expect("seals");
    assert_eq!(open_as(&alice, &forged, &alice, &impostor), Err(Error::NotOwnKey));
    assert_eq!(open_as(&alice, &forged, &alice, &alice), Err(Error::BadSignature));
}

#[test]
fn version_1_carries_the_signed_head_summary_and_version_0_is_still_read() {
    let (alice, bob) = (party("alice"), party("bob"));
    let env = envelope(&alice, &bob, "m1", "hello bob");
    let head = HeadSummary { origin_tag: [1, 2, 3, 4], size: 7, root: [9; 32] };
    let open_with_head = |sealed: &Sealed| {
        let wire = Sealed::parse(sealed.to_xml().as_bytes()).expect("parses");
        wire.open_with_head(
            &bob.keys,
            &bob.jid,
            &alice.jid,
            alice.bundle.identity_key(),
            &mut MemoryReplayCache::default(),
        )
    };
    let sealed =
        Sealed::seal_with_head(&alice.keys, &env, Some(&head), &[Recipient::from(&bob.bundle)]).expect("seals");
    assert!(sealed.to_xml().contains("v='1'"), "{}", sealed.to_xml());
    assert_eq!(open_with_head(&sealed).expect("opens"), (env.clone(), Some(head)));
    let plain = Sealed::seal(&alice.keys, &env, &[Recipient::from(&bob.bundle)]).expect("seals");
    assert_eq!(plain.version(), SealedVersion::V1);
    assert_eq!(open_with_head(&plain).expect("opens"), (env.clone(), None));
    let old = Sealed::seal_with(&alice.keys, &env, &[Recipient::from(&bob.bundle)], &mut os_random).expect("seals");
    assert_eq!(old.version(), SealedVersion::V0);
    assert_eq!(open_with_head(&old).expect("a version 0 message still opens"), (env.clone(), None));
    // A version 0 payload relabelled version 1 (or the reverse) fails its domain: the signature
    // covers the version, so no one can strip or add a head summary.
    let relabelled = Sealed { version: SealedVersion::V1, ..old };
    assert_eq!(open_with_head(&relabelled), Err(Error::InvalidValue("message domain")));
    let relabelled = Sealed { version: SealedVersion::V0, ..sealed };
    assert_eq!(open_with_head(&relabelled), Err(Error::InvalidValue("message domain")));
    // A summary of the wrong length inside a signed payload is refused.
    let mut inner = env.to_inner_as(SealedVersion::V1, None).expect("inner");
    let len = inner.len();
    inner[len - 4..].copy_from_slice(&3u32.to_be_bytes());
    inner.extend_from_slice(&[1, 2, 3]);
    assert!(parse_inner(&inner, SealedVersion::V1).is_err());
}
