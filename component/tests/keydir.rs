//! The component through a real XMPP server (Prosody and ejabberd) AND a real keydir on a real Postgres: every request
//! end to end, key relay and revocation notices delivered to real clients, keydir stopped and
//! restarted (service-unavailable quickly, then recovery, no notice lost).

mod common;

use std::time::{Duration, Instant};

use common::{Answer, Identity, User, WAIT, options, stack, statuses};
use keyward_proto::elements::{KeyRelay, OprfQuery, OprfResult, Publish, RestoreProof, Revoked};
use keyward_proto::restore::{self, AnySecret, OprfOutput, RestoreChallenge};
use keyward_proto::{SecretBlob, XmlElement};
use keyward_tests::gate::Gate;
use keyward_tests::on_both_servers;
use keyward_tests::stack::{KeydirChoice, Stack, StackOptions};
use keyward_tests::xmpp::ServerKind;

const NS: &str = "urn:keyward:0";

/// The admin revokes `jid` through the stack's keydir admin API.
async fn revoke(stack: &Stack, jid: &str, reason: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/v0/admin/accounts/{jid}/revoke", stack.keydir_url()))
        .bearer_auth(stack.admin_token())
        .json(&serde_json::json!({ "reason": reason }))
        .send()
        .await
        .expect("revoke request");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
}

fn keyward_payload(message: &tokio_xmpp::parsers::message::Message) -> tokio_xmpp::minidom::Element {
    message.payloads.iter().find(|p| p.ns() == NS).cloned().expect("keyward payload")
}

fn has_store_hint(message: &tokio_xmpp::parsers::message::Message) -> bool {
    message.payloads.iter().any(|p| p.is("store", "urn:xmpp:hints"))
}

