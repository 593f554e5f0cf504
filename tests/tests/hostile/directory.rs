//! A hostile server and hostile users: a key swapped in the directory's database is detected and
//! sending refused; a forged `<key-relay/>` from a user is refused; tampered, forwarded and
//! replayed ciphertext is detected and never shown.

use keyward_client::keyward_proto::{
    BareJid, Bundle, Envelope, KeyPair, Recipient, SafetyNumber, Sealed, VerifiedBundle, XmlElement,
};
use keyward_client::stanzas::{sealed_message, to_minidom};
use keyward_client::{Error, Incoming, KeyEvent, Setup, Trust, Warning};
use keyward_tests::xmpp::ServerKind;
use sqlx::Connection;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::message::Message;

use crate::adversary::stack;
use crate::adversary::{commit_to_map, swap_bundle, wait_published};
use crate::support::{User, expect, mutual_contacts};
use keyward_tests::on_both_servers;

on_both_servers!(server_swaps_a_key, user_forges_a_key_relay, tampered_forwarded_and_replayed_ciphertext);

async fn server_swaps_a_key(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, mut a, mut b) = mutual_contacts(&stack).await?;
    let genuine = a.fingerprint();

    // The server's operator replaces alice's bundle with one of a key it holds (validly self-signed).
    let forged = Bundle::sign(&KeyPair::generate()?, alice.jid.clone(), 1_800_000_000);
    swap_bundle(stack.database_url()?, &forged).await?;

    // bob's next send looks alice's key up, sees the change, and refuses to encrypt to it.
    match b.send(&alice.jid, "who are you now?").await {
        Err(Error::KeyChanged { jid, pinned, offered }) => {
            assert_eq!(jid, alice.jid);
            assert_eq!(pinned, genuine.to_string());
            assert_eq!(offered, forged.fingerprint().to_string());
        }
        other => panic!("expected KeyChanged, got {other:?}"),
    }
    // The held-back key is what the safety number shows: it cannot match alice's own view.
    let report = b.safety_number(&alice.jid).await?;
    assert!(report.changed);
    assert_eq!(report.theirs, forged.fingerprint());
    let alices_view = a.safety_number(&bob.jid).await?;
    assert_ne!(report.number, alices_view.number, "comparing safety numbers exposes the swap");
    assert_eq!(SafetyNumber::of(&genuine, &b.fingerprint()), alices_view.number);

    // alice's genuine messages still verify against the pinned key, with a loud warning.
    a.send(&bob.jid, "it is still me").await?;
    match expect(&mut b, "alice's message", |e| matches!(e, Incoming::Message(_))).await? {
        Incoming::Message(m) => {
            assert_eq!(m.body, "it is still me");
            assert!(m.verified);
            assert!(
                m.warnings
                    .iter()
                    .any(|w| matches!(w, Warning::KeyChanged { offered, .. } if *offered == forged.fingerprint())),
                "{:?}",
                m.warnings
            );
        }
        _ => unreachable!(),
    }

    // A newcomer who meets alice only through the hostile directory pins the forged key (trust
    // on first use) -- and the safety number is how the two of them find out.
    let carol = User::register(&stack, "carol").await?;
    let mut c = carol.session(Setup::FirstUse).await?;
    assert!(
        matches!(c.add(&alice.jid).await?, KeyEvent::Pinned { fingerprint, .. } if fingerprint == forged.fingerprint())
    );
    let carols_view = c.safety_number(&alice.jid).await?;
    let alices_view_of_carol = a.safety_number(&carol.jid).await?;
    assert_ne!(carols_view.number, alices_view_of_carol.number);

    // A bundle row corrupted so its signature no longer verifies is refused outright.
    let mut broken_xml = forged.to_xml();
    let sig_at = broken_xml.find("<sig>").expect("sig") + 5;
    let flipped = if &broken_xml[sig_at..=sig_at] == "A" { "B" } else { "A" };
    broken_xml.replace_range(sig_at..=sig_at, flipped);
    let mut db = sqlx::PgConnection::connect(stack.database_url()?).await?;
    commit_to_map(&mut db, &alice.jid, &broken_xml).await?;
    sqlx::query("UPDATE bundles SET xml = $2 WHERE jid = $1")
        .bind(alice.jid.as_str())
        .bind(&broken_xml)
        .execute(&mut db)
        .await?;
    db.close().await?;
    wait_published(stack.database_url()?).await?;
    let dave = User::register(&stack, "dave").await?;
    let mut d = dave.session(Setup::FirstUse).await?;
    match d.add(&alice.jid).await {
        Err(Error::BadBundle { jid, .. }) => assert_eq!(jid, alice.jid),
        Err(Error::Refused { .. }) => {} // the component itself may refuse to hand out a bad bundle
        other => panic!("expected a refused bundle, got {other:?}"),
    }
    assert!(matches!(d.send(&alice.jid, "to nobody").await, Err(Error::NoKey(_) | Error::BadBundle { .. })));
    for session in [a, b, c, d] {
        session.close().await?;
    }
    Ok(())
}

