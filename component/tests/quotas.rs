//! Quotas through a real XMPP server (Prosody and ejabberd): every sender's request bucket, the
//! stricter buckets of senders outside the served domains, and keydir's holding cap (a real
//! keydir on a real Postgres) as the user sees it. Limits are configured tiny, as an operator
//! would set them, so that a handful of requests crosses them; each limit is per minute, so
//! no token comes back while a test runs.

mod common;

use common::{Answer, Identity, User, dead_keydir, options, wait_for_metric};
use keyward_tests::component::ComponentOptions;
use keyward_tests::keydir::{COMPONENT_TOKEN, Keydir, KeydirOptions};
use keyward_tests::on_both_servers;
use keyward_tests::postgres::Postgres;
use keyward_tests::stack::{KeydirChoice, Stack, StackOptions};
use keyward_tests::xmpp::ServerKind;

const PING: &str = "<ping xmlns='urn:xmpp:ping'/>";
const KEYS_OF_BOB: &str = "<keys xmlns='urn:keyward:0'><item jid='bob@example.test'/></keys>";

fn env(options: &mut ComponentOptions, settings: &[(&str, &str)]) {
    options.env.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
}

/// Asserts the quota refusal: `policy-violation`, type `wait`, a text naming the limit.
fn assert_over_quota(answer: &Answer, text: &str) {
    match answer {
        Answer::Error { condition, kind, text: Some(said) } => {
            assert_eq!((condition.as_str(), kind.as_str()), ("policy-violation", "wait"), "{answer:?}");
            assert!(said.contains(text), "{answer:?}");
        }
        other => panic!("expected policy-violation, got {other:?}"),
    }
}

async fn every_sender_has_a_request_bucket(kind: ServerKind) {
    let options = StackOptions {
        component: |c| env(c, &[("KEYWARD_REQUESTS_PER_MINUTE", "1"), ("KEYWARD_REQUESTS_BURST", "3")]),
        ..options(true, dead_keydir())
    };
    let mut stack = Stack::start(kind, options).await.expect("stack");
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let mut bob = User::login(stack.xmpp(), "bob").await.expect("bob");
    // Any request counts: a ping, a disco#info, a lookup (keydir is down: service-unavailable).
    assert!(matches!(alice.get(&keys, PING).await.expect("ping"), Answer::Result(None)));
    let disco = alice.get(&keys, "<query xmlns='http://jabber.org/protocol/disco#info'/>").await.expect("disco");
    assert!(matches!(disco, Answer::Result(Some(_))), "{disco:?}");
    let lookup = alice.get(&keys, KEYS_OF_BOB).await.expect("keys");
    assert_eq!(lookup.condition(), Some("service-unavailable"));
    // The fourth within the minute is refused, whatever it is.
    assert_over_quota(&alice.get(&keys, PING).await.expect("ping"), "at most 1 requests a minute");
    assert_over_quota(
        &alice.set(&keys, "<relay xmlns='urn:keyward:0' to='bob@example.test'/>").await.expect("relay"),
        "retry later",
    );
    // Another sender has a bucket of its own.
    assert!(matches!(bob.get(&keys, PING).await.expect("ping"), Answer::Result(None)));
    wait_for_metric(stack.component(), "keyward_component_quota_refused_total{reason=\"rate-limit\"} 2").await;
    let page = stack.component().metrics().await.expect("metrics");
    assert!(page.lines().any(|l| l == "keyward_component_errors_total{condition=\"policy-violation\"} 2"), "{page}");
    stack.component_mut().stop().await.expect("stop");
}

