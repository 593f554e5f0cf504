//! Revocation through keydir's admin HTTP API: the notice reaches an online contact at once and an
//! offline contact when it comes back; both then refuse to send, and later messages are flagged.

use keyward_client::keyward_proto::transparency::value::{MapValue, Revocation, label};
use keyward_client::{Error, Incoming, KeyEvent, Setup, Warning};
use keyward_tests::xmpp::ServerKind;

use crate::support::{User, expect, mutual_contacts, revoke, stack};
use keyward_tests::on_both_servers;
use sqlx::Connection as _;

on_both_servers!(
    revocation_reaches_online_and_offline_contacts,
    a_revocation_whose_notice_never_came_is_learned_online,
    a_notice_read_while_the_directory_is_down_is_applied_once_it_is_back
);

fn is_revocation_of<'a>(jid: &'a keyward_client::keyward_proto::BareJid) -> impl FnMut(&Incoming) -> bool + 'a {
    move |e| matches!(e, Incoming::Key(KeyEvent::Revoked { jid: j, .. }) if j == jid)
}

async fn revocation_reaches_online_and_offline_contacts(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let bob = User::register(&stack, "bob").await?;
    let carol = User::register(&stack, "carol").await?;
    let mut a = alice.session(Setup::FirstUse).await?;
    let mut b = bob.session(Setup::FirstUse).await?;
    let mut c = carol.session(Setup::FirstUse).await?;

    // bob and carol both hold alice's key (relayed to them), and each pinned it.
    a.add(&bob.jid).await?;
    a.add(&carol.jid).await?;
    for (session, who) in [(&mut b, "bob"), (&mut c, "carol")] {
        session.go_online().await?;
        expect(
            session,
            &format!("alice's key at {who}"),
            |e| matches!(e, Incoming::Key(KeyEvent::Pinned { jid, .. }) if *jid == alice.jid),
        )
        .await?;
    }
    // carol goes offline.
    c.close().await?;
    a.go_online().await?;

    let answer = revoke(&stack, &alice.jid, "laptop stolen").await?;
    assert_eq!(answer["status"], "revoked");
    assert_eq!(answer["changed"], true);
    assert!(answer["notices"].as_u64().is_some_and(|n| n >= 3), "bob, carol and alice herself: {answer}");

    // Online: bob hears at once, and refuses to encrypt to alice from now on.
    match expect(&mut b, "alice's revocation", is_revocation_of(&alice.jid)).await? {
        Incoming::Key(KeyEvent::Revoked { reason, .. }) => assert_eq!(reason, "laptop stolen"),
        _ => unreachable!(),
    }
    assert!(b.store().contacts()?.get(&alice.jid).is_some_and(|c| c.revoked.is_some()));
    match b.send(&alice.jid, "are you there?").await {
        Err(Error::Revoked { jid, .. }) => assert_eq!(jid, alice.jid),
        other => panic!("bob must refuse to send to a revoked contact, got {other:?}"),
    }
    // alice hears of it herself.
    match expect(&mut a, "alice's own revocation", |e| matches!(e, Incoming::SelfRevoked { .. })).await? {
        Incoming::SelfRevoked { reason, .. } => assert_eq!(reason, "laptop stolen"),
        _ => unreachable!(),
    }
    // Whatever is still signed with alice's key is flagged, not trusted.
    a.send(&bob.jid, "signed after the revocation").await?;
    match expect(&mut b, "a message signed after revocation", |e| matches!(e, Incoming::Message(_))).await? {
        Incoming::Message(m) => {
            assert!(!m.verified, "opened after the revocation");
            assert!(m.warnings.iter().any(|w| matches!(w, Warning::ContactRevoked { .. })), "{:?}", m.warnings);
        }
        _ => unreachable!(),
    }

    // Offline: carol finds the notice waiting when she comes back, before any lookup of hers.
    let mut c = carol.session(Setup::ThisDevice).await?;
    assert!(c.store().contacts()?.get(&alice.jid).is_some_and(|c| c.revoked.is_none()), "not yet known");
    c.go_online().await?;
    expect(&mut c, "alice's revocation at carol", is_revocation_of(&alice.jid)).await?;
    assert!(c.store().contacts()?.get(&alice.jid).is_some_and(|c| c.revoked.is_some()));
    assert!(matches!(c.send(&alice.jid, "hello?").await, Err(Error::Revoked { .. })));

    // Revocation is terminal: alice cannot publish new keys for the account.
    let fresh = tempfile::tempdir()?;
    match keyward_client::Session::start(&alice.account_on(fresh.path())).await {
        Err(Error::Revoked { jid, .. }) => assert_eq!(jid, alice.jid),
        other => panic!("a revoked account must not set up keys again, got {other:?}"),
    }
    for session in [a, b, c] {
        session.close().await?;
    }
    Ok(())
}

