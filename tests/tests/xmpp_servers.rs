//! The XMPP server fixtures themselves: each kind starts, registers users, keeps them across
//! a restart, accepts the component's handshake port, and stops.

use keyward_tests::xmpp::{ServerKind, ServerOptions, XmppServer};
use tokio::net::TcpStream;

async fn lifecycle(kind: ServerKind) {
    let mut server = XmppServer::start(kind, ServerOptions::default()).await.expect("server starts");
    assert_eq!(server.kind(), kind);
    let alice = server.register("alice", "pw-alice").await.expect("alice registers");
    assert_eq!(alice, "alice@example.test");
    assert!(server.register("alice", "pw-again").await.is_err(), "{kind:?}: a second registration must fail");
    TcpStream::connect(server.c2s_addr()).await.expect("c2s port accepts");
    TcpStream::connect(server.component_addr()).await.expect("component port accepts");

    server.restart().await.expect("restarts");
    TcpStream::connect(server.c2s_addr()).await.expect("c2s port accepts after restart");
    assert!(server.register("alice", "pw-again").await.is_err(), "{kind:?}: users survive a restart");
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
