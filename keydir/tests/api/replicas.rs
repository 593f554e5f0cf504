//! Two keydir processes over one database, as `replicas: 2` runs them: notices are claimed
//! disjointly, a NOTIFY from one replica wakes a claim parked on the other, and a lease that runs
//! out on one replica is claimed again through the other.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::helpers::{TestApp, fresh_database, wait_for_metric};
use keyward_tests::keydir::KeydirOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Two keydir processes on one fresh database; `edit` changes both replicas' options. Only the
/// first runs `migrate`, as the deployment's single migration Job does.
async fn two_replicas(edit: fn(&mut KeydirOptions)) -> (TestApp, TestApp) {
    let url = fresh_database().await;
    let mut options = KeydirOptions::new(&url);
    edit(&mut options);
    let a = TestApp::start(options.clone()).await;
    let b = TestApp::start(KeydirOptions { migrate: false, ..options }).await;
    (a, b)
}

fn ids(notices: &[Value]) -> Vec<i64> {
    notices.iter().map(|n| n["id"].as_i64().expect("id")).collect()
}

/// Claims (small batches, acknowledged at once) until `total` notices were seen by the two
/// claimers together; returns the ids this claimer got.
async fn claim_until(app: &TestApp, seen: &std::sync::Mutex<BTreeSet<i64>>, total: usize) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut mine = Vec::new();
    while seen.lock().expect("lock").len() < total {
        assert!(
            Instant::now() < deadline,
            "only {} of {total} notices claimed in 60 s",
            seen.lock().expect("lock").len()
        );
        let reply = app.claim(json!({"max": 7, "wait_ms": 300})).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        let got = ids(reply.body["notices"].as_array().expect("notices"));
        if got.is_empty() {
            continue;
        }
        seen.lock().expect("lock").extend(got.iter().copied());
        assert_eq!(app.ack(&got).await.body, json!({"acknowledged": got.len()}));
        mine.extend(got);
    }
    mine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_claim_every_notice_exactly_once() {
    let (a, b) = two_replicas(|_| {}).await;
    a.account("alice@example.test").await;
    // Both claimers are parked before anything is queued.
    let seen = std::sync::Mutex::new(BTreeSet::new());
    const HOLDERS: usize = 60;
    // Relays through both replicas (one key-relay notice each), then a revocation through B
    // (one revoked notice per holder, and one to alice herself).
    let total = 2 * HOLDERS + 1;
    let queue = async {
        wait_for_metric(&a.keydir.metrics_url(), "keyward_keydir_claims_waiting", 1.0).await;
        wait_for_metric(&b.keydir.metrics_url(), "keyward_keydir_claims_waiting", 1.0).await;
        for n in 0..HOLDERS {
            let through = if n % 2 == 0 { &a } else { &b };
            let reply = through.relay("alice@example.test", &format!("holder{n}@example.test")).await;
            assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
        }
        let revoked = b.revoke("alice@example.test", "replica test").await;
        assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
        assert_eq!(revoked.body["notices"], HOLDERS + 1, "{revoked:?}");
    };
    let (from_a, from_b, ()) = tokio::join!(claim_until(&a, &seen, total), claim_until(&b, &seen, total), queue);

    let set_a: BTreeSet<i64> = from_a.iter().copied().collect();
    let set_b: BTreeSet<i64> = from_b.iter().copied().collect();
    assert_eq!(set_a.len(), from_a.len(), "replica A handed out a notice twice");
    assert_eq!(set_b.len(), from_b.len(), "replica B handed out a notice twice");
    assert!(set_a.is_disjoint(&set_b), "both replicas handed out {:?}", set_a.intersection(&set_b).collect::<Vec<_>>());
    assert_eq!(set_a.len() + set_b.len(), total, "every queued notice is claimed");
    assert!(!set_a.is_empty() && !set_b.is_empty(), "both claimers worked: A {} B {}", set_a.len(), set_b.len());
    assert!(a.claim_now().await.is_empty() && b.claim_now().await.is_empty(), "nothing left");
    let pending = |page: String| crate::helpers::metric(&page, "keyward_keydir_notices_pending");
    wait_for_metric(&a.keydir.metrics_url(), "keyward_keydir_notices_pending", 0.0).await;
    assert_eq!(pending(b.metrics().await), 0.0, "both replicas read the same outbox");
}

