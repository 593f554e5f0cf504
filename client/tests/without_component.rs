//! Client tests through a real XMPP server (Prosody and ejabberd) without the component:
//! registration and login errors (both servers), and chat between two clients whose keys were
//! exchanged out of band (Prosody; on ejabberd a chat message to a session that is connected but
//! not yet available is not delivered: under investigation, see the e2e suite for full flows).

use keyward_client::keyward_proto::BareJid;
use keyward_client::keyward_proto::{Bundle, Envelope, KdfParams, KeyPair, Recipient, Sealed};
use keyward_client::stanzas::sealed_message;
use keyward_client::{Account, ConnectOptions, Connection, Error, Incoming, KeyEvent, Session, Trust, Warning};
use keyward_tests::xmpp::{ServerKind, ServerOptions, XmppServer};
use secrecy::SecretString;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn jid(local: &str) -> BareJid {
    BareJid::parse(&format!("{local}@example.test")).expect("valid")
}

fn options(server: &XmppServer, local: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(jid(local), SecretString::from(format!("pw-{local}")))
        .server(server.c2s_addr().to_string())
        .insecure_plaintext();
    options.timeout = WAIT;
    options
}

fn account(server: &XmppServer, local: &str, dir: &tempfile::TempDir) -> Account {
    let mut account =
        Account::new(options(server, local), SecretString::from(format!("passphrase of {local}")), dir.path().into());
    // The cheapest parameters the strict policy accepts, to keep tests fast.
    account.kdf = KdfParams { m_kib: 19_456, t: 2, p: 1 };
    account.passphrase_policy = keyward_client::PassphrasePolicy::AllowWeakForTests;
    account
}

fn seed(byte: u8) -> KeyPair {
    KeyPair::from_secret_bytes(&[byte; 32], &[byte.wrapping_add(1); 32])
}

/// The next message or rejection, skipping presence noise.
async fn next_relevant(session: &mut Session) -> Incoming {
    loop {
        match session.next_event(WAIT).await.expect("no error").expect("an event in time") {
            Incoming::ContactRequest(_)
            | Incoming::RequestApproved(_)
            | Incoming::ContactAccepted(_)
            | Incoming::ContactEnded(_) => continue,
            other => return other,
        }
    }
}

