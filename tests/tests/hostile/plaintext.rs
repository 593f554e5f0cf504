//! The password in clear (protocol 12.1): `--insecure-plaintext` pointed at an address of this
//! machine that is not loopback is refused by the CLI and by the SDK (registration and login)
//! before a single byte is sent, with the typed error; the same options on the loopback address
//! of the real server work.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use keyward_client::{ConnectOptions, Connection, Error};
use keyward_tests::on_both_servers;
use keyward_tests::process::find_binary;
use keyward_tests::xmpp::ServerKind;
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use crate::adversary::stack;
use crate::support::{User, WAIT};

on_both_servers!(plaintext_to_a_network_address_sends_nothing);

/// A non-loopback address of this machine, from `ip -o addr`; an error (never a skip) if none.
fn network_address() -> anyhow::Result<IpAddr> {
    let output = std::process::Command::new("ip").args(["-o", "addr", "show"]).output().context("running ip")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let found = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|cidr| cidr.split('/').next()?.parse::<IpAddr>().ok())
        .find(|ip| !ip.is_loopback() && !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80));
    match found {
        Some(ip) => Ok(ip),
        None => bail!("this machine has no non-loopback address to test against:\n{text}"),
    }
}

async fn plaintext_to_a_network_address_sends_nothing(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let listener = TcpListener::bind((network_address()?, 0)).await?;
    let target = listener.local_addr()?;
    // Counts every connection and byte before a sentinel connection, which ends the count:
    // connections are accepted in order, so anything the client sent is counted first.
    let (connections, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let counter = {
        let (connections, bytes) = (connections.clone(), bytes.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let mut first = [0u8; 8];
                let n = socket.read(&mut first).await.unwrap_or(0);
                if first[..n].starts_with(b"SENTINEL") {
                    let _ = done_tx.send(());
                    return;
                }
                connections.fetch_add(1, Ordering::SeqCst);
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(WAIT, socket.read_to_end(&mut rest)).await;
                bytes.fetch_add(n + rest.len(), Ordering::SeqCst);
            }
        })
    };

    let jid = keyward_client::keyward_proto::BareJid::parse(&format!("dave@{}", stack.domain()))?;
    let options = ConnectOptions::new(jid.clone(), SecretString::from("dave's password".to_owned()))
        .server(target.to_string())
        .insecure_plaintext()
        .component(keyward_client::keyward_proto::BareJid::parse(stack.component_jid())?);
    match keyward_client::register(&options).await {
        Err(Error::PlaintextNotLoopback { target: t }) => assert!(t.contains(&target.ip().to_string()), "{t}"),
        other => panic!("register: expected PlaintextNotLoopback, got {other:?}"),
    }
    match Connection::connect(&options).await {
        Err(Error::PlaintextNotLoopback { .. }) => {}
        other => panic!("connect: expected PlaintextNotLoopback, got {other:?}"),
    }
    for command in ["register", "init"] {
        let output = Command::new(find_binary("keyward", None)?)
            .args(["--insecure-plaintext", "--server", &target.to_string(), "--jid", jid.as_str(), "--data-dir"])
            .arg(tempfile::tempdir()?.path())
            .arg(command)
            .env("KEYWARD_PASSWORD", "dave's password")
            .env("KEYWARD_PASSPHRASE", "dave's marmalade glacier sings to quiet lanterns")
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command} must fail");
        assert!(stderr.contains("refusing plain TCP without TLS"), "{command}: {stderr}");
    }

    let mut sentinel = TcpStream::connect(target).await?;
    sentinel.write_all(b"SENTINEL").await?;
    tokio::time::timeout(WAIT, done_rx).await.context("the sentinel was not seen")??;
    counter.await?;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the client connected to {target}");
    assert_eq!(bytes.load(Ordering::SeqCst), 0, "the client sent bytes to {target}");

    // The same on the loopback address of the real server: registration and login work.
    let erin = User::register(&stack, "erin").await?;
    Connection::connect(&erin.connect_options()).await?.close().await?;
    Ok(())
}
