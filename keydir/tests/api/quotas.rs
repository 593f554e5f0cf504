//! Quotas and retention: the per-requester holding cap, and acknowledged notices pruned after their retention.

use crate::helpers::{Auth, TestApp, fresh_database, metric, wait_for_metric};
use keyward_tests::keydir::KeydirOptions;
use reqwest::{Method, StatusCode};
use sqlx::{Connection, PgConnection};
use std::collections::BTreeSet;

/// A keydir with these extra settings, as an operator sets them.
async fn keydir_with(settings: &[(&str, &str)]) -> TestApp {
    let mut options = KeydirOptions::new(&fresh_database().await);
    options.env.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    TestApp::start(options).await
}

/// The recipients of the notices due now, claimed and acknowledged.
async fn deliver(app: &TestApp) -> BTreeSet<String> {
    let notices = app.claim_now().await;
    let ids: Vec<i64> = notices.iter().map(|n| n["id"].as_i64().expect("id")).collect();
    assert_eq!(app.ack(&ids).await.status, StatusCode::OK);
    notices.iter().map(|n| n["to"].as_str().expect("to").to_owned()).collect()
}

#[tokio::test]
async fn the_holding_cap_refuses_new_keys_but_serves_held_ones_and_revocations_reach_every_holder() {
    let app = keydir_with(&[("KEYWARD_MAX_HOLDINGS", "2")]).await;
    for name in ["alice", "bob", "carol", "dave"] {
        app.account(&format!("{name}@example.test")).await;
    }
    let eve = Some("eve@remote.test");
    // Two new keys: exactly the cap. An unknown account and the requester's own key are no new key.
    let reply = app.lookup(eve, &["alice@example.test", "bob@example.test", "nobody@example.test"]).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let own = app.lookup(Some("alice@example.test"), &["alice@example.test"]).await;
    assert_eq!(own.status, StatusCode::OK, "{own:?}");

    // A third key would go past the cap: refused, whole, and nothing recorded.
    let refused = app.lookup(eve, &["alice@example.test", "carol@example.test"]).await;
    refused.assert_problem(403, "holding-limit");
    assert!(refused.body["detail"].as_str().expect("detail").contains("limit of 2"), "{refused:?}");
    // Keys already held, and accounts without a key, are still answered.
    let held = app.lookup(eve, &["bob@example.test", "alice@example.test", "nobody@example.test"]).await;
    assert_eq!(held.status, StatusCode::OK, "{held:?}");
    let statuses: Vec<&str> =
        held.body["items"].as_array().expect("items").iter().map(|i| i["status"].as_str().expect("status")).collect();
    assert_eq!(statuses, ["active", "active", "none"]);
    // Others are not affected by eve's holdings.
    assert_eq!(app.lookup(Some("frank@example.test"), &["carol@example.test"]).await.status, StatusCode::OK);
    // A lookup without a requester records nothing and is never capped.
    assert_eq!(app.lookup(None, &["carol@example.test", "dave@example.test"]).await.status, StatusCode::OK);

    let page = app.metrics().await;
    assert_eq!(metric(&page, "keyward_keydir_holding_limit_refused_total"), 1.0, "{page}");

    // Every recorded holder hears of a revocation; eve never got carol's key, so only carol
    // and frank hear of hers.
    app.revoke("alice@example.test", "lost").await;
    app.revoke("carol@example.test", "lost").await;
    let recipients = deliver(&app).await;
    let expected = ["alice@example.test", "eve@remote.test", "carol@example.test", "frank@example.test"];
    assert_eq!(recipients, expected.iter().map(|s| (*s).to_owned()).collect());
    let account = app.send(Method::GET, "/v0/admin/accounts/carol@example.test", Auth::Admin, None).await;
    assert_eq!(account.body["holders"], 1, "{account:?}");
}

#[tokio::test]
async fn pruning_deletes_only_acknowledged_notices_past_the_retention_and_revocation_counts_survive() {
    let app = keydir_with(&[("KEYWARD_NOTICE_RETENTION_HOURS", "1"), ("KEYWARD_PRUNE_INTERVAL_MS", "100")]).await;
    let mut db = PgConnection::connect(&app.database_url).await.expect("connects");
    app.account("alice@example.test").await;
    app.account("carol@example.test").await;
    // Two key relays (one stays unacknowledged), and alice's revocation to bob and to alice.
    let recent = app.relay("carol@example.test", "bob@example.test").await.body["notice_id"].as_i64().expect("id");
    let pending = app.relay("carol@example.test", "dave@example.test").await.body["notice_id"].as_i64().expect("id");
    assert_eq!(app.lookup(Some("bob@example.test"), &["alice@example.test"]).await.status, StatusCode::OK);
    let revoked = app.revoke("alice@example.test", "lost").await;
    assert_eq!(revoked.body["notices"], 2, "{revoked:?}");
    let claimed: Vec<i64> = app.claim_now().await.iter().map(|n| n["id"].as_i64().expect("id")).collect();
    let acked: Vec<i64> = claimed.iter().copied().filter(|id| *id != pending).collect();
    assert_eq!(app.ack(&acked).await.body["acknowledged"], 3);
    let old: Vec<i64> = acked.iter().copied().filter(|id| *id != recent).collect();

    // The revocation's notices were acknowledged two hours ago; the pending relay was queued
    // three hours ago and never acknowledged; the other relay was acknowledged just now.
    sqlx::query("UPDATE notices SET created_at = now() - interval '3 hours', acked_at = now() - interval '2 hours' WHERE id = ANY($1)")
        .bind(&old)
        .execute(&mut db)
        .await
        .expect("backdated");
    sqlx::query("UPDATE notices SET created_at = now() - interval '3 hours' WHERE id = $1")
        .bind(pending)
        .execute(&mut db)
        .await
        .expect("backdated");
    wait_for_metric(&app.keydir.metrics_url(), "keyward_keydir_notices_pruned_total", 2.0).await;

    let left: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM notices ORDER BY id").fetch_all(&mut db).await.expect("rows");
    assert_eq!(left, [recent, pending], "only the old acknowledged notices are gone");
    // The repeated revocation still reports the notices it queued, from its audit row.
    let again = app.revoke("alice@example.test", "lost").await;
    assert_eq!((again.body["changed"].clone(), again.body["notices"].clone()), (false.into(), 2.into()), "{again:?}");
    // The pending notice is still handed out once its lease runs out; nothing else is.
    let page = app.metrics().await;
    assert_eq!(metric(&page, "keyward_keydir_notices_pending"), 1.0, "{page}");
}
