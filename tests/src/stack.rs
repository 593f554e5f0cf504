//! The whole keyward stack on loopback: Postgres (a fresh database), keydir, an XMPP server and the component.
//!
//! keydir and the component run as their real binaries (`keyward-keydir`, `keyward-component`),
//! configured through the environment exactly as an operator would, with stdout and stderr
//! appended to log files in the stack's own temp folder. Each part can be stopped and started
//! again on the same ports and data. [`Stack::start`] is the single entry point, used by the
//! end-to-end tests, `cargo xtask stack up` and the demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::process::Command;

use crate::component::{Component, ComponentOptions};
use crate::keydir::{Keydir, KeydirOptions};
use crate::postgres::Postgres;
use crate::tls::TestCa;
use crate::xmpp::{ServerKind, ServerOptions, XmppServer};

/// How a stack is set up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The XMPP server's options (domain, component JID and secret, privilege, registration).
    pub server: ServerOptions,
    /// `RUST_LOG` of keydir and the component.
    pub log_filter: String,
    /// The folder holding `keyward-keydir` and `keyward-component`; by default the
    /// `KEYWARD_BIN_DIR` environment variable, else the cargo target folder of the running executable.
    pub bin_dir: Option<PathBuf>,
    /// How long the component may take to bring its stream up.
    pub start_timeout: Duration,
    /// Where keydir is: a real one on a fresh database, or a URL of the test's own (where
    /// nothing listens, say, or a proxy that holds answers).
    pub keydir: KeydirChoice,
    /// Changes to the component's settings (its keydir timeout, say) before it starts.
    pub component: fn(&mut ComponentOptions),
    /// Run keydir's database in a crash-safe Postgres cluster of the stack's own instead of the
    /// shared one, so that it can be killed and started again ([`Stack::kill_postgres`]).
    pub own_postgres: bool,
    /// Whether the stack's own keydir ([`KeydirChoice::Real`]) serves HTTPS, and which CA the
    /// component trusts for it.
    pub keydir_tls: KeydirTls,
    /// More environment variables of the stack's own keydir (e.g. the auditors it accepts).
    pub keydir_env: Vec<(String, String)>,
}

/// HTTPS between the component and the stack's own keydir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeydirTls {
    /// Plain HTTP on loopback.
    #[default]
    Off,
    /// keydir serves HTTPS with a certificate from a throwaway CA; the component trusts that
    /// CA through `KEYWARD_KEYDIR_CA`.
    On,
    /// keydir serves HTTPS as with `On`, but the component trusts another throwaway CA:
    /// every keydir request must fail certificate verification.
    WrongCa,
}

/// Where the stack's component finds keydir.
#[derive(Debug, Clone)]
pub enum KeydirChoice {
    /// A real keydir on a fresh database of the shared Postgres.
    Real,
    /// No keydir of the stack's own: the component is pointed at this URL with this token.
    External {
        /// keydir's base URL.
        url: String,
        /// The component token the component sends.
        token: String,
    },
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            server: ServerOptions { registration: true, ..ServerOptions::default() },
            log_filter: "debug".into(),
            bin_dir: None,
            start_timeout: Duration::from_secs(60),
            keydir: KeydirChoice::Real,
            component: |_| {},
            own_postgres: false,
            keydir_tls: KeydirTls::Off,
            keydir_env: Vec::new(),
        }
    }
}

/// A running keyward stack. Everything stops when it is dropped.
#[derive(Debug)]
pub struct Stack {
    dir: TempDir,
    database_url: Option<String>,
    xmpp: XmppServer,
    keydir: Option<Keydir>,
    keydir_url: String,
    component: Component,
    component_options: ComponentOptions,
    admin_token: String,
    /// keydir's OPRF seed (base64), for tests that must open a version 1 blob without keydir.
    oprf_seed: Option<String>,
    /// keydir's head signing key (base64 Ed25519 seed), for tests that play a directory signing a fork.
    signing_key: Option<String>,
    /// keydir's VRF private key (base64), for the blindness test.
    vrf_key: Option<String>,
    start_timeout: Duration,
    /// The CAs of [`KeydirTls`]: keydir's, and the one the component trusts instead.
    _cas: Vec<TestCa>,
    /// The stack's own cluster ([`StackOptions::own_postgres`]); last, so that it stops last.
    postgres: Option<Postgres>,
}

