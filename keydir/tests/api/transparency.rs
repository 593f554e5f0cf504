//! The key transparency map: publishes and revocations reach the map at the next epoch with proofs
//! that akd's client and auditor verify; two replicas never publish an epoch twice; a bundle
//! swapped in the database is not served; a restart keeps the map. The signed epoch heads verify
//! with the served key, name the latest epoch, extend each other across publishes, restarts and
//! replicas, and are signed for epochs a crash left without a head.

use crate::helpers::{Account, Auth, TestApp, fresh_database, metric};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_proto::transparency::heads::proof::proof_from_bytes;
use keyward_proto::transparency::heads::{EpochLeaf, Head, LogHash, VerifierKey, verify_inclusion};
use keyward_proto::transparency::value::{DOMAIN_LABEL, MapValue};
use keyward_proto::{BareJid, Bundle, KeyPair, XmlElement};
use keyward_tests::keydir::KeydirOptions;
use keyward_transparency::akd;
use keyward_transparency::akd::proto::specs::types as pb;
use keyward_transparency::akd::{AkdLabel, DomainLabel, ExperimentalConfiguration, HistoryVerificationParams};
use protobuf::Message;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A VRF key for the tests (32 bytes, base64); a deployment draws its own.
const VRF_KEY: &str = "4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8=";

/// keyward's akd configuration, as a client builds it: only the domain label is keyward's.
#[derive(Clone)]
struct Keyward;

impl DomainLabel for Keyward {
    fn domain_label() -> &'static [u8] {
        DOMAIN_LABEL
    }
}

type Config = ExperimentalConfiguration<Keyward>;

/// A head signing key for the tests (a 32 byte Ed25519 seed, base64); a deployment draws its own.
const SIGNING_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The map without a head signing key.
fn with_map_only(options: &mut KeydirOptions) {
    options.env.push(("KEYWARD_VRF_KEY".into(), VRF_KEY.into()));
    options.env.push(("KEYWARD_TRANSPARENCY_EPOCH_MS".into(), "100".into()));
}

/// The map and the signed heads.
fn with_map(options: &mut KeydirOptions) {
    with_map_only(options);
    options.env.push(("KEYWARD_TRANSPARENCY_SIGNING_KEY".into(), SIGNING_KEY.into()));
}

async fn map_app(url: &str, migrate: bool) -> TestApp {
    let mut options = KeydirOptions::new(url);
    options.migrate = migrate;
    with_map(&mut options);
    TestApp::start(options).await
}

fn bytes(value: &Value) -> Vec<u8> {
    STANDARD.decode(value.as_str().expect("a base64 string")).expect("base64")
}

fn digest(value: &Value) -> [u8; 32] {
    bytes(value).try_into().expect("32 bytes")
}

