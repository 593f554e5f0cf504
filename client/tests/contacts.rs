//! `contacts` through real servers (Prosody and ejabberd, each with the component, keydir and
//! Postgres): with the roster privilege the client uses the component's `roster-keys`; without
//! it, the client reads its own roster (RFC 6121) and asks `keys`. Both list the same statuses.

use std::time::Duration;

use keyward_client::keyward_proto::{BareJid, KdfParams};
use keyward_client::{Account, ConnectOptions, Session};
use keyward_tests::stack::{Stack, StackOptions};
use keyward_tests::xmpp::{ServerKind, ServerOptions};
use secrecy::SecretString;
use tokio_xmpp::IqRequest;
use tokio_xmpp::minidom::Element;

const PASSWORD: &str = "pw-contacts";

async fn stack(kind: ServerKind, privilege: bool) -> Stack {
    let server = ServerOptions { privilege, ..ServerOptions::default() };
    Stack::start(kind, StackOptions { server, log_filter: "info".into(), ..StackOptions::default() })
        .await
        .expect("stack")
}

async fn account(stack: &Stack, local: &str, dir: &tempfile::TempDir) -> Account {
    let jid = stack.xmpp().register(local, PASSWORD).await.expect("register");
    let mut options = ConnectOptions::new(BareJid::parse(&jid).expect("jid"), SecretString::from(PASSWORD))
        .server(stack.xmpp().c2s_addr().to_string())
        .insecure_plaintext()
        .component(BareJid::parse(stack.xmpp().component_jid()).expect("component jid"));
    options.timeout = Duration::from_secs(10);
    let mut account =
        Account::new(options, SecretString::from(format!("passphrase of {local}")), dir.path().join(local));
    account.kdf = KdfParams { m_kib: 19_456, t: 2, p: 1 };
    account.passphrase_policy = keyward_client::PassphrasePolicy::AllowWeakForTests;
    account
}

/// The count of a `request` label of the component's latency histogram.
fn requests(page: &str, request: &str) -> u64 {
    let prefix = format!("keyward_component_request_duration_seconds_count{{request=\"{request}\"}} ");
    page.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

async fn contacts_lists_the_roster_with_key_status(kind: ServerKind, privilege: bool) {
    let mut stack = stack(kind, privilege).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // bob has published keys, carol has not.
    let bob = Session::first_use(&account(&stack, "bob", &dir).await).await.expect("bob first use");
    let bob_fp = bob.fingerprint();
    bob.close().await.expect("bob closes");
    stack.xmpp().register("carol", PASSWORD).await.expect("carol registers");
    let mut alice = Session::first_use(&account(&stack, "alice", &dir).await).await.expect("alice first use");
    // alice's roster (RFC 6121 roster sets, one item each; no subscription needed).
    for contact in ["bob@example.test", "carol@example.test"] {
        let item: Element =
            format!("<query xmlns='jabber:iq:roster'><item jid='{contact}'/></query>").parse().expect("xml");
        alice.connection().iq(None, IqRequest::Set(item), "roster set").await.expect("roster set");
    }

    let before = stack.component().metrics().await.expect("metrics");
    let mut contacts = alice.contacts().await.expect("contacts");
    contacts.sort_by(|a, b| a.jid.cmp(&b.jid));
    let listed: Vec<(&str, &str)> = contacts.iter().map(|c| (c.jid.as_str(), c.status)).collect();
    assert_eq!(listed, vec![("bob@example.test", "active"), ("carol@example.test", "none")], "{kind:?} {privilege}");
    assert_eq!(contacts[0].fingerprint, Some(bob_fp), "bob's key is pinned from the answer");
    assert_eq!(contacts[1].fingerprint, None);

    // Which path was taken, as the component counted it. The stack's keydir proves its keys
    // (key transparency), so `roster-keys` (no proofs) only names the contacts and one `keys`
    // lookup with proofs brings their keys.
    let after = stack.component().metrics().await.expect("metrics");
    let roster_keys = requests(&after, "roster-keys") - requests(&before, "roster-keys");
    let keys = requests(&after, "keys") - requests(&before, "keys");
    if privilege {
        assert_eq!((roster_keys, keys), (1, 1), "{kind:?}: roster-keys, then keys with proofs expected\n{after}");
    } else {
        assert_eq!((roster_keys, keys), (0, 1), "{kind:?}: the keys fallback expected\n{after}");
    }
    alice.close().await.expect("alice closes");
    stack.stop().await.expect("the stack stops");
}

async fn contacts_through_roster_keys(kind: ServerKind) {
    contacts_lists_the_roster_with_key_status(kind, true).await;
}

async fn contacts_fall_back_to_keys(kind: ServerKind) {
    contacts_lists_the_roster_with_key_status(kind, false).await;
}

keyward_tests::on_both_servers!(contacts_through_roster_keys, contacts_fall_back_to_keys);
