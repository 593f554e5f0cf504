//! Key transparency against the directory's own database: a key swapped or a revocation withheld by editing keydir's tables is caught by the client with a typed alarm, and nothing of the lie is pinned or used.
//!
//! The stack's keydir publishes its map every 250 ms. The adversary owns the database: it edits
//! the rows keydir serves from and, so that keydir's own check lets the edit through, queues the
//! matching map value; it also holds the publisher's advisory lock, so the queued lie is never
//! published (publishing it would put it in the map's history, where the account's owner finds it:
//! `a_key_swapped_in_the_map_is_found_by_its_owner`).

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keyward_client::keyward_proto::transparency::heads::{EpochLeaf, EpochLog, Head, HeadSummary, KeyType, NoteSigner};
use keyward_client::keyward_proto::transparency::value::{BundleCommitment, MapValue, label};
use keyward_client::keyward_proto::{Bundle, Envelope, Error as ProtoError, KeyPair, Recipient, Sealed, XmlElement};
use keyward_client::stanzas::sealed_message;
use keyward_client::{Error, Incoming, KeyEvent, Setup, Warning};
use keyward_tests::on_both_servers;
use keyward_tests::stack::Stack;
use keyward_tests::xmpp::ServerKind;
use sqlx::Connection as _;

use crate::adversary::{stack, swap_bundle, swap_bundle_unpublished, wait_published};
use crate::support::{User, expect, mutual_contacts};

on_both_servers!(
    a_key_swapped_outside_the_map_is_caught,
    a_withheld_revocation_is_caught,
    a_key_swapped_in_the_map_is_found_by_its_owner,
    a_forked_head_shown_to_one_client_is_caught
);

/// keydir's publisher lock (protocol section 15.1.4).
const PUBLISHER_LOCK: i64 = 0x6b77_7472_616e_7370;

/// Takes keydir's publisher lock on a connection of the adversary's, so no epoch is published
/// while it is held (the connection holds it until closed).
async fn hold_publisher(stack: &Stack) -> anyhow::Result<sqlx::PgConnection> {
    let mut db = sqlx::PgConnection::connect(stack.database_url()?).await?;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(PUBLISHER_LOCK).execute(&mut db).await?;
    Ok(db)
}

fn is_caught(result: &Result<KeyEvent, Error>, expected: fn(&ProtoError) -> bool) -> bool {
    matches!(result, Err(Error::DirectoryCaught { cause, .. }) if expected(cause))
}

async fn a_key_swapped_outside_the_map_is_caught(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, _bob, a, b) = mutual_contacts(&stack).await?;
    wait_published(stack.database_url()?).await?;

    // The adversary stops the map and swaps alice's bundle for one of a key it holds.
    let lock = hold_publisher(&stack).await?;
    let forged = Bundle::sign(&KeyPair::generate()?, alice.jid.clone(), 1_800_000_000);
    swap_bundle_unpublished(stack.database_url()?, &forged).await?;

    // carol meets alice for the first time: trust on first use would pin the forged key. The
    // map proves alice's genuine key, so the answer is refused and nothing is pinned.
    let carol = User::register(&stack, "carol").await?;
    let mut c = carol.session(Setup::FirstUse).await?;
    let added = c.add(&alice.jid).await;
    assert!(is_caught(&added, |e| matches!(e, ProtoError::KeyNotInMap)), "{added:?}");
    let view = c.contacts().await;
    assert!(view.is_err(), "every lookup of alice is refused while the directory lies: {view:?}");
    assert!(c.safety_number(&alice.jid).await.is_err(), "carol has no key of alice's, the forged one least of all");
    lock.close().await?;
    for session in [a, b, c] {
        session.close().await?;
    }
    Ok(())
}

async fn a_withheld_revocation_is_caught(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, _bob, a, b) = mutual_contacts(&stack).await?;
    let alice_bundle = a.bundle().to_xml();
    stack.revoke(alice.jid.as_str(), "laptop stolen").await?;
    wait_published(stack.database_url()?).await?;

    // The adversary undoes the revocation in the accounts table and, so that keydir serves the
    // key again, queues the bundle's commitment (never published: it holds the publisher).
    let lock = hold_publisher(&stack).await?;
    let mut db = sqlx::PgConnection::connect(stack.database_url()?).await?;
    sqlx::query("UPDATE accounts SET status = 'active', revoked_at = NULL, reason = NULL WHERE jid = $1")
        .bind(alice.jid.as_str())
        .execute(&mut db)
        .await?;
    sqlx::query("INSERT INTO transparency_pending (label, value) VALUES ($1, $2)")
        .bind(label(&alice.jid))
        .bind(MapValue::Bundle(BundleCommitment::of(alice_bundle.as_bytes())).encode())
        .execute(&mut db)
        .await?;
    db.close().await?;

    // carol, new, would pin a stolen key; the map proves the revocation, so she is told.
    let carol = User::register(&stack, "carol").await?;
    let mut c = carol.session(Setup::FirstUse).await?;
    let added = c.add(&alice.jid).await;
    assert!(is_caught(&added, |e| matches!(e, ProtoError::RevocationWithheld)), "{added:?}");
    assert!(c.send(&alice.jid, "hello?").await.is_err(), "nothing is sent to a key the map shows revoked");
    lock.close().await?;
    for session in [a, b, c] {
        session.close().await?;
    }
    Ok(())
}