async fn senders_outside_the_served_domains_have_stricter_buckets(kind: ServerKind) {
    let remote_limits = |c: &mut ComponentOptions| {
        env(c, &[("KEYWARD_REMOTE_PER_MINUTE", "2"), ("KEYWARD_REMOTE_DOMAIN_PER_MINUTE", "3")]);
    };
    let options = StackOptions { component: remote_limits, ..options(true, dead_keydir()) };
    let mut stack = Stack::start(kind, options).await.expect("stack");
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let mut bob = User::login(stack.xmpp(), "bob").await.expect("bob");
    // Served here: the remote buckets do not apply (five lookups; keydir is down).
    for _ in 0..5 {
        let answer = alice.get(&keys, KEYS_OF_BOB).await.expect("keys");
        assert_eq!(answer.condition(), Some("service-unavailable"), "{answer:?}");
    }

    // The same accounts, seen by a component serving another domain: remote requesters. They
    // may still look keys up (the lookup reaches keydir), at the remote rates.
    stack
        .replace_component(|c| {
            remote_limits(c);
            c.served_domains = vec!["other.test".into()];
        })
        .await
        .expect("component replaced");
    let keys = stack.component_jid().to_owned();
    for _ in 0..2 {
        let answer = alice.get(&keys, KEYS_OF_BOB).await.expect("keys");
        assert_eq!(answer.condition(), Some("service-unavailable"), "{answer:?}");
    }
    assert_over_quota(&alice.get(&keys, KEYS_OF_BOB).await.expect("keys"), "from an account of another domain");
    // bob has his own bucket, but his domain's is shared: its third request passes, the fourth not.
    assert_eq!(bob.get(&keys, KEYS_OF_BOB).await.expect("keys").condition(), Some("service-unavailable"));
    assert_over_quota(&bob.get(&keys, PING).await.expect("ping"), "from your domain");
    let component = stack.component();
    wait_for_metric(component, "keyward_component_quota_refused_total{reason=\"remote-rate-limit\"} 1").await;
    wait_for_metric(component, "keyward_component_quota_refused_total{reason=\"remote-domain-rate-limit\"} 1").await;
    stack.component_mut().stop().await.expect("stop");
}

/// A keydir of the given holding cap on a fresh database.
async fn keydir_with_cap(cap: &str) -> Keydir {
    let postgres = tokio::task::spawn_blocking(Postgres::shared).await.expect("joins").expect("postgres");
    let mut options = KeydirOptions::new(&postgres.fresh_database().await.expect("database"));
    options.env.push(("KEYWARD_MAX_HOLDINGS".into(), cap.into()));
    Keydir::start(options).await.expect("keydir")
}

async fn the_holding_cap_is_a_policy_violation_and_held_keys_still_answer(kind: ServerKind) {
    let keydir = keydir_with_cap("1").await;
    let choice = KeydirChoice::External { url: keydir.url(), token: COMPONENT_TOKEN.into() };
    let mut stack = Stack::start(kind, options(true, choice)).await.expect("stack");
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let mut bob = User::login(stack.xmpp(), "bob").await.expect("bob");
    let mut carol = User::login(stack.xmpp(), "carol").await.expect("carol");
    for user in [&mut alice, &mut bob] {
        let publish = Identity::new(&user.jid).publish_xml();
        user.set(&keys, &publish).await.expect("publish").payload().expect("published");
    }
    let alice_key = "<keys xmlns='urn:keyward:0'><item jid='alice@example.test'/></keys>";
    carol.get(&keys, alice_key).await.expect("keys").payload().expect("the first key is within the cap");
    let refused = carol.get(&keys, KEYS_OF_BOB).await.expect("keys");
    match &refused {
        Answer::Error { condition, text, .. } => {
            assert_eq!(
                (condition.as_str(), text.as_deref()),
                ("policy-violation", Some("holding-limit")),
                "{refused:?}"
            );
        }
        other => panic!("expected holding-limit, got {other:?}"),
    }
    carol.get(&keys, alice_key).await.expect("keys").payload().expect("a held key is still answered");
    wait_for_metric(stack.component(), "keyward_component_quota_refused_total{reason=\"holding-limit\"} 1").await;
    stack.component_mut().stop().await.expect("stop");
}

on_both_servers!(
    every_sender_has_a_request_bucket,
    senders_outside_the_served_domains_have_stricter_buckets,
    the_holding_cap_is_a_policy_violation_and_held_keys_still_answer,
);