/// A notice can be lost on the way (XMPP without stream management delivers at most once to a
/// session, and a session can break with the notice in flight): going online looks up every
/// pinned contact, so the revocation is learned all the same.
async fn a_revocation_whose_notice_never_came_is_learned_online(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, a, b) = mutual_contacts(&stack).await?;
    b.close().await?;
    // alice is revoked as keydir revokes (pending first, until the component's answer cache
    // dropped her, then the status), and no notice is ever queued for it: the lost notice.
    let mut db = sqlx::PgConnection::connect(stack.database_url()?).await?;
    let seq: i64 = sqlx::query_scalar("INSERT INTO revocations_pending (jid) VALUES ($1) RETURNING seq")
        .bind(alice.jid.as_str())
        .fetch_one(&mut db)
        .await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM cache_leases WHERE valid_until > now() AND seen_seq < $1")
                .bind(seq)
                .fetch_one(&mut db)
                .await?;
        if waiting == 0 {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the component's cache never dropped alice");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The revocation enters the account row and the map's queue, as keydir's revoke does: a
    // revocation the map does not prove is not applied.
    let at = time::OffsetDateTime::now_utc().unix_timestamp();
    let value = MapValue::Revoked(Revocation::new(a.fingerprint(), u64::try_from(at)?, "laptop stolen")?).encode();
    sqlx::query(
        "UPDATE accounts SET status = 'revoked', revoked_at = to_timestamp($2), reason = 'laptop stolen' WHERE jid = $1",
    )
    .bind(alice.jid.as_str())
    .bind(at as f64)
    .execute(&mut db)
    .await?;
    sqlx::query("INSERT INTO transparency_pending (label, value) VALUES ($1, $2)")
        .bind(label(&alice.jid))
        .bind(value)
        .execute(&mut db)
        .await?;
    db.close().await?;

    let mut b = bob.session(Setup::ThisDevice).await?;
    b.go_online().await?;
    match expect(&mut b, "alice's revocation, learned online", is_revocation_of(&alice.jid)).await? {
        Incoming::Key(KeyEvent::Revoked { reason, .. }) => assert_eq!(reason, "laptop stolen"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(b.send(&alice.jid, "still there?").await, Err(Error::Revoked { .. })));
    for session in [a, b] {
        session.close().await?;
    }
    Ok(())
}

async fn a_notice_read_while_the_directory_is_down_is_applied_once_it_is_back(kind: ServerKind) -> anyhow::Result<()> {
    let mut stack = stack(kind).await?;
    let (alice, bob, a, mut b) = mutual_contacts(&stack).await?;
    a.close().await?;
    // The notice reaches bob's connection (the component hands it over and is done with it),
    // but bob reads it only once keydir is down: the lookup that must confirm it fails.
    revoke(&stack, &alice.jid, "laptop stolen").await?;
    let mut db = sqlx::PgConnection::connect(stack.database_url()?).await?;
    let deadline = std::time::Instant::now() + crate::support::WAIT;
    loop {
        let acked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notices WHERE kind = 'revoked' AND subject = $1 AND recipient = $2 AND acked_at IS NOT NULL",
        )
        .bind(alice.jid.as_str())
        .bind(bob.jid.as_str())
        .fetch_one(&mut db)
        .await?;
        if acked == 1 {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the notice to bob was never handed over");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    db.close().await?;
    stack.stop_keydir().await?;
    // Everything bob reads while keydir is down (until 3 s pass without an event).
    let mut during = Vec::new();
    while let Some(event) = b.next_event(std::time::Duration::from_secs(3)).await? {
        during.push(event);
    }
    assert!(
        !during.iter().any(|e| matches!(e, Incoming::Key(KeyEvent::Revoked { .. }) | Incoming::Rejected { .. })),
        "nothing is applied or refused while the directory cannot confirm: {during:?}"
    );
    // keydir comes back: the kept notice is tried again, confirmed and applied.
    stack.start_keydir().await?;
    expect(&mut b, "alice's revocation, once keydir is back", is_revocation_of(&alice.jid)).await?;
    let refused = b.send(&alice.jid, "still there?").await;
    assert!(matches!(refused, Err(Error::Revoked { .. })), "{refused:?}");
    Ok(())
}
