//! The restore's requests are checked (malformed, revoked), a keydir without a seed answers
//! 503 to them only, and the seed never reaches keydir's log or database.

use crate::helpers::{Auth, TestApp, fresh_database};
use crate::restore::{SEED, app, guess, guesses, oprf, options, prove, unlock};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn restore_requests_are_checked() {
    let app = app().await;
    app.account("alice@example.test").await;
    let path = "/v0/component/accounts/alice@example.test/oprf";
    let post = |path: &'static str, body| app.send(Method::POST, path, Auth::Component, Some(body));
    for blinded in [
        json!("not base64!"),
        json!(STANDARD.encode([1u8; 31])),
        json!(STANDARD.encode([0u8; 32])),    // the identity
        json!(STANDARD.encode([0xffu8; 32])), // not canonical
    ] {
        let reply = post(path, json!({"blinded": blinded})).await;
        reply.assert_problem(400, "bad-request");
        assert!(reply.body["detail"].as_str().expect("detail").contains("blinded"), "{reply:?}");
    }
    post(path, json!({"blinded": 42})).await.assert_problem(400, "bad-request");
    post(path, json!({"blinded": STANDARD.encode([1u8; 32]), "jid": "bob@example.test"}))
        .await
        .assert_problem(400, "bad-request");
    let proof = "/v0/component/accounts/alice@example.test/restore-proof";
    let challenge = STANDARD.encode([7u8; 32]);
    for body in [
        json!({"challenge": "%%", "sig": STANDARD.encode([0u8; 64])}),
        json!({"challenge": challenge, "sig": STANDARD.encode([0u8; 63])}),
        json!({"challenge": STANDARD.encode([7u8; 16]), "sig": STANDARD.encode([0u8; 64])}),
        json!({"challenge": challenge}),
    ] {
        post(proof, body).await.assert_problem(400, "bad-request");
    }
    // None of this counted.
    assert_eq!(guess(&app, "alice@example.test", b"x").await.2, 9);
    // Revoked accounts.
    let bob = app.account("bob@example.test").await;
    let challenges = guesses(&app, "bob@example.test", 1).await;
    assert_eq!(app.revoke("bob@example.test", "stolen").await.status, StatusCode::OK);
    oprf(&app, "bob@example.test", b"x").await.0.assert_problem(403, "revoked");
    prove(&app, &bob, &bob.keys, &challenges[0]).await.assert_problem(403, "revoked");
}

#[tokio::test]
async fn without_a_seed_the_restore_answers_503_and_everything_else_works() {
    let app = TestApp::start(options(&fresh_database().await, None)).await;
    let alice = app.account("alice@example.test").await;
    let (reply, _) = oprf(&app, "alice@example.test", b"x").await;
    reply.assert_problem(503, "restore-unavailable");
    let challenge = keyward_proto::restore::RestoreChallenge::generate().expect("rng");
    prove(&app, &alice, &alice.keys, &challenge).await.assert_problem(503, "restore-unavailable");
    assert_eq!(app.lookup(None, &["alice@example.test"]).await.status, StatusCode::OK);
    assert_eq!(unlock(&app, "alice@example.test", "nothing to do").await.body["changed"], false);
    let log = std::fs::read_to_string(app.keydir.log_path()).expect("log");
    assert_eq!(log.matches("no OPRF seed").count(), 1, "one warning at start:\n{log}");
}

/// Every row of every table of the database, as text (bytea as `\x` hex).
async fn dump(url: &str) -> String {
    let mut db = PgConnection::connect(url).await.expect("connects");
    let tables: Vec<String> = sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
        .fetch_all(&mut db)
        .await
        .expect("tables");
    assert!(tables.contains(&"restore_attempts".to_owned()), "{tables:?}");
    let mut out = String::new();
    for table in tables {
        let rows: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT string_agg(t::text, E'\\n') FROM \"{table}\" t")))
                .fetch_one(&mut db)
                .await
                .expect("rows");
        out.push_str(&rows.unwrap_or_default());
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn the_seed_never_reaches_the_log_or_the_database() {
    let url = fresh_database().await;
    let mut options = options(&url, Some(&SEED));
    options.log_filter = "debug".into();
    let app = TestApp::start(options).await;
    let alice = app.account("alice@example.test").await;
    let challenges = guesses(&app, "alice@example.test", 9).await;
    assert_eq!(prove(&app, &alice, &alice.keys, &challenges[0]).await.status, StatusCode::OK);
    guesses(&app, "alice@example.test", 10).await;
    oprf(&app, "alice@example.test", b"x").await.0.assert_problem(403, "restore-locked");
    assert_eq!(unlock(&app, "alice@example.test", "helpdesk").await.status, StatusCode::OK);
    let log = std::fs::read_to_string(app.keydir.log_path()).expect("log");
    assert!(log.contains("DEBUG") || log.contains("\"debug\"") || log.len() > 1000, "the log is verbose:\n{log}");
    let database = dump(&url).await;
    assert!(database.contains("alice@example.test"), "the dump has the rows");
    let hex: String = SEED.iter().map(|b| format!("{b:02x}")).collect();
    let forms = [hex.clone(), hex.to_uppercase(), STANDARD.encode(SEED), String::from_utf8_lossy(&SEED).into_owned()];
    for form in &forms {
        for (place, text) in [("log", &log), ("database", &database)] {
            assert!(!text.contains(form.as_str()), "the seed ({form}) is in the {place}");
            // Half of it is too: no part of the seed is written out either.
            assert!(!text.contains(&form[..form.len() / 2]), "half the seed ({form}) is in the {place}");
        }
    }
}
