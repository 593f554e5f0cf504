//! A real keydir for tests: the `keyward-keydir` binary, migrated and serving on free loopback ports.
//!
//! It can be stopped (SIGTERM), killed (SIGKILL) and started again on the same ports and
//! database. The stack, the keydir suite and the component's and client's tests all use it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{ServiceProcess, find_binary, log_location, retry_on_taken_port};

/// The admin token of a test keydir (the stack uses random tokens instead).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The component token of a test keydir (the stack uses random tokens instead).
pub const COMPONENT_TOKEN: &str = "test-component-token-0123456789";

/// How a test keydir is configured (each field becomes the environment variable an operator sets).
#[derive(Debug, Clone)]
pub struct KeydirOptions {
    /// `KEYWARD_DATABASE_URL`.
    pub database_url: String,
    /// `KEYWARD_ADMIN_TOKEN`.
    pub admin_token: String,
    /// `KEYWARD_COMPONENT_TOKEN`.
    pub component_token: String,
    /// `KEYWARD_SWEEP_MS`: how often waiting claims look at the outbox without a NOTIFY.
    pub sweep: Duration,
    /// `KEYWARD_MAX_CLAIM_WAIT_MS`, when set.
    pub max_claim_wait: Option<Duration>,
    /// `KEYWARD_DB_POOL_MAX`, when set.
    pub pool_max: Option<u32>,
    /// `RUST_LOG`; by default `KEYWARD_TEST_LOG`, else `warn`.
    pub log_filter: String,
    /// `KEYWARD_TLS_CERT` and `KEYWARD_TLS_KEY`: the API serves HTTPS with this certificate
    /// (then [`Keydir::url`] is `https://`).
    pub tls: Option<crate::tls::TlsFiles>,
    /// Whether [`Keydir::start`] runs `migrate` first (off for a keydir that is meant not to
    /// reach its database).
    pub migrate: bool,
    /// `KEYWARD_OPRF_SEED` (base64), when set: without it keydir answers restores with 503.
    pub oprf_seed: Option<String>,
    /// Any other variables; they override the ones above.
    pub env: Vec<(String, String)>,
    /// Where the log goes; by default a temp folder of the keydir's own.
    pub log: Option<PathBuf>,
    /// The folder holding the binary (see [`find_binary`]).
    pub bin_dir: Option<PathBuf>,
}

impl KeydirOptions {
    /// The test defaults on `database_url`: fixed test tokens, a 200 ms sweep.
    pub fn new(database_url: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            admin_token: ADMIN_TOKEN.to_owned(),
            component_token: COMPONENT_TOKEN.to_owned(),
            sweep: Duration::from_millis(200),
            max_claim_wait: None,
            pool_max: None,
            log_filter: std::env::var("KEYWARD_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            tls: None,
            migrate: true,
            oprf_seed: None,
            env: Vec::new(),
            log: None,
            bin_dir: None,
        }
    }

    fn environment(&self, api: SocketAddr, metrics: SocketAddr) -> Vec<(String, String)> {
        let mut env = vec![
            ("KEYWARD_DATABASE_URL".to_owned(), self.database_url.clone()),
            ("KEYWARD_ADMIN_TOKEN".to_owned(), self.admin_token.clone()),
            ("KEYWARD_COMPONENT_TOKEN".to_owned(), self.component_token.clone()),
            ("KEYWARD_LISTEN".to_owned(), api.to_string()),
            ("KEYWARD_METRICS_LISTEN".to_owned(), metrics.to_string()),
            ("KEYWARD_SWEEP_MS".to_owned(), self.sweep.as_millis().to_string()),
            ("KEYWARD_LOG_FORMAT".to_owned(), "json".to_owned()),
            ("RUST_LOG".to_owned(), self.log_filter.clone()),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        if let Some(wait) = self.max_claim_wait {
            env.push(("KEYWARD_MAX_CLAIM_WAIT_MS".to_owned(), wait.as_millis().to_string()));
        }
        if let Some(max) = self.pool_max {
            env.push(("KEYWARD_DB_POOL_MAX".to_owned(), max.to_string()));
        }
        if let Some(tls) = &self.tls {
            env.push(("KEYWARD_TLS_CERT".to_owned(), tls.cert.display().to_string()));
            env.push(("KEYWARD_TLS_KEY".to_owned(), tls.key.display().to_string()));
        }
        if let Some(seed) = &self.oprf_seed {
            env.push(("KEYWARD_OPRF_SEED".to_owned(), seed.clone()));
        }
        env.extend(self.env.iter().cloned());
        env
    }
}

/// A running `keyward-keydir serve`. Killed when dropped.
#[derive(Debug)]
pub struct Keydir {
    process: ServiceProcess,
    api: SocketAddr,
    metrics: SocketAddr,
    https: bool,
    _dir: Option<TempDir>,
}

impl Keydir {
    /// Runs `keyward-keydir migrate`, then `serve` on free loopback ports, and waits until both
    /// listeners accept connections (trying new ports if a parallel test took the picked ones).
    pub async fn start(options: KeydirOptions) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        let binary = find_binary("keyward-keydir", options.bin_dir.as_deref())?;
        let (dir, log) = log_location(options.log.as_deref(), "keyward-keydir")?;
        let mut keydir = retry_on_taken_port(|attempt| {
            let (binary, log, options) = (binary.clone(), log.clone(), &options);
            async move {
                let api = SocketAddr::from(([127, 0, 0, 1], crate::free_port()?));
                let metrics = SocketAddr::from(([127, 0, 0, 1], crate::free_port()?));
                let env = options.environment(api, metrics);
                let process = ServiceProcess::new("keyward-keydir", binary, &["serve"], env, log);
                if attempt == 1 && options.migrate {
                    process.run_once(&["migrate"]).await?;
                }
                let mut keydir = Self { process, api, metrics, https: options.tls.is_some(), _dir: None };
                keydir.start_again().await?;
                Ok(keydir)
            }
        })
        .await?;
        keydir._dir = dir;
        Ok(keydir)
    }

    /// Starts the process again (after [`stop`](Self::stop) or [`kill`](Self::kill)) on the
    /// same ports and database, and waits until it listens.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.process.spawn()?;
        self.process.wait_listening(&[self.api, self.metrics], Duration::from_secs(30)).await
    }

    /// Kills it (SIGKILL) and starts it again.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        self.start_again().await
    }

    /// SIGKILL: no shutdown at all, as a crash.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.process.kill().await
    }

    /// SIGTERM and wait (graceful: waiting claims are answered first).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.process.stop().await
    }

    /// SIGTERM, then waits at most `timeout` for the exit, and returns the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.process.terminate(timeout).await
    }

    /// Whether it was started and not stopped or killed.
    pub fn is_started(&self) -> bool {
        self.process.is_started()
    }

    /// Base URL of the API, e.g. `http://127.0.0.1:41234` (`https://` when started with TLS files).
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.api)
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.api
    }

    /// URL of the metrics page.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics)
    }

    /// The metrics listener's address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Its log (stdout and stderr, `migrate` included).
    pub fn log_path(&self) -> PathBuf {
        self.process.log_path().to_path_buf()
    }

    /// The underlying process (to check whether it exited, read its log...).
    pub fn process(&mut self) -> &mut ServiceProcess {
        &mut self.process
    }
}
