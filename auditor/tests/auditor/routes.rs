//! `POST /v0/transparency/cosignatures`: only a configured auditor's cosignature over the stored head of its size is kept; kept ones are served with the head, and a forged row in the table is not.

use crate::common::{AUDITOR_KEYS, App, STRANGER_KEY, cosigner, now};
use keyward_proto::transparency::heads::{CosignaturePolicy, SignedNote};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn problem(body: &Value) -> &str {
    body["type"].as_str().expect("a problem type")
}

#[tokio::test]
async fn only_configured_auditors_cosignatures_over_the_stored_head_are_kept_and_served() {
    let app = App::start().await;
    app.publish_epoch("alice@example.test").await;
    let size = app.publish_epoch("bob@example.test").await;
    let head = app.head().await.expect("a head");
    let note = SignedNote::parse(head.note.as_bytes()).expect("a note");
    let one = cosigner(AUDITOR_KEYS[0]);
    let line = one.cosign(&note, now()).expect("cosigned");

    // An unconfigured key: 403 unknown-auditor.
    let stranger = cosigner(STRANGER_KEY).cosign(&note, now()).expect("cosigned");
    let (status, body) = app.post_cosignature(json!({"size": size, "signature": stranger})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(problem(&body), "urn:keyward:problem:unknown-auditor");
    // Over another head (the one of size - 1): 400 bad-cosignature.
    let (status, body) = app.post_cosignature(json!({"size": size - 1, "signature": line})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(problem(&body), "urn:keyward:problem:bad-cosignature");
    // Dated an hour ahead, malformed, no such head, size 0.
    let ahead = one.cosign(&note, now() + 3600).expect("cosigned");
    let (status, body) = app.post_cosignature(json!({"size": size, "signature": ahead})).await;
    assert_eq!((status, problem(&body)), (StatusCode::BAD_REQUEST, "urn:keyward:problem:bad-cosignature"));
    let (status, body) = app.post_cosignature(json!({"size": size, "signature": "— not a line"})).await;
    assert_eq!((status, problem(&body)), (StatusCode::BAD_REQUEST, "urn:keyward:problem:bad-cosignature"));
    let (status, body) = app.post_cosignature(json!({"size": size + 100, "signature": line})).await;
    assert_eq!((status, problem(&body)), (StatusCode::NOT_FOUND, "urn:keyward:problem:not-found"));
    let (status, body) = app.post_cosignature(json!({"size": 0, "signature": line})).await;
    assert_eq!((status, problem(&body)), (StatusCode::BAD_REQUEST, "urn:keyward:problem:bad-request"));
    let (status, body) = app.post_cosignature(json!({"size": size, "signature": line, "extra": 1})).await;
    assert_eq!((status, problem(&body)), (StatusCode::BAD_REQUEST, "urn:keyward:problem:bad-request"));
    let unserved = app.head().await.expect("a head");
    assert_eq!(SignedNote::parse(unserved.note.as_bytes()).expect("a note").signatures().len(), 1, "nothing kept");

    // The good one, twice (a retry): kept once, served with the head.
    for _ in 0..2 {
        let (status, body) = app.post_cosignature(json!({"size": size, "signature": line})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["auditor"], AUDITOR_KEYS[0].0);
        assert_eq!(body["size"], size);
    }
    let served = app.head().await.expect("a head");
    assert_eq!(served.note, format!("{}{line}\n", head.note));
    let policy = CosignaturePolicy {
        auditors: AUDITOR_KEYS.iter().map(|k| cosigner(*k).verifier().clone()).collect(),
        required: 1,
        max_age_secs: 600,
    };
    let served_note = SignedNote::parse(served.note.as_bytes()).expect("a note");
    assert_eq!(policy.check(&served_note, now()).expect("cosigned")[0].0, AUDITOR_KEYS[0].0);

    // A newer cosignature of the same auditor replaces the older one on the head.
    let newer = one.cosign(&note, now() + 5).expect("cosigned");
    let (status, _) = app.post_cosignature(json!({"size": size, "signature": format!("{newer}\n")})).await;
    assert_eq!(status, StatusCode::OK);
    let served = app.head().await.expect("a head");
    assert_eq!(served.note, format!("{}{newer}\n", head.note));

    // A forged row the DBA inserts for the second auditor is not served (it does not verify).
    let two = cosigner(AUDITOR_KEYS[1]);
    let mut forged = two.cosign(&note, now()).expect("cosigned");
    let at = forged.len() - 5;
    forged.replace_range(at..at + 1, if &forged[at..at + 1] == "A" { "B" } else { "A" });
    let pool = app.pool().await;
    sqlx::query(
        "INSERT INTO transparency_cosignatures (size, key_name, key_id, signed_at, line) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(i64::try_from(size).expect("small"))
    .bind(AUDITOR_KEYS[1].0)
    .bind(two.verifier().id().to_vec())
    .bind(i64::try_from(now()).expect("small"))
    .bind(&forged)
    .execute(&pool)
    .await
    .expect("inserted");
    let served = app.head().await.expect("a head");
    assert_eq!(served.note, format!("{}{newer}\n", head.note), "the forged line is not served");
    // The table is append-only.
    assert!(sqlx::query("DELETE FROM transparency_cosignatures").execute(&pool).await.is_err());
}
