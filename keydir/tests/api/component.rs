//! The component API: publish, secret, lookup and relay, with their errors.

use crate::helpers::{Account, Auth, TestApp};
use keyward_proto::{Bundle, XmlElement};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;

#[tokio::test]
async fn publish_creates_then_is_idempotent_and_replaces_the_secret_with_a_greater_seq() {
    let app = TestApp::spawn().await;
    let alice = Account::new("Alice@Example.test");
    let first = app.publish(&alice).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.body["jid"], "alice@example.test");
    assert_eq!(first.body["fingerprint"], alice.fingerprint());
    // Exactly the stored update again (a retried request): 200, nothing changes.
    let again = app.publish(&alice).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(app.stored_secret("alice@example.test").await, alice.secret);

    // Same bundle, a blob resealed under a new passphrase, signed with a greater seq
    // (a passphrase change): 200 and the new blob is served.
    let (secret, secret_sig) = alice.resealed(b"new passphrase", 2);
    let changed = app.publish_body(&alice, alice.body_with(&secret, &secret_sig)).await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    assert_eq!(app.stored_secret("alice@example.test").await, secret);
}

#[tokio::test]
async fn replacing_a_secret_needs_the_stored_bundles_key_and_a_greater_seq() {
    let app = TestApp::spawn().await;
    let alice = app.account("alice@example.test").await;
    let (newer, newer_sig) = alice.resealed(b"second passphrase", 10);
    assert_eq!(app.publish_body(&alice, alice.body_with(&newer, &newer_sig)).await.status, StatusCode::OK);

    let mallory = Account::new("mallory@example.test");
    // A blob of mallory's keys sealed for alice's JID: what someone with only alice's
    // XMPP password (or a hostile component) would like to store.
    let (foreign, foreign_sig) = crate::helpers::sealed(&mallory.keys, &alice.jid, b"mallory's", 11);
    let (resealed, resealed_sig) = alice.resealed(b"third passphrase", 11);
    let (_, alice_sig_seq_12) = alice.resealed(b"unused", 12);
    let garbage_sig = format!("<secret-sig xmlns='urn:keyward:0' seq='11'>{}</secret-sig>", "A".repeat(86) + "==");
    let (equal, older) = (alice.resealed(b"old", 10), alice.resealed(b"older", 9));
    let refused = [
        // Signed by another key (the signer's own, valid for it, not for alice).
        (foreign.clone(), foreign_sig.clone(), 400, "bad-secret-signature"),
        // A good signature of alice moved onto another blob.
        (foreign.clone(), resealed_sig.clone(), 400, "bad-secret-signature"),
        // A signature of alice over another blob, with its seq rewritten.
        (resealed.clone(), alice_sig_seq_12.replace("seq='12'", "seq='11'"), 400, "bad-secret-signature"),
        // Garbage, malformed, missing.
        (foreign.clone(), garbage_sig, 400, "bad-secret-signature"),
        (
            foreign.clone(),
            "<secret-sig xmlns='urn:keyward:0' seq='11'>AAAA</secret-sig>".into(),
            400,
            "bad-secret-signature",
        ),
        (foreign.clone(), "".into(), 400, "bad-secret-signature"),
        (foreign.clone(), "x".repeat(2000), 413, "too-large"),
        // Replays of alice's own older updates (seq 1, the first publish) and an equal seq.
        (alice.secret.clone(), alice.secret_sig.clone(), 409, "stale-secret"),
        (equal.0, equal.1, 409, "stale-secret"),
        (older.0, older.1, 409, "stale-secret"),
    ];
    for (secret, secret_sig, status, name) in refused {
        let reply = app.publish_body(&alice, alice.body_with(&secret, &secret_sig)).await;
        reply.assert_problem(status, name);
        assert_eq!(app.stored_secret("alice@example.test").await, newer, "a refused publish changed the blob");
    }

    // The right key and a greater seq: replaced.
    assert_eq!(app.publish_body(&alice, alice.body_with(&resealed, &resealed_sig)).await.status, StatusCode::OK);
    assert_eq!(app.stored_secret("alice@example.test").await, resealed);
}