/// How often the stack's keydir publishes an epoch of its transparency map.
pub const TRANSPARENCY_EPOCH_MS: u64 = 250;

/// A fresh random token (32 bytes, hex): every stack has its own, so a stack left running
/// on a shared machine cannot be administered with a token from the source code.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(bytes))
}

/// A fresh OPRF seed for keydir: 32 random bytes, base64.
fn random_seed() -> anyhow::Result<String> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::env::var_os("KEYWARD_TEST_KEEP").is_some() {
            let kept = std::mem::replace(&mut self.dir, TempDir::new().unwrap_or_else(|_| std::process::abort()));
            eprintln!("keeping the stack's logs in {}", kept.keep().display());
        }
    }
}

impl Stack {
    /// Starts everything on loopback: a fresh database in the process's shared Postgres,
    /// keydir (migrated), the XMPP server of `kind` and the component, and waits until
    /// the component's stream is up.
    pub async fn start(kind: ServerKind, options: StackOptions) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        let dir = tempfile::Builder::new().prefix("keyward-stack-").tempdir().context("creating the stack folder")?;
        let admin_token = random_token()?;
        let mut own_postgres = None;
        let mut cas = Vec::new();
        let mut component_ca = None;
        if options.keydir_tls != KeydirTls::Off {
            cas.push(TestCa::loopback()?);
            if options.keydir_tls == KeydirTls::WrongCa {
                cas.push(TestCa::loopback()?);
            }
            component_ca = cas.last().map(|ca| ca.files().ca.clone());
        }
        let oprf_seed = random_seed()?;
        let signing_key = random_seed()?;
        let vrf_key = random_seed()?;
        let (keydir, database_url, keydir_url, component_token) = match &options.keydir {
            KeydirChoice::Real => {
                let database_url = if options.own_postgres {
                    let postgres = tokio::task::spawn_blocking(Postgres::start_crash_safe)
                        .await
                        .context("starting Postgres")??;
                    let url = postgres.fresh_database().await?;
                    own_postgres = Some(postgres);
                    url
                } else {
                    let postgres =
                        tokio::task::spawn_blocking(Postgres::shared).await.context("starting Postgres")??;
                    postgres.fresh_database().await?
                };
                let component_token = random_token()?;
                let keydir = Keydir::start(KeydirOptions {
                    admin_token: admin_token.clone(),
                    component_token: component_token.clone(),
                    sweep: Duration::from_millis(500),
                    pool_max: Some(4),
                    log_filter: options.log_filter.clone(),
                    log: Some(dir.path().join("keydir.log")),
                    bin_dir: options.bin_dir.clone(),
                    tls: cas.first().map(|ca| ca.files().clone()),
                    oprf_seed: Some(oprf_seed.clone()),
                    // Key transparency on, as operators run it, with epochs every 250 ms.
                    env: vec![
                        ("KEYWARD_VRF_KEY".to_owned(), vrf_key.clone()),
                        ("KEYWARD_TRANSPARENCY_SIGNING_KEY".to_owned(), signing_key.clone()),
                        ("KEYWARD_TRANSPARENCY_EPOCH_MS".to_owned(), TRANSPARENCY_EPOCH_MS.to_string()),
                    ]
                    .into_iter()
                    .chain(options.keydir_env.iter().cloned())
                    .collect(),
                    ..KeydirOptions::new(&database_url)
                })
                .await?;
                let url = keydir.url();
                (Some(keydir), Some(database_url), url, component_token)
            }
            KeydirChoice::External { url, token } => (None, None, url.clone(), token.clone()),
        };

