//! The trust rules of protocol sections 7 and 8 against a hostile server: a changed key never
//! opens a message, a stolen key cannot backdate past a revocation, nobody but the account's own
//! key speaks for it, a confirmation takes only the number compared, forged revocations change
//! nothing, and replayed or stale messages are refused.

use keyward_client::keyward_proto::{Bundle, Error as ProtoError, KeyPair, ReplayRule, SafetyNumber};
use keyward_client::{Compared, Error, Incoming, KeyEvent, Setup, Trust, Warning};
use keyward_tests::on_both_servers;
use keyward_tests::xmpp::ServerKind;
use time::{Duration, OffsetDateTime};

use crate::adversary::stack;
use crate::adversary::{connect_as, mark_revoked, now_ms, queue_revoked_notice, sealed_stanza, swap_bundle};
use crate::support::{User, expect, mutual_contacts, revoke};

on_both_servers!(
    a_changed_key_never_opens_a_message,
    a_stolen_key_cannot_backdate_a_message_past_its_revocation,
    only_the_own_key_speaks_for_the_own_account,
    a_confirmation_takes_only_the_number_that_was_compared,
    forged_revocations_change_nothing,
    replayed_and_stale_messages_are_refused
);

fn message_or_refusal(event: &Incoming) -> bool {
    matches!(event, Incoming::Message(_) | Incoming::Rejected { .. })
}

async fn a_changed_key_never_opens_a_message(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, a, mut b) = mutual_contacts(&stack).await?;
    // The directory swaps alice's key for one the server holds; bob's lookup holds it back.
    let server_key = KeyPair::generate()?;
    let forged = Bundle::sign(&server_key, alice.jid.clone(), 1_800_000_000);
    swap_bundle(stack.database_url()?, &forged).await?;
    assert!(matches!(b.refresh_key(&alice.jid).await?, KeyEvent::Changed { .. }));

    // The server, logged in as alice, sends bob a message signed with its key.
    let mut server_as_alice = connect_as(&alice).await?;
    let stanza = sealed_stanza(&server_key, &alice.jid, &bob.jid, b.bundle(), "by-changed-key", now_ms()?, "trust me")?;
    server_as_alice.send(stanza).await?;
    match expect(&mut b, "the message signed by the changed key", message_or_refusal).await? {
        Incoming::Rejected { from, error: Error::SignedByChangedKey { jid, offered, .. } } => {
            assert_eq!((from, jid), (alice.jid.clone(), alice.jid.clone()));
            assert_eq!(offered, forged.fingerprint().to_string());
        }
        other => panic!("a message signed by a changed key must be refused, got {other:?}"),
    }
    // The stanza is kept as evidence, and the pin is untouched.
    let evidence = b.store().evidence()?;
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    assert_eq!((evidence[0].0.as_str(), evidence[0].1.as_str()), ("signed-by-changed-key", alice.jid.as_str()));
    let pin = b.store().contacts()?.get(&alice.jid).cloned().expect("alice is a contact");
    assert_eq!(pin.pinned_bundle(&alice.jid)?.map(|p| p.fingerprint()), Some(a.fingerprint()));
    server_as_alice.close().await?;
    for session in [a, b] {
        session.close().await?;
    }
    Ok(())
}

async fn a_stolen_key_cannot_backdate_a_message_past_its_revocation(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, a, mut b) = mutual_contacts(&stack).await?;
    let stolen = alice.keys()?;
    revoke(&stack, &alice.jid, "laptop stolen").await?;
    expect(&mut b, "alice's revocation", |e| matches!(e, Incoming::Key(KeyEvent::Revoked { .. }))).await?;

    // The thief signs with a time an hour before the revocation.
    let mut thief = connect_as(&alice).await?;
    let backdated = now_ms()? - 3_600_000;
    thief.send(sealed_stanza(&stolen, &alice.jid, &bob.jid, b.bundle(), "backdated", backdated, "wire money")?).await?;
    match expect(&mut b, "the backdated message", message_or_refusal).await? {
        Incoming::Message(m) => {
            assert_eq!(m.body, "wire money");
            assert!(!m.verified, "opened after the revocation: never verified, whatever its time");
            assert!(m.warnings.iter().any(|w| matches!(w, Warning::ContactRevoked { .. })), "{:?}", m.warnings);
        }
        other => panic!("expected the message flagged as unverified, got {other:?}"),
    }
    thief.close().await?;
    for session in [a, b] {
        session.close().await?;
    }
    Ok(())
}

