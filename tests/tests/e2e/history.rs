//! History from the server's archive (XEP-0313) on both servers: a device restored with the
//! passphrase after the conversation reads all of it, both directions, decrypted and verified,
//! in order; what cannot be opened is listed with the reason; reading it twice is not a replay.

use anyhow::{Context, bail};
use keyward_client::{HistoryItem, Incoming, Session, Setup, stanzas};
use keyward_tests::on_both_servers;
use keyward_tests::xmpp::ServerKind;
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};

use crate::support::{User, expect, marker, mutual_contacts, stack};

on_both_servers!(a_device_restored_after_the_conversation_reads_all_of_it);

/// `user`'s keys on a brand-new device (restored with the passphrase).
async fn new_device(user: &User) -> anyhow::Result<(Session, tempfile::TempDir)> {
    let dir = tempfile::Builder::new().prefix("keyward-device-").tempdir()?;
    let (session, setup) = Session::start(&user.account_on(dir.path())).await?;
    if setup != Setup::NewDevice {
        bail!("a new device set up as {setup:?}");
    }
    Ok((session, dir))
}

/// The bodies and senders of the readable items, and the reasons of the others.
fn read(items: &[HistoryItem]) -> (Vec<(String, String, bool)>, Vec<String>) {
    let mut messages = Vec::new();
    let mut unreadable = Vec::new();
    for item in items {
        match item {
            HistoryItem::Message { message, .. } => {
                messages.push((message.from.to_string(), message.body.clone(), message.verified))
            }
            HistoryItem::Unreadable { reason, .. } => unreadable.push(reason.to_string()),
        }
    }
    (messages, unreadable)
}

async fn a_device_restored_after_the_conversation_reads_all_of_it(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let (alice, bob, mut a, mut b) = mutual_contacts(&stack).await?;
    let run = marker();
    let mut conversation = Vec::new();
    for i in 0..3 {
        let text = format!("alice's message {i}, run {run}");
        a.send(&bob.jid, &text).await?;
        expect(&mut b, "alice's message", |e| matches!(e, Incoming::Message(m) if m.body == text)).await?;
        conversation.push((alice.jid.to_string(), text));
        let text = format!("bob's answer {i}, run {run}");
        b.send(&alice.jid, &text).await?;
        expect(&mut a, "bob's answer", |e| matches!(e, Incoming::Message(m) if m.body == text)).await?;
        conversation.push((bob.jid.to_string(), text));
    }
    // A message without keyward encryption is archived too: listed, never shown.
    let mut plain = Message::new_with_type(MessageType::Chat, Some(stanzas::jid(&alice.jid)?));
    plain = plain.with_body(Lang::default(), format!("a plaintext message, run {run}"));
    b.connection().send(plain).await?;
    expect(&mut a, "the plaintext message", |e| matches!(e, Incoming::Unencrypted { .. })).await?;
    a.close().await?;
    b.close().await?;

    // alice restores her keys on a brand-new device and reads the whole conversation.
    let (mut restored, _dir) = new_device(&alice).await?;
    let items = restored.history(&bob.jid, 50).await?;
    let (messages, unreadable) = read(&items);
    let expected: Vec<(String, String, bool)> =
        conversation.iter().map(|(f, t)| (f.clone(), t.clone(), true)).collect();
    assert_eq!(messages, expected, "the whole conversation, in order, verified");
    assert_eq!(unreadable.len(), 1, "{unreadable:?}");
    assert!(unreadable[0].contains("not encrypted"), "{unreadable:?}");
    for item in &items {
        if let HistoryItem::Message { message, archived_at } = item {
            let other = if message.from == alice.jid { &message.to } else { &message.from };
            assert_eq!(*other, bob.jid, "every message is of this conversation");
            assert!(archived_at.is_some(), "the server's archive time is given");
        }
    }
    // History is not a replay: reading it again gives the same, and the limit holds.
    assert_eq!(read(&restored.history(&bob.jid, 50).await?).0, expected);
    // The last two archived: bob's last answer and the plaintext message.
    let (last, unread) = read(&restored.history(&bob.jid, 2).await?);
    assert_eq!((last.len(), unread.len()), (1, 1), "{last:?} {unread:?}");
    assert_eq!(last[0], expected[expected.len() - 1]);
    restored.close().await?;

    // bob's new device reads the same conversation from his own archive.
    let (mut bobs, _bobs_dir) = new_device(&bob).await?;
    let (messages, _) = read(&bobs.history(&alice.jid, 50).await?);
    assert_eq!(messages, expected, "bob's archive holds the same conversation");
    bobs.close().await.context("bob's new device closes")?;
    Ok(())
}