/// A server of `kind` with in-band registration and no component.
async fn server(kind: ServerKind) -> XmppServer {
    XmppServer::start(kind, ServerOptions { registration: true, ..ServerOptions::default() })
        .await
        .expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_login_errors_are_clear_prosody() {
    register_and_login_errors_are_clear(ServerKind::Prosody).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_login_errors_are_clear_ejabberd() {
    register_and_login_errors_are_clear(ServerKind::Ejabberd).await;
}

async fn register_and_login_errors_are_clear(kind: ServerKind) {
    let server = server(kind).await;
    keyward_client::register(&options(&server, "alice")).await.expect("registers");
    match keyward_client::register(&options(&server, "alice")).await {
        Err(Error::AccountExists(j)) => assert_eq!(j, jid("alice")),
        other => panic!("expected AccountExists, got {other:?}"),
    }
    let connection = Connection::connect(&options(&server, "alice")).await.expect("logs in");
    assert_eq!(connection.me(), &jid("alice"));
    assert!(connection.bound_jid().to_string().starts_with("alice@example.test/"));
    connection.close().await.expect("closes");
    let mut wrong = options(&server, "alice");
    wrong.password = SecretString::from("not the password".to_owned());
    match Connection::connect(&wrong).await {
        Err(Error::AuthFailed { jid: j, .. }) => assert_eq!(j, jid("alice")),
        other => panic!("expected AuthFailed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_with_out_of_band_keys_prosody() {
    chat_with_out_of_band_keys_offline_delivery_replay_and_tampering(ServerKind::Prosody).await;
}

async fn chat_with_out_of_band_keys_offline_delivery_replay_and_tampering(kind: ServerKind) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("KEYWARD_LOG"))
        .with_test_writer()
        .try_init();
    let server = server(kind).await;
    for user in ["alice", "bob", "mallory"] {
        keyward_client::register(&options(&server, user)).await.expect("registers");
    }
    let (alice_dir, bob_dir) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let mut alice =
        Session::with_local_keys(&account(&server, "alice", &alice_dir), seed(1), 100).await.expect("alice");
    let mut bob = Session::with_local_keys(&account(&server, "bob", &bob_dir), seed(3), 100).await.expect("bob");
    // Keys exchanged out of band: each pins the other's bundle.
    let pinned = alice.pin_out_of_band(bob.bundle()).expect("pins");
    assert!(matches!(pinned, KeyEvent::Pinned { ref jid, .. } if *jid == self::jid("bob")));
    bob.pin_out_of_band(alice.bundle()).expect("pins");

    // Bob is not online yet: the server stores the message offline.
    alice.send(&jid("bob"), "hello bob, offline").await.expect("sends");
    bob.go_online().await.expect("online");
    match next_relevant(&mut bob).await {
        Incoming::Message(m) => {
            assert_eq!(m.from, jid("alice"));
            assert_eq!(m.body, "hello bob, offline");
            assert!(m.verified);
            assert_eq!(m.trust, Trust::Tofu);
            assert!(m.warnings.is_empty());
        }
        other => panic!("expected a message, got {other:?}"),
    }

    // A replayed stanza is refused, also after bob restarts (persistent cache).
    let alice_keys = seed(1);
    let bob_recipient = Recipient::from(&seed(3));
    let envelope = Envelope {
        from: jid("alice"),
        to: jid("bob"),
        // Signed now: alice's first message set the replay window (protocol section 7).
        ts_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .expect("clock"),
        msg_id: "fixed-id".into(),
        body: "once only".into(),
    };
    let sealed = Sealed::seal(&alice_keys, &envelope, &[bob_recipient]).expect("seals");
    let stanza = sealed_message(&jid("bob"), "fixed-id", &sealed).expect("builds");
    alice.connection().send(stanza.clone()).await.expect("sends");
    alice.connection().send(stanza.clone()).await.expect("sends again");
    assert!(matches!(next_relevant(&mut bob).await, Incoming::Message(m) if m.body == "once only"));
    assert!(matches!(
        next_relevant(&mut bob).await,
        Incoming::Rejected { error: Error::Protocol(keyward_client::keyward_proto::Error::Replay), .. }
    ));
    bob.close().await.expect("closes");
    alice.connection().send(stanza).await.expect("sends a third time");
    let mut bob = Session::resume(&account(&server, "bob", &bob_dir)).await.expect("bob again");
    bob.go_online().await.expect("online");
    assert!(matches!(
        next_relevant(&mut bob).await,
        Incoming::Rejected { error: Error::Protocol(keyward_client::keyward_proto::Error::Replay), .. }
    ));

    // Tampered ciphertext is refused, never shown.
    let tampered = Sealed::seal(
        &alice_keys,
        &Envelope { msg_id: "t1".into(), body: "tamper me".into(), ..envelope.clone() },
        &[bob_recipient],
    )
    .expect("seals");
    let mut xml = sealed_message(&jid("bob"), "t1", &tampered).expect("builds");
    let text = String::from(
        &keyward_client::stanzas::to_minidom(&keyward_client::keyward_proto::XmlElement::to_element(&tampered))
            .expect("el"),
    );
    let ct_start = text.find("<ct>").expect("ct") + 4;
    let mut bytes = text.into_bytes();
    bytes[ct_start + 2] = if bytes[ct_start + 2] == b'A' { b'B' } else { b'A' };
    let broken: tokio_xmpp::minidom::Element = String::from_utf8(bytes).expect("utf8").parse().expect("xml");
    xml.payloads[0] = broken;
    alice.connection().send(xml).await.expect("sends");
    assert!(matches!(
        next_relevant(&mut bob).await,
        Incoming::Rejected { error: Error::Protocol(keyward_client::keyward_proto::Error::Decrypt), .. }
    ));

    // Mallory cannot forge notices, and an unpinned sender is refused.
    let mut mallory_msg =
        tokio_xmpp::parsers::message::Message::new(Some(tokio_xmpp::jid::Jid::new("bob@example.test").expect("jid")));
    mallory_msg.payloads.push(
        format!(
            "<revoked xmlns='urn:keyward:0' jid='alice@example.test' fp='{}' at='2020-01-01T00:00:00Z' reason='forged'/>",
            alice_keys.fingerprint().to_hex()
        )
        .parse()
        .expect("xml"),
    );
    let mallory_dir = tempfile::tempdir().expect("dir");
    let mut mallory =
        Session::with_local_keys(&account(&server, "mallory", &mallory_dir), seed(5), 100).await.expect("mallory");
    mallory.connection().send(mallory_msg).await.expect("sends");
    assert!(matches!(next_relevant(&mut bob).await, Incoming::Rejected { ref from, .. } if *from == jid("mallory")));
    mallory.pin_out_of_band(bob.bundle()).expect("pins");
    mallory.send(&jid("bob"), "you do not know me").await.expect("sends");
    assert!(matches!(next_relevant(&mut bob).await, Incoming::Rejected { error: Error::NoKey(_), .. }));

    // Bob still trusts alice and can answer; alice reads it.
    alice.go_online().await.expect("online");
    bob.send(&jid("alice"), "hi alice").await.expect("sends");
    assert!(matches!(next_relevant(&mut alice).await, Incoming::Message(m) if m.body == "hi alice" && m.verified));

    // A different key for alice is held back: warned, sending refused until confirmed.
    let other = Bundle::sign(&seed(9), jid("alice"), 200);
    assert!(matches!(bob.pin_out_of_band(&other).expect("offered"), KeyEvent::Changed { .. }));
    assert!(matches!(bob.send(&jid("alice"), "to whom?").await, Err(Error::KeyChanged { .. })));
    alice.send(&jid("bob"), "still me").await.expect("sends");
    match next_relevant(&mut bob).await {
        Incoming::Message(m) => {
            assert!(m.verified, "signed by the pinned key");
            assert!(m.warnings.iter().any(|w| matches!(w, Warning::KeyChanged { .. })));
        }
        other => panic!("expected a message, got {other:?}"),
    }
    let report = bob.safety_number(&jid("alice")).await.expect("report");
    assert!(report.changed);
    let number = keyward_client::Compared::parse(&report.number.to_string()).expect("parses");
    assert_eq!(bob.confirm(&jid("alice"), &number).expect("confirms"), other.fingerprint());
    for session in [alice, bob, mallory] {
        session.close().await.expect("closes");
    }
}