async fn only_the_own_key_speaks_for_the_own_account(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let bob = User::register(&stack, "bob").await?;
    let mut b = bob.session(Setup::FirstUse).await?;
    b.go_online().await?;
    // The directory now answers a key of the server's for bob himself, and the server sends bob
    // a message "from bob" signed with it (from a second, unavailable resource).
    let server_key = KeyPair::generate()?;
    let own_bundle = b.bundle().clone();
    swap_bundle(stack.database_url()?, &Bundle::sign(&server_key, bob.jid.clone(), 1_800_000_000)).await?;
    let mut server_as_bob = connect_as(&bob).await?;
    let stanza = sealed_stanza(&server_key, &bob.jid, &bob.jid, &own_bundle, "from-myself", now_ms()?, "note to self")?;
    server_as_bob.send(stanza).await?;
    match expect(&mut b, "the message from 'bob'", message_or_refusal).await? {
        Incoming::Rejected { from, error: Error::Protocol(ProtoError::BadSignature) } => assert_eq!(from, bob.jid),
        other => panic!("a message from the own account signed by another key must be refused, got {other:?}"),
    }
    assert!(b.store().contacts()?.get(&bob.jid).is_none(), "the own account is never a contact");
    assert!(matches!(b.refresh_key(&bob.jid).await, Err(Error::Invalid { what: "contact", .. })));
    server_as_bob.close().await?;
    b.close().await?;
    Ok(())
}

async fn a_confirmation_takes_only_the_number_that_was_compared(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, mut a, mut b) = mutual_contacts(&stack).await?;
    let genuine = a.fingerprint();
    let forged = Bundle::sign(&KeyPair::generate()?, alice.jid.clone(), 1_800_000_000);
    swap_bundle(stack.database_url()?, &forged).await?;
    assert!(matches!(b.refresh_key(&alice.jid).await?, KeyEvent::Changed { .. }));

    // bob confirms with a number that is not the one alice reads out: refused, nothing changes.
    let not_compared =
        Compared::parse(&SafetyNumber::of(&b.fingerprint(), &KeyPair::generate()?.fingerprint()).to_string())?;
    let heard_from_alice = Compared::parse(&a.safety_number(&bob.jid).await?.number.to_string())?;
    assert!(matches!(b.confirm(&alice.jid, &not_compared), Err(Error::ConfirmMismatch(_))));
    let contact = b.store().contacts()?.get(&alice.jid).cloned().expect("alice is a contact");
    assert_eq!((contact.trust, contact.pending.is_some()), (Trust::Tofu, true));
    // The number alice read out designates the pinned key: it is verified, the swapped key dropped.
    assert_eq!(b.confirm(&alice.jid, &heard_from_alice)?, genuine);
    let contact = b.store().contacts()?.get(&alice.jid).cloned().expect("alice is a contact");
    assert_eq!((contact.trust, contact.pending.is_none()), (Trust::Verified, true));
    assert_eq!(contact.pinned_bundle(&alice.jid)?.map(|p| p.fingerprint()), Some(genuine));
    for session in [a, b] {
        session.close().await?;
    }
    Ok(())
}