async fn user_forges_a_key_relay(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, a, mut b) = mutual_contacts(&stack).await?;
    let mallory = User::register(&stack, "mallory").await?;
    let mut m = mallory.session(Setup::FirstUse).await?;

    // mallory sends bob a <key-relay/> claiming to carry alice's new key.
    let forged = Bundle::sign(&KeyPair::generate()?, alice.jid.clone(), 1_800_000_000);
    let relay = format!("<key-relay xmlns='urn:keyward:0' from='{}'>{}</key-relay>", alice.jid, forged.to_xml());
    let mut message = Message::new(Some(keyward_client::stanzas::jid(&bob.jid)?));
    message.type_ = tokio_xmpp::parsers::message::MessageType::Normal;
    message.payloads.push(relay.parse::<Element>()?);
    m.connection().send(message).await?;
    let refused_or_changed =
        |e: &Incoming| matches!(e, Incoming::Rejected { .. } | Incoming::Key(KeyEvent::Changed { .. }));
    match expect(&mut b, "mallory's forged relay", refused_or_changed).await? {
        Incoming::Rejected { from, .. } => assert_eq!(from, mallory.jid),
        other => panic!("a forged relay must be refused, got {other:?}"),
    }
    // Nothing changed: alice's genuine key is still the one bob encrypts to.
    let sent = b.send(&alice.jid, "still you").await?;
    assert_eq!(sent.to_fingerprint, a.fingerprint());
    let contacts = b.store().contacts()?;
    let pin = contacts.get(&alice.jid).expect("alice is a contact");
    assert!(pin.pending.is_none(), "the forged key is not even held back");
    assert_eq!(pin.trust, Trust::Tofu);
    for session in [a, b, m] {
        session.close().await?;
    }
    Ok(())
}

/// Seals `body` from `sender` to `to` exactly as the SDK does, and returns the stanza.
fn sealed(
    sender: &KeyPair,
    from: &BareJid,
    to: &BareJid,
    to_bundle: &VerifiedBundle,
    id: &str,
    body: &str,
) -> anyhow::Result<(Message, Sealed)> {
    let envelope = Envelope {
        from: from.clone(),
        to: to.clone(),
        ts_ms: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis().try_into()?,
        msg_id: id.to_owned(),
        body: body.to_owned(),
    };
    let sealed = Sealed::seal(sender, &envelope, &[Recipient::from(to_bundle)])?;
    Ok((sealed_message(to, id, &sealed)?, sealed))
}

/// Flips one base64 digit inside the first `<name>` of the sealed payload.
fn tamper(message: &mut Message, sealed: &Sealed, name: &str) -> anyhow::Result<()> {
    let mut xml = String::from(&to_minidom(&sealed.to_element())?);
    let at = xml.find(&format!("<{name}")).expect("element") + name.len() + 1;
    let at = at + xml[at..].find('>').expect("tag end") + 3;
    let flipped = if &xml[at..=at] == "A" { "B" } else { "A" };
    xml.replace_range(at..=at, flipped);
    message.payloads[0] = xml.parse::<Element>()?;
    Ok(())
}

async fn tampered_forwarded_and_replayed_ciphertext(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, mut a, mut b) = mutual_contacts(&stack).await?;
    let alice_keys = alice.keys()?;
    assert_eq!(alice_keys.fingerprint(), a.fingerprint());
    let bob_bundle = b.bundle().clone();

    // What a relay that flips bits in the ciphertext, or in the wrapped key, delivers.
    for (id, part) in [("tampered-ct", "ct"), ("tampered-key", "key")] {
        let (mut message, sealed) = sealed(&alice_keys, &alice.jid, &bob.jid, &bob_bundle, id, "tamper with me")?;
        tamper(&mut message, &sealed, part)?;
        a.connection().send(message).await?;
        match expect(&mut b, "the tampered message", |e| matches!(e, Incoming::Message(_) | Incoming::Rejected { .. }))
            .await?
        {
            Incoming::Rejected { from, error: Error::Protocol(_) } => assert_eq!(from, alice.jid),
            other => panic!("tampered {part} must be refused, got {other:?}"),
        }
    }

    // The genuine message goes through once; the same stanza again is a replay.
    let (message, _) = sealed(&alice_keys, &alice.jid, &bob.jid, &bob_bundle, "once", "only once")?;
    a.connection().send(message.clone()).await?;
    assert!(matches!(
        expect(&mut b, "the genuine message", |e| matches!(e, Incoming::Message(_) | Incoming::Rejected { .. })).await?,
        Incoming::Message(m) if m.body == "only once" && m.verified
    ));
    a.connection().send(message.clone()).await?;
    match expect(&mut b, "the replay", |e| matches!(e, Incoming::Message(_) | Incoming::Rejected { .. })).await? {
        Incoming::Rejected { error: Error::Protocol(keyward_client::keyward_proto::Error::Replay), .. } => {}
        other => panic!("a replay must be refused, got {other:?}"),
    }

    // mallory forwards alice's sealed payload to bob as her own: the signature binds the sender.
    let mallory = User::register(&stack, "mallory").await?;
    let mut m = mallory.session(Setup::FirstUse).await?;
    let (mut forward, _) = sealed(&alice_keys, &alice.jid, &bob.jid, &bob_bundle, "forwarded", "alice said this")?;
    forward.id = Some(tokio_xmpp::parsers::message::Id("forwarded".into()));
    m.connection().send(forward).await?;
    match expect(&mut b, "the forwarded message", |e| matches!(e, Incoming::Message(_) | Incoming::Rejected { .. }))
        .await?
    {
        Incoming::Rejected { from, .. } => assert_eq!(from, mallory.jid),
        other => panic!("a forwarded message must be refused, got {other:?}"),
    }
    for session in [a, b, m] {
        session.close().await?;
    }
    Ok(())
}