async fn every_request_end_to_end_with_relay_and_revocation(kind: ServerKind) {
    let mut stack = stack(kind, true, KeydirChoice::Real).await;
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let mut bob = User::login(stack.xmpp(), "bob").await.expect("bob");
    let mut carol = User::login(stack.xmpp(), "carol").await.expect("carol");
    let alice_id = Identity::new(&alice.jid);

    // publish: created, idempotent, then a different bundle conflicts.
    alice.set(&keys, &alice_id.publish_xml()).await.expect("publish").payload().expect("published");
    alice.set(&keys, &alice_id.publish_xml()).await.expect("again").payload().expect("idempotent");
    let other = Identity::new(&alice.jid);
    assert_eq!(alice.set(&keys, &other.publish_xml()).await.expect("other").condition(), Some("conflict"));

    // secret: only ever the sender's own.
    let secret = alice.get(&keys, "<secret xmlns='urn:keyward:0'/>").await.expect("secret").payload().expect("ok");
    let secret = SecretBlob::parse(String::from(&secret.expect("secret element")).as_bytes()).expect("blob");
    assert_eq!(secret, alice_id.secret);

    // Replacing the secret needs alice's identity key and a greater seq (protocol 6.1).
    let foreign =
        SecretBlob::seal(&other.keys, &alice.jid, b"x", keyward_proto::KdfParams::INSECURE_TEST_ONLY).expect("seals");
    let forged = alice_id.publish_xml_with(&other.keys, &foreign, 5);
    assert_eq!(alice.set(&keys, &forged).await.expect("forged").condition(), Some("bad-request"));
    let resealed = alice_id.resealed(b"new passphrase");
    let update = alice_id.publish_xml_with(&alice_id.keys, &resealed, 2);
    alice.set(&keys, &update).await.expect("update").payload().expect("replaced with a greater seq");
    let replay = alice_id.publish_xml();
    let answer = alice.set(&keys, &replay).await.expect("replay");
    assert_eq!(answer.condition(), Some("unexpected-request"), "the first update replayed");
    let stored = alice.get(&keys, "<secret xmlns='urn:keyward:0'/>").await.expect("secret").payload().expect("ok");
    let stored = SecretBlob::parse(String::from(&stored.expect("secret element")).as_bytes()).expect("blob");
    assert_eq!(stored, resealed, "only the correctly signed, newer blob was stored");
    let asks_for_alice = "<secret xmlns='urn:keyward:0' jid='alice@example.test'/>";
    assert_eq!(bob.get(&keys, asks_for_alice).await.expect("bob").condition(), Some("item-not-found"));

    // keys: alice active with her bundle, dave none.
    let answer = bob
        .get(
            &keys,
            "<keys xmlns='urn:keyward:0'><item jid='alice@example.test'/><item jid='dave@example.test'/></keys>",
        )
        .await
        .expect("keys")
        .payload()
        .expect("ok")
        .expect("keys element");
    assert_eq!(
        statuses(&answer),
        vec![("alice@example.test".into(), "active".into(), true), ("dave@example.test".into(), "none".into(), false)]
    );

    // roster-keys through XEP-0356: carol's roster holds alice and dave.
    carol.add_contact("alice@example.test").await.expect("roster");
    carol.add_contact("dave@example.test").await.expect("roster");
    let roster = carol
        .get(&keys, "<roster-keys xmlns='urn:keyward:0'/>")
        .await
        .expect("roster-keys")
        .payload()
        .expect("ok")
        .expect("roster-keys element");
    assert_eq!(
        statuses(&roster),
        vec![("alice@example.test".into(), "active".into(), true), ("dave@example.test".into(), "none".into(), false)]
    );

    // relay: bob gets a stored key-relay message with alice's bundle.
    alice
        .set(&keys, "<relay xmlns='urn:keyward:0' to='bob@example.test'/>")
        .await
        .expect("relay")
        .payload()
        .expect("ok");
    let message = bob.message_with(NS, Duration::from_secs(10)).await.expect("key-relay");
    assert_eq!(message.type_, tokio_xmpp::parsers::message::MessageType::Normal);
    assert!(has_store_hint(&message));
    let relay = KeyRelay::parse(String::from(&keyward_payload(&message)).as_bytes()).expect("key-relay");
    assert_eq!(relay.from, alice.jid);
    assert_eq!(relay.bundle, alice_id.bundle);
    // A sender without a bundle cannot relay.
    let carol_relay = carol.set(&keys, "<relay xmlns='urn:keyward:0' to='bob@example.test'/>").await.expect("relay");
    assert_eq!(carol_relay.condition(), Some("item-not-found"));
    // The rate limit: 30 a minute per sender (bob's own relays; alice's one above does not count).
    let bob_id = Identity::new(&bob.jid);
    bob.set(&keys, &bob_id.publish_xml()).await.expect("publish").payload().expect("bob published");
    let mut allowed = 0;
    loop {
        let answer = bob.set(&keys, "<relay xmlns='urn:keyward:0' to='dave@example.test'/>").await.expect("relay");
        match answer {
            Answer::Result(_) => allowed += 1,
            Answer::Error { ref condition, .. } => {
                assert_eq!(condition, "policy-violation", "{answer:?}");
                break;
            }
        }
        assert!(allowed <= 30, "more than 30 relays allowed");
    }
    assert_eq!(allowed, 30);

    // Revocation: bob (relay, keys) and carol (roster-keys) hold alice's key; all three hear of it.
    revoke(&stack, "alice@example.test", "laptop stolen").await;
    let alice_jid = alice.jid.clone();
    for (user, who) in [(&mut bob, "bob"), (&mut carol, "carol"), (&mut alice, "alice")] {
        let message = loop {
            let message = user.message_with(NS, Duration::from_secs(15)).await.unwrap_or_else(|e| panic!("{who}: {e}"));
            if keyward_payload(&message).name() == "revoked" {
                break message;
            }
        };
        assert!(has_store_hint(&message));
        let revoked = Revoked::parse(String::from(&keyward_payload(&message)).as_bytes()).expect("revoked");
        assert_eq!(revoked.jid, alice_jid);
        assert_eq!(revoked.fp, alice_id.bundle.fingerprint());
        assert_eq!(revoked.reason, "laptop stolen");
    }
    let answer = bob
        .get(&keys, "<keys xmlns='urn:keyward:0'><item jid='alice@example.test'/></keys>")
        .await
        .expect("keys")
        .payload()
        .expect("ok")
        .expect("keys element");
    assert_eq!(statuses(&answer), vec![("alice@example.test".into(), "revoked".into(), true)]);
    for (case, set, xml) in [
        ("publish", true, alice_id.publish_xml()),
        ("secret", false, "<secret xmlns='urn:keyward:0'/>".to_owned()),
        ("relay", true, "<relay xmlns='urn:keyward:0' to='bob@example.test'/>".to_owned()),
    ] {
        let answer = alice.iq(&keys, set, &xml).await.expect(case);
        assert_eq!(answer.condition(), Some("not-allowed"), "{case} after revocation: {answer:?}");
    }
    let page = stack.component().metrics().await.expect("metrics");
    assert!(page.contains("keyward_component_notices_sent_total{kind=\"key-relay\"}"), "{page}");
    assert!(page.contains("keyward_component_notices_sent_total{kind=\"revoked\"}"), "{page}");
    stack.component_mut().stop().await.expect("stop");
}