        let xmpp = XmppServer::start(kind, options.server.clone()).await?;
        let mut component_options = ComponentOptions {
            log_filter: options.log_filter.clone(),
            log: Some(dir.path().join("component.log")),
            bin_dir: options.bin_dir.clone(),
            keydir_ca: component_ca,
            ..ComponentOptions::for_server(&xmpp, &keydir_url, &component_token)
        };
        (options.component)(&mut component_options);
        let component = Component::start(component_options.clone()).await?;
        let own_seed = keydir.is_some().then_some(oprf_seed);
        let signing_key = keydir.is_some().then_some(signing_key);
        let vrf_key = keydir.is_some().then_some(vrf_key);
        let stack = Self {
            dir,
            database_url,
            xmpp,
            keydir,
            keydir_url,
            component,
            component_options,
            admin_token,
            oprf_seed: own_seed,
            signing_key,
            vrf_key,
            start_timeout: options.start_timeout,
            _cas: cas,
            postgres: own_postgres,
        };
        stack.wait_component_up().await?;
        Ok(stack)
    }

    /// Starts the component (if stopped) and waits until its stream is up.
    pub async fn start_component(&mut self) -> anyhow::Result<()> {
        if !self.component.is_started() {
            self.component.start_again().await?;
        }
        self.wait_component_up().await
    }

    /// Stops the component and starts a new one with its options changed by `edit` (to reach
    /// the server through a proxy, say); waits until its stream is up.
    pub async fn replace_component(&mut self, edit: impl FnOnce(&mut ComponentOptions)) -> anyhow::Result<()> {
        self.component.stop().await?;
        let mut options = self.component_options.clone();
        edit(&mut options);
        self.component = Component::start(options.clone()).await?;
        self.component_options = options;
        self.wait_component_up().await
    }

    /// Starts another component process with this stack's component settings (the same JID,
    /// secret and keydir), as a second replica; its log is `component-<name>.log` in the stack's
    /// folder. Returns once its metrics listener accepts connections: whether its stream comes up
    /// is the server's choice (ejabberd balances between both, Prosody refuses it with `conflict`).
    pub async fn start_replica(
        &self,
        name: &str,
        edit: impl FnOnce(&mut ComponentOptions),
    ) -> anyhow::Result<Component> {
        let mut options = self.component_options.clone();
        options.log = Some(self.dir.path().join(format!("component-{name}.log")));
        edit(&mut options);
        Component::start(options).await
    }

    /// The component's settings (its keydir URL and token, say, to speak to keydir as it does).
    pub fn component_options(&self) -> &ComponentOptions {
        &self.component_options
    }

    /// Waits until the component's `/healthz` says its stream is up.
    pub async fn wait_component_up(&self) -> anyhow::Result<()> {
        self.component.wait_up(self.start_timeout).await.map(drop)
    }

    /// The component (its metrics, health, process).
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// The component, to stop, kill or start it by hand.
    pub fn component_mut(&mut self) -> &mut Component {
        &mut self.component
    }

    /// Which XMPP server runs.
    pub fn kind(&self) -> ServerKind {
        self.xmpp.kind()
    }

    /// The XMPP server fixture (to register users...).
    pub fn xmpp(&self) -> &XmppServer {
        &self.xmpp
    }

    /// The XMPP server fixture, to stop and restart it.
    pub fn xmpp_mut(&mut self) -> &mut XmppServer {
        &mut self.xmpp
    }

    /// The c2s address (plain TCP on loopback; STARTTLS required with [`ServerOptions::tls`]).
    pub fn c2s_addr(&self) -> SocketAddr {
        self.xmpp.c2s_addr()
    }

    /// The direct TLS c2s address, when the server was started with [`ServerOptions::tls`].
    pub fn direct_tls_addr(&self) -> Option<SocketAddr> {
        self.xmpp.direct_tls_addr()
    }

    /// The user domain.
    pub fn domain(&self) -> &str {
        self.xmpp.domain()
    }

    /// The component's JID.
    pub fn component_jid(&self) -> &str {
        self.xmpp.component_jid()
    }

    /// keydir's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn keydir_url(&self) -> String {
        self.keydir_url.clone()
    }

    /// keydir's metrics page URL (a stack with [`KeydirChoice::External`] has none).
    pub fn keydir_metrics_url(&self) -> anyhow::Result<String> {
        Ok(self.keydir()?.metrics_url())
    }

    /// keydir's `keyward_keydir_notices_pending`: notices not yet acknowledged (counted at
    /// each scrape).
    pub async fn notices_pending(&self) -> anyhow::Result<f64> {
        let (_, page) = crate::net::http_get(self.keydir()?.metrics_addr(), "/metrics").await?;
        page.lines()
            .find_map(|line| line.strip_prefix("keyward_keydir_notices_pending "))
            .and_then(|value| value.trim().parse().ok())
            .with_context(|| format!("no keyward_keydir_notices_pending in\n{page}"))
    }

    /// Waits until keydir holds no unacknowledged notice. The component acknowledges a notice
    /// only once the server answered a ping sent behind it, so by then the server has stored
    /// every notice for its offline recipients.
    pub async fn wait_notices_acknowledged(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let pending = self.notices_pending().await?;
            if pending == 0.0 {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                bail!("{pending} notice(s) still pending after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn keydir(&self) -> anyhow::Result<&Keydir> {
        self.keydir.as_ref().context("this stack runs no keydir of its own")
    }

    fn keydir_mut(&mut self) -> anyhow::Result<&mut Keydir> {
        self.keydir.as_mut().context("this stack runs no keydir of its own")
    }

    /// The component's metrics and health address (`/metrics`, `/healthz`).
    pub fn component_metrics_addr(&self) -> SocketAddr {
        self.component.metrics_addr()
    }

    /// The OPRF seed (base64) of the stack's own keydir: a server-side secret, for tests that
    /// play the attacker who holds it, or open a user's blob without counting a guess.
    pub fn oprf_seed(&self) -> Option<&str> {
        self.oprf_seed.as_deref()
    }

    /// keydir's VRF private key (base64), when the stack runs keydir: a server-side secret.
    pub fn vrf_key(&self) -> Option<&str> {
        self.vrf_key.as_deref()
    }

    /// keydir's transparency head signing key (base64 Ed25519 seed), when the stack runs keydir.
    pub fn signing_key(&self) -> Option<&str> {
        self.signing_key.as_deref()
    }

    /// keydir's admin token (random, this stack's own).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The admin revokes `jid` through keydir's HTTP admin API; returns the JSON answer.
    pub async fn revoke(&self, jid: &str, reason: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/v0/admin/accounts/{jid}/revoke", self.keydir_url());
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(&self.admin_token)
            .json(&serde_json::json!({ "reason": reason }))
            .send()
            .await
            .context("POST revoke")?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("revoke answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// The database URL (a database of its own in the shared Postgres), when keydir is the stack's own.
    pub fn database_url(&self) -> anyhow::Result<&str> {
        self.database_url.as_deref().context("this stack runs no keydir of its own")
    }

    /// The XMPP server's folder: everything it stores (users, rosters, offline messages) and its log.
    pub fn server_data_dir(&self) -> PathBuf {
        self.xmpp.data_dir()
    }

    /// The XMPP server's log file.
    pub fn xmpp_log_path(&self) -> PathBuf {
        self.xmpp.log_path()
    }

    /// keydir's log (stdout and stderr of the binary, `migrate` included).
    pub fn keydir_log_path(&self) -> PathBuf {
        self.dir.path().join("keydir.log")
    }

    /// The component's log (stdout and stderr of the binary).
    pub fn component_log_path(&self) -> PathBuf {
        self.dir.path().join("component.log")
    }

    /// Every server-side log: XMPP server, keydir, component.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        vec![self.xmpp_log_path(), self.keydir_log_path(), self.component_log_path()]
    }

    /// The process ids of keydir and the component, while they run.
    pub fn pids(&self) -> (Option<u32>, Option<u32>) {
        (self.keydir.as_ref().and_then(Keydir::pid), self.component.pid())
    }

    /// Stops keydir (SIGTERM, graceful).
    pub async fn stop_keydir(&mut self) -> anyhow::Result<()> {
        self.keydir_mut()?.stop().await
    }

    /// Kills keydir (SIGKILL, as a crash would).
    pub async fn kill_keydir(&mut self) -> anyhow::Result<()> {
        self.keydir_mut()?.kill().await
    }

    /// Starts keydir again (if stopped) on the same ports and database.
    pub async fn start_keydir(&mut self) -> anyhow::Result<()> {
        let keydir = self.keydir_mut()?;
        if !keydir.is_started() {
            keydir.start_again().await?;
        }
        Ok(())
    }

    /// Stops and starts keydir.
    pub async fn restart_keydir(&mut self) -> anyhow::Result<()> {
        self.stop_keydir().await?;
        self.start_keydir().await
    }

    /// Stops the component (SIGTERM, graceful).
    pub async fn stop_component(&mut self) -> anyhow::Result<()> {
        self.component.stop().await
    }

    /// Stops and starts the component, and waits for its stream.
    pub async fn restart_component(&mut self) -> anyhow::Result<()> {
        self.component.stop().await?;
        self.start_component().await
    }

    /// Stops the XMPP server.
    pub async fn stop_xmpp(&mut self) -> anyhow::Result<()> {
        self.xmpp.stop().await
    }

    /// Kills the XMPP server (SIGKILL, as a crash would); [`restart_xmpp`](Self::restart_xmpp) starts it again.
    pub async fn kill_xmpp(&mut self) -> anyhow::Result<()> {
        self.xmpp.kill().await
    }

    /// Kills the component (SIGKILL, as a crash would); [`start_component`](Self::start_component) starts it again.
    pub async fn kill_component(&mut self) -> anyhow::Result<()> {
        self.component.kill().await
    }

    /// Kills the stack's own Postgres cluster: SIGKILL to all its processes at once, as a
    /// crash would. Needs [`StackOptions::own_postgres`].
    pub async fn kill_postgres(&mut self) -> anyhow::Result<()> {
        self.with_own_postgres(Postgres::kill).await
    }

    /// Starts the stack's own Postgres cluster again after [`kill_postgres`](Self::kill_postgres),
    /// on the same port and data (crash recovery runs); returns once it accepts connections.
    pub async fn start_postgres(&mut self) -> anyhow::Result<()> {
        self.with_own_postgres(Postgres::start_again).await
    }

    /// The postmaster's process ID of the stack's own cluster, while it runs.
    pub fn postgres_pid(&self) -> Option<u32> {
        self.postgres.as_ref().map(Postgres::pid).filter(|pid| *pid != 0)
    }

    /// The XMPP server's process ID, while it runs.
    pub fn xmpp_pid(&self) -> Option<u32> {
        self.xmpp.pid()
    }

    /// Runs a blocking operation on the stack's own cluster off the async threads.
    async fn with_own_postgres(&mut self, operation: fn(&mut Postgres) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut postgres = self.postgres.take().context("this stack has no Postgres of its own (own_postgres)")?;
        let (postgres, result) = tokio::task::spawn_blocking(move || {
            let result = operation(&mut postgres);
            (postgres, result)
        })
        .await
        .context("the Postgres task failed")?;
        self.postgres = Some(postgres);
        result
    }

    /// Restarts the XMPP server (same ports and data) and waits until the component is back.
    pub async fn restart_xmpp(&mut self) -> anyhow::Result<()> {
        self.xmpp.restart().await?;
        self.wait_component_up().await
    }

    /// Stops the component, keydir and the XMPP server, in that order (their logs are then complete).
    /// The database and the folders stay until the stack is dropped.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let component = self.component.stop().await;
        let keydir = match self.keydir.as_mut() {
            Some(keydir) => keydir.stop().await,
            None => Ok(()),
        };
        let xmpp = self.xmpp.stop().await;
        component.and(keydir).and(xmpp)
    }

    /// `pg_dump` of the stack's database (plain SQL, data and schema).
    pub async fn pg_dump(&self) -> anyhow::Result<Vec<u8>> {
        let pg_dump = crate::postgres::bindir()?.join("pg_dump");
        let output = Command::new(&pg_dump)
            .arg("--no-owner")
            .arg(self.database_url()?)
            .output()
            .await
            .with_context(|| format!("running {}", pg_dump.display()))?;
        if !output.status.success() {
            bail!("pg_dump failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(output.stdout)
    }
}
