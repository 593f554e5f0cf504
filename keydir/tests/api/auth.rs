//! Authentication on every route: no token, a wrong token, and the other API's token.

use crate::helpers::{Auth, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

fn component_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (
            Method::PUT,
            "/v0/component/accounts/alice@example.test",
            Some(json!({"bundle": "", "secret": "", "secret_sig": ""})),
        ),
        (Method::GET, "/v0/component/accounts/alice@example.test/secret", None),
        (Method::POST, "/v0/component/accounts/alice@example.test/oprf", Some(json!({"blinded": "AA=="}))),
        (
            Method::POST,
            "/v0/component/accounts/alice@example.test/restore-proof",
            Some(json!({"challenge": "AA==", "sig": "AA=="})),
        ),
        (Method::POST, "/v0/component/lookup", Some(json!({"jids": ["alice@example.test"]}))),
        (Method::POST, "/v0/component/relays", Some(json!({"from": "alice@example.test", "to": "bob@example.test"}))),
        (Method::POST, "/v0/component/notices/claim", Some(json!({"wait_ms": 0}))),
        (Method::POST, "/v0/component/notices/ack", Some(json!({"ids": [1]}))),
        (Method::POST, "/v0/component/notices/release", Some(json!({"ids": [1]}))),
    ]
}

fn admin_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::POST, "/v0/admin/accounts/alice@example.test/revoke", Some(json!({"reason": "x"}))),
        (Method::POST, "/v0/admin/accounts/alice@example.test/unlock", Some(json!({"reason": "x"}))),
        (Method::GET, "/v0/admin/accounts/alice@example.test", None),
        (Method::GET, "/v0/admin/accounts", None),
        (Method::GET, "/v0/admin/audit", None),
    ]
}

#[tokio::test]
async fn every_route_needs_its_own_token() {
    let app = TestApp::spawn().await;
    let cases = component_routes()
        .into_iter()
        .map(|route| (route, Auth::Admin))
        .chain(admin_routes().into_iter().map(|route| (route, Auth::Component)));
    for ((method, path, body), other_api) in cases {
        for (auth, status, name) in
            [(Auth::None, 401, "unauthorized"), (Auth::Wrong, 401, "unauthorized"), (other_api, 403, "forbidden")]
        {
            let reply = app.send(method.clone(), path, auth, body.clone()).await;
            reply.assert_problem(status, name);
            if status == 401 {
                assert_eq!(reply.headers.get("www-authenticate").map(|v| v.as_bytes()), Some(&b"Bearer"[..]), "{path}");
            }
        }
    }
    // Auth is checked before the body is even read: an unauthenticated bad body is 401, not 400.
    app.send_raw(Method::POST, "/v0/component/lookup", Auth::None, "application/json", b"{oops".to_vec())
        .await
        .assert_problem(401, "unauthorized");
    // Other schemes and malformed headers are 401.
    for header in ["Basic dGVzdDp0ZXN0", "Bearer", "bearer", ""] {
        let reply = app
            .client
            .get(format!("{}/v0/admin/audit", app.keydir.url()))
            .header("authorization", header)
            .send()
            .await
            .expect("sent");
        assert_eq!(reply.status().as_u16(), 401, "{header:?}");
    }
    // The scheme name is case-insensitive.
    let reply = app
        .client
        .get(format!("{}/v0/admin/audit", app.keydir.url()))
        .header("authorization", format!("bearer {}", keyward_tests::keydir::ADMIN_TOKEN))
        .send()
        .await
        .expect("sent");
    assert_eq!(reply.status().as_u16(), 200);
}