async fn keydir_down_answers_quickly_and_no_notice_is_lost(kind: ServerKind) {
    let mut stack = stack(kind, true, KeydirChoice::Real).await;
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let mut bob = User::login(stack.xmpp(), "bob").await.expect("bob");
    let alice_id = Identity::new(&alice.jid);
    alice.set(&keys, &alice_id.publish_xml()).await.expect("publish").payload().expect("published");
    let lookup = "<keys xmlns='urn:keyward:0'><item jid='alice@example.test'/></keys>";
    bob.get(&keys, lookup).await.expect("keys").payload().expect("bob now holds alice's key");

    // The component goes away; alice is revoked meanwhile; then keydir crashes.
    stack.stop_component().await.expect("stop component");
    revoke(&stack, "alice@example.test", "compromised").await;
    stack.kill_keydir().await.expect("keydir killed");

    // The component comes back with keydir down: the stream is up, requests fail fast.
    stack.start_component().await.expect("component");
    for _ in 0..3 {
        let started = Instant::now();
        let answer = bob.get(&keys, lookup).await.expect("keys while keydir is down");
        assert_eq!(answer.condition(), Some("service-unavailable"), "{answer:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }
    assert!(stack.component().is_up().await);

    // keydir returns: requests work again and the queued notices arrive.
    stack.start_keydir().await.expect("keydir restart");
    let recovered = Instant::now();
    let revoked = bob.message_with(NS, Duration::from_secs(20)).await.expect("revoked notice after recovery");
    let revoked = Revoked::parse(String::from(&keyward_payload(&revoked)).as_bytes()).expect("revoked");
    assert_eq!(revoked.jid, alice.jid);
    let to_alice = alice.message_with(NS, Duration::from_secs(20)).await.expect("alice hears of it too");
    assert_eq!(keyward_payload(&to_alice).name(), "revoked");
    println!("notices delivered {:?} after keydir came back", recovered.elapsed());
    let answer = bob.get(&keys, lookup).await.expect("keys after recovery").payload().expect("ok").expect("keys");
    assert_eq!(statuses(&answer), vec![("alice@example.test".into(), "revoked".into(), true)]);
    stack.stop().await.expect("stop");
}

async fn a_wrong_component_token_is_an_internal_error_not_a_revocation(kind: ServerKind) {
    let options = StackOptions { component: |c| c.token = "not-the-token".into(), ..options(true, KeydirChoice::Real) };
    let mut stack = Stack::start(kind, options).await.expect("stack");
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let publish = Identity::new(&alice.jid).publish_xml();
    let answer = alice.set(&keys, &publish).await.expect("publish");
    assert_eq!(answer.condition(), Some("internal-server-error"), "{answer:?}");
    let page = stack.component().metrics().await.expect("metrics");
    assert!(!page.contains("not-the-token"));
    stack.component_mut().stop().await.expect("stop");
}

/// The `<revoked/>` notices among `messages`.
fn revoked_notices(messages: &[tokio_xmpp::parsers::message::Message]) -> Vec<Revoked> {
    messages
        .iter()
        .map(keyward_payload)
        .filter(|p| p.name() == "revoked")
        .map(|p| Revoked::parse(String::from(&p).as_bytes()).expect("revoked"))
        .collect()
}

async fn roster_contacts_hear_of_a_revocation(kind: ServerKind) {
    let mut stack = stack(kind, true, KeydirChoice::Real).await;
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let mut bob = User::login(stack.xmpp(), "bob").await.expect("bob");
    let mut dave = User::login(stack.xmpp(), "dave").await.expect("dave");
    let mut erin = User::login(stack.xmpp(), "erin").await.expect("erin");
    let alice_id = Identity::new(&alice.jid);
    alice.set(&keys, &alice_id.publish_xml()).await.expect("publish").payload().expect("published");
    // bob holds alice's key (a lookup) and is in her roster; dave is in her roster and never
    // looked her up; erin is neither.
    let lookup = "<keys xmlns='urn:keyward:0'><item jid='alice@example.test'/></keys>";
    bob.get(&keys, lookup).await.expect("keys").payload().expect("bob holds alice's key");
    alice.add_contact("bob@example.test").await.expect("roster");
    alice.add_contact("dave@example.test").await.expect("roster");

    let alice_jid = alice.jid.clone();
    revoke(&stack, "alice@example.test", "account closed").await;
    let quiet = Duration::from_secs(2);
    for (user, who) in [(&mut dave, "dave"), (&mut bob, "bob"), (&mut alice, "alice")] {
        let first = user.message_with(NS, Duration::from_secs(15)).await.unwrap_or_else(|e| panic!("{who}: {e}"));
        let mut messages = vec![first];
        messages.extend(user.messages_with(NS, quiet).await);
        let notices = revoked_notices(&messages);
        assert_eq!(notices.len(), 1, "{kind:?}: {who} got {} revoked notices", notices.len());
        assert_eq!(notices[0].jid, alice_jid);
        assert_eq!(notices[0].fp, alice_id.bundle.fingerprint());
        assert_eq!(notices[0].reason, "account closed");
    }
    assert!(erin.messages_with(NS, Duration::from_millis(300)).await.is_empty(), "erin is not told");
    let page = stack.component().metrics().await.expect("metrics");
    assert!(page.contains("keyward_component_notices_sent_total{kind=\"revoked-roster\"} 1"), "{page}");
    stack.component_mut().stop().await.expect("stop");
}

async fn without_the_roster_privilege_only_holders_hear_of_a_revocation(kind: ServerKind) {
    let mut stack = stack(kind, false, KeydirChoice::Real).await;
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let mut dave = User::login(stack.xmpp(), "dave").await.expect("dave");
    alice.set(&keys, &Identity::new(&alice.jid).publish_xml()).await.expect("publish").payload().expect("published");
    alice.add_contact("dave@example.test").await.expect("roster");
    revoke(&stack, "alice@example.test", "account closed").await;
    let to_alice = alice.message_with(NS, Duration::from_secs(15)).await.expect("alice hears of it");
    assert_eq!(keyward_payload(&to_alice).name(), "revoked");
    // The component waits up to 2 s for a privilege advertisement that never comes.
    assert!(dave.messages_with(NS, Duration::from_secs(3)).await.is_empty(), "{kind:?}: dave was told");
    stack.component_mut().stop().await.expect("stop");
}

/// ejabberd drops the children of a `subscribe` presence to an offline account, so keyward's key
/// relay never rides on presence: it is a stored `<message type='normal'>`, which both servers
/// keep for an offline account and deliver at login.
async fn a_key_relay_to_an_offline_account_arrives_at_login(kind: ServerKind) {
    let mut stack = stack(kind, true, KeydirChoice::Real).await;
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let bob_jid = stack.xmpp().register("bob", common::PASSWORD).await.expect("bob registers");
    let alice_id = Identity::new(&alice.jid);
    alice.set(&keys, &alice_id.publish_xml()).await.expect("publish").payload().expect("published");
    alice
        .set(&keys, &format!("<relay xmlns='urn:keyward:0' to='{bob_jid}'/>"))
        .await
        .expect("relay")
        .payload()
        .expect("ok");
    // The component acknowledges a notice only once the server answered a ping sent behind it,
    // so once keydir holds nothing pending the server has stored the message: bob then logs in
    // once, and the stored message must come. (Logging in again and again until it comes
    // would lose a message that arrives as one of those sessions logs out.)
    wait_until_no_notice_pending(&stack).await;
    let mut bob = User::connect(stack.xmpp(), &bob_jid).await.expect("bob logs in");
    let message = bob.message_with(NS, WAIT).await.expect("the stored key-relay");
    let relay = KeyRelay::parse(String::from(&keyward_payload(&message)).as_bytes()).expect("key-relay");
    assert_eq!(relay.from, alice.jid);
    assert_eq!(relay.bundle, alice_id.bundle);
    stack.component_mut().stop().await.expect("stop");
}

/// keydir's `keyward_keydir_notices_pending` (counted at each scrape).
async fn notices_pending(stack: &Stack) -> f64 {
    stack.notices_pending().await.expect("keydir metrics")
}

/// Waits until keydir has no unacknowledged notice.
async fn wait_until_no_notice_pending(stack: &Stack) {
    stack.wait_notices_acknowledged(WAIT).await.expect("every notice acknowledged");
}

async fn a_notice_is_acknowledged_once_the_server_handled_it_and_released_when_the_stream_breaks(kind: ServerKind) {
    // The component reaches the server through a gate that can hold the server's answers, and
    // leases what it claims for ten minutes: within this test, only a release can hand a
    // claimed notice out again.
    let mut stack = stack(kind, false, KeydirChoice::Real).await;
    let gate = Gate::start(stack.xmpp().component_addr(), true).await.expect("gate");
    let through_gate = gate.addr();
    stack
        .replace_component(move |c| {
            c.xmpp_addr = through_gate;
            c.env.push(("KEYWARD_NOTICE_LEASE_MS".into(), "600000".into()));
        })
        .await
        .expect("component behind the gate");
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let mut carol = User::login(stack.xmpp(), "carol").await.expect("carol");
    // The new component serves through the server: its stream being up is not enough (once,
    // on ejabberd, an IQ right after the replacement went unanswered for 30 s).
    let deadline = Instant::now() + WAIT;
    loop {
        let ping = alice.start_iq(&keys, false, "<ping xmlns='urn:xmpp:ping'/>").await.expect("sent");
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), ping).await {
            break;
        }
        assert!(Instant::now() < deadline, "the new component never answered a ping through the server");
    }
    for user in [&mut alice, &mut carol] {
        let publish = Identity::new(&user.jid).publish_xml();
        user.set(&keys, &publish).await.expect("publish").payload().expect("published");
    }

    // With the answers flowing, carol's notice is delivered and acknowledged. (This also
    // outlasts the component's wait for a privilege advertisement after its handshake, so
    // that alice's batch below is held by the ping alone.)
    revoke(&stack, "carol@example.test", "lost").await;
    assert_eq!(keyward_payload(&carol.message_with(NS, WAIT).await.expect("carol's notice")).name(), "revoked");
    wait_until_no_notice_pending(&stack).await;

    // The server's answers are held: the notice reaches alice, but the ping sent behind it is
    // not answered, so the batch is not acknowledged. (Written to the socket is not handled:
    // a server killed now could lose it.)
    gate.shut();
    revoke(&stack, "alice@example.test", "stolen").await;
    let first = alice.message_with(NS, WAIT).await.expect("alice hears of her revocation");
    assert_eq!(keyward_payload(&first).name(), "revoked");
    // Acknowledging comes right after writing when the ping is not awaited: give that a
    // moment to show before concluding it did not happen.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(1) {
        assert_eq!(notices_pending(&stack).await, 1.0, "acknowledged before the server answered the ping");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The stream breaks before the answer comes: the component hands the batch back. (Maybe
    // twice: the release wakes a claim the component made while the stream still looked up,
    // and that batch meets the broken stream too.)
    drop(gate);
    stack
        .component()
        .wait_for_metrics("a release", |l| {
            l.strip_prefix("keyward_component_notices_released_total ")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= 1)
        })
        .await
        .expect("the batch was released");
    assert_eq!(notices_pending(&stack).await, 1.0);

    // A new component straight to the server claims it at once (no ten-minute lease to wait
    // out), delivers it again, and acknowledges it once the server answered.
    let direct = stack.xmpp().component_addr();
    stack.replace_component(move |c| c.xmpp_addr = direct).await.expect("component again");
    let again = alice.message_with(NS, WAIT).await.expect("delivered again: at least once");
    assert_eq!(keyward_payload(&again).name(), "revoked");
    wait_until_no_notice_pending(&stack).await;
    stack.stop().await.expect("stop");
}

