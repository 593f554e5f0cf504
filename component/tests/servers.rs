//! The component through a real Prosody and a real ejabberd, with requests that need no working keydir:
//! every RFC 6120 error path, hostile input, roster privilege, reconnects, shutdown, backpressure, metrics.
//! keydir is unreachable here, so a request that gets past validation must answer
//! `service-unavailable` quickly (except in the shutdown test, which needs keydir's real answer).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Answer, Identity, User, dead_keydir, finish_iq, options, stack, statuses, wait_for_metric};
use keyward_proto::{BareJid, XmlElement};
use keyward_tests::component::{Component, ComponentOptions};
use keyward_tests::gate::Gate;
use keyward_tests::keydir::{COMPONENT_TOKEN, Keydir, KeydirOptions};
use keyward_tests::on_both_servers;
use keyward_tests::postgres::Postgres;
use keyward_tests::stack::{KeydirChoice, Stack, StackOptions};
use keyward_tests::xmpp::{ServerKind, ServerOptions, XmppServer};

use tokio::io::AsyncWriteExt;

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
    let mut stack = stack(kind, true, dead_keydir()).await;
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");

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
    // The component checks the secret update itself, before keydir (which is down here).
    let foreign = Identity::new(&alice.jid);
    let unsigned = mine.publish_xml_with(&foreign.keys, &foreign.secret, 2);
    expect_error(&alice.set(&keys, &unsigned).await.expect("foreign"), "bad-request", "secret signed by another key");
    let without = mine.publish_xml().split("<secret-sig").next().expect("head").to_owned() + "</publish>";
    expect_error(&alice.set(&keys, &without).await.expect("no sig"), "bad-request", "publish without secret-sig");
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
    assert!(stack.component().is_up().await);
    let page = stack.component().metrics().await.expect("metrics");
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
    stack.component_mut().stop().await.expect("stop");
}

async fn roster_keys_needs_the_roster_privilege(kind: ServerKind) {
    let mut stack = stack(kind, false, dead_keydir()).await;
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
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
    stack.component_mut().stop().await.expect("stop");
}

async fn roster_keys_reads_the_roster_through_xep_0356(kind: ServerKind) {
    let mut stack = stack(kind, true, dead_keydir()).await;
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    // An empty roster needs no keydir lookup.
    let empty = alice.get(&keys, "<roster-keys xmlns='urn:keyward:0'/>").await.expect("roster-keys");
    let empty = empty.payload().expect("result").expect("roster-keys element");
    assert_eq!(empty.name(), "roster-keys");
    assert_eq!(empty.children().count(), 0);
    // With a contact the component must look it up, and keydir is down.
    alice.add_contact("bob@example.test").await.expect("roster add");
    let answer = alice.get(&keys, "<roster-keys xmlns='urn:keyward:0'/>").await.expect("roster-keys");
    expect_error(&answer, "service-unavailable", "roster-keys with a contact, keydir down");
    stack.component_mut().stop().await.expect("stop");
}

async fn reconnects_after_the_server_restarts(kind: ServerKind) {
    let mut stack = stack(kind, true, dead_keydir()).await;
    let keys = stack.component_jid().to_owned();
    let alice_jid = stack.xmpp().register("alice", common::PASSWORD).await.expect("register");
    for round in 1..=2 {
        let stopped_at = Instant::now();
        stack.xmpp_mut().stop().await.expect("stop the server");
        stack.component().wait_down(Duration::from_secs(5)).await.expect("stream seen down");
        stack.xmpp_mut().restart().await.expect("start the server");
        let ports_open = stopped_at.elapsed();
        let waited = stack.component().wait_up(Duration::from_secs(15)).await.expect("stream up again");
        println!(
            "{kind:?} round {round}: down and up again after {ports_open:?}; component reconnected {waited:?} \
             after the server's ports opened ({:?} after the stop)",
            stopped_at.elapsed()
        );
        // The backoff doubles while the server is down, so the next attempt comes at most about
        // as long after the ports open as the server was down (ejabberd takes seconds to boot).
        let bound = Duration::from_secs(5).max(ports_open * 2);
        assert!(waited < bound, "reconnect took {waited:?} (bound {bound:?})");
        let mut alice = User::connect(stack.xmpp(), &alice_jid).await.expect("alice");
        let answer = alice.get(&keys, "<ping xmlns='urn:xmpp:ping'/>").await.expect("ping after restart");
        assert!(matches!(answer, Answer::Result(None)), "{answer:?}");
        alice.logout().await;
    }
    let page = stack.component().metrics().await.expect("metrics");
    assert!(page.contains("keyward_component_reconnects_total 2"), "{page}");
    stack.component_mut().stop().await.expect("stop");
}

