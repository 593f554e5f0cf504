//! The notice outbox: long-poll claims woken by LISTEN/NOTIFY, leases, acknowledgements.

use crate::helpers::{Auth, TestApp, fresh_database, wait_for_metric};
use keyward_tests::keydir::KeydirOptions;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_waiting_claim_is_woken_by_notify_not_by_the_sweep() {
    // A sweep of a minute: only the NOTIFY can wake the claim in time.
    let url = fresh_database().await;
    let app = TestApp::start(KeydirOptions { sweep: Duration::from_secs(60), ..KeydirOptions::new(&url) }).await;
    app.account("alice@example.test").await;
    let started = Instant::now();
    let (claimed, relayed) = tokio::join!(app.claim(json!({"wait_ms": 20000})), async {
        // The claim is parked (it found nothing) before the notice exists.
        wait_for_metric(&app.keydir.metrics_url(), "keyward_keydir_claims_waiting", 1.0).await;
        app.relay("alice@example.test", "bob@example.test").await
    });
    let waited = started.elapsed();
    assert_eq!(relayed.status, StatusCode::ACCEPTED);
    assert_eq!(claimed.status, StatusCode::OK, "{claimed:?}");
    let notices = claimed.body["notices"].as_array().expect("notices");
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["id"], relayed.body["notice_id"]);
    // Without the NOTIFY the claim would sleep to its 20 s deadline (the sweep is a minute).
    assert!(waited < Duration::from_secs(10), "NOTIFY did not wake the claim: {waited:?}");
}

#[tokio::test]
async fn an_empty_claim_returns_after_wait_ms() {
    let app = TestApp::spawn().await;
    let started = Instant::now();
    let reply = app.claim(json!({"wait_ms": 600})).await;
    let waited = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"notices": []}));
    assert!(waited >= Duration::from_millis(550) && waited < Duration::from_secs(10), "{waited:?}");
    // Every field is optional.
    let reply = app.claim(json!({"wait_ms": 0})).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn leases_expire_and_notices_are_handed_out_again_until_acknowledged() {
    let app = TestApp::spawn().await;
    app.account("alice@example.test").await;
    for to in ["bob@example.test", "carol@example.test", "dave@example.test"] {
        app.relay("alice@example.test", to).await;
    }
    let first = app.claim(json!({"max": 2, "wait_ms": 0, "lease_ms": 1000})).await;
    let first = first.body["notices"].as_array().expect("notices").clone();
    assert_eq!(first.len(), 2, "max is respected");
    let rest = app.claim(json!({"wait_ms": 0, "lease_ms": 1000})).await;
    let rest = rest.body["notices"].as_array().expect("notices").clone();
    assert_eq!(rest.len(), 1, "leased notices are not handed out twice");
    assert!(app.claim_now().await.is_empty());

    // Acknowledge the first one only; after the lease the other two come back. Nothing
    // NOTIFYs a lease running out: the waiting claim finds them through its periodic sweep.
    let ack = app.ack(&[first[0]["id"].as_i64().expect("id")]).await;
    assert_eq!(ack.body, json!({"acknowledged": 1}));
    let again = app.claim(json!({"wait_ms": 5000})).await;
    let ids: Vec<i64> =
        again.body["notices"].as_array().expect("notices").iter().map(|n| n["id"].as_i64().expect("id")).collect();
    let expected: Vec<i64> = [&first[1], &rest[0]].iter().map(|n| n["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, expected, "the unacknowledged notices are re-delivered, oldest first");

    // Acknowledging twice is harmless; unknown ids are ignored.
    let ack = app.ack(&ids).await;
    assert_eq!(ack.body, json!({"acknowledged": 2}));
    let ack = app.ack(&[ids[0], ids[1], 999_999]).await;
    assert_eq!(ack.body, json!({"acknowledged": 0}));
    let ack = app.ack(&[]).await;
    assert_eq!(ack.status, StatusCode::OK);
}

#[tokio::test]
async fn released_notices_are_due_again_at_once_and_wake_a_waiting_claim() {
    // A sweep of a minute and a lease of ten: only the release (and its NOTIFY) can bring the
    // notices back within the claim's wait.
    let url = fresh_database().await;
    let app = TestApp::start(KeydirOptions { sweep: Duration::from_secs(60), ..KeydirOptions::new(&url) }).await;
    app.account("alice@example.test").await;
    for to in ["bob@example.test", "carol@example.test"] {
        app.relay("alice@example.test", to).await;
    }
    let claimed = app.claim(json!({"wait_ms": 0, "lease_ms": 600000})).await;
    let ids: Vec<i64> =
        claimed.body["notices"].as_array().expect("notices").iter().map(|n| n["id"].as_i64().expect("id")).collect();
    assert_eq!(ids.len(), 2);
    let delivered = ids[0];
    assert_eq!(app.ack(&[delivered]).await.body, json!({"acknowledged": 1}));
    assert!(app.claim_now().await.is_empty(), "both are leased or acknowledged");

    let started = Instant::now();
    let (again, released) = tokio::join!(app.claim(json!({"wait_ms": 20000})), async {
        wait_for_metric(&app.keydir.metrics_url(), "keyward_keydir_claims_waiting", 1.0).await;
        // The acknowledged notice and an unknown id are not released.
        app.release(&[delivered, ids[1], 999_999]).await
    });
    assert_eq!(released.status, StatusCode::OK, "{released:?}");
    assert_eq!(released.body, json!({"released": 1}));
    let again: Vec<i64> =
        again.body["notices"].as_array().expect("notices").iter().map(|n| n["id"].as_i64().expect("id")).collect();
    assert_eq!(again, vec![ids[1]], "only the undelivered notice comes back");
    assert!(started.elapsed() < Duration::from_secs(10), "the release did not wake the claim: {:?}", started.elapsed());

    // Releasing an acknowledged notice changes nothing; too many ids is a bad request.
    assert_eq!(app.release(&[delivered]).await.body, json!({"released": 0}));
    assert!(app.claim_now().await.is_empty());
    let many: Vec<i64> = (0..1001).collect();
    app.release(&many).await.assert_problem(400, "bad-request");
}

#[tokio::test]
async fn claim_and_ack_validate_their_fields() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"max": 0}),
        json!({"max": 1001}),
        json!({"wait_ms": 30001}),
        json!({"lease_ms": 999}),
        json!({"lease_ms": 600001}),
        json!({"wait_ms": -1}),
        json!({"surprise": true}),
    ] {
        app.claim(body).await.assert_problem(400, "bad-request");
    }
    let many: Vec<i64> = (0..1001).collect();
    app.ack(&many).await.assert_problem(400, "bad-request");
    app.send(Method::POST, "/v0/component/notices/ack", Auth::Component, Some(json!({"ids": ["x"]})))
        .await
        .assert_problem(400, "bad-request");
}