/// The status bob's lookup of `jid` answers, through the component.
async fn status_of(bob: &mut User, keys: &str, jid: &str) -> String {
    let query = format!("<keys xmlns='{NS}'><item jid='{jid}'/></keys>");
    let answer = bob.get(keys, &query).await.expect("keys").payload().expect("answered").expect("keys element");
    statuses(&answer).first().map(|(_, status, _)| status.clone()).unwrap_or_default()
}

async fn cached_answers_skip_keydir_and_never_say_active_after_a_revocation(kind: ServerKind) {
    let stack = stack(kind, true, KeydirChoice::Real).await;
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let mut bob = User::login(stack.xmpp(), "bob").await.expect("bob");
    let alice_id = Identity::new(&alice.jid);
    alice.set(&keys, &alice_id.publish_xml()).await.expect("publish").payload().expect("published");
    let alice_jid = alice.jid.to_string();
    let component = stack.component();
    let hits = "keyward_component_answer_cache_hits_total";

    // bob looks alice up until an answer comes from the cache (the first one after the cache's
    // first lease goes to keydir, which records the holder edge).
    let deadline = Instant::now() + WAIT;
    while component.metric(hits).await.expect("metrics") < 1.0 {
        assert_eq!(status_of(&mut bob, &keys, &alice_jid).await, "active");
        assert!(Instant::now() < deadline, "no lookup was ever answered from the cache");
    }
    // A hit costs keydir nothing.
    let keydir_lookups = || async {
        let page =
            reqwest::get(stack.keydir_metrics_url().expect("url")).await.expect("metrics").text().await.expect("text");
        keyward_tests::component::metric_value(
            &page,
            "keyward_keydir_http_requests_total{route=\"/v0/component/lookup\",method=\"POST\",status=\"200\"}",
        )
    };
    let (before, hits_before) = (keydir_lookups().await, component.metric(hits).await.expect("metrics"));
    for _ in 0..5 {
        assert_eq!(status_of(&mut bob, &keys, &alice_jid).await, "active");
    }
    assert_eq!(keydir_lookups().await, before, "cached lookups reached keydir");
    assert_eq!(component.metric(hits).await.expect("metrics"), hits_before + 5.0);

    // carol (her own bucket of requests) holds alice's key from the cache too.
    let mut carol = User::login(stack.xmpp(), "carol").await.expect("carol");
    let hits_now = component.metric(hits).await.expect("metrics");
    while component.metric(hits).await.expect("metrics") <= hits_now {
        assert_eq!(status_of(&mut carol, &keys, &alice_jid).await, "active");
        assert!(Instant::now() < deadline + WAIT, "carol's lookups never came from the cache");
    }
    // The admin revokes alice while carol keeps looking her up (ten a second): once the
    // revocation is confirmed, no answer says active, though the cache held her as active.
    let revoking = async {
        revoke(&stack, &alice_jid, "stolen").await;
        Instant::now()
    };
    let looking = async {
        let mut answers = Vec::new();
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            let asked = Instant::now();
            answers.push((asked, status_of(&mut carol, &keys, &alice_jid).await));
            tokio::time::sleep_until((asked + Duration::from_millis(100)).into()).await;
        }
        answers
    };
    let (confirmed, answers) = tokio::join!(revoking, looking);
    let after: Vec<&(Instant, String)> = answers.iter().filter(|(asked, _)| *asked >= confirmed).collect();
    assert!(!after.is_empty(), "lookups ran after the revocation");
    assert!(after.iter().all(|(_, status)| status == "revoked"), "active after the revocation: {answers:?}");
    assert!(answers.iter().any(|(asked, status)| *asked < confirmed && status == "active"), "{answers:?}");
}

