//! The component through a real Prosody and a real ejabberd, with requests that need no working keydir:
//! every RFC 6120 error path, hostile input, roster privilege, reconnects, shutdown, backpressure, metrics.
//! keydir is unreachable here, so a request that gets past validation must answer
//! `service-unavailable` quickly.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Answer, Identity, Stack, dead_keydir_url, finish_iq, wait_for_metric};
use keyward_proto::{BareJid, XmlElement};
use keyward_tests::component::{Component, config_for};
use keyward_tests::xmpp::ServerOptions;
use keyward_tests::xmpp::{ServerKind, XmppServer};

use tokio::io::AsyncWriteExt;

const TOKEN: &str = "component-token";

fn expect_error(answer: &Answer, condition: &str, case: &str) {
    assert_eq!(answer.condition(), Some(condition), "{case}: {answer:?}");
}

/// Checks a /metrics page with `promtool check metrics` (Debian package `prometheus`).
async fn promtool_check(page: &str) {
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: install the Debian package `prometheus`");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(page.as_bytes()).await.expect("write");
    drop(stdin);
    let output = child.wait_with_output().await.expect("promtool");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn every_request_valid_and_hostile(kind: ServerKind) {
    let stack = Stack::start(kind, true, &dead_keydir_url(), TOKEN).await.expect("stack");
    let keys = stack.keys().to_owned();
    let mut alice = stack.user("alice").await.expect("alice");

    // Ping and disco#info.
    assert!(matches!(alice.get(&keys, "<ping xmlns='urn:xmpp:ping'/>").await.expect("ping"), Answer::Result(None)));
    let info = alice
        .get(&keys, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        .await
        .expect("disco")
        .payload()
        .expect("result")
        .expect("query");
    let features: Vec<&str> = info.children().filter_map(|f| f.attr("var")).collect();
    for feature in ["urn:keyward:0", "urn:keyward:0#roster-keys", "urn:xmpp:ping"] {
        assert!(features.contains(&feature), "{feature} missing from {features:?}");
    }
    let identity = info.children().find(|c| c.name() == "identity").expect("identity");
    assert_eq!(identity.attr("category"), Some("component"));

    // RFC 6120 errors: unknown namespaces, unknown keyward requests, wrong types, bad addresses.
    let alice_domain = format!("nobody@{keys}");
    let cases: Vec<(&str, bool, String, &str)> = vec![
        ("unknown namespace", false, "<query xmlns='jabber:iq:version'/>".into(), "service-unavailable"),
        ("unknown namespace set", true, "<x xmlns='urn:example:nope'/>".into(), "service-unavailable"),
        ("unknown keyward request", false, "<frobnicate xmlns='urn:keyward:0'/>".into(), "feature-not-implemented"),
        (
            "keys as set",
            true,
            "<keys xmlns='urn:keyward:0'><item jid='bob@example.test'/></keys>".into(),
            "bad-request",
        ),
        ("publish as get", false, Identity::new(&alice.jid).publish_xml(), "bad-request"),
        ("relay as get", false, "<relay xmlns='urn:keyward:0' to='bob@example.test'/>".into(), "bad-request"),
        (
            "disco node",
            false,
            "<query xmlns='http://jabber.org/protocol/disco#info' node='x'/>".into(),
            "item-not-found",
        ),
        // Malformed children.
        ("keys without items", false, "<keys xmlns='urn:keyward:0'/>".into(), "bad-request"),
        ("keys bad jid", false, "<keys xmlns='urn:keyward:0'><item jid='a b@c'/></keys>".into(), "bad-request"),
        ("keys item without jid", false, "<keys xmlns='urn:keyward:0'><item/></keys>".into(), "bad-request"),
        ("relay without to", true, "<relay xmlns='urn:keyward:0'/>".into(), "bad-request"),
        ("relay to a full jid", true, "<relay xmlns='urn:keyward:0' to='bob@example.test/x'/>".into(), "bad-request"),
        ("secret with children", false, "<secret xmlns='urn:keyward:0'><x/></secret>".into(), "bad-request"),
        (
            "roster-keys with children",
            false,
            "<roster-keys xmlns='urn:keyward:0'><x/></roster-keys>".into(),
            "bad-request",
        ),
        (
            "publish without secret",
            true,
            format!("<publish xmlns='urn:keyward:0'>{}</publish>", Identity::new(&alice.jid).bundle.to_xml()),
            "bad-request",
        ),
        ("publish garbage", true, "<publish xmlns='urn:keyward:0'><bundle/><secret/></publish>".into(), "bad-request"),
        // Too many items.
        (
            "101 items",
            false,
            format!(
                "<keys xmlns='urn:keyward:0'>{}</keys>",
                (0..101).map(|i| format!("<item jid='u{i}@example.test'/>")).collect::<String>()
            ),
            "policy-violation",
        ),
    ];
    for (case, set, xml, condition) in &cases {
        let answer = alice.iq(&keys, *set, xml).await.expect(case);
        expect_error(&answer, condition, case);
    }
    let answer = alice.get(&alice_domain, "<ping xmlns='urn:xmpp:ping'/>").await.expect("to a user of the component");
    expect_error(&answer, "service-unavailable", "iq to a user at the component");

    // A bundle with someone else's jid, a tampered signature, oversize parts.
    let mallory = BareJid::parse("mallory@example.test").expect("valid");
    let forged = Identity::new(&mallory);
    let answer = alice.set(&keys, &forged.publish_xml()).await.expect("forged");
    expect_error(&answer, "bad-request", "bundle of another account");
    let mine = Identity::new(&alice.jid);
    let tampered = mine.publish_xml().replace("created='1764150000'", "created='1764150001'");
    expect_error(&alice.set(&keys, &tampered).await.expect("tampered"), "bad-request", "tampered bundle");
    let big_bundle = mine.publish_xml().replace("</bundle>", &format!("<pad>{}</pad></bundle>", "A".repeat(2000)));
    expect_error(&alice.set(&keys, &big_bundle).await.expect("big bundle"), "policy-violation", "bundle over 1 KiB");
    let big_secret = mine.publish_xml().replace("</secret>", &format!("<pad>{}</pad></secret>", "A".repeat(5000)));
    expect_error(&alice.set(&keys, &big_secret).await.expect("big secret"), "policy-violation", "secret over 4 KiB");
    let huge =
        format!("<keys xmlns='urn:keyward:0'><item jid='bob@example.test'/><pad>{}</pad></keys>", "A".repeat(70_000));
    expect_error(&alice.get(&keys, &huge).await.expect("huge"), "policy-violation", "stanza over 64 KiB");

    // Valid requests reach keydir, which is down: service-unavailable, quickly.
    let valid: Vec<(&str, bool, String)> = vec![
        ("publish", true, mine.publish_xml()),
        ("secret", false, "<secret xmlns='urn:keyward:0'/>".into()),
        ("keys", false, "<keys xmlns='urn:keyward:0'><item jid='bob@example.test'/></keys>".into()),
        ("relay", true, "<relay xmlns='urn:keyward:0' to='bob@example.test'/>".into()),
    ];
    for (case, set, xml) in &valid {
        let started = Instant::now();
        let answer = alice.iq(&keys, *set, xml).await.expect(case);
        expect_error(&answer, "service-unavailable", case);
        assert!(matches!(&answer, Answer::Error { kind, .. } if kind == "wait"), "{case}: {answer:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{case} took {:?}", started.elapsed());
    }

    // The stream survived all of it.
    assert!(stack.component.is_up().await);
    let page = stack.component.metrics().await.expect("metrics");
    for needle in [
        "keyward_component_connected 1",
        "keyward_component_stanzas_total{kind=\"iq\"}",
        "keyward_component_stanzas_total{kind=\"oversize\"} 1",
        "keyward_component_errors_total{condition=\"bad-request\"}",
        "keyward_component_errors_total{condition=\"service-unavailable\"}",
        "keyward_component_request_duration_seconds_bucket{request=\"publish\"",
    ] {
        assert!(page.contains(needle), "{needle} missing from\n{page}");
    }
    promtool_check(&page).await;
    alice.logout().await;
    stack.component.stop().await.expect("stop");
}

async fn roster_keys_needs_the_roster_privilege(kind: ServerKind) {
    let stack = Stack::start(kind, false, &dead_keydir_url(), TOKEN).await.expect("stack");
    let keys = stack.keys().to_owned();
    let mut alice = stack.user("alice").await.expect("alice");
    let answer = alice.get(&keys, "<roster-keys xmlns='urn:keyward:0'/>").await.expect("roster-keys");
    expect_error(&answer, "feature-not-implemented", "roster-keys without privilege");
    let info = alice
        .get(&keys, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        .await
        .expect("disco")
        .payload()
        .expect("result")
        .expect("query");
    assert!(info.children().all(|f| f.attr("var") != Some("urn:keyward:0#roster-keys")));
    stack.component.stop().await.expect("stop");
}

async fn roster_keys_reads_the_roster_through_xep_0356(kind: ServerKind) {
    let stack = Stack::start(kind, true, &dead_keydir_url(), TOKEN).await.expect("stack");
    let keys = stack.keys().to_owned();
    let mut alice = stack.user("alice").await.expect("alice");
    // An empty roster needs no keydir lookup.
    let empty = alice.get(&keys, "<roster-keys xmlns='urn:keyward:0'/>").await.expect("roster-keys");
    let empty = empty.payload().expect("result").expect("roster-keys element");
    assert_eq!(empty.name(), "roster-keys");
    assert_eq!(empty.children().count(), 0);
    // With a contact the component must look it up, and keydir is down.
    alice.add_contact("bob@example.test").await.expect("roster add");
    let answer = alice.get(&keys, "<roster-keys xmlns='urn:keyward:0'/>").await.expect("roster-keys");
    expect_error(&answer, "service-unavailable", "roster-keys with a contact, keydir down");
    stack.component.stop().await.expect("stop");
}

async fn reconnects_after_the_server_restarts(kind: ServerKind) {
    let mut stack = Stack::start(kind, true, &dead_keydir_url(), TOKEN).await.expect("stack");
    let keys = stack.keys().to_owned();
    let alice_jid = stack.server.register("alice", common::PASSWORD).await.expect("register");
    for round in 1..=2 {
        let stopped_at = Instant::now();
        stack.server.stop().await.expect("stop the server");
        stack.component.wait_down(Duration::from_secs(5)).await.expect("stream seen down");
        stack.server.restart().await.expect("start the server");
        let ports_open = stopped_at.elapsed();
        let waited = stack.component.wait_up(Duration::from_secs(15)).await.expect("stream up again");
        println!(
            "{kind:?} round {round}: down and up again after {ports_open:?}; component reconnected {waited:?} \
             after the server's ports opened ({:?} after the stop)",
            stopped_at.elapsed()
        );
        // The backoff doubles while the server is down, so the next attempt comes at most about
        // as long after the ports open as the server was down (ejabberd takes seconds to boot).
        let bound = Duration::from_secs(5).max(ports_open * 2);
        assert!(waited < bound, "reconnect took {waited:?} (bound {bound:?})");
        let mut alice = common::User::connect(&stack.server, &alice_jid).await.expect("alice");
        let answer = alice.get(&keys, "<ping xmlns='urn:xmpp:ping'/>").await.expect("ping after restart");
        assert!(matches!(answer, Answer::Result(None)), "{answer:?}");
        alice.logout().await;
    }
    let page = stack.component.metrics().await.expect("metrics");
    assert!(page.contains("keyward_component_reconnects_total 2"), "{page}");
    stack.component.stop().await.expect("stop");
}

async fn a_wrong_secret_keeps_the_stream_down_and_retrying(kind: ServerKind) {
    let server = XmppServer::start(kind, ServerOptions::default()).await.expect("server");
    let mut config = config_for(&server, &dead_keydir_url(), TOKEN).expect("config");
    config.component_secret = keyward_component::Secret::new("not the secret");
    config.reconnect_min = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(200);
    let component = Component::start(config).await.expect("component");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!component.is_up().await);
    let (status, body) = keyward_tests::net::http_get(component.metrics_addr(), "/healthz").await.expect("healthz");
    assert_eq!((status, body.trim()), (503, "stream down"));
    let page = component.metrics().await.expect("metrics");
    let failures: u64 = page
        .lines()
        .find(|l| l.starts_with("keyward_component_errors_total{condition=\"connect-failed\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(failures >= 3, "only {failures} attempts:\n{page}");
    assert!(!page.contains("not the secret"));
    component.stop().await.expect("stop");
}

/// A keydir that accepts connections and never answers: each call waits for the timeout.
async fn hung_keydir() -> String {
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", hung.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            sockets.push(socket);
        }
    });
    url
}

async fn shutdown_finishes_in_flight_requests(kind: ServerKind) {
    let stack = Stack::start(kind, true, &hung_keydir().await, TOKEN).await.expect("stack");
    let keys = stack.keys().to_owned();
    let mut alice = stack.user("alice").await.expect("alice");
    let pending = alice
        .start_iq(&keys, false, "<keys xmlns='urn:keyward:0'><item jid='bob@example.test'/></keys>")
        .await
        .expect("sent");
    // Stop once the request is in flight (a fixed sleep lost this race on a loaded machine).
    wait_for_metric(&stack.component, "keyward_component_requests_in_flight 1", Duration::from_secs(10)).await;
    let stopping = tokio::spawn(stack.component.stop());
    let answer = finish_iq(pending).await.expect("the in-flight request was answered");
    expect_error(&answer, "service-unavailable", "in flight during shutdown");
    stopping.await.expect("join").expect("clean stop");
}

async fn requests_beyond_the_queue_are_refused_and_queued_ones_answered_at_shutdown(kind: ServerKind) {
    let server = XmppServer::start(kind, ServerOptions::default()).await.expect("server");
    let mut config = config_for(&server, &hung_keydir().await, TOKEN).expect("config");
    config.max_in_flight = 1;
    config.max_queued = 2;
    // keydir holds every call: the request in flight keeps its slot until this timeout, long
    // enough that it still waits when the component is stopped below.
    config.keydir_timeout = Duration::from_secs(8);
    let component = Component::start_up(config).await.expect("component");
    let keys = server.component_jid().to_owned();
    let mut alice = common::User::login(&server, "alice").await.expect("alice");
    let lookup = "<keys xmlns='urn:keyward:0'><item jid='bob@example.test'/></keys>";
    let wait = Duration::from_secs(10);

    // One request takes the slot, the next two wait in the queue (conditions, not sleeps: a
    // loaded machine is slow).
    let in_flight = alice.start_iq(&keys, false, lookup).await.expect("sent");
    wait_for_metric(&component, "keyward_component_requests_in_flight 1", wait).await;
    let mut queued = Vec::new();
    for _ in 0..2 {
        queued.push(alice.start_iq(&keys, false, lookup).await.expect("sent"));
    }
    wait_for_metric(&component, "keyward_component_requests_queued 2", wait).await;

    // The queue is full: the next requests are refused at once (ping too, a request like any other),
    // and the stream is still read meanwhile.
    let refused = alice.get(&keys, lookup).await.expect("fourth");
    expect_error(&refused, "resource-constraint", "a lookup with the slot busy and the queue full");
    assert!(matches!(&refused, Answer::Error { kind, .. } if kind == "wait"), "{refused:?}");
    let ping = alice.get(&keys, "<ping xmlns='urn:xmpp:ping'/>").await.expect("ping");
    expect_error(&ping, "resource-constraint", "a ping with the slot busy and the queue full");
    let page = wait_for_metric(&component, "keyward_component_requests_refused_total 2", wait).await;
    for line in [
        "keyward_component_requests_max_in_flight 1",
        "keyward_component_requests_max_queued 2",
        "keyward_component_requests_in_flight 1",
        "keyward_component_requests_queued 2",
        "keyward_component_errors_total{condition=\"resource-constraint\"} 2",
    ] {
        assert!(page.lines().any(|l| l == line), "{line} missing from\n{page}");
    }
    promtool_check(&page).await;

    // Shutdown: the queued requests are answered service-unavailable right away, never served
    // and never dropped; the one in flight finishes (keydir's timeout: service-unavailable too).
    let stopping = tokio::spawn(component.stop());
    for token in queued {
        let answer = finish_iq(token).await.expect("a queued request is answered at shutdown");
        expect_error(&answer, "service-unavailable", "queued at shutdown");
        assert!(
            matches!(&answer, Answer::Error { kind, text, .. }
                if kind == "wait" && text.as_deref() == Some("the component is shutting down")),
            "{answer:?}"
        );
    }
    let answer = finish_iq(in_flight).await.expect("the request in flight is answered");
    expect_error(&answer, "service-unavailable", "in flight at shutdown, keydir silent");
    assert!(
        matches!(&answer, Answer::Error { text, .. } if text.as_deref() != Some("the component is shutting down")),
        "the request in flight was handled, not refused: {answer:?}"
    );
    stopping.await.expect("join").expect("clean stop");
}

async fn accounts_of_other_domains_cannot_store_keys(kind: ServerKind) {
    let server = XmppServer::start(kind, ServerOptions::default()).await.expect("server");
    let mut config = config_for(&server, &dead_keydir_url(), TOKEN).expect("config");
    config.served_domains = vec!["other.test".into()];
    let component = Component::start_up(config).await.expect("component");
    let keys = server.component_jid().to_owned();
    let mut alice = common::User::login(&server, "alice").await.expect("alice");
    let publish = Identity::new(&alice.jid).publish_xml();
    expect_error(&alice.set(&keys, &publish).await.expect("publish"), "not-allowed", "publish from another domain");
    let secret = alice.get(&keys, "<secret xmlns='urn:keyward:0'/>").await.expect("secret");
    expect_error(&secret, "not-allowed", "secret from another domain");
    // keys lookups are for everyone (keydir is down here, so the request gets that far).
    let lookup = alice.get(&keys, "<keys xmlns='urn:keyward:0'><item jid='bob@example.test'/></keys>").await;
    expect_error(&lookup.expect("keys"), "service-unavailable", "keys from another domain");
    // The privilege advertisement of a domain the component does not serve is not believed.
    let roster = alice.get(&keys, "<roster-keys xmlns='urn:keyward:0'/>").await.expect("roster-keys");
    expect_error(&roster, "feature-not-implemented", "roster-keys with an unserved domain's privilege");
    component.stop().await.expect("stop");
}

on_both_servers! {
    every_request_valid_and_hostile => every_request_valid_and_hostile_prosody, every_request_valid_and_hostile_ejabberd;
    roster_keys_needs_the_roster_privilege => roster_keys_needs_the_roster_privilege_prosody, roster_keys_needs_the_roster_privilege_ejabberd;
    roster_keys_reads_the_roster_through_xep_0356 => roster_keys_reads_the_roster_through_xep_0356_prosody, roster_keys_reads_the_roster_through_xep_0356_ejabberd;
    reconnects_after_the_server_restarts => reconnects_after_the_server_restarts_prosody, reconnects_after_the_server_restarts_ejabberd;
    a_wrong_secret_keeps_the_stream_down_and_retrying => a_wrong_secret_keeps_the_stream_down_and_retrying_prosody, a_wrong_secret_keeps_the_stream_down_and_retrying_ejabberd;
    shutdown_finishes_in_flight_requests => shutdown_finishes_in_flight_requests_prosody, shutdown_finishes_in_flight_requests_ejabberd;
    requests_beyond_the_queue_are_refused_and_queued_ones_answered_at_shutdown => requests_beyond_the_queue_are_refused_and_queued_ones_answered_at_shutdown_prosody, requests_beyond_the_queue_are_refused_and_queued_ones_answered_at_shutdown_ejabberd;
    accounts_of_other_domains_cannot_store_keys => accounts_of_other_domains_cannot_store_keys_prosody, accounts_of_other_domains_cannot_store_keys_ejabberd;
}
