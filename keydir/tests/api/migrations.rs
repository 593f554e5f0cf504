//! Upgrading a directory in use: schema 3 (typed statuses, structured notices) keeps every row of schema 2.

use crate::helpers::{Account, TestApp, fresh_database};
use keyward_keydir::MIGRATOR;
use keyward_proto::elements::{KeyRelay, Revoked};
use keyward_proto::{Bundle, Fingerprint, XmlElement};
use keyward_tests::keydir::KeydirOptions;
use reqwest::{Method, StatusCode};
use sqlx::{Connection, PgConnection};
use std::collections::BTreeMap;
use time::macros::datetime;

/// Schema 2: the last migration before typed statuses and structured notices.
const SCHEMA_2: i64 = 20261206000001;

/// Stores `account` as keydir of schema 2 did: text status, bundle columns.
pub(crate) async fn insert_account(db: &mut PgConnection, account: &Account) {
    let verified = Bundle::parse(account.bundle.as_bytes()).expect("parses").verify().expect("verifies");
    sqlx::query("INSERT INTO accounts (jid) VALUES ($1)")
        .bind(account.jid.as_str())
        .execute(&mut *db)
        .await
        .expect("account");
    sqlx::query(
        "INSERT INTO bundles (jid, fingerprint, ik, ek, created_unix, sig, xml) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(account.jid.as_str())
    .bind(account.fingerprint())
    .bind(verified.identity_key().to_bytes().to_vec())
    .bind(verified.encryption_key().to_bytes().to_vec())
    .bind(i64::try_from(verified.created()).expect("in range"))
    .bind(verified.signature().to_vec())
    .bind(&account.bundle)
    .execute(&mut *db)
    .await
    .expect("bundle");
}

/// Queues a notice as keydir of schema 2 did: kind as text, the XML to send as `payload`.
async fn insert_notice(db: &mut PgConnection, to: &str, kind: &str, subject: &str, payload: &str, acked: bool) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO notices (recipient, kind, subject, payload, acked_at)
         VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END) RETURNING id",
    )
    .bind(to)
    .bind(kind)
    .bind(subject)
    .bind(payload)
    .bind(acked)
    .fetch_one(&mut *db)
    .await
    .expect("notice")
}

#[tokio::test]
async fn pending_notices_and_statuses_survive_the_upgrade_to_typed_rows() {
    let url = fresh_database().await;
    let mut db = PgConnection::connect(&url).await.expect("connects");
    // A directory at schema 2, in use: alice active and relayed to bob, carol revoked with
    // her notices still pending, one notice already delivered.
    MIGRATOR.run_to(SCHEMA_2, &mut db).await.expect("schema 2");
    let (alice, carol) = (Account::new("alice@example.test"), Account::new("carol@example.test"));
    insert_account(&mut db, &alice).await;
    insert_account(&mut db, &carol).await;
    let at = datetime!(2026-11-30 12:00:00.123456 UTC);
    sqlx::query("UPDATE accounts SET status = 'revoked', revoked_at = $2, reason = 'phone lost' WHERE jid = $1")
        .bind(carol.jid.as_str())
        .bind(at)
        .execute(&mut db)
        .await
        .expect("revoked");
    let bundle = Bundle::parse(alice.bundle.as_bytes()).expect("parses");
    let relay = KeyRelay { from: alice.jid.clone(), bundle }.to_xml();
    let fp = Fingerprint::from_hex(&carol.fingerprint()).expect("hex");
    let revoked = Revoked { jid: carol.jid.clone(), fp, at, reason: "phone lost".into() }.to_xml();
    let relay_id = insert_notice(&mut db, "bob@example.test", "key-relay", "alice@example.test", &relay, false).await;
    let revoked_id =
        insert_notice(&mut db, "dave@example.test", "revoked", "carol@example.test", &revoked, false).await;
    insert_notice(&mut db, "erin@example.test", "revoked", "carol@example.test", &revoked, true).await;
    db.close().await.expect("closes");

    // keydir of this version migrates the directory when it starts.
    let app = TestApp::start(KeydirOptions::new(&url)).await;
    let notices = app.claim_now().await;
    let by_id: BTreeMap<i64, &serde_json::Value> = notices.iter().map(|n| (n["id"].as_i64().expect("id"), n)).collect();
    assert_eq!(by_id.keys().copied().collect::<Vec<_>>(), vec![relay_id, revoked_id], "pending ones only: {notices:?}");
    let relayed = by_id[&relay_id];
    assert_eq!(
        (relayed["to"].as_str(), relayed["subject"].as_str()),
        (Some("bob@example.test"), Some("alice@example.test"))
    );
    assert_eq!(relayed["event"]["kind"], "key-relay");
    assert_eq!(relayed["event"]["bundle"], alice.bundle.as_str());
    let told = by_id[&revoked_id];
    assert_eq!(told["event"]["kind"], "revoked");
    assert_eq!(told["event"]["fingerprint"], carol.fingerprint());
    assert_eq!(told["event"]["reason"], "phone lost");
    assert_eq!(told["event"]["revoked_at"], "2026-11-30T12:00:00.123456Z");
    // Statuses kept their meaning: a lookup and the admin list by status read the enum.
    let lookup = app.lookup(None, &["alice@example.test", "carol@example.test"]).await;
    assert_eq!(lookup.status, StatusCode::OK, "{lookup:?}");
    assert_eq!(lookup.body["items"][0]["status"], "active");
    assert_eq!(lookup.body["items"][1]["status"], "revoked");
    let revoked_list =
        app.send(Method::GET, "/v0/admin/accounts?status=revoked", crate::helpers::Auth::Admin, None).await;
    let jids: Vec<&str> =
        revoked_list.body["accounts"].as_array().expect("accounts").iter().filter_map(|a| a["jid"].as_str()).collect();
    assert_eq!(jids, vec!["carol@example.test"]);
}
