//! Message carbons (XEP-0280) on both servers: a message sent from one device appears, decrypted
//! and marked as sent, on the account's other online device; messages received reach both devices
//! once; a carbon wrapper from anyone but the account itself is refused unopened.

use anyhow::Context;
use keyward_client::keyward_proto::{Envelope, Recipient, Sealed};
use keyward_client::{Error, Incoming, Session, Setup, stanzas};
use keyward_tests::on_both_servers;
use keyward_tests::xmpp::ServerKind;
use tokio_xmpp::minidom::Element as MElement;
use tokio_xmpp::parsers::message::{Message, MessageType};

use crate::support::{expect, marker, mutual_contacts, stack, wait_for};

on_both_servers!(
    a_message_sent_from_one_device_appears_on_the_other,
    a_carbon_from_anyone_but_the_account_itself_is_refused
);

async fn a_message_sent_from_one_device_appears_on_the_other(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, mut phone, mut b) = mutual_contacts(&stack).await?;
    let laptop_dir = tempfile::tempdir()?;
    let (mut laptop, setup) = Session::start(&alice.account_on(laptop_dir.path())).await?;
    assert_eq!(setup, Setup::NewDevice);
    laptop.go_online().await?;

    let run = marker();
    let text = format!("sent from alice's phone, run {run}");
    phone.send(&bob.jid, &text).await?;
    let seen = expect(&mut laptop, "the phone's message as a carbon", |e| matches!(e, Incoming::Sent(_))).await?;
    let Incoming::Sent(copy) = seen else { unreachable!("matched above") };
    assert_eq!(copy.body, text);
    assert_eq!(copy.from, alice.jid);
    assert_eq!(copy.to, bob.jid, "the carbon names the contact it went to");
    assert!(copy.verified, "checked with alice's own key");
    expect(&mut b, "alice's message", |e| matches!(e, Incoming::Message(m) if m.body == text)).await?;

    // bob answers: both of alice's devices read it, and neither shows a refusal for a copy.
    let answer = format!("bob's answer, run {run}");
    b.send(&alice.jid, &answer).await?;
    for (device, session) in [("phone", &mut phone), ("laptop", &mut laptop)] {
        let (_, skipped) = wait_for(
            session,
            &format!("bob's answer on the {device}"),
            |e| matches!(e, Incoming::Message(m) if m.body == answer && m.from == bob.jid),
        )
        .await?;
        assert!(
            !skipped.iter().any(|e| matches!(e, Incoming::Rejected { .. })),
            "the {device} refused something: {skipped:?}"
        );
    }
    // A marker after it: no second copy of the answer, and nothing refused, on either device.
    let after = format!("the marker after, run {run}");
    b.send(&alice.jid, &after).await?;
    for (device, session) in [("phone", &mut phone), ("laptop", &mut laptop)] {
        let (_, skipped) = wait_for(
            session,
            &format!("the marker on the {device}"),
            |e| matches!(e, Incoming::Message(m) if m.body == after),
        )
        .await?;
        assert!(skipped.is_empty(), "the {device} saw more than the marker: {skipped:?}");
    }
    Ok(())
}

async fn a_carbon_from_anyone_but_the_account_itself_is_refused(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, mut a, mut b) = mutual_contacts(&stack).await?;
    // bob wraps a message of his own making as a "received carbon" of alice's, as if alice had
    // received it from bob on another device. It is genuinely sealed and signed by bob; only the
    // wrapper is a lie, which the client must not believe.
    let run = marker();
    let inner_text = format!("smuggled in a carbon, run {run}");
    let envelope = Envelope {
        from: bob.jid.clone(),
        to: alice.jid.clone(),
        ts_ms: now_ms(),
        msg_id: format!("c{run}"),
        body: inner_text.clone(),
    };
    let sealed = Sealed::seal(&bob.keys()?, &envelope, &[Recipient::from(a.bundle())])?;
    let mut inner = stanzas::sealed_message(&alice.jid, &format!("c{run}"), &sealed)?;
    inner.from = Some(stanzas::jid(&bob.jid)?);
    let inner: MElement = inner.into();
    let wrapper = MElement::builder("received", "urn:xmpp:carbons:2")
        .append(MElement::builder("forwarded", "urn:xmpp:forward:0").append(inner))
        .build();
    let mut forged = Message::new_with_type(MessageType::Chat, Some(stanzas::jid(&alice.jid)?));
    forged.payloads.push(wrapper);
    b.connection().send(forged).await?;
    let marker_text = format!("the marker after the forged carbon, run {run}");
    b.send(&alice.jid, &marker_text).await?;

    let (_, before) =
        wait_for(&mut a, "bob's marker", |e| matches!(e, Incoming::Message(m) if m.body == marker_text)).await?;
    assert!(
        !before.iter().any(|e| matches!(e, Incoming::Message(m) | Incoming::Sent(m) if m.body == inner_text)),
        "the forged carbon was shown: {before:?}"
    );
    let refused = before
        .iter()
        .find(|e| matches!(e, Incoming::Rejected { error: Error::ForgedCarbon(from), .. } if *from == bob.jid))
        .context("the forged carbon was refused as such")?;
    assert!(matches!(refused, Incoming::Rejected { from, .. } if *from == bob.jid));
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
