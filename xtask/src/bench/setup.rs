//! The stack a bench run measures: Postgres, keydir (with tokens the bench knows), Prosody with the keyward component and the null component, and published accounts for the load.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keyward_tests::keydir::{Keydir, KeydirOptions};
use keyward_tests::postgres::Postgres;
use keyward_tests::stack::{KeydirChoice, Stack, StackOptions};
use keyward_tests::xmpp::{ServerKind, ServerOptions};

use super::loadgen::Session;
use super::null_component::NullComponent;
use super::p1_lookups::{keys_iq, result_payload};

/// A bench account's password (the same rule as the chaos load's accounts).
pub(crate) fn password(local: &str) -> String {
    format!("password of {local}")
}

/// Everything running for a bench run.
pub(crate) struct BenchStack {
    pub(crate) stack: Stack,
    pub(crate) keydir: Keydir,
    pub(crate) database_url: String,
    pub(crate) component_token: String,
    pub(crate) admin_token: String,
    pub(crate) null_jid: String,
    /// A second bare component, P4's anchor, and its secret.
    pub(crate) bare: (String, String),
    pub(crate) _null: NullComponent,
    /// The null component answering with a real keyward answer's bytes, and that answer's length.
    pub(crate) sized_jid: String,
    pub(crate) sized_payload_len: usize,
    _sized: NullComponent,
    /// The accounts that published keys (local parts), also the load's users.
    pub(crate) users: Vec<String>,
    _accounts: tempfile::TempDir,
}

/// 32 random bytes from the operating system.
pub(crate) fn random32() -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}

fn token() -> Result<String> {
    Ok(hex::encode(random32()?))
}

/// keydir's OPRF seed (base64 of 32 random bytes): first use seals through it, and P7 restores with it.
fn oprf_seed() -> Result<String> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.encode(random32()?))
}

impl BenchStack {
    /// Starts everything with the binaries in `bin_dir`, and registers and publishes `users` accounts.
    pub(crate) async fn start(bin_dir: PathBuf, users: usize) -> Result<Self> {
        for tool in ["prosody", "prosodyctl"] {
            if !std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                bail!("{tool} is not installed (Debian packages: prosody prosody-modules)");
            }
        }
        let postgres = tokio::task::spawn_blocking(Postgres::shared).await.context("starting Postgres")??;
        let database_url = postgres.fresh_database().await?;
        let component_token = token()?;
        let admin_token = token()?;
        let keydir = Keydir::start(KeydirOptions {
            admin_token: admin_token.clone(),
            component_token: component_token.clone(),
            log_filter: "info".into(),
            bin_dir: Some(bin_dir.clone()),
            oprf_seed: Some(oprf_seed()?),
            ..KeydirOptions::new(&database_url)
        })
        .await
        .context("starting keydir")?;
        let null_jid = "null.example.test".to_owned();
        let bare_jid = "bare.example.test".to_owned();
        let sized_jid = "sized.example.test".to_owned();
        let server = ServerOptions {
            registration: true,
            extra_components: vec![null_jid.clone(), bare_jid.clone(), sized_jid.clone()],
            quiet_log: true,
            ..Default::default()
        };
        let options = StackOptions {
            server,
            log_filter: "info".into(),
            bin_dir: Some(bin_dir),
            keydir: KeydirChoice::External { url: keydir.url(), token: component_token.clone() },
            component: crate::load::unthrottled,
            ..StackOptions::default()
        };
        let stack = Stack::start(ServerKind::Prosody, options).await.context("starting Prosody and the component")?;
        let secret = stack.xmpp().options().extra_component_secret(&null_jid);
        let bare = (bare_jid.clone(), stack.xmpp().options().extra_component_secret(&bare_jid));
        let null = NullComponent::start(stack.xmpp().extra_component_addr(), &null_jid, &secret, String::new())
            .await
            .context("starting the null component")?;
        let accounts = keyward_tests::temp_dir("keyward-bench-accounts-")?;
        let target = crate::load::Target::of(&stack)?;
        let mut names = Vec::new();
        for index in 0..users {
            let local = format!("bench{index}");
            let account = target.account(&local, &accounts.path().join(&local), Duration::from_secs(30))?;
            crate::load::create(&account).await.with_context(|| format!("publishing {local}"))?;
            names.push(local);
        }
        // One real answer, for the null component that answers with the same bytes.
        let first = names.first().context("no published account")?;
        let mut asker = Session::login(0, stack.c2s_addr(), stack.domain(), first, &password(first)).await?;
        let answer = asker.ask(&keys_iq(stack.component_jid(), stack.domain(), &names, 0, 1)).await?;
        let payload =
            result_payload(&answer).with_context(|| format!("the component did not answer a lookup: {answer}"))?;
        if !payload.contains("<keys") {
            bail!("the component's answer to a lookup holds no keys: {answer}");
        }
        let sized_payload_len = payload.len();
        let sized_secret = stack.xmpp().options().extra_component_secret(&sized_jid);
        let sized = NullComponent::start(stack.xmpp().extra_component_addr(), &sized_jid, &sized_secret, payload)
            .await
            .context("starting the same-size null component")?;
        Ok(Self {
            stack,
            keydir,
            database_url,
            component_token,
            admin_token,
            null_jid,
            bare,
            _null: null,
            sized_jid,
            sized_payload_len,
            _sized: sized,
            users: names,
            _accounts: accounts,
        })
    }

    /// One bound c2s session per published account.
    pub(crate) async fn sessions(&self) -> Result<Vec<Session>> {
        let mut sessions = Vec::new();
        for (index, user) in self.users.iter().enumerate() {
            sessions
                .push(Session::login(index, self.stack.c2s_addr(), self.stack.domain(), user, &password(user)).await?);
        }
        Ok(sessions)
    }

    /// Runs SQL on the bench's database with psql (stops at the first error).
    pub(crate) async fn psql(&self, sql: &str) -> Result<String> {
        let psql = crate::stack::pg_tool("psql")?;
        let output = tokio::process::Command::new(&psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", &self.database_url, "-c", sql])
            .output()
            .await
            .with_context(|| format!("running {}", psql.display()))?;
        if !output.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Adds filler accounts `filler{from}..filler{to}` with a copy of a real bundle, each held by
    /// one filler holder (rows to search through; nobody looks them up through the component).
    pub(crate) async fn seed(&self, from: u64, to: u64) -> Result<()> {
        let domain = self.stack.domain();
        let model = format!("{}@{domain}", self.users.first().context("no published account")?);
        self.psql(&format!(
            "BEGIN;
             INSERT INTO accounts (jid) SELECT 'filler' || g || '@{domain}' FROM generate_series({from}, {to} - 1) g;
             INSERT INTO bundles (jid, fingerprint, ik, ek, created_unix, sig, xml)
               SELECT 'filler' || g || '@{domain}', b.fingerprint, b.ik, b.ek, b.created_unix, b.sig, b.xml
               FROM generate_series({from}, {to} - 1) g, bundles b WHERE b.jid = '{model}';
             INSERT INTO holders (jid, holder)
               SELECT 'filler' || g || '@{domain}', 'holder' || g || '@{domain}' FROM generate_series({from}, {to} - 1) g;
             COMMIT;"
        ))
        .await?;
        for table in ["accounts", "bundles", "holders"] {
            self.psql(&format!("VACUUM ANALYZE {table}")).await?;
        }
        Ok(())
    }
}