async fn a_key_swapped_in_the_map_is_found_by_its_owner(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, _bob, mut a, b) = mutual_contacts(&stack).await?;
    wait_published(stack.database_url()?).await?;
    a.monitor_own_key().await?;

    // The adversary swaps alice's bundle and lets its map publish the swap: newcomers get the
    // forged key with valid proofs. What the map holds is there for alice's client to check,
    // as it does after every reconnect.
    let forged = Bundle::sign(&KeyPair::generate()?, alice.jid.clone(), 1_800_000_000);
    swap_bundle(stack.database_url()?, &forged).await?;
    let checked = a.monitor_own_key().await;
    assert!(
        matches!(&checked, Err(Error::DirectoryCaught { jid: Some(jid), cause: ProtoError::ForeignKey }) if *jid == alice.jid),
        "alice's client finds the key it never published: {checked:?}"
    );
    // The adversary puts alice's genuine bundle back (and publishes it): a lookup shows her own
    // key again, but the map's history keeps the forged one, which her client reads.
    let genuine = a.bundle().clone();
    swap_bundle(stack.database_url()?, &genuine).await?;
    let checked = a.monitor_own_key().await;
    assert!(
        matches!(&checked, Err(Error::DirectoryCaught { cause: ProtoError::ForeignKey, .. })),
        "the forged key is in alice's history: {checked:?}"
    );
    for session in [a, b] {
        session.close().await?;
    }
    Ok(())
}

/// The directory signs, with its own key, a head of another log of the same size as the real
/// one and shows it to alice alone (written into alice's database, as her client stores a head
/// it verified). Both views meet: alice's next lookup gets the real head (a fork of the one she
/// holds), and bob reads alice's view in the head summary her client signs into every message.
async fn a_forked_head_shown_to_one_client_is_caught(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, mut a, mut b) = mutual_contacts(&stack).await?;
    wait_published(stack.database_url()?).await?;
    a.refresh_key(&bob.jid).await?;
    b.refresh_key(&alice.jid).await?;

    let forked = forked_head(&stack).await?;
    let store = keyward_client::Store::open(alice.device.path(), &alice.jid)?;
    let db = rusqlite::Connection::open(store.path())?;
    let written = db.execute("UPDATE transparency SET head = ?1 WHERE id = 1", [&forked.0])?;
    assert_eq!(written, 1, "alice's client had stored a head");
    drop(db);

    // alice's own next lookup meets the real head: the same size, another root.
    let sent = a.send(&bob.jid, "hello").await;
    assert!(
        matches!(&sent, Err(Error::DirectoryCaught { cause: ProtoError::Fork, .. })),
        "alice's client catches the fork: {sent:?}"
    );
    assert!(
        store.evidence()?.iter().any(|(kind, _, xml)| kind == "transparency-head" && xml.contains(&forked.0)),
        "both heads are kept as evidence"
    );

    // bob reads alice's view in a message her client signed (as it does before its next lookup).
    let envelope = Envelope {
        from: alice.jid.clone(),
        to: bob.jid.clone(),
        ts_ms: crate::adversary::now_ms()?,
        msg_id: "gossip-1".into(),
        body: "what do you see?".into(),
    };
    let sealed = Sealed::seal_with_head(&alice.keys()?, &envelope, Some(&forked.1), &[Recipient::from(b.bundle())])?;
    let mut as_alice = crate::adversary::connect_as(&alice).await?;
    as_alice.send(sealed_message(&bob.jid, "gossip-1", &sealed)?).await?;
    match expect(&mut b, "alice's message", |e| matches!(e, Incoming::Message(_) | Incoming::Rejected { .. })).await? {
        Incoming::Message(m) => {
            assert_eq!(m.body, "what do you see?");
            assert!(
                m.warnings.iter().any(|w| matches!(w, Warning::DirectoryForked { size } if *size == forked.1.size)),
                "bob is warned: {:?}",
                m.warnings
            );
        }
        other => panic!("expected alice's message with a warning, got {other:?}"),
    }
    assert!(b.store().evidence()?.iter().any(|(kind, _, _)| kind == "transparency-gossip-fork"));
    as_alice.close().await?;
    for session in [a, b] {
        session.close().await?;
    }
    Ok(())
}

/// A head of keydir's log of its current size whose last epoch has another akd root, signed
/// with keydir's head signing key: the signed note and its summary.
async fn forked_head(stack: &Stack) -> anyhow::Result<(String, HeadSummary)> {
    let mut db = sqlx::PgConnection::connect(stack.database_url()?).await?;
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT epoch, root_hash FROM transparency_epochs ORDER BY epoch").fetch_all(&mut db).await?;
    db.close().await?;
    let key: serde_json::Value =
        reqwest::get(format!("{}/v0/transparency/key", stack.keydir_url())).await?.error_for_status()?.json().await?;
    let origin = key["origin"].as_str().context("origin")?.to_owned();
    let seed: [u8; 32] = STANDARD
        .decode(stack.signing_key().context("the stack's signing key")?)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("a 32 byte seed"))?;
    let signer = NoteSigner::new(&origin, KeyType::Ed25519, &seed)?;
    let mut log = EpochLog::new();
    let mut last = None;
    for (i, (epoch, root)) in rows.iter().enumerate() {
        let mut akd_root: [u8; 32] = root.as_slice().try_into()?;
        if i + 1 == rows.len() {
            akd_root[0] ^= 0xff;
        }
        let leaf = EpochLeaf { epoch: u64::try_from(*epoch)?, akd_root };
        log.push(leaf.hash());
        last = Some(leaf);
    }
    let size = log.len();
    let head = Head::new(&origin, size, log.root(size)?, last.context("at least one epoch")?)?;
    Ok((head.sign(&signer)?.encode(), HeadSummary::of(&head)))
}
