//! Answer-cache leases: a revocation commits only after every live cache dropped the account.

use crate::helpers::{Auth, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn renew(app: &TestApp, holder: &str, seen_seq: i64) -> Value {
    let reply = app
        .send(
            Method::POST,
            "/v0/component/cache/lease",
            Auth::Component,
            Some(json!({"holder": holder, "seen_seq": seen_seq})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body
}

async fn status(app: &TestApp, jid: &str) -> String {
    let reply = app.send(Method::GET, &format!("/v0/admin/accounts/{jid}"), Auth::Admin, None).await;
    reply.body["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_revocation_waits_until_every_live_cache_dropped_the_account() {
    let app = TestApp::spawn().await;
    app.account("alice@example.test").await;
    let first = renew(&app, "cache-a", 0).await;
    assert_eq!(first["lease_ms"], 1000);
    let seen = first["seq"].as_i64().expect("seq");

    let revoke = app.revoke("alice@example.test", "stolen");
    let cache = async {
        // The cache renews as it would; alice is handed out as pending, and while the cache has
        // not reported dropping her, the revocation has not committed.
        let deadline = Instant::now() + Duration::from_secs(5);
        let pending = loop {
            let renewal = renew(&app, "cache-a", seen).await;
            if renewal["revoking"].as_array().is_some_and(|r| r.iter().any(|j| j == "alice@example.test")) {
                break renewal["seq"].as_i64().expect("seq");
            }
            assert!(Instant::now() < deadline, "the pending revocation was never handed out");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status(&app, "alice@example.test").await, "active", "committed before the cache dropped her");
        // Renewing again without dropping her keeps the revocation waiting.
        renew(&app, "cache-a", seen).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(status(&app, "alice@example.test").await, "active");
        // Dropped: reported, and the revocation commits.
        renew(&app, "cache-a", pending).await;
        Instant::now()
    };
    let (revoked, acked) = tokio::join!(revoke, cache);
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    assert_eq!(status(&app, "alice@example.test").await, "revoked");
    assert!(acked.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn revoking_an_unknown_or_already_revoked_account_marks_nothing_pending() {
    let app = TestApp::spawn().await;
    app.account("alice@example.test").await;
    // No lease yet: the first revocation commits without waiting.
    assert_eq!(app.revoke("alice@example.test", "stolen").await.status, StatusCode::OK);
    let seq = renew(&app, "cache-a", 0).await["seq"].as_i64().expect("seq");
    assert!(seq > 0, "the first revocation was marked pending");

    // With a live lease that would hold a pending revocation, neither of these waits for it:
    // nothing new is pending, which the next renewal shows.
    let unknown = app.revoke("nobody@example.test", "stolen").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown:?}");
    let again = app.revoke("alice@example.test", "stolen again").await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["changed"], false);
    let renewal = renew(&app, "cache-a", seq).await;
    assert_eq!(renewal["seq"].as_i64(), Some(seq), "{renewal}");
    assert_eq!(renewal["revoking"], json!([]));
}

#[tokio::test]
async fn a_cache_that_stops_renewing_holds_a_revocation_only_until_its_lease_ends() {
    let app = TestApp::spawn().await;
    app.account("bob@example.test").await;
    renew(&app, "cache-gone", 0).await;
    // The cache dies now: its lease (1 s) runs out and the revocation goes on.
    let started = Instant::now();
    let reply = app.revoke("bob@example.test", "lost").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "waited {:?}", started.elapsed());
    assert_eq!(status(&app, "bob@example.test").await, "revoked");
}

#[tokio::test]
async fn a_lease_request_is_checked() {
    let app = TestApp::spawn().await;
    for body in [json!({"holder": "", "seen_seq": 0}), json!({"holder": "x", "seen_seq": -1}), json!({"holder": "x"})] {
        let reply = app.send(Method::POST, "/v0/component/cache/lease", Auth::Component, Some(body.clone())).await;
        reply.assert_problem(400, "bad-request");
    }
    let reply = app
        .send(Method::POST, "/v0/component/cache/lease", Auth::Admin, Some(json!({"holder": "x", "seen_seq": 0})))
        .await;
    reply.assert_problem(403, "forbidden");
}