#[tokio::test]
async fn a_notice_queued_through_one_replica_wakes_a_claim_parked_on_the_other() {
    // A sweep of a minute on both: only the NOTIFY, delivered by Postgres to every listening
    // replica, can wake B's claim in time.
    let (a, b) = two_replicas(|o| o.sweep = Duration::from_secs(60)).await;
    a.account("alice@example.test").await;
    let started = Instant::now();
    let (claimed, relayed) = tokio::join!(b.claim(json!({"wait_ms": 20000})), async {
        wait_for_metric(&b.keydir.metrics_url(), "keyward_keydir_claims_waiting", 1.0).await;
        a.relay("alice@example.test", "bob@example.test").await
    });
    let waited = started.elapsed();
    assert_eq!(relayed.status, StatusCode::ACCEPTED, "{relayed:?}");
    assert_eq!(claimed.status, StatusCode::OK, "{claimed:?}");
    assert_eq!(
        ids(claimed.body["notices"].as_array().expect("notices")),
        vec![relayed.body["notice_id"].as_i64().expect("id")]
    );
    assert!(waited < Duration::from_secs(10), "A's NOTIFY did not wake B's claim: {waited:?}");

    // A release through B wakes a claim parked on A the same way.
    let held = b.claim(json!({"wait_ms": 0})).await;
    assert!(ids(held.body["notices"].as_array().expect("notices")).is_empty(), "already leased");
    let id = relayed.body["notice_id"].as_i64().expect("id");
    let started = Instant::now();
    let (again, released) = tokio::join!(a.claim(json!({"wait_ms": 20000})), async {
        wait_for_metric(&a.keydir.metrics_url(), "keyward_keydir_claims_waiting", 1.0).await;
        b.release(&[id]).await
    });
    assert_eq!(released.body, json!({"released": 1}));
    assert_eq!(ids(again.body["notices"].as_array().expect("notices")), vec![id]);
    assert!(started.elapsed() < Duration::from_secs(10), "B's release did not wake A: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_lease_that_runs_out_on_one_replica_is_claimed_through_the_other() {
    let (a, b) = two_replicas(|o| o.sweep = Duration::from_millis(200)).await;
    a.account("alice@example.test").await;
    for to in ["bob@example.test", "carol@example.test"] {
        assert_eq!(a.relay("alice@example.test", to).await.status, StatusCode::ACCEPTED);
    }
    // A claims both with a one-second lease and dies, as it were: it never acknowledges.
    let leased = a.claim(json!({"wait_ms": 0, "lease_ms": 1000})).await;
    let leased = ids(leased.body["notices"].as_array().expect("notices"));
    assert_eq!(leased.len(), 2);
    assert!(b.claim_now().await.is_empty(), "leased notices are not handed out by the other replica");

    // B's waiting claim finds them through its sweep once the lease has run out.
    let started = Instant::now();
    let again = b.claim(json!({"wait_ms": 10000})).await;
    assert_eq!(ids(again.body["notices"].as_array().expect("notices")), leased, "re-claimed through B");
    assert!(started.elapsed() < Duration::from_secs(9), "found at the wait's end only: {:?}", started.elapsed());
    assert_eq!(b.ack(&leased).await.body, json!({"acknowledged": 2}));
    // Acknowledged through B: A has nothing more to hand out, even after its lease.
    assert!(a.claim(json!({"wait_ms": 1500})).await.body["notices"].as_array().expect("notices").is_empty());
}