async fn forged_revocations_change_nothing(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, a, mut b) = mutual_contacts(&stack).await?;
    let genuine = a.fingerprint();
    let now = OffsetDateTime::now_utc();
    let refused = |e: &Incoming| matches!(e, Incoming::Rejected { .. } | Incoming::Key(KeyEvent::Revoked { .. }));
    let expect_refused = async |b: &mut keyward_client::Session, what: &str, why: &str| -> anyhow::Result<()> {
        match expect(b, what, refused).await? {
            Incoming::Rejected { error: Error::RevocationRefused { jid, reason }, .. } => {
                assert_eq!(jid, alice.jid);
                assert!(reason.contains(why), "{what}: {reason}");
            }
            other => panic!("{what} must be refused, got {other:?}"),
        }
        Ok(())
    };

    // A notice about a key that is not the pinned one.
    queue_revoked_notice(&stack, &bob.jid, &alice.jid, KeyPair::generate()?.fingerprint(), now).await?;
    expect_refused(&mut b, "a notice about another key", "not about the pinned key").await?;
    // A notice about the pinned key that the directory does not confirm.
    queue_revoked_notice(&stack, &bob.jid, &alice.jid, genuine, now).await?;
    expect_refused(&mut b, "an unconfirmed notice", "does not confirm").await?;
    // The directory's database says revoked, a day in the future, then three years back.
    mark_revoked(&stack, &alice.jid, genuine, now + Duration::days(1)).await?;
    queue_revoked_notice(&stack, &bob.jid, &alice.jid, genuine, now).await?;
    expect_refused(&mut b, "a revocation in the future", "in the future").await?;
    mark_revoked(&stack, &alice.jid, genuine, now - Duration::days(3 * 365)).await?;
    queue_revoked_notice(&stack, &bob.jid, &alice.jid, genuine, now).await?;
    expect_refused(&mut b, "a revocation before the pin", "before the key was pinned").await?;

    // Nothing was applied: alice is not revoked at bob's, who still encrypts to her pinned key.
    assert!(b.store().contacts()?.get(&alice.jid).is_some_and(|c| c.revoked.is_none()));
    assert_eq!(b.send(&alice.jid, "still talking").await?.to_fingerprint, genuine);
    for session in [a, b] {
        session.close().await?;
    }
    Ok(())
}

async fn replayed_and_stale_messages_are_refused(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, a, mut b) = mutual_contacts(&stack).await?;
    let alice_keys = alice.keys()?;
    let mut server_as_alice = connect_as(&alice).await?;
    let now = now_ms()?;
    let genuine = sealed_stanza(&alice_keys, &alice.jid, &bob.jid, b.bundle(), "once", now, "only once")?;
    server_as_alice.send(genuine.clone()).await?;
    assert!(matches!(
        expect(&mut b, "the genuine message", message_or_refusal).await?,
        Incoming::Message(m) if m.body == "only once" && m.verified
    ));
    // The same stanza again, after bob's client restarted: a replay.
    b.close().await?;
    let mut b = bob.session(Setup::ThisDevice).await?;
    b.go_online().await?;
    // A round trip on bob's stream: the server has handled his presence (it handles a stream's
    // stanzas in order), so the replay goes to this session, not to offline storage.
    b.refresh_key(&alice.jid).await?;
    server_as_alice.send(genuine).await?;
    match expect(&mut b, "the replayed message", message_or_refusal).await? {
        Incoming::Rejected { error: Error::Protocol(ProtoError::Replay), from } => assert_eq!(from, alice.jid),
        other => panic!("a replay must be refused, got {other:?}"),
    }
    // A message alice signed more than the window before her newest one: too old to tell.
    let old = now - ReplayRule::V0.window_ms - 60_000;
    server_as_alice.send(sealed_stanza(&alice_keys, &alice.jid, &bob.jid, b.bundle(), "old", old, "old news")?).await?;
    match expect(&mut b, "the stale message", message_or_refusal).await? {
        Incoming::Rejected { error: Error::Protocol(ProtoError::TooOld), .. } => {}
        other => panic!("a message outside the replay window must be refused, got {other:?}"),
    }
    server_as_alice.close().await?;
    for session in [a, b] {
        session.close().await?;
    }
    Ok(())
}
