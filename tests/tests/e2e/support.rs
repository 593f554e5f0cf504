//! Helpers of the end-to-end suite: a stack per test, users with real client sessions, event waits, the admin API.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use keyward_client::keyward_proto::restore::{AnySecret, OprfOutput, OprfSeed, blind, evaluate, finalize};
use keyward_client::keyward_proto::{BareJid, KdfParams, KdfPolicy, KeyPair};
use keyward_client::{Account, ConnectOptions, Incoming, PassphrasePolicy, Session, Setup};
use keyward_tests::stack::{Stack, StackOptions};
use keyward_tests::xmpp::ServerKind;
use secrecy::SecretString;
use tempfile::TempDir;

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The cheapest KDF parameters the client's strict policy accepts: keeps the suite fast.
pub const FAST_KDF: KdfParams = KdfParams { m_kib: 19_456, t: 2, p: 1 };

/// The whole stack with the XMPP server of `kind`, in-band registration allowed.
pub async fn stack(kind: ServerKind) -> anyhow::Result<Stack> {
    stack_with(kind, StackOptions::default()).await
}

/// The whole stack with the XMPP server of `kind`, started with `options`.
pub async fn stack_with(kind: ServerKind, options: StackOptions) -> anyhow::Result<Stack> {
    Stack::start(kind, options).await
}

/// A user of the stack: an XMPP account registered in-band, a passphrase and one device folder.
pub struct User {
    pub jid: BareJid,
    pub password: String,
    pub passphrase: String,
    pub device: TempDir,
    c2s: String,
    component: BareJid,
    /// The stack's OPRF seed (base64), to open this user's blob without keydir ([`User::keys`]).
    oprf_seed: Option<String>,
}

impl User {
    /// Registers `local@domain` in-band (XEP-0077) through the client SDK.
    pub async fn register(stack: &Stack, local: &str) -> anyhow::Result<Self> {
        let jid = BareJid::parse(&format!("{local}@{}", stack.domain()))?;
        let user = Self {
            jid,
            password: format!("xmpp password of {local}"),
            passphrase: format!("passphrase of {local}: correct horse battery staple"),
            device: tempfile::Builder::new().prefix("keyward-device-").tempdir()?,
            c2s: stack.c2s_addr().to_string(),
            component: BareJid::parse(stack.component_jid())?,
            oprf_seed: stack.oprf_seed().map(str::to_owned),
        };
        keyward_client::register(&user.connect_options()).await.with_context(|| format!("registering {local}"))?;
        Ok(user)
    }

    /// How this user connects (plain TCP on loopback).
    pub fn connect_options(&self) -> ConnectOptions {
        let mut options = ConnectOptions::new(self.jid.clone(), SecretString::from(self.password.clone()))
            .server(self.c2s.clone())
            .insecure_plaintext()
            .component(self.component.clone());
        options.timeout = WAIT;
        options
    }

    /// The account on this user's first device.
    pub fn account(&self) -> Account {
        self.account_on(self.device.path())
    }

    /// The account on the device whose data folder is `dir`.
    pub fn account_on(&self, dir: &Path) -> Account {
        let mut account =
            Account::new(self.connect_options(), SecretString::from(self.passphrase.clone()), dir.to_path_buf());
        account.kdf = FAST_KDF;
        account.passphrase_policy = PassphrasePolicy::AllowWeakForTests;
        account
    }

    /// Opens a session on the first device, expecting how the keys were set up.
    pub async fn session(&self, expected: Setup) -> anyhow::Result<Session> {
        let (session, setup) = Session::start(&self.account()).await.with_context(|| format!("{} starts", self.jid))?;
        if setup != expected {
            bail!("{}: keys set up as {setup:?}, expected {expected:?}", self.jid);
        }
        Ok(session)
    }