#[tokio::test]
async fn the_first_publish_needs_a_valid_secret_update_too() {
    let app = TestApp::spawn().await;
    let alice = Account::new("alice@example.test");
    let mallory = Account::new("mallory@example.test");
    let (_, mallory_sig) = crate::helpers::sealed(&mallory.keys, &alice.jid, b"passphrase", 1);
    for secret_sig in [mallory_sig, alice.secret_sig.replace("seq='1'", "seq='2'"), String::new()] {
        app.publish_body(&alice, alice.body_with(&alice.secret, &secret_sig))
            .await
            .assert_problem(400, "bad-secret-signature");
    }
    // Nothing was stored: neither the account's bundle nor a blob.
    let lookup = app.lookup(None, &["alice@example.test"]).await;
    assert_eq!(lookup.body["items"][0]["status"], "none");
    app.send(Method::GET, "/v0/component/accounts/alice@example.test/secret", Auth::Component, None)
        .await
        .assert_problem(404, "not-found");
    assert_eq!(app.publish(&alice).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_blob_stored_before_seqs_is_replaced_only_with_a_valid_signature() {
    let app = TestApp::spawn().await;
    let alice = app.account("alice@example.test").await;
    // A row as the previous schema left it: no seq, no signature.
    let mut db = sqlx::PgConnection::connect(&app.database_url).await.expect("database");
    sqlx::query("UPDATE secret_blobs SET seq = NULL, sig = NULL WHERE jid = 'alice@example.test'")
        .execute(&mut db)
        .await
        .expect("update");
    let mallory = Account::new("mallory@example.test");
    let (foreign, foreign_sig) = crate::helpers::sealed(&mallory.keys, &alice.jid, b"passphrase", 5);
    app.publish_body(&alice, alice.body_with(&foreign, &foreign_sig)).await.assert_problem(400, "bad-secret-signature");
    assert_eq!(app.stored_secret("alice@example.test").await, alice.secret);
    // Any seq with alice's key replaces it, and from then on the seq counts.
    let (resealed, resealed_sig) = alice.resealed(b"new", 5);
    assert_eq!(app.publish_body(&alice, alice.body_with(&resealed, &resealed_sig)).await.status, StatusCode::OK);
    assert_eq!(app.stored_secret("alice@example.test").await, resealed);
    let row: (Option<i64>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT seq, sig FROM secret_blobs WHERE jid = 'alice@example.test'")
            .fetch_one(&mut db)
            .await
            .expect("row");
    assert_eq!(row.0, Some(5));
    assert_eq!(row.1.map(|sig| sig.len()), Some(64));
    // alice's first update (seq 1) is now a stale replay.
    app.publish(&alice).await.assert_problem(409, "stale-secret");
}

#[tokio::test]
async fn publish_refuses_a_different_bundle_with_409() {
    let app = TestApp::spawn().await;
    app.account("alice@example.test").await;
    let other = Account::new("alice@example.test");
    app.publish(&other).await.assert_problem(409, "conflict");
}

#[tokio::test]
async fn publish_refuses_bad_bundles_and_secrets() {
    let app = TestApp::spawn().await;
    let alice = Account::new("alice@example.test");
    let mallory = Account::new("mallory@example.test");
    let path = "/v0/component/accounts/alice@example.test";
    let cases = [
        // Bundle of another account.
        (mallory.bundle.clone(), alice.secret.clone(), 400, "bad-bundle"),
        // Forged: jid rewritten, signature no longer verifies.
        (mallory.bundle.replace("mallory@", "alice@"), alice.secret.clone(), 400, "bad-bundle"),
        // Not XML at all.
        ("<bundle".to_owned(), alice.secret.clone(), 400, "bad-bundle"),
        // Over the 1 KiB bundle limit.
        (format!("{}{}", alice.bundle, " ".repeat(1100)), alice.secret.clone(), 413, "too-large"),
        (alice.bundle.clone(), "<secret xmlns='urn:keyward:0'/>".to_owned(), 400, "bad-secret"),
        (alice.bundle.clone(), alice.secret.replace("argon2id", "scrypt"), 400, "bad-secret"),
        (alice.bundle.clone(), "x".repeat(5000), 413, "too-large"),
    ];
    for (bundle, secret, status, name) in cases {
        let body = json!({"bundle": bundle, "secret": secret, "secret_sig": alice.secret_sig});
        let reply = app.send(Method::PUT, path, Auth::Component, Some(body)).await;
        reply.assert_problem(status, name);
    }
    // Nothing was stored.
    let lookup = app.lookup(None, &["alice@example.test"]).await;
    assert_eq!(lookup.body["items"][0]["status"], "none");
}

#[tokio::test]
async fn bad_json_bad_jids_and_oversized_bodies_are_refused() {
    let app = TestApp::spawn().await;
    let path = "/v0/component/accounts/alice@example.test";
    app.send_raw(Method::PUT, path, Auth::Component, "application/json", b"{not json".to_vec())
        .await
        .assert_problem(400, "bad-request");
    app.send_raw(Method::PUT, path, Auth::Component, "application/json", br#"{"bundle": 1}"#.to_vec())
        .await
        .assert_problem(400, "bad-request");
    app.send_raw(
        Method::PUT,
        path,
        Auth::Component,
        "application/json",
        br#"{"bundle":"","secret":"","x":1}"#.to_vec(),
    )
    .await
    .assert_problem(400, "bad-request");
    app.send_raw(Method::PUT, path, Auth::Component, "text/plain", b"{}".to_vec())
        .await
        .assert_problem(415, "unsupported-media-type");
    let huge = json!({"bundle": "x".repeat(70 * 1024), "secret": ""}).to_string().into_bytes();
    app.send_raw(Method::PUT, path, Auth::Component, "application/json", huge).await.assert_problem(413, "too-large");
    let alice = Account::new("alice@example.test");
    let body = Some(alice.body());
    for bad in ["no%20spaces@example.test", "alice@example.test%2Flaptop", "@example.test", "a%3Cb@example.test"] {
        let path = format!("/v0/component/accounts/{bad}");
        app.send(Method::PUT, &path, Auth::Component, body.clone()).await.assert_problem(400, "bad-request");
    }
    app.send(Method::GET, "/v0/nothing/here", Auth::Component, None).await.assert_problem(404, "not-found");
}

#[tokio::test]
async fn secret_answers_404_for_unknown_accounts() {
    let app = TestApp::spawn().await;
    app.send(Method::GET, "/v0/component/accounts/nobody@example.test/secret", Auth::Component, None)
        .await
        .assert_problem(404, "not-found");
}

#[tokio::test]
async fn lookup_answers_in_request_order_and_records_holders() {
    let app = TestApp::spawn().await;
    let alice = app.account("alice@example.test").await;
    let carol = app.account("carol@example.test").await;
    assert_eq!(app.revoke("carol@example.test", "lost").await.status, StatusCode::OK);
    let reply = app
        .lookup(Some("bob@example.test"), &["nobody@example.test", "carol@example.test", "ALICE@example.test"])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let items = reply.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0], json!({"jid": "nobody@example.test", "status": "none"}));
    assert_eq!(items[1]["jid"], "carol@example.test");
    assert_eq!(items[1]["status"], "revoked");
    assert_eq!(items[1]["reason"], "lost");
    assert!(items[1]["revoked_at"].is_string());
    assert_eq!(items[1]["bundle"], carol.bundle);
    assert_eq!(items[2]["jid"], "alice@example.test");
    assert_eq!(items[2]["status"], "active");
    assert_eq!(items[2]["bundle"], alice.bundle);
    let bundle = Bundle::parse(items[2]["bundle"].as_str().expect("xml").as_bytes()).expect("parses");
    bundle.verify_for(&alice.jid).expect("verifies");

    // bob now holds alice's key (not carol's: she was already revoked).
    let alice_admin = app.send(Method::GET, "/v0/admin/accounts/alice@example.test", Auth::Admin, None).await;
    assert_eq!(alice_admin.body["holders"], 1);
    let carol_admin = app.send(Method::GET, "/v0/admin/accounts/carol@example.test", Auth::Admin, None).await;
    assert_eq!(carol_admin.body["holders"], 0);
    // A second lookup records nothing new; a lookup without requester records nothing.
    app.lookup(Some("bob@example.test"), &["alice@example.test"]).await;
    app.lookup(None, &["alice@example.test"]).await;
    let alice_admin = app.send(Method::GET, "/v0/admin/accounts/alice@example.test", Auth::Admin, None).await;
    assert_eq!(alice_admin.body["holders"], 1);
}

/// The database's name in a `postgres://…/NAME?…` URL.
fn database_name(url: &str) -> &str {
    let path = url.rsplit('/').next().unwrap_or_default();
    path.split('?').next().unwrap_or_default()
}

#[tokio::test]
async fn a_lookup_of_keys_already_held_only_reads() {
    let app = TestApp::spawn().await;
    let alice = app.account("alice@example.test").await;
    // bob's first lookup of alice records the edge (a write).
    let first = app.lookup(Some("bob@example.test"), &["alice@example.test"]).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");

    // From now on the database refuses every write: keydir's connections are cut and come back
    // read-only (no INSERT, no SELECT ... FOR SHARE).
    let mut db = sqlx::PgConnection::connect(&app.database_url).await.expect("database");
    let name = database_name(&app.database_url).to_owned();
    // The name is our own fixture's (a fresh test database), quoted.
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{name}\" SET default_transaction_read_only = on")))
        .execute(&mut db)
        .await
        .expect("read-only");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .execute(&mut db)
    .await
    .expect("connections cut");

    // bob again, and a lookup without requester: answered from reads alone.
    let again = app.lookup(Some("bob@example.test"), &["alice@example.test", "nobody@example.test"]).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["items"][0]["bundle"], alice.bundle);
    assert_eq!(again.body["items"][1]["status"], "none");
    assert_eq!(app.lookup(None, &["alice@example.test"]).await.status, StatusCode::OK);
    // carol's first lookup must record an edge: refused by the read-only database, never answered
    // without it (a revocation would not reach her).
    let carol = app.lookup(Some("carol@example.test"), &["alice@example.test"]).await;
    assert!(carol.status.is_server_error(), "a new edge cannot be written: {carol:?}");

    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{name}\" RESET default_transaction_read_only")))
        .execute(&mut db)
        .await
        .expect("writable again");
    db.close().await.expect("closes");
}