/// One `<oprf/>` get of `passphrase` by `user`: the finalized output and the challenge, or the error.
async fn oprf_exchange(
    user: &mut User,
    keys: &str,
    passphrase: &[u8],
) -> Result<(OprfOutput, RestoreChallenge), Answer> {
    let (state, blinded) = restore::blind(passphrase).expect("blinds");
    let answer = user.get(keys, &OprfQuery { blinded }.to_xml()).await.expect("answered");
    let payload = match answer {
        Answer::Result(Some(payload)) => payload,
        other => return Err(other),
    };
    let result = OprfResult::parse(String::from(&payload).as_bytes()).expect("an oprf-result");
    Ok((restore::finalize(state, &result.evaluated).expect("unblinds"), result.challenge))
}

async fn the_restore_exchange_is_relayed_for_the_senders_own_account(kind: ServerKind) {
    let stack = stack(kind, false, KeydirChoice::Real).await;
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let alice_id = Identity::new(&alice.jid);
    alice.set(&keys, &alice_id.publish_xml()).await.expect("publish").payload().expect("published");

    // The same passphrase gives the same output through fresh blinds; another gives another.
    let (first, challenge) = oprf_exchange(&mut alice, &keys, b"right passphrase").await.expect("evaluated");
    let (again, _) = oprf_exchange(&mut alice, &keys, b"right passphrase").await.expect("evaluated");
    let (other, _) = oprf_exchange(&mut alice, &keys, b"wrong passphrase").await.expect("evaluated");
    assert_eq!(first.as_bytes(), again.as_bytes());
    assert_ne!(first.as_bytes(), other.as_bytes());

    // A proof signed by another key is refused; alice's own proof resets her count.
    let stranger = keyward_proto::KeyPair::generate().expect("rng");
    let forged = RestoreProof::sign(&stranger, &alice.jid, challenge).to_xml();
    let refused = alice.set(&keys, &forged).await.expect("answered");
    assert_eq!(refused.condition(), Some("bad-request"), "{refused:?}");
    let proof = RestoreProof::sign(&alice_id.keys, &alice.jid, challenge).to_xml();
    alice.set(&keys, &proof).await.expect("answered").payload().expect("the proof is accepted");

    // Ten unproven guesses are answered; the eleventh is refused with restore-locked.
    for n in 0..10 {
        oprf_exchange(&mut alice, &keys, b"a guess").await.unwrap_or_else(|e| panic!("guess {n} refused: {e:?}"));
    }
    match oprf_exchange(&mut alice, &keys, b"right passphrase").await {
        Err(Answer::Error { condition, text, .. }) => {
            assert_eq!((condition.as_str(), text.as_deref()), ("not-allowed", Some("restore-locked")));
        }
        other => panic!("the eleventh guess was answered: {:?}", other.map(|_| ())),
    }
    // The transition (protocol 6.2): a version 1 blob sealed with keydir's OPRF output is
    // published over the version 0 one (signed by the identity key, a greater seq) and comes
    // back as it was; it opens with the passphrase and that output only.
    let admin_unlock = reqwest::Client::new()
        .post(format!("{}/v0/admin/accounts/{}/unlock", stack.keydir_url(), alice.jid))
        .bearer_auth(stack.admin_token())
        .json(&serde_json::json!({ "reason": "test" }))
        .send()
        .await
        .expect("unlock");
    assert_eq!(admin_unlock.status(), 200);
    let (output, challenge) = oprf_exchange(&mut alice, &keys, b"right passphrase").await.expect("evaluated");
    let code = restore::RecoveryCode::generate().expect("rng");
    let v1 = restore::SecretV1::seal(
        &alice_id.keys,
        &alice.jid,
        b"right passphrase",
        &output,
        &code,
        keyward_proto::KdfParams::INSECURE_TEST_ONLY,
    )
    .expect("seals");
    let bundle = alice_id.bundle.verify_for(&alice.jid).expect("verifies");
    let publish = Publish::signed(&alice_id.keys, &bundle, v1.clone(), 2).expect("signs");
    alice.set(&keys, &publish.to_xml()).await.expect("answered").payload().expect("a version 1 blob is stored");
    let proof = RestoreProof::sign(&alice_id.keys, &alice.jid, challenge).to_xml();
    alice.set(&keys, &proof).await.expect("answered").payload().expect("proof");
    let stored = alice.get(&keys, "<secret xmlns='urn:keyward:0'/>").await.expect("secret").payload().expect("ok");
    let stored = AnySecret::parse(String::from(&stored.expect("secret element")).as_bytes()).expect("a blob");
    assert_eq!(stored, AnySecret::V1(v1.clone()));
    let policy = keyward_proto::KdfPolicy::danger_accept_weak_for_tests();
    let opened = v1.open_with_passphrase(b"right passphrase", &output, &alice.jid, &policy).expect("opens");
    assert_eq!(opened.keys().fingerprint(), alice_id.keys.fingerprint());
    assert!(v1.open_with_passphrase(b"right passphrase", &other, &alice.jid, &policy).is_err(), "another output");
    v1.open_with_recovery(&code, &alice.jid).expect("the recovery code opens it");

    // A malformed element never reaches keydir.
    let malformed = alice.get(&keys, "<oprf xmlns='urn:keyward:0'>not base64</oprf>").await.expect("answered");
    assert_eq!(malformed.condition(), Some("bad-request"), "{malformed:?}");
}

on_both_servers!(
    the_restore_exchange_is_relayed_for_the_senders_own_account,
    cached_answers_skip_keydir_and_never_say_active_after_a_revocation,
    a_notice_is_acknowledged_once_the_server_handled_it_and_released_when_the_stream_breaks,
    a_key_relay_to_an_offline_account_arrives_at_login,
    roster_contacts_hear_of_a_revocation,
    without_the_roster_privilege_only_holders_hear_of_a_revocation,
    every_request_end_to_end_with_relay_and_revocation,
    keydir_down_answers_quickly_and_no_notice_is_lost,
    a_wrong_component_token_is_an_internal_error_not_a_revocation,
);