/// The served epoch and root hash (no token needed).
async fn epoch(app: &TestApp) -> (u64, [u8; 32]) {
    let reply = app.send(Method::GET, "/v0/transparency/epoch", Auth::None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    (reply.body["epoch"].as_u64().expect("epoch"), digest(&reply.body["root_hash"]))
}

async fn vrf_key(app: &TestApp) -> Vec<u8> {
    let reply = app.send(Method::GET, "/v0/transparency/vrf-key", Auth::None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    bytes(&reply.body["vrf_public_key"])
}

/// Polls the lookup proof of `jid` until the map holds a value that `accept` takes (20 s at most).
async fn wait_in_map(app: &TestApp, jid: &str, accept: impl Fn(&MapValue) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let path = format!("/v0/component/transparency/lookup/{jid}");
        let reply = app.send(Method::GET, &path, Auth::Component, None).await;
        if reply.status == StatusCode::OK
            && accept(&MapValue::parse(&bytes(&reply.body["value"])).expect("a map value"))
        {
            return reply.body;
        }
        assert!(Instant::now() < deadline, "{jid} never reached the map: {reply:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Verifies a served lookup proof with akd's client against the served root and VRF key;
/// returns the proven value.
fn verify_lookup(body: &Value, jid: &str, vrf: &[u8]) -> MapValue {
    let proof = pb::LookupProof::parse_from_bytes(&bytes(&body["proof"])).expect("protobuf");
    let proof = akd::LookupProof::try_from(&proof).expect("a lookup proof");
    let epoch = body["epoch"].as_u64().expect("epoch");
    let verified =
        akd::client::lookup_verify::<Config>(vrf, digest(&body["root_hash"]), epoch, AkdLabel(jid.into()), proof)
            .expect("the lookup proof verifies");
    assert_eq!(verified.value.0, bytes(&body["value"]), "the served value is the proven one");
    MapValue::parse(&verified.value.0).expect("a map value")
}

/// The bundle the component is served for `jid`, if any.
async fn served_bundle(app: &TestApp, jid: &str) -> Option<String> {
    let reply = app.lookup(None, &[jid]).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body["items"][0]["bundle"].as_str().map(str::to_owned)
}

/// Verifies the append-only proof between `start` and `end` as an auditor does.
async fn audit(app: &TestApp, start: u64, end: u64) -> Result<(), akd::errors::AkdError> {
    let path = format!("/v0/transparency/audit?start={start}&end={end}");
    let reply = app.send(Method::GET, &path, Auth::None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let roots: Vec<[u8; 32]> = reply.body["roots"].as_array().expect("roots").iter().map(digest).collect();
    assert_eq!(roots.len() as u64, end - start + 1);
    let proof = pb::AppendOnlyProof::parse_from_bytes(&bytes(&reply.body["proof"])).expect("protobuf");
    let proof = akd::AppendOnlyProof::try_from(&proof).expect("an audit proof");
    akd::auditor::audit_verify::<Config>(roots, proof).await
}

/// The served log key: the origin and keydir's verifier key (the VRF key is checked against the map's).
async fn log_key(app: &TestApp) -> (String, VerifierKey) {
    let reply = app.send(Method::GET, "/v0/transparency/key", Auth::None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(bytes(&reply.body["vrf_public_key"]), vrf_key(app).await, "the map's VRF key");
    let key = VerifierKey::parse(reply.body["log_key"].as_str().expect("log_key")).expect("a verifier key");
    let origin = reply.body["origin"].as_str().expect("origin").to_owned();
    assert_eq!(key.name(), origin, "the key is named after the origin");
    (origin, key)
}

/// Proof hashes from their served base64.
fn hashes(value: &Value) -> Vec<LogHash> {
    proof_from_bytes(&bytes(value)).expect("whole hashes")
}

/// The served inclusion proof of leaf `index` in the tree of `size`, with the served leaf.
async fn inclusion(app: &TestApp, index: u64, size: u64) -> (EpochLeaf, Vec<LogHash>) {
    let path = format!("/v0/transparency/inclusion?index={index}&size={size}");
    let reply = app.send(Method::GET, &path, Auth::None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let leaf =
        EpochLeaf { epoch: reply.body["epoch"].as_u64().expect("epoch"), akd_root: digest(&reply.body["akd_root"]) };
    assert_eq!(leaf.epoch, index + 1, "leaf i is epoch i + 1");
    (leaf, hashes(&reply.body["proof"]))
}

/// The served consistency proof from `from` to `to`.
async fn consistency(app: &TestApp, from: u64, to: u64) -> Vec<LogHash> {
    let path = format!("/v0/transparency/consistency?from={from}&to={to}");
    let reply = app.send(Method::GET, &path, Auth::None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    hashes(&reply.body["proof"])
}

/// Polls the served head until it names epoch `epoch` or a later one (20 s at most); checks it
/// as a client does: keydir's signature with the served key, the origin, and its epoch line as
/// the log's last leaf by the served inclusion proof. Returns it and its note.
async fn wait_head(app: &TestApp, epoch: u64) -> (Head, String) {
    let (origin, key) = log_key(app).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = app.send(Method::GET, "/v0/transparency/head", Auth::None, None).await;
        if reply.status == StatusCode::OK && reply.body["epoch"].as_u64().is_some_and(|e| e >= epoch) {
            let note = reply.body["note"].as_str().expect("note").to_owned();
            let (head, _) = Head::open(note.as_bytes(), &origin, &key).expect("the head verifies with the served key");
            assert_eq!(Some(head.size()), reply.body["size"].as_u64());
            assert_eq!(Some(head.last_leaf().epoch), reply.body["epoch"].as_u64());
            assert_eq!(head.size(), head.last_leaf().epoch, "epochs 1..=n are leaves 0..n");
            let (leaf, proof) = inclusion(app, head.size() - 1, head.size()).await;
            assert_eq!(&leaf, head.last_leaf(), "the served last leaf is the head's epoch line");
            head.check_last_leaf(&proof).expect("the epoch line is the log's last leaf");
            return (head, note);
        }
        assert!(Instant::now() < deadline, "no head of epoch {epoch}: {reply:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks every leaf of `head` against the recorded epochs by its inclusion proof.
async fn check_all_leaves(app: &TestApp, pool: &sqlx::PgPool, head: &Head) {
    let recorded: Vec<Vec<u8>> = sqlx::query_scalar("SELECT root_hash FROM transparency_epochs ORDER BY epoch")
        .fetch_all(pool)
        .await
        .expect("epochs");
    for index in 0..head.size() {
        let (leaf, proof) = inclusion(app, index, head.size()).await;
        assert_eq!(leaf.akd_root.to_vec(), recorded[usize::try_from(index).expect("small")], "leaf {index}");
        verify_inclusion(index, head.size(), &leaf.hash(), &proof, head.root())
            .expect("the leaf is in the head's tree");
    }
}

async fn wait_until_nothing_pending(pool: &sqlx::PgPool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM transparency_pending").fetch_one(pool).await.expect("count");
        if pending == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{pending} updates still pending after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_and_a_revocation_are_proven_in_the_map_and_the_history_and_audit_verify() {
    let url = fresh_database().await;
    let app = map_app(&url, true).await;
    let vrf = vrf_key(&app).await;
    let alice = app.account("alice@example.test").await;
    let bob = app.account("bob@example.test").await;

    let proof = wait_in_map(&app, "alice@example.test", |v| matches!(v, MapValue::Bundle(_))).await;
    let proven = verify_lookup(&proof, "alice@example.test", &vrf);
    let served = served_bundle(&app, "alice@example.test").await.expect("alice's bundle is served");
    assert_eq!(served, alice.bundle);
    assert!(proven.commits_to(served.as_bytes()), "the proven value commits to the served bundle");
    assert!(!proven.commits_to(bob.bundle.as_bytes()));
    assert_eq!(proof["version"], 1);
    assert!(epoch(&app).await.0 >= 1);

    // A revocation becomes bob's terminal value (after his bundle was published: an epoch
    // publishes each label's newest value only).
    wait_in_map(&app, "bob@example.test", |v| v.commits_to(bob.bundle.as_bytes())).await;
    let reply = app.revoke("bob@example.test", "laptop stolen").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let proof = wait_in_map(&app, "bob@example.test", |v| matches!(v, MapValue::Revoked(_))).await;
    let MapValue::Revoked(revocation) = verify_lookup(&proof, "bob@example.test", &vrf) else {
        panic!("bob's value is not a revocation")
    };
    assert_eq!(revocation.fingerprint().to_hex(), bob.fingerprint());
    assert_eq!(revocation.reason(), "laptop stolen");
    let revoked_at = time::OffsetDateTime::parse(
        reply.body["revoked_at"].as_str().expect("revoked_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("a time");
    assert_eq!(revocation.revoked_at(), u64::try_from(revoked_at.unix_timestamp()).expect("after 1970"));
    assert_eq!(proof["version"], 2);

    // bob's own client monitors his key: two values, the bundle then the revocation.
    let reply =
        app.send(Method::GET, "/v0/component/transparency/history/bob@example.test", Auth::Component, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let history = pb::HistoryProof::parse_from_bytes(&bytes(&reply.body["proof"])).expect("protobuf");
    let history = akd::HistoryProof::try_from(&history).expect("a history proof");
    let verified = akd::client::key_history_verify::<Config>(
        &vrf,
        digest(&reply.body["root_hash"]),
        reply.body["epoch"].as_u64().expect("epoch"),
        AkdLabel(b"bob@example.test".to_vec()),
        history,
        HistoryVerificationParams::default(),
    )
    .expect("the history proof verifies");
    let values: Vec<MapValue> = verified.iter().map(|r| MapValue::parse(&r.value.0).expect("a value")).collect();
    assert!(
        matches!(values.as_slice(), [MapValue::Revoked(_), MapValue::Bundle(b)] if MapValue::Bundle(*b).commits_to(bob.bundle.as_bytes()))
    );

    // The auditor's check from the first epoch to the latest, and its teeth.
    let (latest, _) = epoch(&app).await;
    assert!(latest >= 2, "two epochs at least: {latest}");
    audit(&app, 1, latest).await.expect("the audit proof verifies");

    // No account, no proof (akd 0.13 proves no absence for a lookup): 404, and public data needs no token.
    let reply =
        app.send(Method::GET, "/v0/component/transparency/lookup/carol@example.test", Auth::Component, None).await;
    reply.assert_problem(404, "not-found");
    let reply = app.send(Method::GET, "/v0/component/transparency/lookup/alice@example.test", Auth::None, None).await;
    reply.assert_problem(401, "unauthorized");
    let reply = app.send(Method::GET, "/v0/transparency/audit?start=2&end=1", Auth::None, None).await;
    reply.assert_problem(404, "not-found");
    let reply = app.send(Method::GET, "/v0/transparency/audit?start=1", Auth::None, None).await;
    reply.assert_problem(400, "bad-request");
    // An end past the latest epoch is cut to it.
    let path = format!("/v0/transparency/audit?start=1&end={}", latest + 50);
    let reply = app.send(Method::GET, &path, Auth::None, None).await;
    assert_eq!(reply.body["end"], latest, "{reply:?}");
}

/// A lookup of `jid` answers it as having no key and no bundle (`what` says what went wrong if
/// not), and keydir has counted `refused` withheld bundles so far.
async fn assert_withheld(app: &TestApp, jid: &str, what: &str, refused: f64) {
    let reply = app.lookup(None, &[jid]).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let item = &reply.body["items"][0];
    assert_eq!(item["status"], "none", "{what}: {item}");
    assert!(item.get("bundle").is_none_or(Value::is_null), "{what}: {item}");
    let page = app.metrics().await;
    assert_eq!(metric(&page, "keyward_keydir_transparency_refused_bundles_total"), refused, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_swapped_in_the_database_is_not_served() {
    let url = fresh_database().await;
    let app = map_app(&url, true).await;
    let alice = app.account("alice@example.test").await;
    wait_in_map(&app, "alice@example.test", |v| v.commits_to(alice.bundle.as_bytes())).await;
    assert_eq!(served_bundle(&app, "alice@example.test").await.as_deref(), Some(alice.bundle.as_str()));

    // The database is edited: alice's bundle becomes one of the attacker's keys.
    let attacker = KeyPair::generate().expect("rng");
    let jid = BareJid::parse("alice@example.test").expect("jid");
    let forged = Bundle::sign(&attacker, jid, 1_764_150_001).to_xml();
    let pool = sqlx::PgPool::connect(&url).await.expect("connects");
    sqlx::query("UPDATE bundles SET xml = $1, ik = $2, fingerprint = $3 WHERE jid = 'alice@example.test'")
        .bind(&forged)
        .bind(attacker.identity_public().to_bytes().to_vec())
        .bind(attacker.fingerprint().to_hex())
        .execute(&pool)
        .await
        .expect("the edit");

    assert_withheld(&app, "alice@example.test", "the swapped bundle was served", 1.0).await;
    // Nor does it go out in a key relay: the notice stays unsent.
    let reply = app.relay("alice@example.test", "bob@example.test").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    let claimed = app.claim_now().await;
    assert!(claimed.is_empty(), "the swapped bundle was relayed: {claimed:?}");
    let page = app.metrics().await;
    assert_eq!(metric(&page, "keyward_keydir_transparency_refused_bundles_total"), 2.0, "{page}");
    let log = std::fs::read_to_string(app.keydir.log_path()).expect("the log");
    assert!(log.contains("transparency-uncommitted-bundle"), "no alarm in the log");
    assert!(!log.contains(&forged) && !log.contains(&alice.bundle), "the log holds a bundle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_publish_each_epoch_once_and_a_restart_keeps_the_map() {
    let url = fresh_database().await;
    let a = map_app(&url, true).await;
    let mut b = map_app(&url, false).await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connects");
    let mut accounts = Vec::new();
    for n in 0..24 {
        let app = if n % 2 == 0 { &a } else { &b };
        accounts.push(app.account(&format!("user{n}@example.test")).await);
        if n % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
    }
    for n in (0..24).step_by(6) {
        let app = if n % 4 == 0 { &b } else { &a };
        let reply = app.revoke(&format!("user{n}@example.test"), "left").await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    wait_until_nothing_pending(&pool).await;

    // The epochs table is 1..=n without a gap or a repeat, and akd is at n.
    let epochs: Vec<i64> = sqlx::query_scalar("SELECT epoch FROM transparency_epochs ORDER BY epoch")
        .fetch_all(&pool)
        .await
        .expect("epochs");
    let n = epochs.len() as i64;
    assert!(n >= 2, "{epochs:?}");
    assert_eq!(epochs, (1..=n).collect::<Vec<_>>());
    let akd_epoch: i64 =
        sqlx::query_scalar("SELECT latest_epoch FROM akd_azks").fetch_one(&pool).await.expect("akd's epoch");
    assert_eq!(akd_epoch, n);
    // Both replicas serve the same head once their caches caught up, and the tree is one
    // append-only history: every step audits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while epoch(&a).await != epoch(&b).await {
        assert!(Instant::now() < deadline, "the replicas disagree on the latest epoch");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (latest, root) = epoch(&a).await;
    assert_eq!(latest as i64, n);
    audit(&b, 1, latest).await.expect("the audit proof over every epoch verifies");
    // One log: both replicas serve the same signed head of every epoch, naming the latest.
    let (head, note) = wait_head(&a, latest).await;
    let (head_b, note_b) = wait_head(&b, latest).await;
    assert_eq!((head.size(), note.as_str()), (head_b.size(), note_b.as_str()), "the replicas serve one head");
    assert_eq!(*head.last_leaf(), EpochLeaf { epoch: latest, akd_root: root });
    check_all_leaves(&b, &pool, &head).await;
    let vrf = vrf_key(&a).await;
    for (n, account) in accounts.iter().enumerate() {
        let jid = account.jid.as_str();
        let proof = wait_in_map(&b, jid, |_| true).await;
        let value = verify_lookup(&proof, jid, &vrf);
        assert_eq!(matches!(value, MapValue::Revoked(_)), n % 6 == 0, "{jid}");
    }

    // A restart (a crash, even) keeps the map: same epoch and root, proofs still verify, and
    // the next publish goes on from there.
    b.keydir.restart().await.expect("restarts");
    assert_eq!(epoch(&b).await, (latest, root));
    let proof = wait_in_map(&b, "user1@example.test", |_| true).await;
    assert!(verify_lookup(&proof, "user1@example.test", &vrf).commits_to(accounts[1].bundle.as_bytes()));
    let late = b.account("late@example.test").await;
    let proof = wait_in_map(&b, "late@example.test", |v| v.commits_to(late.bundle.as_bytes())).await;
    verify_lookup(&proof, "late@example.test", &vrf);
    let after = proof["epoch"].as_u64().expect("epoch");
    audit(&a, latest, after).await.expect("the audit across the restart verifies");
    // The restarted replica rebuilt the log: the head after the restart extends the one before.
    let (later, _) = wait_head(&b, after).await;
    later.check_extends(&head, &consistency(&b, head.size(), later.size()).await).expect("consistent");
    check_all_leaves(&a, &pool, &later).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_vrf_key_the_map_is_off_and_updates_queue() {
    let app = TestApp::spawn().await;
    let account = Account::new("alice@example.test");
    assert_eq!(app.publish(&account).await.status, StatusCode::CREATED);
    for path in ["/v0/transparency/epoch", "/v0/transparency/head", "/v0/transparency/key"] {
        app.send(Method::GET, path, Auth::None, None).await.assert_problem(503, "unavailable");
    }
    // Queued, not yet in a map: served all the same.
    assert_eq!(served_bundle(&app, "alice@example.test").await.as_deref(), Some(account.bundle.as_str()));
    let pool = sqlx::PgPool::connect(&app.database_url).await.expect("connects");
    let queued: Vec<u8> = sqlx::query_scalar("SELECT value FROM transparency_pending WHERE label = $1")
        .bind(b"alice@example.test".to_vec())
        .fetch_one(&pool)
        .await
        .expect("alice's update is queued");
    assert!(MapValue::parse(&queued).expect("a map value").commits_to(account.bundle.as_bytes()));
}

/// Schema 7: the akd tables, before the queue.
const SCHEMA_7: i64 = 20261208000001;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accounts_from_before_the_map_enter_it_at_the_first_epoch() {
    use sqlx::Connection;
    let url = fresh_database().await;
    let mut db = sqlx::PgConnection::connect(&url).await.expect("connects");
    keyward_keydir::MIGRATOR.run_to(SCHEMA_7, &mut db).await.expect("schema 7");
    let (alice, carol) = (Account::new("alice@example.test"), Account::new("carol@example.test"));
    crate::migrations::insert_account(&mut db, &alice).await;
    crate::migrations::insert_account(&mut db, &carol).await;
    sqlx::query("UPDATE accounts SET status = 'revoked', revoked_at = $2, reason = 'phone lost' WHERE jid = $1")
        .bind(carol.jid.as_str())
        .bind(time::macros::datetime!(2026-11-30 12:00:00.987654 UTC))
        .execute(&mut db)
        .await
        .expect("revoked");
    db.close().await.expect("closes");

    let app = map_app(&url, true).await;
    let vrf = vrf_key(&app).await;
    let proof = wait_in_map(&app, "alice@example.test", |_| true).await;
    assert!(verify_lookup(&proof, "alice@example.test", &vrf).commits_to(alice.bundle.as_bytes()));
    assert_eq!(served_bundle(&app, "alice@example.test").await.as_deref(), Some(alice.bundle.as_str()));
    let proof = wait_in_map(&app, "carol@example.test", |_| true).await;
    let MapValue::Revoked(revocation) = verify_lookup(&proof, "carol@example.test", &vrf) else {
        panic!("carol's value is not her revocation")
    };
    assert_eq!(revocation.fingerprint().to_hex(), carol.fingerprint());
    assert_eq!(revocation.revoked_at(), 1_796_040_000, "whole seconds, rounded down");
    assert_eq!(revocation.reason(), "phone lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proofs_of_a_whole_answer_come_at_once_for_one_epoch() {
    let url = fresh_database().await;
    let app = map_app(&url, true).await;
    let vrf = vrf_key(&app).await;
    let alice = app.account("alice@example.test").await;
    let bob = app.account("bob@example.test").await;
    wait_in_map(&app, "alice@example.test", |_| true).await;
    wait_in_map(&app, "bob@example.test", |_| true).await;
    let body = serde_json::json!({"jids": ["bob@example.test", "nobody@example.test", "Alice@example.test"]});
    let reply = app.send(Method::POST, "/v0/component/transparency/lookups", Auth::Component, Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let items = reply.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(items[1], serde_json::json!({"jid": "nobody@example.test"}), "no proof for an account not in the map");
    for (item, account) in [(&items[0], &bob), (&items[2], &alice)] {
        let jid = account.jid.as_str();
        assert_eq!(item["jid"], jid);
        let single = serde_json::json!({
            "epoch": reply.body["epoch"], "root_hash": reply.body["root_hash"],
            "value": item["value"], "proof": item["proof"],
        });
        assert!(verify_lookup(&single, jid, &vrf).commits_to(account.bundle.as_bytes()), "{jid}");
    }
    let reply = app
        .send(
            Method::POST,
            "/v0/component/transparency/lookups",
            Auth::Component,
            Some(serde_json::json!({"jids": []})),
        )
        .await;
    reply.assert_problem(400, "bad-request");
}

/// `POST /v0/component/transparency/lookups` of `jids`; checks the answer as a client does: the
/// head's signature, its epoch line naming the answer's epoch and root, and every proof
/// against that root. Returns the epoch, the proven value of each JID in the map, and the body.
async fn checked_lookups(app: &TestApp, jids: &[&str]) -> (u64, Vec<(String, MapValue)>, Value) {
    let (origin, key) = log_key(app).await;
    let vrf = vrf_key(app).await;
    let reply = app
        .send(
            Method::POST,
            "/v0/component/transparency/lookups",
            Auth::Component,
            Some(serde_json::json!({ "jids": jids })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let epoch = reply.body["epoch"].as_u64().expect("epoch");
    let root = digest(&reply.body["root_hash"]);
    let note = reply.body["head"]["note"].as_str().expect("a signed head");
    let (head, _) = Head::open(note.as_bytes(), &origin, &key).expect("the head verifies");
    assert_eq!(*head.last_leaf(), EpochLeaf { epoch, akd_root: root }, "the head names the proofs' epoch and root");
    head.check_last_leaf(&hashes(&reply.body["head"]["inclusion"])).expect("the epoch line is the log's last leaf");
    let mut proven = Vec::new();
    for item in reply.body["items"].as_array().expect("items") {
        let jid = item["jid"].as_str().expect("jid");
        if item.get("proof").is_none() {
            continue;
        }
        let single = serde_json::json!({
            "epoch": epoch, "root_hash": reply.body["root_hash"], "value": item["value"], "proof": item["proof"],
        });
        proven.push((jid.to_owned(), verify_lookup(&single, jid, &vrf)));
    }
    (epoch, proven, reply.body)
}

/// Waits until nothing is pending and the latest epoch's head is signed (a lookup answer then
/// has a head); returns that epoch.
async fn settled(app: &TestApp, pool: &sqlx::PgPool) -> u64 {
    wait_until_nothing_pending(pool).await;
    let (latest, _) = epoch(app).await;
    wait_head(app, latest).await;
    latest
}

/// The proof cache's hits and misses so far.
async fn cache_counts(app: &TestApp) -> (f64, f64) {
    let page = app.metrics().await;
    (
        metric(&page, "keyward_keydir_transparency_proof_cache_hits_total"),
        metric(&page, "keyward_keydir_transparency_proof_cache_misses_total"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_served_from_the_cache_verify_and_a_new_epoch_replaces_them() {
    let url = fresh_database().await;
    let app = map_app(&url, true).await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connects");
    let alice = app.account("alice@example.test").await;
    let bob = app.account("bob@example.test").await;
    let settled_at = settled(&app, &pool).await;
    let (alice_jid, bob_jid) = ("alice@example.test", "bob@example.test");

    // The first answer computes both proofs, the second serves them from the cache: the same
    // proofs, for the same epoch, verifying against its root and signed head.
    let before = cache_counts(&app).await;
    let (epoch, proven, first) = checked_lookups(&app, &[alice_jid, bob_jid]).await;
    let computed = cache_counts(&app).await;
    assert_eq!((computed.0 - before.0, computed.1 - before.1), (0.0, 2.0), "both proofs computed");
    let (again, proven_again, second) = checked_lookups(&app, &[bob_jid, alice_jid]).await;
    let cached = cache_counts(&app).await;
    assert_eq!((cached.0 - computed.0, cached.1 - computed.1), (2.0, 0.0), "both proofs from the cache");
    assert_eq!((epoch, again), (settled_at, settled_at));
    assert_eq!(second["items"][1], first["items"][0], "the cached proof is the computed one");
    assert_eq!(second["items"][0], first["items"][1]);
    for list in [&proven, &proven_again] {
        for (jid, value) in list {
            let account = if jid == alice_jid { &alice } else { &bob };
            assert!(matches!(value, MapValue::Bundle(_)) && value.commits_to(account.bundle.as_bytes()), "{jid}");
        }
    }
    assert_eq!(proven_again.len(), 2);

    // Another account's publish and bob's revocation make a new epoch: the cached proofs are
    // not served for it (bob's would still show his key).
    let carol = app.account("carol@example.test").await;
    let reply = app.revoke(bob_jid, "left").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let newer = settled(&app, &pool).await;
    let (later, proven, _) = checked_lookups(&app, &[alice_jid, bob_jid]).await;
    assert!(later > epoch && later == newer, "a new epoch: {later} after {epoch}");
    let after = cache_counts(&app).await;
    assert_eq!(after.1 - cached.1, 2.0, "the new epoch's proofs are computed again");
    let values: Vec<(&str, &MapValue)> = proven.iter().map(|(jid, value)| (jid.as_str(), value)).collect();
    assert!(matches!(values[..], [(_, MapValue::Bundle(_)), (_, MapValue::Revoked(_))]), "{values:?}");
    assert!(values[0].1.commits_to(alice.bundle.as_bytes()));
    // One answer of cached proofs (alice, bob) and a computed one (carol): all for one epoch.
    let (mixed, proven, _) = checked_lookups(&app, &["carol@example.test", bob_jid, alice_jid]).await;
    assert_eq!(mixed, later);
    let mixed_counts = cache_counts(&app).await;
    assert_eq!((mixed_counts.0 - after.0, mixed_counts.1 - after.1), (2.0, 1.0), "alice and bob from the cache");
    assert_eq!(proven.len(), 3);
    assert!(proven[0].1.commits_to(carol.bundle.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_undone_in_the_database_is_caught_and_an_earlier_relay_still_goes_out() {
    let url = fresh_database().await;
    let app = map_app(&url, true).await;
    let alice = app.account("alice@example.test").await;
    wait_in_map(&app, "alice@example.test", |v| v.commits_to(alice.bundle.as_bytes())).await;
    assert_eq!(app.relay("alice@example.test", "bob@example.test").await.status, StatusCode::ACCEPTED);
    assert_eq!(app.revoke("alice@example.test", "left").await.status, StatusCode::OK);
    wait_in_map(&app, "alice@example.test", |v| matches!(v, MapValue::Revoked(_))).await;
    // The relay queued before the revocation carries the bundle the map had: it goes out.
    let claimed = app.claim_now().await;
    let relays: Vec<&Value> = claimed.iter().filter(|n| n["event"]["kind"] == "key-relay").collect();
    assert_eq!(relays.len(), 1, "{claimed:?}");
    assert_eq!(relays[0]["event"]["bundle"], alice.bundle.as_str());

    // The database is edited: alice's revocation is undone.
    let pool = sqlx::PgPool::connect(&url).await.expect("connects");
    sqlx::query(
        "UPDATE accounts SET status = 'active', revoked_at = NULL, reason = NULL WHERE jid = 'alice@example.test'",
    )
    .execute(&pool)
    .await
    .expect("the edit");
    assert_withheld(&app, "alice@example.test", "an un-revoked key was served as active", 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_died_mid_round_is_taken_over_without_a_gap_or_a_repeat() {
    let url = fresh_database().await;
    let mut app = map_app(&url, true).await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connects");
    let alice = app.account("alice@example.test").await;
    wait_in_map(&app, "alice@example.test", |_| true).await;
    wait_until_nothing_pending(&pool).await;
    let (n, root) = epoch(&app).await;
    app.keydir.stop().await.expect("stops");

    // What a publisher leaves when it dies after akd committed epoch n but before recording
    // it: n missing from the epochs table, its rows still queued and claimed for n. And what
    // one leaves when it dies after claiming rows for n + 1 but before akd committed them.
    sqlx::query("DELETE FROM transparency_epochs WHERE epoch = $1")
        .bind(i64::try_from(n).expect("small"))
        .execute(&pool)
        .await
        .expect("deleted");
    let carol = Account::new("carol@example.test");
    for (jid, bundle, claimed) in
        [("alice@example.test", &alice.bundle, n), ("carol@example.test", &carol.bundle, n + 1)]
    {
        sqlx::query("INSERT INTO transparency_pending (label, value, epoch) VALUES ($1, $2, $3)")
            .bind(jid.as_bytes().to_vec())
            .bind(MapValue::bundle(bundle.as_bytes()).encode())
            .bind(i64::try_from(claimed).expect("small"))
            .execute(&pool)
            .await
            .expect("queued");
    }

    app.keydir.start_again().await.expect("starts again");
    let vrf = vrf_key(&app).await;
    let proof = wait_in_map(&app, "carol@example.test", |_| true).await;
    assert!(verify_lookup(&proof, "carol@example.test", &vrf).commits_to(carol.bundle.as_bytes()));
    wait_until_nothing_pending(&pool).await;
    let epochs: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT epoch, root_hash FROM transparency_epochs ORDER BY epoch")
        .fetch_all(&pool)
        .await
        .expect("epochs");
    let numbers: Vec<i64> = epochs.iter().map(|(e, _)| *e).collect();
    let n = i64::try_from(n).expect("small");
    assert_eq!(numbers, (1..=n + 1).collect::<Vec<_>>(), "epoch n recorded again, carol's is n + 1");
    assert_eq!(epochs[usize::try_from(n - 1).expect("small")].1, root.to_vec(), "epoch n recorded with akd's root");
    let proof = wait_in_map(&app, "alice@example.test", |_| true).await;
    assert_eq!(proof["version"], 1, "alice's value was not published twice");
    if let Err(err) = audit(&app, 1, u64::try_from(n + 1).expect("small")).await {
        let log = std::fs::read_to_string(app.keydir.log_path()).unwrap_or_default();
        panic!("the audit across the takeover does not verify: {err}\n{epochs:?}\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heads_verify_name_the_latest_epoch_and_extend_each_other() {
    let url = fresh_database().await;
    let mut options = KeydirOptions::new(&url);
    with_map(&mut options);
    // Everything keydir logs, so that the check below covers it.
    options.log_filter = "debug".into();
    let app = TestApp::start(options).await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connects");
    app.account("alice@example.test").await;
    wait_in_map(&app, "alice@example.test", |_| true).await;
    wait_until_nothing_pending(&pool).await;
    let (first_epoch, first_root) = epoch(&app).await;
    let (first, _) = wait_head(&app, first_epoch).await;
    assert_eq!(
        *first.last_leaf(),
        EpochLeaf { epoch: first_epoch, akd_root: first_root },
        "the epoch line is the map's"
    );
    let (origin, key) = log_key(&app).await;
    assert!(origin.starts_with("keyward/"), "{origin}");

    for n in 0..3 {
        app.account(&format!("user{n}@example.test")).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    wait_until_nothing_pending(&pool).await;
    let (latest, root) = epoch(&app).await;
    assert!(latest > first_epoch);
    let (later, _) = wait_head(&app, latest).await;
    assert_eq!(*later.last_leaf(), EpochLeaf { epoch: latest, akd_root: root });
    let proof = consistency(&app, first.size(), later.size()).await;
    later.check_extends(&first, &proof).expect("the later head extends the earlier one");
    assert!(later.check_extends(&first, &[]).is_err(), "not without the proof");
    check_all_leaves(&app, &pool, &later).await;
    assert!(consistency(&app, later.size(), later.size()).await.is_empty());

    // Queries outside the log.
    let size = later.size();
    for (path, status) in [
        (format!("/v0/transparency/consistency?from=0&to={size}"), 400),
        (format!("/v0/transparency/consistency?from={size}&to=1"), 400),
        (format!("/v0/transparency/consistency?from=1&to={}", size + 5), 404),
        (format!("/v0/transparency/inclusion?index={size}&size={size}"), 400),
        (format!("/v0/transparency/inclusion?index=0&size={}", size + 1), 404),
        ("/v0/transparency/inclusion?index=-1&size=1".to_owned(), 400),
    ] {
        let reply = app.send(Method::GET, &path, Auth::None, None).await;
        assert_eq!(reply.status.as_u16(), status, "{path}: {reply:?}");
    }

    // The stored heads are append-only, and the signing key is never logged.
    let changed = sqlx::query("UPDATE transparency_heads SET note = note || ' '").execute(&pool).await;
    assert!(changed.is_err(), "a stored head was changed");
    let log = std::fs::read_to_string(app.keydir.log_path()).expect("the log");
    assert!(!log.contains(SIGNING_KEY) && !log.contains(VRF_KEY), "a key in the log");
    assert!(log.contains(&key.to_string()), "keydir logs the verifier key to pin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_signing_key_the_map_publishes_and_a_key_added_later_signs_the_latest_head() {
    let url = fresh_database().await;
    let mut options = KeydirOptions::new(&url);
    with_map_only(&mut options);
    let mut app = TestApp::start(options).await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connects");
    for n in 0..3 {
        app.account(&format!("user{n}@example.test")).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    wait_until_nothing_pending(&pool).await;
    let (latest, root) = epoch(&app).await;
    assert!(latest >= 1);
    for path in ["/v0/transparency/head", "/v0/transparency/key", "/v0/transparency/consistency?from=1&to=1"] {
        app.send(Method::GET, path, Auth::None, None).await.assert_problem(503, "unavailable");
    }
    let heads: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transparency_heads").fetch_one(&pool).await.expect("count");
    assert_eq!(heads, 0);
    app.keydir.stop().await.expect("stops");

    // Epochs recorded with no head: what a publisher that died between an epoch's row and its
    // head leaves. The next round signs the head of the latest size, with nothing new to publish.
    let app = map_app(&url, false).await;
    let (head, _) = wait_head(&app, latest).await;
    assert_eq!(*head.last_leaf(), EpochLeaf { epoch: latest, akd_root: root });
    check_all_leaves(&app, &pool, &head).await;
}
