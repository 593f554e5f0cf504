//! The XMPP server fixtures themselves: each kind starts, registers users, keeps them across
//! a restart, accepts the component's handshake port, and stops.

use std::time::Duration;

use keyward_client::keyward_proto::BareJid;
use keyward_client::{ConnectOptions, Connection, Error};
use keyward_tests::xmpp::{ServerKind, ServerOptions, XmppServer};
use secrecy::SecretString;
use tokio::net::TcpStream;

/// Logs in to the server over c2s with the keyward client (SCRAM, as users do) and logs out:
/// `Ok(true)` when the server accepted the password, `Ok(false)` when it refused it.
async fn logs_in(server: &XmppServer, jid: &str, password: &str) -> anyhow::Result<bool> {
    let mut options = ConnectOptions::new(BareJid::parse(jid)?, SecretString::from(password))
        .server(server.c2s_addr().to_string())
        .insecure_plaintext();
    options.timeout = Duration::from_secs(20);
    match Connection::connect(&options).await {
        Ok(connection) => {
            connection.close().await?;
            Ok(true)
        }
        Err(Error::AuthFailed { .. }) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

async fn lifecycle(kind: ServerKind) {
    let mut server = XmppServer::start(kind, ServerOptions::default()).await.expect("server starts");
    assert_eq!(server.kind(), kind);
    let alice = server.register("alice", "pw-alice").await.expect("alice registers");
    assert_eq!(alice, "alice@example.test");
    assert!(logs_in(&server, &alice, "pw-alice").await.expect("login"), "{kind:?}: alice logs in");
    assert!(!logs_in(&server, &alice, "not-her-password").await.expect("login"), "{kind:?}: a wrong password");
    assert!(server.register("alice", "pw-again").await.is_err(), "{kind:?}: a second registration must fail");
    TcpStream::connect(server.c2s_addr()).await.expect("c2s port accepts");
    TcpStream::connect(server.component_addr()).await.expect("component port accepts");

    server.restart().await.expect("restarts");
    TcpStream::connect(server.c2s_addr()).await.expect("c2s port accepts after restart");
    // The server itself must still know alice and her password: a real login, not the fixture's view.
    assert!(logs_in(&server, &alice, "pw-alice").await.expect("login"), "{kind:?}: users survive a restart");
    assert!(server.register("alice", "pw-again").await.is_err(), "{kind:?}: no second registration after a restart");
    server.register("bob", "pw-bob").await.expect("bob registers after restart");
    assert!(server.data_dir().exists());

    server.stop().await.expect("stops");
    assert!(TcpStream::connect(server.c2s_addr()).await.is_err(), "{kind:?}: nothing listens after stop");
}

#[tokio::test]
async fn prosody_lifecycle() {
    lifecycle(ServerKind::Prosody).await;
}

#[tokio::test]
async fn ejabberd_lifecycle() {
    lifecycle(ServerKind::Ejabberd).await;
}
