//! The guess-limited restore (protocol section 6.2) against a real keydir and Postgres, with the
//! real client-side crypto: evaluations are counted and locked, proofs reset the count, the lock
//! is shared by replicas and survives restarts, an admin unlocks, and the seed stays out of the
//! logs and the database.

use crate::helpers::{Account, Auth, Reply, TestApp, fresh_database, metric};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_proto::KeyPair;
use keyward_proto::restore::{BlindState, EvaluatedElement, OprfOutput, RestoreChallenge, blind, finalize, sign_proof};
use keyward_tests::keydir::KeydirOptions;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The test seed: 32 bytes no other test uses, so a search for them finds only a leak.
pub const SEED: [u8; 32] = *b"restore-test-seed-0123456789abcd";
const OTHER_SEED: [u8; 32] = *b"another-test-seed-0123456789abcd";

pub fn options(url: &str, seed: Option<&[u8; 32]>) -> KeydirOptions {
    let mut options = KeydirOptions::new(url);
    if let Some(seed) = seed {
        options.env.push(("KEYWARD_OPRF_SEED".into(), STANDARD.encode(seed)));
    }
    options
}

/// A keydir with the test seed on a fresh database.
pub async fn app() -> TestApp {
    TestApp::start(options(&fresh_database().await, Some(&SEED))).await
}

/// Asks for an evaluation of `passphrase` for `jid`: the reply and the blinding state.
pub async fn oprf(app: &TestApp, jid: &str, passphrase: &[u8]) -> (Reply, BlindState) {
    let (state, blinded) = blind(passphrase).expect("blinds");
    let path = format!("/v0/component/accounts/{jid}/oprf");
    let body = json!({"blinded": STANDARD.encode(blinded.to_bytes())});
    (app.send(Method::POST, &path, Auth::Component, Some(body)).await, state)
}

/// An answered evaluation: the OPRF output, the challenge and the attempts left.
pub async fn guess(app: &TestApp, jid: &str, passphrase: &[u8]) -> (OprfOutput, RestoreChallenge, i64) {
    let (reply, state) = oprf(app, jid, passphrase).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let evaluated = bytes::<32>(&reply.body["evaluated"]);
    let evaluated = EvaluatedElement::from_bytes(&evaluated).expect("a valid element");
    let output = finalize(state, &evaluated).expect("finalizes");
    let challenge = RestoreChallenge::from_bytes(&bytes::<32>(&reply.body["challenge"]));
    (output, challenge, reply.body["attempts_left"].as_i64().expect("attempts_left"))
}

fn bytes<const N: usize>(value: &Value) -> [u8; N] {
    let decoded = STANDARD.decode(value.as_str().expect("a string")).expect("base64");
    <[u8; N]>::try_from(decoded.as_slice()).expect("length")
}

/// Sends a restore proof: `keys` sign `challenge` for `account`.
pub async fn prove(app: &TestApp, account: &Account, keys: &KeyPair, challenge: &RestoreChallenge) -> Reply {
    let sig = sign_proof(keys, &account.jid, challenge);
    let body = json!({"challenge": STANDARD.encode(challenge.to_bytes()), "sig": STANDARD.encode(sig)});
    let path = format!("/v0/component/accounts/{}/restore-proof", account.jid);
    app.send(Method::POST, &path, Auth::Component, Some(body)).await
}

