//! `TestApp`: a keydir on a fresh database of the shared throwaway cluster, with request helpers.

use keyward_proto::{BareJid, Bundle, KdfParams, KeyPair, SecretBlob, SecretSig, XmlElement};
use keyward_tests::keydir::{ADMIN_TOKEN, COMPONENT_TOKEN, Keydir, KeydirOptions};
use keyward_tests::postgres::Postgres;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// A running keydir and a client for it.
pub struct TestApp {
    pub keydir: Keydir,
    #[allow(dead_code)]
    pub database_url: String,
    pub client: reqwest::Client,
}

/// An account's keys and the XML the component would send for it.
pub struct Account {
    pub jid: BareJid,
    pub keys: KeyPair,
    pub bundle: String,
    pub secret: String,
    /// The `<secret-sig/>` of `secret`, signed with `keys` under seq 1.
    pub secret_sig: String,
}

impl Account {
    /// New keys for `jid`, with a cheap secret blob and its secret update (seq 1).
    pub fn new(jid: &str) -> Self {
        let jid = BareJid::parse(jid).expect("valid jid");
        let keys = KeyPair::generate().expect("rng");
        let bundle = Bundle::sign(&keys, jid.clone(), 1_764_150_000).to_xml();
        let (secret, secret_sig) = sealed(&keys, &jid, b"passphrase", 1);
        Self { jid, keys, bundle, secret, secret_sig }
    }

    /// The account's keys sealed again under `passphrase`, and that blob's update signed
    /// under `seq`: `(secret, secret_sig)`, as a passphrase change would publish them.
    pub fn resealed(&self, passphrase: &[u8], seq: u64) -> (String, String) {
        sealed(&self.keys, &self.jid, passphrase, seq)
    }

    /// The publish body the component would send.
    pub fn body(&self) -> Value {
        self.body_with(&self.secret, &self.secret_sig)
    }

    /// A publish body with this bundle and another secret and update.
    pub fn body_with(&self, secret: &str, secret_sig: &str) -> Value {
        json!({"bundle": self.bundle, "secret": secret, "secret_sig": secret_sig})
    }

    /// The fingerprint as the API shows it.
    pub fn fingerprint(&self) -> String {
        self.keys.fingerprint().to_hex()
    }
}

/// `keys` sealed for `jid` under `passphrase` (cheap test KDF), and the blob's update
/// signed by `keys` under `seq`: `(secret, secret_sig)` as XML.
pub fn sealed(keys: &KeyPair, jid: &BareJid, passphrase: &[u8], seq: u64) -> (String, String) {
    let blob = SecretBlob::seal(keys, jid, passphrase, KdfParams::INSECURE_TEST_ONLY).expect("seals");
    let update = SecretSig::sign(keys, jid, seq, &blob).expect("signs");
    (blob.to_xml(), update.to_xml())
}

/// Which token a request carries.
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    None,
    Component,
    Admin,
    Wrong,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts a problem+json answer with this status and type name.
    pub fn assert_problem(&self, status: u16, name: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["type"], format!("urn:keyward:problem:{name}"), "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.body["title"].is_string() && self.body["detail"].is_string(), "{self:?}");
    }
}

impl TestApp {
    /// A keydir (the real binary) on a fresh database, with the test defaults.
    pub async fn spawn() -> Self {
        Self::start(KeydirOptions::new(&fresh_database().await)).await
    }

