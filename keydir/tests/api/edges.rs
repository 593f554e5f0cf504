//! Group commit of new holder edges: many first lookups share transactions, every answer's edge
//! is durable when the answer arrives, and the revocation reaches them all. (A revocation that
//! commits WHILE first lookups run: `admin::a_lookup_racing_a_revocation_is_never_missed`,
//! whose lookups all take this path.)

use crate::helpers::{Auth, TestApp, metric};
use futures::future::join_all;
use reqwest::Method;
use std::collections::BTreeSet;

const LOOKUPS: usize = 200;

#[tokio::test]
async fn first_lookups_share_commits_and_every_edge_is_recorded_before_its_answer() {
    let app = TestApp::spawn().await;
    app.account("alice@example.test").await;
    // LOOKUPS requesters look alice up at once, each for the first time.
    let answers = join_all((0..LOOKUPS).map(|i| {
        let app = &app;
        async move {
            let requester = format!("holder{i}@example.test");
            let reply = app.lookup(Some(&requester), &["alice@example.test"]).await;
            (requester, reply.body["items"][0]["status"].as_str().unwrap_or_default().to_owned())
        }
    }))
    .await;
    assert!(answers.iter().all(|(_, status)| status == "active"), "{answers:?}");
    // Every edge is there as soon as the answers are.
    let account = app.send(Method::GET, "/v0/admin/accounts/alice@example.test", Auth::Admin, None).await;
    assert_eq!(account.body["holders"], LOOKUPS, "{account:?}");

    // Fewer transactions than lookups: the lookups that waited while a commit was in flight
    // were recorded together.
    let page = app.metrics().await;
    let (recorded, commits) = (
        metric(&page, "keyward_keydir_holder_edge_lookups_total"),
        metric(&page, "keyward_keydir_holder_edge_commits_total"),
    );
    assert_eq!(recorded, LOOKUPS as f64);
    assert!(commits >= 1.0 && commits < recorded, "{commits} commits for {recorded} lookups: no group commit");
    eprintln!("group commit: {recorded} first lookups in {commits} transactions");

    // Looking up again records nothing new: the edges exist, the lookups only read.
    app.lookup(Some("holder0@example.test"), &["alice@example.test"]).await;
    let again = metric(&app.metrics().await, "keyward_keydir_holder_edge_lookups_total");
    assert_eq!(again, recorded, "a lookup of a held key went through the writing path");

    // And the revocation tells every one of them (and alice).
    let revoked = app.revoke("alice@example.test", "stolen").await;
    assert_eq!(revoked.body["notices"], LOOKUPS + 1, "{revoked:?}");
    let notified: BTreeSet<String> =
        app.claim_now().await.iter().filter_map(|n| n["to"].as_str().map(str::to_owned)).collect();
    for (requester, _) in &answers {
        assert!(notified.contains(requester), "{requester} was handed alice's key but gets no revoked notice");
    }
}