/// The account's restore state in the admin view.
async fn restore_state(app: &TestApp, jid: &str) -> Value {
    let reply = app.send(Method::GET, &format!("/v0/admin/accounts/{jid}"), Auth::Admin, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body["restore"].clone()
}

/// Evaluates `n` guesses, all answered.
pub async fn guesses(app: &TestApp, jid: &str, n: usize) -> Vec<RestoreChallenge> {
    let mut challenges = Vec::new();
    for _ in 0..n {
        challenges.push(guess(app, jid, b"a wrong guess").await.1);
    }
    challenges
}

pub async fn unlock(app: &TestApp, jid: &str, reason: &str) -> Reply {
    let path = format!("/v0/admin/accounts/{jid}/unlock");
    app.send(Method::POST, &path, Auth::Admin, Some(json!({"reason": reason}))).await
}

#[tokio::test]
async fn an_evaluation_gives_the_same_output_for_one_passphrase_account_and_seed() {
    let app = app().await;
    app.account("alice@example.test").await;
    app.account("bob@example.test").await;
    let (first, _, left) = guess(&app, "alice@example.test", b"correct horse").await;
    assert_eq!(left, 9);
    let (again, _, left) = guess(&app, "alice@example.test", b"correct horse").await;
    assert_eq!(left, 8);
    assert_eq!(first.as_bytes(), again.as_bytes(), "blinding is invisible in the output");
    let (other_word, _, _) = guess(&app, "alice@example.test", b"correct hors").await;
    assert_ne!(first.as_bytes(), other_word.as_bytes());
    let (bob, _, left) = guess(&app, "bob@example.test", b"correct horse").await;
    assert_eq!(left, 9, "each account has its own count");
    assert_ne!(first.as_bytes(), bob.as_bytes(), "each account has its own key");

    let other = TestApp::start(options(&fresh_database().await, Some(&OTHER_SEED))).await;
    other.account("alice@example.test").await;
    let (other_seed, _, _) = guess(&other, "alice@example.test", b"correct horse").await;
    assert_ne!(first.as_bytes(), other_seed.as_bytes(), "another seed, another key");
}

#[tokio::test]
async fn ten_evaluations_without_a_proof_lock_the_account_and_the_eleventh_is_refused() {
    let app = app().await;
    app.account("alice@example.test").await;
    for expected_left in (0..10).rev() {
        let (_, _, left) = guess(&app, "alice@example.test", b"a wrong guess").await;
        assert_eq!(left, expected_left);
    }
    let (reply, _) = oprf(&app, "alice@example.test", b"the right one").await;
    reply.assert_problem(403, "restore-locked");
    assert!(reply.body["detail"].as_str().expect("detail").contains("admin"), "{reply:?}");
    let state = restore_state(&app, "alice@example.test").await;
    assert_eq!((state["attempts"].clone(), state["locked"].clone()), (json!(10), json!(true)), "{state}");
    assert!(state["locked_at"].is_string() && state["locked_until"].is_null(), "{state}");
    let page = app.metrics().await;
    assert_eq!(metric(&page, "keyward_keydir_restore_evaluations_total"), 10.0, "{page}");
    assert_eq!(metric(&page, "keyward_keydir_restore_locked_refused_total"), 1.0, "{page}");
}

#[tokio::test]
async fn a_valid_proof_resets_the_count_and_its_challenge_is_used_up() {
    let app = app().await;
    let alice = app.account("alice@example.test").await;
    // Nine wrong guesses, then the right one: the tenth evaluation, the last allowed. Its proof
    // resets the count (the limit counts unproven evaluations, and this one is proven).
    let challenges = guesses(&app, "alice@example.test", 10).await;
    assert_eq!(restore_state(&app, "alice@example.test").await["locked"], false);
    let reply = prove(&app, &alice, &alice.keys, &challenges[9]).await;
    assert_eq!((reply.status, reply.body.clone()), (StatusCode::OK, json!({"reset": true})), "{reply:?}");
    assert_eq!(restore_state(&app, "alice@example.test").await["attempts"], 0);
    // Single use: the same proof again is refused.
    prove(&app, &alice, &alice.keys, &challenges[9]).await.assert_problem(403, "bad-restore-proof");
    // Ten more are allowed, and the eleventh is not.
    guesses(&app, "alice@example.test", 10).await;
    oprf(&app, "alice@example.test", b"x").await.0.assert_problem(403, "restore-locked");
    let page = app.metrics().await;
    assert_eq!(metric(&page, r#"keyward_keydir_restore_proofs_total{outcome="accepted"}"#), 1.0, "{page}");
    assert_eq!(metric(&page, r#"keyward_keydir_restore_proofs_total{outcome="refused"}"#), 1.0, "{page}");
}

#[tokio::test]
async fn bad_proofs_are_refused_and_reset_nothing() {
    let app = app().await;
    let alice = app.account("alice@example.test").await;
    let bob = app.account("bob@example.test").await;
    let challenges = guesses(&app, "alice@example.test", 3).await;
    let bobs = guesses(&app, "bob@example.test", 1).await;
    let stranger = KeyPair::generate().expect("rng");
    let unknown = RestoreChallenge::generate().expect("rng");
    // A wrong key, a challenge never issued, a challenge issued to bob.
    for (keys, challenge) in [(&stranger, &challenges[0]), (&alice.keys, &unknown), (&alice.keys, &bobs[0])] {
        let reply = prove(&app, &alice, keys, challenge).await;
        reply.assert_problem(403, "bad-restore-proof");
    }
    // Bob's key over bob's challenge, sent as alice's proof.
    let sig = sign_proof(&bob.keys, &bob.jid, &bobs[0]);
    let body = json!({"challenge": STANDARD.encode(bobs[0].to_bytes()), "sig": STANDARD.encode(sig)});
    app.send(Method::POST, "/v0/component/accounts/alice@example.test/restore-proof", Auth::Component, Some(body))
        .await
        .assert_problem(403, "bad-restore-proof");
    assert_eq!(restore_state(&app, "alice@example.test").await["attempts"], 3);
    assert_eq!(restore_state(&app, "bob@example.test").await["attempts"], 1);
    // The failed proof did not use its challenge up: the right signature still works.
    let reply = prove(&app, &alice, &alice.keys, &challenges[0]).await;
    assert_eq!(reply.body, json!({"reset": true}), "{reply:?}");
    assert_eq!(restore_state(&app, "bob@example.test").await["attempts"], 1);
}

#[tokio::test]
async fn the_count_is_shared_by_replicas_and_the_lock_survives_a_restart() {
    let url = fresh_database().await;
    let mut a = TestApp::start(options(&url, Some(&SEED))).await;
    let b = TestApp::start(KeydirOptions { migrate: false, ..options(&url, Some(&SEED)) }).await;
    a.account("alice@example.test").await;
    // Ten evaluations at once, through both replicas: all answered, each with its own count.
    let mut lefts = Vec::new();
    let rounds = (0..5).map(|_| async {
        (guess(&a, "alice@example.test", b"x").await.2, guess(&b, "alice@example.test", b"y").await.2)
    });
    for (left_a, left_b) in futures::future::join_all(rounds).await {
        lefts.extend([left_a, left_b]);
    }
    lefts.sort_unstable();
    assert_eq!(lefts, (0..10).collect::<Vec<i64>>(), "two replicas never hand out the same count");
    oprf(&a, "alice@example.test", b"z").await.0.assert_problem(403, "restore-locked");
    oprf(&b, "alice@example.test", b"z").await.0.assert_problem(403, "restore-locked");
    a.keydir.restart().await.expect("restarts");
    oprf(&a, "alice@example.test", b"z").await.0.assert_problem(403, "restore-locked");
}

#[tokio::test]
async fn guesses_before_first_use_count_and_the_account_has_no_key_until_it_publishes() {
    let app = app().await;
    // First use evaluates before it publishes: the account is recorded, with no key.
    let (_, _, left) = guess(&app, "carol@example.test", b"a guess").await;
    assert_eq!(left, 9);
    let reply = app.lookup(Some("alice@example.test"), &["carol@example.test"]).await;
    assert_eq!(reply.body["items"][0]["status"], "none", "{reply:?}");
    assert!(reply.body["items"][0]["bundle"].is_null(), "{reply:?}");
    app.revoke("carol@example.test", "no key yet").await.assert_problem(404, "not-found");
    // Guesses made before the account publishes lock it like any others.
    guesses(&app, "carol@example.test", 9).await;
    oprf(&app, "carol@example.test", b"x").await.0.assert_problem(403, "restore-locked");
    assert_eq!(unlock(&app, "carol@example.test", "locked before first use").await.status, StatusCode::OK);
    // The account publishes, then proves with the challenge of its own evaluation.
    let (_, challenge, _) = guess(&app, "carol@example.test", b"the passphrase").await;
    let carol = Account::new("carol@example.test");
    assert_eq!(app.publish(&carol).await.status, StatusCode::CREATED);
    let reply = prove(&app, &carol, &carol.keys, &challenge).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(restore_state(&app, "carol@example.test").await["attempts"], 0);
    let reply = app.lookup(Some("alice@example.test"), &["carol@example.test"]).await;
    assert_eq!(reply.body["items"][0]["status"], "active", "{reply:?}");
}

#[tokio::test]
async fn an_admin_unlock_clears_the_lock_and_is_audited() {
    let app = app().await;
    app.account("alice@example.test").await;
    guesses(&app, "alice@example.test", 10).await;
    oprf(&app, "alice@example.test", b"x").await.0.assert_problem(403, "restore-locked");
    let reply = unlock(&app, "alice@example.test", "called the helpdesk").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["changed"], true);
    assert_eq!(reply.body["restore"], json!({"attempts": 0, "locked": false, "locked_at": null, "locked_until": null}));
    assert_eq!(restore_state(&app, "alice@example.test").await["locked"], false);
    let audit = app.send(Method::GET, "/v0/admin/audit?jid=alice@example.test", Auth::Admin, None).await;
    let entry = &audit.body["entries"][0];
    assert_eq!(entry["action"], "unlock", "{audit:?}");
    assert_eq!(entry["detail"]["reason"], "called the helpdesk");
    assert_eq!(entry["detail"]["attempts"], 10);
    assert!(entry["detail"]["locked_at"].is_string(), "{entry}");
    // Evaluations are answered again, with a fresh count; nothing left to clear is no audit row.
    assert_eq!(guess(&app, "alice@example.test", b"x").await.2, 9);
    assert_eq!(unlock(&app, "alice@example.test", "again").await.body["changed"], true);
    assert_eq!(unlock(&app, "alice@example.test", "and again").await.body["changed"], false);
    let audit = app.send(Method::GET, "/v0/admin/audit?jid=alice@example.test", Auth::Admin, None).await;
    assert_eq!(audit.body["entries"].as_array().expect("entries").len(), 2, "{audit:?}");
    unlock(&app, "nobody@example.test", "x").await.assert_problem(404, "not-found");
    unlock(&app, "alice@example.test", "").await.assert_problem(400, "bad-request");
}

#[tokio::test]
async fn a_lock_with_an_expiry_ends_by_itself() {
    let mut options = options(&fresh_database().await, Some(&SEED));
    options.env.push(("KEYWARD_RESTORE_MAX_ATTEMPTS".into(), "2".into()));
    options.env.push(("KEYWARD_RESTORE_LOCK_SECONDS".into(), "1".into()));
    let app = TestApp::start(options).await;
    app.account("alice@example.test").await;
    assert_eq!(guess(&app, "alice@example.test", b"x").await.2, 1);
    assert_eq!(guess(&app, "alice@example.test", b"x").await.2, 0);
    let (reply, _) = oprf(&app, "alice@example.test", b"x").await;
    reply.assert_problem(403, "restore-locked");
    assert!(reply.body["detail"].as_str().expect("detail").contains("locked until 20"), "{reply:?}");
    assert!(restore_state(&app, "alice@example.test").await["locked_until"].is_string());
    // Not a wait for an event: the lock's second must pass.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(guess(&app, "alice@example.test", b"x").await.2, 1, "the expired lock took its count with it");
}
