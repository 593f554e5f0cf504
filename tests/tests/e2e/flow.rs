//! The whole flow through the SDK: first use, add and accept with key relay, chat, verify by
//! safety number; and offline delivery across an XMPP server restart.

use keyward_client::{Incoming, KeyEvent, Setup, Trust};
use keyward_tests::xmpp::ServerKind;

use crate::support::{User, WAIT, expect, stack, wait_for};
use keyward_tests::on_both_servers;

on_both_servers!(whole_flow, offline_delivery, message_while_only_a_command_runs);

fn is_message_from<'a>(from: &'a keyward_client::keyward_proto::BareJid) -> impl FnMut(&Incoming) -> bool + 'a {
    move |event| matches!(event, Incoming::Message(m) if &m.from == from)
}

async fn whole_flow(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let bob = User::register(&stack, "bob").await?;
    let mut a = alice.session(Setup::FirstUse).await?;
    let mut b = bob.session(Setup::FirstUse).await?;
    assert_eq!(a.bundle().jid(), &alice.jid);

    // alice adds bob: bob already has keys, so his key is pinned on first use.
    match a.add(&bob.jid).await? {
        KeyEvent::Pinned { jid, fingerprint } => {
            assert_eq!(jid, bob.jid);
            assert_eq!(fingerprint, b.fingerprint());
        }
        other => panic!("alice expected bob's key pinned, got {other:?}"),
    }

    // bob comes online: the subscription request and alice's key (relayed by the component) arrive.
    b.go_online().await?;
    let mut request = false;
    let mut relayed = None;
    while !(request && relayed.is_some()) {
        match expect(&mut b, "alice's request and key", |e| {
            matches!(e, Incoming::ContactRequest(_) | Incoming::Key(KeyEvent::Pinned { .. }))
        })
        .await?
        {
            Incoming::ContactRequest(jid) => {
                assert_eq!(jid, alice.jid);
                request = true;
            }
            Incoming::Key(KeyEvent::Pinned { jid, fingerprint }) => {
                assert_eq!(jid, alice.jid);
                relayed = Some(fingerprint);
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(relayed, Some(a.fingerprint()), "the relayed key is alice's");

    // bob accepts: his key is relayed back; alice already pinned it, so it is unchanged.
    assert_eq!(b.accept(&alice.jid).await?, KeyEvent::Unchanged { jid: alice.jid.clone() });
    // alice asked for bob first, so her client approves bob's request back by itself: she gets
    // bob's key and, through the chat below, never a request to accept.
    a.go_online().await?;
    let (_, mut seen_by_alice) = wait_for(
        &mut a,
        "bob's relayed key",
        |e| matches!(e, Incoming::Key(KeyEvent::Unchanged { jid }) if *jid == bob.jid),
    )
    .await?;

    // Chat: verified against the pinned key, trust on first use.
    a.send(&bob.jid, "hello bob, this is alice").await?;
    match expect(&mut b, "alice's message", is_message_from(&alice.jid)).await? {
        Incoming::Message(m) => {
            assert_eq!(m.body, "hello bob, this is alice");
            assert!(m.verified);
            assert_eq!(m.trust, Trust::Tofu);
            assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        }
        _ => unreachable!(),
    }
    b.send(&alice.jid, "hi alice").await?;
    let (answer, skipped) = wait_for(&mut a, "bob's answer", is_message_from(&bob.jid)).await?;
    match answer {
        Incoming::Message(m) => assert!(m.body == "hi alice" && m.verified && m.trust == Trust::Tofu),
        _ => unreachable!(),
    }
    seen_by_alice.extend(skipped);
    assert!(
        !seen_by_alice.iter().any(|e| matches!(e, Incoming::ContactRequest(_))),
        "alice was asked to accept bob although she added him: {seen_by_alice:?}"
    );
    assert!(
        seen_by_alice.iter().any(|e| matches!(e, Incoming::RequestApproved(j) if *j == bob.jid)),
        "alice's client did not approve bob's request back: {seen_by_alice:?}"
    );

    // Both see the same safety number; bob confirms it and alice's key becomes verified.
    let seen_by_alice = a.safety_number(&bob.jid).await?;
    let seen_by_bob = b.safety_number(&alice.jid).await?;
    assert_eq!(seen_by_alice.number, seen_by_bob.number);
    assert_eq!(seen_by_alice.mine, seen_by_bob.theirs);
    assert_eq!(seen_by_alice.theirs, seen_by_bob.mine);
    assert!(!seen_by_bob.changed);
    // alice reads her number out; bob confirms with what he heard.
    let heard = keyward_client::Compared::parse(&seen_by_alice.number.to_string())?;
    assert_eq!(b.confirm(&alice.jid, &heard)?, a.fingerprint());
    a.send(&bob.jid, "now verified").await?;
    match expect(&mut b, "alice's second message", is_message_from(&alice.jid)).await? {
        Incoming::Message(m) => {
            assert_eq!(m.body, "now verified");
            assert!(m.verified);
            assert_eq!(m.trust, Trust::Verified);
        }
        _ => unreachable!(),
    }
    a.close().await?;
    b.close().await?;
    Ok(())
}

async fn offline_delivery(kind: ServerKind) -> anyhow::Result<()> {
    let mut stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let bob = User::register(&stack, "bob").await?;
    let mut a = alice.session(Setup::FirstUse).await?;
    bob.session(Setup::FirstUse).await?.close().await?;

    // bob is offline for all of this: the request, the key relay and the messages wait on the server.
    a.add(&bob.jid).await?;
    let texts = ["first while you were away", "second", "third, with ünïcödé ✓"];
    for text in texts {
        a.send(&bob.jid, text).await?;
    }
    // Everything is stored before the restart: a round trip on alice's stream after her messages
    // (the server handles a stream's stanzas in order), and the component's key relay
    // acknowledged (it is, once the server answered a ping sent behind it).
    a.refresh_key(&bob.jid).await?;
    a.close().await?;
    stack.wait_notices_acknowledged(WAIT).await?;
    // Offline storage survives a restart of the XMPP server (the component reconnects).
    stack.restart_xmpp().await?;

    let mut b = bob.session(Setup::ThisDevice).await?;
    b.go_online().await?;
    let mut received = Vec::new();
    let mut key_relayed = false;
    while received.len() < texts.len() {
        match expect(&mut b, "alice's offline messages", |e| {
            matches!(e, Incoming::Message(_) | Incoming::Key(_) | Incoming::Rejected { .. })
        })
        .await?
        {
            Incoming::Message(m) => {
                assert_eq!(m.from, alice.jid);
                assert!(m.verified, "{:?}", m.warnings);
                received.push(m.body);
            }
            Incoming::Key(KeyEvent::Pinned { jid, .. } | KeyEvent::Unchanged { jid }) => {
                assert_eq!(jid, alice.jid);
                key_relayed = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, texts);
    if !key_relayed {
        // The relayed key may come after the messages (which pinned alice's key on first use).
        expect(&mut b, "alice's relayed key", |e| matches!(e, Incoming::Key(KeyEvent::Unchanged { .. }))).await?;
    }
    b.close().await?;
    Ok(())
}

/// A message that arrives while the recipient's only connection is a command (`keyward send`,
/// `contacts`: connected, no presence) is kept for the next `recv`, not lost.
async fn message_while_only_a_command_runs(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let bob = User::register(&stack, "bob").await?;
    let mut a = alice.session(Setup::FirstUse).await?;
    let b = bob.session(Setup::FirstUse).await?;
    a.add(&bob.jid).await?;
    a.send(&bob.jid, "while you were busy").await?;
    // A round trip on alice's stream after the message: the server handles a stream's stanzas in
    // order, so once this is answered the message has been routed, while bob's command session
    // is still connected. (Had it been delivered to that session, closing it would lose it.)
    a.refresh_key(&bob.jid).await?;
    b.close().await?;

    let mut b = bob.session(Setup::ThisDevice).await?;
    b.go_online().await?;
    match expect(&mut b, "the message sent during the command", is_message_from(&alice.jid)).await? {
        Incoming::Message(m) => assert_eq!(m.body, "while you were busy"),
        _ => unreachable!(),
    }
    Ok(())
}