#[tokio::test]
async fn lookup_limits() {
    let app = TestApp::spawn().await;
    app.lookup(None, &[]).await.assert_problem(400, "bad-request");
    let many: Vec<String> = (0..101).map(|i| format!("user{i}@example.test")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    app.lookup(None, &many).await.assert_problem(413, "too-large");
    assert_eq!(app.lookup(None, &many[..100]).await.status, StatusCode::OK);
    app.lookup(None, &["not a jid"]).await.assert_problem(400, "bad-request");
    app.lookup(Some("bad requester@x"), &["alice@example.test"]).await.assert_problem(400, "bad-request");
}

#[tokio::test]
async fn relay_records_the_holder_and_queues_a_key_relay() {
    let app = TestApp::spawn().await;
    let alice = app.account("alice@example.test").await;
    let reply = app.relay("alice@example.test", "bob@other.test").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    let id = reply.body["notice_id"].as_i64().expect("notice id");
    let notices = app.claim_now().await;
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["id"], id);
    assert_eq!(notices[0]["to"], "bob@other.test");
    assert_eq!(notices[0]["subject"], "alice@example.test");
    assert_eq!(notices[0]["event"]["kind"], "key-relay");
    let bundle = Bundle::parse(notices[0]["event"]["bundle"].as_str().expect("xml").as_bytes()).expect("parses");
    bundle.verify_for(&alice.jid).expect("the relayed bundle is alice's and verifies");
    let admin = app.send(Method::GET, "/v0/admin/accounts/alice@example.test", Auth::Admin, None).await;
    assert_eq!(admin.body["holders"], 1);

    app.relay("nobody@example.test", "bob@other.test").await.assert_problem(404, "not-found");
    app.relay("alice@example.test", "alice@example.test").await.assert_problem(400, "bad-request");
    app.relay("alice@example.test", "not a jid").await.assert_problem(400, "bad-request");
}