async fn a_wrong_secret_keeps_the_stream_down_and_retrying(kind: ServerKind) {
    let server = XmppServer::start(kind, ServerOptions::default()).await.expect("server");
    let KeydirChoice::External { url, token } = dead_keydir() else { unreachable!("dead_keydir is external") };
    let options = ComponentOptions {
        secret: "not the secret".into(),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        ..ComponentOptions::for_server(&server, &url, &token)
    };
    let mut component = Component::start(options).await.expect("component");
    let page = component
        .wait_for_metrics("3 failed connection attempts", |line| {
            line.strip_prefix("keyward_component_errors_total{condition=\"connect-failed\"} ")
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|failures| failures >= 3)
        })
        .await
        .expect("retries");
    assert!(!page.contains("not the secret"));
    assert!(!component.is_up().await);
    let (status, body) = keyward_tests::net::http_get(component.metrics_addr(), "/healthz").await.expect("healthz");
    assert_eq!((status, body.trim()), (503, "stream down"));
    assert!(!component.process().has_exited(), "the component gave up");
    component.stop().await.expect("stop");
}

/// A real keydir on a fresh database, and a gate in front of it that holds its answers.
async fn held_keydir() -> (Keydir, Gate) {
    let postgres = tokio::task::spawn_blocking(Postgres::shared).await.expect("joins").expect("postgres");
    let database = postgres.fresh_database().await.expect("database");
    let keydir = Keydir::start(KeydirOptions::new(&database)).await.expect("keydir");
    let gate = Gate::start(keydir.addr(), false).await.expect("gate");
    (keydir, gate)
}

async fn shutdown_finishes_in_flight_requests(kind: ServerKind) {
    // A real keydir behind a gate that holds its answers: alice's lookup stays in flight for as
    // long as the test needs, then gets keydir's real answer, during the shutdown.
    let (_keydir, gate) = held_keydir().await;
    let held = KeydirChoice::External { url: gate.url(), token: COMPONENT_TOKEN.into() };
    let mut stack = stack(kind, true, held).await;
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let mut bob = User::login(stack.xmpp(), "bob").await.expect("bob");
    let pending = alice
        .start_iq(&keys, false, "<keys xmlns='urn:keyward:0'><item jid='bob@example.test'/></keys>")
        .await
        .expect("sent");
    stack
        .component()
        .wait_for_metrics("one request in flight", |line| line == "keyward_component_requests_in_flight 1")
        .await
        .expect("in flight");

    let (stopped, answer) = tokio::join!(stack.component_mut().terminate(Duration::from_secs(20)), async {
        // The component is draining once it refuses new requests; only then do keydir's answers flow.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ping = bob.get(&keys, "<ping xmlns='urn:xmpp:ping'/>").await.expect("ping");
            if ping.condition() == Some("service-unavailable") {
                break;
            }
            assert!(matches!(ping, Answer::Result(None)), "{ping:?}");
            assert!(std::time::Instant::now() < deadline, "the component never started draining");
        }
        gate.open();
        finish_iq(pending).await
    });
    let answer = answer.expect("the in-flight request was answered");
    let payload = answer.payload().expect("keydir's answer, not an error, while shutting down");
    let items = statuses(&payload.expect("a keys payload"));
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].0, "bob@example.test");
    let status = stopped.expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

