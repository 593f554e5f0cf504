//! The admin API: revocation fan-out, idempotence and races, account reads, lists and the audit log.

use crate::helpers::{Account, Auth, TestApp, metric};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

#[tokio::test]
async fn revocation_notifies_every_holder_and_the_account_once() {
    let app = TestApp::spawn().await;
    let alice = app.account("alice@example.test").await;
    app.account("bob@example.test").await;
    // Holders through a relay and through lookups (one from another domain).
    assert_eq!(app.relay("alice@example.test", "bob@example.test").await.status, StatusCode::ACCEPTED);
    app.lookup(Some("carol@example.test"), &["alice@example.test", "bob@example.test"]).await;
    app.lookup(Some("dave@elsewhere.test"), &["alice@example.test"]).await;
    let relayed: Vec<i64> = app.claim_now().await.iter().map(|n| n["id"].as_i64().expect("id")).collect();
    assert_eq!(app.ack(&relayed).await.status, StatusCode::OK);
    let before = app.metrics().await;

    let reply = app.revoke("alice@example.test", "laptop stolen").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["jid"], "alice@example.test");
    assert_eq!(reply.body["status"], "revoked");
    assert_eq!(reply.body["reason"], "laptop stolen");
    assert_eq!(reply.body["notices"], 4);
    assert_eq!(reply.body["changed"], true);
    let at = reply.body["revoked_at"].as_str().expect("time").to_owned();

    let notices = app.claim_now().await;
    let recipients: BTreeSet<&str> = notices.iter().map(|n| n["to"].as_str().expect("to")).collect();
    assert_eq!(
        recipients,
        BTreeSet::from(["alice@example.test", "bob@example.test", "carol@example.test", "dave@elsewhere.test"])
    );
    for notice in &notices {
        // Structured: the component renders the <revoked/> from these fields.
        assert_eq!(notice["subject"], "alice@example.test");
        let event = &notice["event"];
        assert_eq!(event["kind"], "revoked");
        assert_eq!(event["fingerprint"], alice.fingerprint());
        assert_eq!(event["reason"], "laptop stolen");
        assert_eq!(event["revoked_at"], at.as_str());
        let typed: keyward_contract::component::Notice = serde_json::from_value(notice.clone()).expect("the contract");
        assert_eq!(typed.event.kind(), keyward_contract::NoticeKind::Revoked);
    }

    // Idempotent: the second call changes nothing and says so, with the first time and reason.
    let again = app.revoke("alice@example.test", "another reason").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["changed"], false);
    assert_eq!(again.body["revoked_at"], at.as_str());
    assert_eq!(again.body["reason"], "laptop stolen");
    assert_eq!(again.body["notices"], 4);
    assert!(app.claim_now().await.is_empty(), "no new notices (the first ones are leased, none added)");

    let account = app.send(Method::GET, "/v0/admin/accounts/alice@example.test", Auth::Admin, None).await;
    assert_eq!(account.body["status"], "revoked");
    assert_eq!(account.body["revoked_at"], at.as_str());
    assert_eq!(account.body["reason"], "laptop stolen");
    assert_eq!(account.body["fingerprint"], alice.fingerprint());
    assert_eq!(account.body["holders"], 3);

    let audit = app.send(Method::GET, "/v0/admin/audit", Auth::Admin, None).await;
    let entries = audit.body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "one audit row: the second call changed nothing");
    assert_eq!(entries[0]["action"], "revoke");
    assert_eq!(entries[0]["jid"], "alice@example.test");
    assert_eq!(entries[0]["detail"]["reason"], "laptop stolen");
    assert_eq!(entries[0]["detail"]["notices"], 4);

    let after = app.metrics().await;
    assert_eq!(
        metric(&after, "keyward_keydir_revocations_total") - metric(&before, "keyward_keydir_revocations_total"),
        1.0
    );
    let queued = r#"keyward_keydir_notices_queued_total{kind="revoked"}"#;
    assert_eq!(metric(&after, queued) - metric(&before, queued), 4.0);
    assert_eq!(metric(&after, "keyward_keydir_notices_pending"), 4.0);
}

#[tokio::test]
async fn revoked_account_cannot_publish_fetch_its_secret_or_relay() {
    let app = TestApp::spawn().await;
    let alice = app.account("alice@example.test").await;
    app.revoke("alice@example.test", "compromised").await;
    app.publish(&alice).await.assert_problem(403, "revoked");
    app.publish(&Account::new("alice@example.test")).await.assert_problem(403, "revoked");
    app.send(Method::GET, "/v0/component/accounts/alice@example.test/secret", Auth::Component, None)
        .await
        .assert_problem(403, "revoked");
    app.relay("alice@example.test", "bob@example.test").await.assert_problem(403, "revoked");
}