    /// The account's own key pair, opened from the sealed blob cached on the first device
    /// (as the user's own device would): for tests that craft stanzas as this user.
    pub fn keys(&self) -> anyhow::Result<KeyPair> {
        let store = keyward_client::Store::open(self.device.path(), &self.jid)?;
        let state = store.account()?.context("no keys on the first device")?;
        match state.secret()? {
            AnySecret::V0(blob) => Ok(blob.open(self.passphrase.as_bytes(), &self.jid, &KdfPolicy::STRICT)?),
            AnySecret::V1(blob) => {
                let output = self.oprf_output(self.passphrase.as_bytes())?;
                Ok(blob
                    .open_with_passphrase(self.passphrase.as_bytes(), &output, &self.jid, &KdfPolicy::STRICT)?
                    .into_keys())
            }
        }
    }

    /// keydir's OPRF output for `passphrase` of this user, computed with the stack's seed in
    /// the test (as an attacker holding the seed could): keydir counts nothing.
    pub fn oprf_output(&self, passphrase: &[u8]) -> anyhow::Result<OprfOutput> {
        use base64::Engine;
        let seed = self.oprf_seed.as_deref().context("the stack has no keydir of its own")?;
        let seed = OprfSeed::from_bytes(&base64::engine::general_purpose::STANDARD.decode(seed)?)?;
        let (state, blinded) = blind(passphrase)?;
        Ok(finalize(state, &evaluate(&seed, &self.jid, &blinded)?)?)
    }
}

/// Waits for the first event that `wanted` accepts, within [`WAIT`]; returns it and
/// every event skipped on the way.
pub async fn wait_for(
    session: &mut Session,
    what: &str,
    mut wanted: impl FnMut(&Incoming) -> bool,
) -> anyhow::Result<(Incoming, Vec<Incoming>)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut skipped = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match session.next_event(left).await.with_context(|| format!("{}: waiting for {what}", session.me()))? {
            Some(event) if wanted(&event) => return Ok((event, skipped)),
            Some(event) => skipped.push(event),
            None => bail!("{}: no {what} within {WAIT:?}; got instead: {skipped:?}", session.me()),
        }
    }
}

/// Waits for an event and returns it (skipped events are dropped).
pub async fn expect(
    session: &mut Session,
    what: &str,
    wanted: impl FnMut(&Incoming) -> bool,
) -> anyhow::Result<Incoming> {
    Ok(wait_for(session, what, wanted).await?.0)
}

/// The admin revokes `jid` through keydir's HTTP admin API; returns the JSON answer.
pub async fn revoke(stack: &Stack, jid: &BareJid, reason: &str) -> anyhow::Result<serde_json::Value> {
    stack.revoke(jid.as_str(), reason).await
}

/// A request to keydir's HTTP admin API: the status and the JSON answer (`null` when empty).
pub async fn admin(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", stack.keydir_url()))
        .bearer_auth(stack.admin_token());
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().await.with_context(|| format!("admin request {path}"))?;
    let status = response.status();
    let text = response.text().await?;
    let value = if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text)? };
    Ok((status, value))
}

/// A random marker (16 hex digits), so that plaintexts are unique to one run.
pub fn marker() -> String {
    let random = KeyPair::generate().map(|k| k.fingerprint().to_hex()).unwrap_or_default();
    random.chars().take(16).collect()
}

/// alice and bob, each with the other's key pinned (through add, accept and the relays).
pub async fn mutual_contacts(stack: &Stack) -> anyhow::Result<(User, User, Session, Session)> {
    let alice = User::register(stack, "alice").await?;
    let bob = User::register(stack, "bob").await?;
    let mut a = alice.session(Setup::FirstUse).await?;
    let mut b = bob.session(Setup::FirstUse).await?;
    a.add(&bob.jid).await?;
    b.accept(&alice.jid).await?;
    a.go_online().await?;
    b.go_online().await?;
    Ok((alice, bob, a, b))
}

/// Waits until the keydir of the database at `database_url` has published its map's queue and
/// signed the head of its last epoch.
pub async fn wait_published(database_url: &str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut db = sqlx::PgConnection::connect(database_url).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM transparency_pending").fetch_one(&mut db).await?;
        let signed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM transparency_heads
                 WHERE size = (SELECT coalesce(max(epoch), 0) FROM transparency_epochs))
             OR NOT EXISTS (SELECT 1 FROM transparency_epochs)",
        )
        .fetch_one(&mut db)
        .await?;
        if pending == 0 && signed {
            db.close().await?;
            return Ok(());
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "keydir did not publish its queue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
