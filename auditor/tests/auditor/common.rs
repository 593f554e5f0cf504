//! A keydir (the real binary) with the map, signed heads and configured auditors, accounts published and revoked through its HTTP API, and auditors on temporary state directories.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_auditor::{Auditor, Cosigner, Keydir as KeydirClient};
use keyward_contract::transparency::HeadResponse;
use keyward_proto::transparency::heads::{KeyType, NoteSigner};
use keyward_proto::{BareJid, Bundle, KdfParams, KeyPair, SecretBlob, SecretSig, XmlElement};
use keyward_tests::keydir::{ADMIN_TOKEN, COMPONENT_TOKEN, Keydir, KeydirOptions};
use keyward_tests::postgres::Postgres;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A VRF key for the tests (32 bytes, base64); a deployment draws its own.
pub const VRF_KEY: &str = "4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8=";
/// keydir's head signing key for the tests (a 32 byte Ed25519 seed, base64).
pub const SIGNING_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The log's origin the tests configure.
pub const ORIGIN: &str = "keyward/auditor.test";
/// The configured auditors' keys (base64 seeds) and names.
pub const AUDITOR_KEYS: [(&str, &str); 2] = [
    ("auditor-one.test", "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="),
    ("auditor-two.test", "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="),
];
/// An auditor keydir is not configured with.
pub const STRANGER_KEY: (&str, &str) = ("stranger.test", "YGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn8=");

/// The cosigner of `(name, key)`.
pub fn cosigner((name, key): (&str, &str)) -> Cosigner {
    Cosigner::from_base64(name, key).expect("a cosigning key")
}

/// keydir's head signer, as a test that plays a thief of the signing key holds it.
pub fn log_signer() -> NoteSigner {
    let seed: [u8; 32] = STANDARD.decode(SIGNING_KEY).expect("base64").try_into().expect("32 bytes");
    NoteSigner::new(ORIGIN, KeyType::Ed25519, &seed).expect("signer")
}

/// A running keydir, its database and an HTTP client.
pub struct App {
    pub keydir: Keydir,
    pub database_url: String,
    pub client: reqwest::Client,
}

impl App {
    /// keydir on a fresh database with the map (an epoch every 100 ms), signed heads and both
    /// configured auditors.
    pub async fn start() -> Self {
        let postgres = tokio::task::spawn_blocking(Postgres::shared).await.expect("joins").expect("throwaway Postgres");
        let database_url = postgres.fresh_database().await.expect("fresh database");
        let mut options = KeydirOptions::new(&database_url);
        let auditors: Vec<String> = AUDITOR_KEYS.iter().map(|k| cosigner(*k).verifier().to_string()).collect();
        options.env.extend([
            ("KEYWARD_VRF_KEY".to_owned(), VRF_KEY.to_owned()),
            ("KEYWARD_TRANSPARENCY_EPOCH_MS".to_owned(), "100".to_owned()),
            ("KEYWARD_TRANSPARENCY_SIGNING_KEY".to_owned(), SIGNING_KEY.to_owned()),
            ("KEYWARD_TRANSPARENCY_ORIGIN".to_owned(), ORIGIN.to_owned()),
            ("KEYWARD_TRANSPARENCY_AUDITORS".to_owned(), auditors.join(", ")),
        ]);
        let keydir = Keydir::start(options).await.expect("keydir starts");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(40)).build().expect("client");
        Self { keydir, database_url, client }
    }

    /// The database, as a hostile DBA reaches it.
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.database_url).await.expect("connects")
    }

    /// An auditor of this keydir on a new state directory, pinning keydir's keys as served.
    pub async fn auditor(&self, dir: &tempfile::TempDir, key: Option<(&str, &str)>) -> Auditor {
        let client = KeydirClient::new(&self.keydir.url()).expect("client");
        Auditor::open(client, dir.path(), None, None, key.map(cosigner)).await.expect("auditor opens")
    }

    /// Publishes a new account through the component API.
    pub async fn publish(&self, jid: &str) {
        let jid = BareJid::parse(jid).expect("jid");
        let keys = KeyPair::generate().expect("rng");
        let bundle = Bundle::sign(&keys, jid.clone(), 1_764_150_000).to_xml();
        let blob = SecretBlob::seal(&keys, &jid, b"passphrase", KdfParams::INSECURE_TEST_ONLY).expect("seals");
        let update = SecretSig::sign(&keys, &jid, 1, &blob).expect("signs");
        let body = json!({"bundle": bundle, "secret": blob.to_xml(), "secret_sig": update.to_xml()});
        let response = self
            .client
            .put(format!("{}/v0/component/accounts/{jid}", self.keydir.url()))
            .bearer_auth(COMPONENT_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::CREATED, "{:?}", response.text().await);
    }

    /// Revokes an account through the admin API.
    pub async fn revoke(&self, jid: &str) {
        let response = self
            .client
            .post(format!("{}/v0/admin/accounts/{jid}/revoke", self.keydir.url()))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"reason": "compromised"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK, "{:?}", response.text().await);
    }

    /// The served head; `None` before the first.
    pub async fn head(&self) -> Option<HeadResponse> {
        let response =
            self.client.get(format!("{}/v0/transparency/head", self.keydir.url())).send().await.expect("sent");
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        assert_eq!(response.status(), StatusCode::OK);
        Some(response.json().await.expect("a head"))
    }

    /// Waits (20 s at most) until the served head is larger than `size`; returns it.
    pub async fn head_after(&self, size: u64) -> HeadResponse {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(head) = self.head().await.filter(|head| head.size > size) {
                return head;
            }
            assert!(Instant::now() < deadline, "no head after size {size}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publishes `jid` and waits for the epoch that holds it (a larger head): its size.
    pub async fn publish_epoch(&self, jid: &str) -> u64 {
        let before = self.head().await.map_or(0, |head| head.size);
        self.publish(jid).await;
        self.head_after(before).await.size
    }

    /// Revokes `jid` and waits for the epoch that holds the revocation: its size.
    pub async fn revoke_epoch(&self, jid: &str) -> u64 {
        let before = self.head().await.map_or(0, |head| head.size);
        self.revoke(jid).await;
        self.head_after(before).await.size
    }

    /// Posts a cosignature; the status and the body.
    pub async fn post_cosignature(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/v0/transparency/cosignatures", self.keydir.url()))
            .json(&body)
            .send()
            .await
            .expect("sent");
        (response.status(), response.json().await.expect("a JSON body"))
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs()
}