#[tokio::test]
async fn two_concurrent_revocations_change_the_account_once() {
    let app = TestApp::spawn().await;
    app.account("alice@example.test").await;
    for i in 0..20 {
        app.lookup(Some(&format!("holder{i}@example.test")), &["alice@example.test"]).await;
    }
    let (a, b) = tokio::join!(app.revoke("alice@example.test", "first"), app.revoke("alice@example.test", "second"));
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
    let changed: Vec<bool> = [&a, &b].iter().map(|r| r.body["changed"].as_bool().expect("bool")).collect();
    assert_eq!(changed.iter().filter(|c| **c).count(), 1, "exactly one call revoked: {a:?} {b:?}");
    assert_eq!(a.body["revoked_at"], b.body["revoked_at"]);
    assert_eq!(a.body["reason"], b.body["reason"]);
    assert_eq!(app.claim_now().await.len(), 21);
    let audit = app.send(Method::GET, "/v0/admin/audit", Auth::Admin, None).await;
    assert_eq!(audit.body["entries"].as_array().expect("entries").len(), 1);
}

/// One lookup of the racing test: who asked, when it was in flight, what it saw.
struct RacingLookup {
    requester: String,
    started: Instant,
    ended: Instant,
    status: String,
}

#[tokio::test]
async fn a_lookup_racing_a_revocation_is_never_missed() {
    // Either the lookup sees "revoked", or its requester gets a revoked notice. Lookups from four
    // concurrent requesters run before, during and after the revocation; the test insists that
    // the race really happened (a lookup in flight while the revocation was) and tries again
    // with a fresh account when it did not.
    let app = TestApp::spawn().await;
    for attempt in 0..5 {
        let target = format!("alice{attempt}@example.test");
        app.account(&target).await;
        let active_seen = AtomicUsize::new(0);
        let revoked = AtomicBool::new(false);
        let worker = |w: usize| {
            let (app, target, active_seen, revoked) = (&app, &target, &active_seen, &revoked);
            async move {
                let mut lookups = Vec::new();
                let mut after = 0;
                for i in 0..500 {
                    let requester = format!("racer{attempt}-{w}-{i}@example.test");
                    let started = Instant::now();
                    let reply = app.lookup(Some(&requester), &[target]).await;
                    let status = reply.body["items"][0]["status"].as_str().unwrap_or_default().to_owned();
                    if status == "active" {
                        active_seen.fetch_add(1, Ordering::SeqCst);
                    }
                    lookups.push(RacingLookup { requester, started, ended: Instant::now(), status });
                    if revoked.load(Ordering::SeqCst) {
                        after += 1;
                        if after == 3 {
                            break;
                        }
                    }
                }
                lookups
            }
        };
        let revoke = async {
            while active_seen.load(Ordering::SeqCst) < 8 {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            let started = Instant::now();
            let reply = app.revoke(&target, "race").await;
            let ended = Instant::now();
            revoked.store(true, Ordering::SeqCst);
            assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            (started, ended)
        };
        let (a, b, c, d, (revoke_started, revoke_ended)) =
            tokio::join!(worker(0), worker(1), worker(2), worker(3), revoke);
        let lookups: Vec<RacingLookup> = [a, b, c, d].into_iter().flatten().collect();
        assert!(lookups.iter().all(|l| l.status == "active" || l.status == "revoked"), "unexpected status");
        assert!(lookups.iter().any(|l| l.status == "revoked"), "lookups after the revocation see it");
        let notified: BTreeSet<String> =
            app.claim_now().await.iter().map(|n| n["to"].as_str().expect("to").to_owned()).collect();
        for lookup in lookups.iter().filter(|l| l.status == "active") {
            assert!(notified.contains(&lookup.requester), "{} got an active bundle but no notice", lookup.requester);
        }
        let raced = lookups.iter().filter(|l| l.started < revoke_ended && l.ended > revoke_started).count();
        if raced > 0 {
            return;
        }
    }
    panic!("in five attempts no lookup was ever in flight during the revocation: the race was never tested");
}

#[tokio::test]
async fn revoke_errors() {
    let app = TestApp::spawn().await;
    app.revoke("nobody@example.test", "why").await.assert_problem(404, "not-found");
    app.account("alice@example.test").await;
    app.revoke("alice@example.test", "").await.assert_problem(400, "bad-request");
    app.revoke("alice@example.test", &"x".repeat(1025)).await.assert_problem(400, "bad-request");
    app.revoke("alice@example.test", "bad\u{0}reason").await.assert_problem(400, "bad-request");
    app.revoke("not a jid", "why").await.assert_problem(400, "bad-request");
    app.send(Method::POST, "/v0/admin/accounts/alice@example.test/revoke", Auth::Admin, Some(json!({})))
        .await
        .assert_problem(400, "bad-request");
    // 1024 bytes of multi-byte text is fine.
    let reply = app.revoke("alice@example.test", &"é".repeat(512)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

#[tokio::test]
async fn account_read_and_404() {
    let app = TestApp::spawn().await;
    let alice = app.account("alice@example.test").await;
    let reply = app.send(Method::GET, "/v0/admin/accounts/alice@example.test", Auth::Admin, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["jid"], "alice@example.test");
    assert_eq!(reply.body["status"], "active");
    assert_eq!(reply.body["fingerprint"], alice.fingerprint());
    assert!(reply.body["created_at"].is_string());
    assert!(reply.body["revoked_at"].is_null() && reply.body["reason"].is_null());
    assert_eq!(reply.body["holders"], 0);
    app.send(Method::GET, "/v0/admin/accounts/bob@example.test", Auth::Admin, None)
        .await
        .assert_problem(404, "not-found");
}

#[tokio::test]
async fn account_list_pages_with_a_cursor_and_filters_by_status() {
    let app = TestApp::spawn().await;
    for i in 0..7 {
        app.account(&format!("user{i}@example.test")).await;
    }
    app.revoke("user3@example.test", "gone").await;
    app.revoke("user5@example.test", "gone").await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v0/admin/accounts?limit=3&cursor={c}"),
            None => "/v0/admin/accounts?limit=3".to_owned(),
        };
        let page = app.send(Method::GET, &path, Auth::Admin, None).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        let accounts = page.body["accounts"].as_array().expect("accounts");
        assert!(accounts.len() <= 3);
        seen.extend(accounts.iter().map(|a| a["jid"].as_str().expect("jid").to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).map(|i| format!("user{i}@example.test")).collect();
    assert_eq!(seen, expected);

    let revoked = app.send(Method::GET, "/v0/admin/accounts?status=revoked", Auth::Admin, None).await;
    let jids: Vec<&str> =
        revoked.body["accounts"].as_array().expect("list").iter().map(|a| a["jid"].as_str().expect("jid")).collect();
    assert_eq!(jids, ["user3@example.test", "user5@example.test"]);
    assert!(revoked.body["next_cursor"].is_null());
    let active = app.send(Method::GET, "/v0/admin/accounts?status=active&limit=200", Auth::Admin, None).await;
    assert_eq!(active.body["accounts"].as_array().expect("list").len(), 5);

    for bad in ["?cursor=", "?cursor=not%20a%20jid", "?limit=0", "?limit=201", "?limit=x", "?status=deleted"] {
        let path = format!("/v0/admin/accounts{bad}");
        app.send(Method::GET, &path, Auth::Admin, None).await.assert_problem(400, "bad-request");
    }
}

#[tokio::test]
async fn audit_log_pages_newest_first_and_filters_by_jid() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        let jid = format!("user{i}@example.test");
        app.account(&jid).await;
        app.revoke(&jid, &format!("reason {i}")).await;
    }
    let first = app.send(Method::GET, "/v0/admin/audit?limit=2", Auth::Admin, None).await;
    assert_eq!(first.status, StatusCode::OK);
    let entries = first.body["entries"].as_array().expect("entries");
    assert_eq!(entries[0]["jid"], "user4@example.test");
    assert_eq!(entries[1]["jid"], "user3@example.test");
    let mut all: Vec<String> = entries.iter().map(|e| e["jid"].as_str().expect("jid").to_owned()).collect();
    let mut cursor = first.body["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let page = app.send(Method::GET, &format!("/v0/admin/audit?limit=2&cursor={c}"), Auth::Admin, None).await;
        all.extend(
            page.body["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .map(|e| e["jid"].as_str().expect("jid").to_owned()),
        );
        cursor = page.body["next_cursor"].as_str().map(str::to_owned);
    }
    let expected: Vec<String> = (0..5).rev().map(|i| format!("user{i}@example.test")).collect();
    assert_eq!(all, expected);
    let one = app.send(Method::GET, "/v0/admin/audit?jid=user2@example.test", Auth::Admin, None).await;
    let entries = one.body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["detail"]["reason"], "reason 2");
    for bad in ["?cursor=abc", "?cursor=99999999999999999999", "?limit=0", "?jid=not%20a%20jid"] {
        app.send(Method::GET, &format!("/v0/admin/audit{bad}"), Auth::Admin, None)
            .await
            .assert_problem(400, "bad-request");
    }
}