async fn requests_beyond_the_queue_are_refused_and_queued_ones_answered_at_shutdown(kind: ServerKind) {
    // keydir's answers wait at the gate: the request in flight keeps its slot for as long as
    // the test needs (no keydir timeout can end it early), then gets keydir's real answer.
    let (_keydir, gate) = held_keydir().await;
    let held = KeydirChoice::External { url: gate.url(), token: COMPONENT_TOKEN.into() };
    let options = StackOptions {
        component: |c| {
            c.max_in_flight = Some(1);
            c.max_queued = Some(2);
            c.keydir_timeout = Some(Duration::from_secs(60));
        },
        ..options(true, held)
    };
    let mut stack = Stack::start(kind, options).await.expect("stack");
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let lookup = "<keys xmlns='urn:keyward:0'><item jid='bob@example.test'/></keys>";

    // One request takes the slot, the next two wait in the queue (conditions, not sleeps: a
    // loaded machine is slow).
    let in_flight = alice.start_iq(&keys, false, lookup).await.expect("sent");
    wait_for_metric(stack.component(), "keyward_component_requests_in_flight 1").await;
    let mut queued = Vec::new();
    for _ in 0..2 {
        queued.push(alice.start_iq(&keys, false, lookup).await.expect("sent"));
    }
    wait_for_metric(stack.component(), "keyward_component_requests_queued 2").await;

    // The queue is full: the next requests are refused at once (ping too, a request like any
    // other), and the stream is still read meanwhile.
    let refused = alice.get(&keys, lookup).await.expect("fourth");
    expect_error(&refused, "resource-constraint", "a lookup with the slot busy and the queue full");
    assert!(matches!(&refused, Answer::Error { kind, .. } if kind == "wait"), "{refused:?}");
    let ping = alice.get(&keys, "<ping xmlns='urn:xmpp:ping'/>").await.expect("ping");
    expect_error(&ping, "resource-constraint", "a ping with the slot busy and the queue full");
    let page = wait_for_metric(stack.component(), "keyward_component_requests_refused_total 2").await;
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
    // and never dropped; the one in flight finishes with keydir's answer once the gate opens.
    let (stopped, in_flight_answer) = tokio::join!(stack.component_mut().terminate(Duration::from_secs(20)), async {
        for token in queued {
            let answer = finish_iq(token).await.expect("a queued request is answered at shutdown");
            expect_error(&answer, "service-unavailable", "queued at shutdown");
            assert!(
                matches!(&answer, Answer::Error { kind, text, .. }
                    if kind == "wait" && text.as_deref() == Some("the component is shutting down")),
                "{answer:?}"
            );
        }
        gate.open();
        finish_iq(in_flight).await
    });
    let answer = in_flight_answer.expect("the request in flight is answered");
    let payload = answer.payload().expect("keydir's answer, not a refusal").expect("a keys payload");
    assert_eq!(statuses(&payload), vec![("bob@example.test".to_owned(), "none".to_owned(), false)]);
    let status = stopped.expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// 4 clients with 32 requests each, all in flight at once through the real server: the
/// component takes 64 (its default in flight), queues the other 64 (its default queue holds
/// 1024) and answers every one with keydir's answer, refusing none.
async fn four_clients_with_32_requests_each_in_flight_are_all_answered(kind: ServerKind) {
    let (_keydir, gate) = held_keydir().await;
    let held = KeydirChoice::External { url: gate.url(), token: COMPONENT_TOKEN.into() };
    // The gate holds the first calls while the other requests arrive: no keydir timeout meanwhile.
    let options =
        StackOptions { component: |c| c.keydir_timeout = Some(Duration::from_secs(60)), ..options(false, held) };
    let mut stack = Stack::start(kind, options).await.expect("stack");
    let page = stack.component().metrics().await.expect("metrics");
    for line in ["keyward_component_requests_max_in_flight 64", "keyward_component_requests_max_queued 1024"] {
        assert!(page.lines().any(|l| l == line), "the defaults are what is tested: {line} missing from\n{page}");
    }
    let keys = stack.component_jid().to_owned();
    let mut users = Vec::new();
    for c in 0..4 {
        users.push(User::login(stack.xmpp(), &format!("user{c}")).await.expect("login"));
    }
    let mut pending = Vec::new();
    for (c, user) in users.iter_mut().enumerate() {
        for i in 0..32 {
            let jid = format!("nobody-{c}-{i}@example.test");
            let lookup = format!("<keys xmlns='urn:keyward:0'><item jid='{jid}'/></keys>");
            pending.push((jid, user.start_iq(&keys, false, &lookup).await.expect("sent")));
        }
    }
    // All 128 are at the component at once: 64 hold a slot (their keydir calls wait at the
    // gate), 64 wait in the queue.
    let page = wait_for_metric(stack.component(), "keyward_component_requests_queued 64").await;
    assert!(page.lines().any(|l| l == "keyward_component_requests_in_flight 64"), "{page}");
    gate.open();
    // Each answer is keydir's, for exactly the account asked (nobody published: status none).
    for (jid, token) in pending {
        let answer = finish_iq(token).await.expect("answered");
        let answer = answer.payload().expect("a result, not an error").expect("keys element");
        assert_eq!(statuses(&answer), vec![(jid, "none".to_owned(), false)]);
    }
    let page = wait_for_metric(stack.component(), "keyward_component_requests_in_flight 0").await;
    for line in ["keyward_component_requests_queued 0", "keyward_component_requests_refused_total 0"] {
        assert!(page.lines().any(|l| l == line), "{line} missing from\n{page}");
    }
    assert!(!page.contains("errors_total{condition=\"resource-constraint\"}"), "{page}");
    for user in users {
        user.logout().await;
    }
    stack.component_mut().stop().await.expect("stop");
}

async fn accounts_of_other_domains_cannot_store_keys(kind: ServerKind) {
    let options =
        StackOptions { component: |c| c.served_domains = vec!["other.test".into()], ..options(true, dead_keydir()) };
    let mut stack = Stack::start(kind, options).await.expect("stack");
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
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
    stack.component_mut().stop().await.expect("stop");
}

on_both_servers!(
    every_request_valid_and_hostile,
    roster_keys_needs_the_roster_privilege,
    roster_keys_reads_the_roster_through_xep_0356,
    reconnects_after_the_server_restarts,
    a_wrong_secret_keeps_the_stream_down_and_retrying,
    shutdown_finishes_in_flight_requests,
    requests_beyond_the_queue_are_refused_and_queued_ones_answered_at_shutdown,
    four_clients_with_32_requests_each_in_flight_are_all_answered,
    accounts_of_other_domains_cannot_store_keys,
);
