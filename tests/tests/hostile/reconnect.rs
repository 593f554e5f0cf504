//! Reconnects with SASL PLAIN (protocol 12.2): a session logged in (SCRAM) through the real
//! server loses its connection, and what answers on the server's address afterwards is a rogue
//! server that offers only PLAIN. The client's automatic reconnect must not send the password,
//! in any form, and the session reports the typed error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use base64::Engine;
use keyward_client::{Error, Incoming, Link, Session, Setup};
use keyward_tests::on_both_servers;
use keyward_tests::xmpp::ServerKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};

use crate::adversary::stack;
use crate::support::{User, WAIT};

on_both_servers!(a_reconnect_to_a_plain_only_server_sends_no_password);

/// Forwards one client connection to the real server until `cut` fires.
async fn forward(mut client: TcpStream, server: SocketAddr, mut cut: broadcast::Receiver<()>) {
    let Ok(mut upstream) = TcpStream::connect(server).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = cut.recv() => {}
    }
}

/// The rogue server: answers the stream header with features offering only PLAIN, then
/// records everything the client sends until it closes the connection.
async fn rogue(mut client: TcpStream, domain: String, done: mpsc::UnboundedSender<Vec<u8>>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if text.find("<stream:stream").is_some_and(|at| text[at..].contains('>')) {
            break;
        }
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = done.send(seen);
                return;
            }
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let features = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='rogue' from='{domain}' version='1.0'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
    );
    if client.write_all(features.as_bytes()).await.is_ok() {
        let _ = tokio::time::timeout(WAIT, client.read_to_end(&mut seen)).await;
    }
    let _ = done.send(seen);
}

async fn a_reconnect_to_a_plain_only_server_sends_no_password(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let front = TcpListener::bind("127.0.0.1:0").await?;
    let front_addr = front.local_addr()?;
    let (real, domain) = (stack.c2s_addr(), stack.domain().to_owned());
    let rogue_mode = Arc::new(AtomicBool::new(false));
    let (cut, _) = broadcast::channel::<()>(1);
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let acceptor = {
        let (rogue_mode, cut) = (rogue_mode.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = front.accept().await {
                if rogue_mode.load(Ordering::SeqCst) {
                    tokio::spawn(rogue(client, domain.clone(), seen_tx.clone()));
                } else {
                    tokio::spawn(forward(client, real, cut.subscribe()));
                }
            }
        })
    };

    // alice logs in through the front door (the real server behind it, SCRAM) and works.
    let mut account = alice.account();
    account.connect.server = Some(front_addr.to_string());
    let (mut session, setup) = Session::start(&account).await?;
    assert_eq!(setup, Setup::FirstUse);

    // The server "restarts": the connection drops and a rogue answers on its address.
    rogue_mode.store(true, Ordering::SeqCst);
    cut.send(()).context("no forwarded connection to cut")?;
    // The session may first say that the link is lost (it then tries to reconnect).
    let mut event = session.next_event(WAIT * 2).await;
    if matches!(event, Ok(Some(Incoming::Link(Link::Lost)))) {
        event = session.next_event(WAIT * 2).await;
    }
    match event {
        Err(Error::NoScram { offered }) => assert_eq!(offered, "PLAIN"),
        other => panic!("expected NoScram from the reconnect, got {other:?}"),
    }
    // Later calls fail too, and nothing more is tried.
    assert!(matches!(session.next_event(WAIT).await, Err(Error::Connection(_))));

    let seen = tokio::time::timeout(WAIT * 2, seen_rx.recv()).await.context("the rogue was not contacted")?;
    let seen = seen.context("the rogue ended")?;
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("<stream:stream"), "the client reconnected to the rogue: {text}");
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let password = alice.password.as_bytes();
    let plain = [b"\0alice\0".as_slice(), password].concat();
    let plain_full = [format!("alice@{}\0alice\0", stack.domain()).as_bytes(), password].concat();
    for forbidden in
        [password.to_vec(), b64(password).into_bytes(), b64(&plain).into_bytes(), b64(&plain_full).into_bytes()]
    {
        assert!(
            !seen.windows(forbidden.len()).any(|w| w == forbidden.as_slice()),
            "the password reached the rogue: {text}"
        );
    }
    assert!(!text.contains("<auth"), "no authentication at all was attempted: {text}");
    drop(session);
    acceptor.abort();
    Ok(())
}