    /// A keydir with these options (see [`fresh_database`]).
    pub async fn start(options: KeydirOptions) -> Self {
        let database_url = options.database_url.clone();
        let keydir = Keydir::start(options).await.expect("keydir starts");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(40)).build().expect("client");
        Self { keydir, database_url, client }
    }

    /// Sends a request; `body` None sends no body.
    pub async fn send(&self, method: Method, path: &str, auth: Auth, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.keydir.url()));
        request = match auth {
            Auth::None => request,
            Auth::Component => request.bearer_auth(COMPONENT_TOKEN),
            Auth::Admin => request.bearer_auth(ADMIN_TOKEN),
            Auth::Wrong => request.bearer_auth("not-a-valid-token-at-all"),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("request sent")).await
    }

    /// Sends raw bytes with a content type.
    pub async fn send_raw(&self, method: Method, path: &str, auth: Auth, content_type: &str, body: Vec<u8>) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.keydir.url()))
            .header("content-type", content_type)
            .body(body);
        if let Auth::Component = auth {
            request = request.bearer_auth(COMPONENT_TOKEN);
        } else if let Auth::Admin = auth {
            request = request.bearer_auth(ADMIN_TOKEN);
        }
        read(request.send().await.expect("request sent")).await
    }

    pub async fn publish(&self, account: &Account) -> Reply {
        self.publish_body(account, account.body()).await
    }

    /// `PUT`s this publish body for `account`.
    pub async fn publish_body(&self, account: &Account, body: Value) -> Reply {
        let path = format!("/v0/component/accounts/{}", account.jid);
        self.send(Method::PUT, &path, Auth::Component, Some(body)).await
    }

    /// The stored secret blob of `jid` (its XML), as the component fetches it.
    pub async fn stored_secret(&self, jid: &str) -> String {
        let reply =
            self.send(Method::GET, &format!("/v0/component/accounts/{jid}/secret"), Auth::Component, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        reply.body["secret"].as_str().expect("a secret").to_owned()
    }

    /// Publishes a new account and checks it was created.
    pub async fn account(&self, jid: &str) -> Account {
        let account = Account::new(jid);
        let reply = self.publish(&account).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        account
    }

    pub async fn lookup(&self, requester: Option<&str>, jids: &[&str]) -> Reply {
        self.send(
            Method::POST,
            "/v0/component/lookup",
            Auth::Component,
            Some(json!({"requester": requester, "jids": jids})),
        )
        .await
    }

    pub async fn relay(&self, from: &str, to: &str) -> Reply {
        self.send(Method::POST, "/v0/component/relays", Auth::Component, Some(json!({"from": from, "to": to}))).await
    }

    pub async fn revoke(&self, jid: &str, reason: &str) -> Reply {
        let path = format!("/v0/admin/accounts/{jid}/revoke");
        self.send(Method::POST, &path, Auth::Admin, Some(json!({"reason": reason}))).await
    }

    pub async fn claim(&self, body: Value) -> Reply {
        self.send(Method::POST, "/v0/component/notices/claim", Auth::Component, Some(body)).await
    }

    pub async fn ack(&self, ids: &[i64]) -> Reply {
        self.send(Method::POST, "/v0/component/notices/ack", Auth::Component, Some(json!({"ids": ids}))).await
    }

    pub async fn release(&self, ids: &[i64]) -> Reply {
        self.send(Method::POST, "/v0/component/notices/release", Auth::Component, Some(json!({"ids": ids}))).await
    }

    /// Claims everything due now (no wait) and returns the notices.
    pub async fn claim_now(&self) -> Vec<Value> {
        let reply = self.claim(json!({"wait_ms": 0, "max": 1000})).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        reply.body["notices"].as_array().expect("notices").clone()
    }

    pub async fn metrics(&self) -> String {
        self.client.get(self.keydir.metrics_url()).send().await.expect("metrics").text().await.expect("text")
    }
}

/// A fresh database in the shared throwaway cluster.
pub async fn fresh_database() -> String {
    let postgres = tokio::task::spawn_blocking(Postgres::shared).await.expect("joins").expect("throwaway Postgres");
    postgres.fresh_database().await.expect("fresh database")
}

/// Reads a response whole; the body as JSON (or a JSON string of the text).
pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply { status, content_type, headers, body }
}

/// The value of a metric line `name{labels} value` (exact label text), 0 if absent.
pub fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Waits until the metrics page at `url` shows `series` at `value`, or panics after 10 s: how a
/// test knows that something is in a given state (a claim parked, say) without sleeping.
pub async fn wait_for_metric(url: &str, series: &str, value: f64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = reqwest::get(url).await.expect("metrics").text().await.expect("text");
        if metric(&page, series) == value {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{series} never reached {value}:\n{page}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
