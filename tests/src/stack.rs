//! The whole keyward stack on loopback: Postgres (a fresh database), keydir, an XMPP server and the component.
//!
//! keydir and the component run as their real binaries (`keyward-keydir`, `keyward-component`),
//! configured through the environment exactly as an operator would, with stdout and stderr
//! appended to log files in the stack's own temp folder. Each part can be stopped and started
//! again on the same ports and data. [`Stack::start`] is the single entry point, used by the
//! end-to-end tests, `cargo xtask stack up` and the demo.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::net::{http_get, wait_for_port};
use crate::postgres::Postgres;
use crate::xmpp::{ServerKind, ServerOptions, XmppServer};

/// The service binaries the stack runs.
pub const BINARIES: [&str; 2] = ["keyward-keydir", "keyward-component"];

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
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            server: ServerOptions { registration: true, ..ServerOptions::default() },
            log_filter: "debug".into(),
            bin_dir: None,
            start_timeout: Duration::from_secs(60),
        }
    }
}

/// Finds a workspace binary: `bin_dir`, else `KEYWARD_BIN_DIR`, else next to the running
/// executable or one folder up (test executables live in `target/<profile>/deps/`).
pub fn find_binary(name: &str, bin_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = bin_dir {
        candidates.push(dir.to_path_buf());
    } else if let Some(dir) = std::env::var_os("KEYWARD_BIN_DIR").filter(|d| !d.is_empty()) {
        candidates.push(PathBuf::from(dir));
    } else {
        let exe = std::env::current_exe().context("locating the running executable")?;
        candidates.extend(exe.ancestors().skip(1).take(2).map(Path::to_path_buf));
    }
    candidates.iter().map(|dir| dir.join(name)).find(|path| path.is_file()).with_context(|| {
        format!(
            "{name} not found in {candidates:?}: build it first with \
             `cargo build -p keyward-keydir -p keyward-component -p keyward-client --bins`"
        )
    })
}

/// A service binary run as a child process, its output appended to a log file.
#[derive(Debug)]
struct Service {
    name: &'static str,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Service {
    fn new(name: &'static str, binary: PathBuf, args: &[&str], env: Vec<(String, String)>, log: PathBuf) -> Self {
        Self { name, binary, args: args.iter().map(|a| (*a).to_owned()).collect(), env, log, child: None }
    }

    fn log_file(&self) -> anyhow::Result<std::fs::File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))
    }

    fn command(&self, args: &[String]) -> anyhow::Result<Command> {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(self.log_file()?)
            .stderr(self.log_file()?)
            .kill_on_drop(true);
        Ok(command)
    }

    /// Runs the binary once with other arguments (e.g. `migrate`) and checks it succeeds.
    async fn run_once(&self, args: &[&str]) -> anyhow::Result<()> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let status = self.command(&args)?.status().await.with_context(|| format!("running {}", self.name))?;
        if !status.success() {
            bail!("{} {args:?} failed ({status}); see {}", self.name, self.log.display());
        }
        Ok(())
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let child = self.command(&self.args)?.spawn().with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// Fails if the process has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.child = None;
            bail!("{} exited ({status}); log tail:\n{}", self.name, tail(&self.log, 30));
        }
        Ok(())
    }

    /// SIGTERM and wait (SIGKILL after 15 s).
    async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        if let Some(pid) = child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        if tokio::time::timeout(Duration::from_secs(15), child.wait()).await.is_err() {
            child.kill().await.with_context(|| format!("killing {}", self.name))?;
            bail!("{} did not stop within 15 s of SIGTERM", self.name);
        }
        Ok(())
    }

    /// SIGKILL: a crash.
    async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.with_context(|| format!("killing {}", self.name))?;
        }
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

/// The last `lines` lines of a text file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running keyward stack. Everything stops when it is dropped.
#[derive(Debug)]
pub struct Stack {
    dir: TempDir,
    database_url: String,
    xmpp: XmppServer,
    keydir: Service,
    keydir_addr: SocketAddr,
    keydir_metrics: SocketAddr,
    component: Service,
    component_metrics: SocketAddr,
    admin_token: String,
    start_timeout: Duration,
}

/// A fresh random token (32 bytes, hex): every stack has its own, so a stack left running
/// on a shared machine cannot be administered with a token from the source code.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(bytes))
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
        let keydir_bin = find_binary("keyward-keydir", options.bin_dir.as_deref())?;
        let component_bin = find_binary("keyward-component", options.bin_dir.as_deref())?;
        let dir = tempfile::Builder::new().prefix("keyward-stack-").tempdir().context("creating the stack folder")?;
        let postgres = tokio::task::spawn_blocking(Postgres::shared).await.context("starting Postgres")??;
        let database_url = postgres.fresh_database().await?;
        let admin_token = random_token()?;
        let component_token = random_token()?;

        let keydir_addr = SocketAddr::from(([127, 0, 0, 1], crate::free_port()?));
        let keydir_metrics = SocketAddr::from(([127, 0, 0, 1], crate::free_port()?));
        let keydir_env = vec![
            ("KEYWARD_DATABASE_URL".to_owned(), database_url.clone()),
            ("KEYWARD_ADMIN_TOKEN".to_owned(), admin_token.clone()),
            ("KEYWARD_COMPONENT_TOKEN".to_owned(), component_token.clone()),
            ("KEYWARD_LISTEN".to_owned(), keydir_addr.to_string()),
            ("KEYWARD_METRICS_LISTEN".to_owned(), keydir_metrics.to_string()),
            ("KEYWARD_SWEEP_MS".to_owned(), "500".to_owned()),
            ("KEYWARD_DB_POOL_MAX".to_owned(), "4".to_owned()),
            ("RUST_LOG".to_owned(), options.log_filter.clone()),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        let mut keydir =
            Service::new("keyward-keydir", keydir_bin, &["serve"], keydir_env, dir.path().join("keydir.log"));
        keydir.run_once(&["migrate"]).await?;
        keydir.spawn()?;

        let xmpp = XmppServer::start(kind, options.server.clone()).await?;

        let component_metrics = SocketAddr::from(([127, 0, 0, 1], crate::free_port()?));
        let component_env = vec![
            ("KEYWARD_XMPP_ADDR".to_owned(), xmpp.component_addr().to_string()),
            ("KEYWARD_COMPONENT_JID".to_owned(), xmpp.component_jid().to_owned()),
            ("KEYWARD_COMPONENT_SECRET".to_owned(), xmpp.secret().to_owned()),
            ("KEYWARD_KEYDIR_URL".to_owned(), format!("http://{keydir_addr}")),
            ("KEYWARD_COMPONENT_TOKEN".to_owned(), component_token.clone()),
            ("KEYWARD_METRICS_LISTEN".to_owned(), component_metrics.to_string()),
            ("KEYWARD_RECONNECT_MIN_MS".to_owned(), "100".to_owned()),
            ("KEYWARD_RECONNECT_MAX_MS".to_owned(), "1000".to_owned()),
            ("RUST_LOG".to_owned(), options.log_filter.clone()),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        let component = Service::new(
            "keyward-component",
            component_bin,
            &["serve"],
            component_env,
            dir.path().join("component.log"),
        );
        let mut stack = Self {
            dir,
            database_url,
            xmpp,
            keydir,
            keydir_addr,
            keydir_metrics,
            component,
            component_metrics,
            admin_token,
            start_timeout: options.start_timeout,
        };
        stack.wait_keydir().await?;
        stack.start_component().await?;
        Ok(stack)
    }

    async fn wait_keydir(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.start_timeout;
        loop {
            self.keydir.check_alive()?;
            if wait_for_port(self.keydir_addr, Duration::from_millis(100)).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("keydir did not listen on {} within {:?}", self.keydir_addr, self.start_timeout);
            }
        }
    }

    /// Starts the component (if stopped) and waits until its stream is up.
    pub async fn start_component(&mut self) -> anyhow::Result<()> {
        if self.component.child.is_none() {
            self.component.spawn()?;
        }
        self.wait_component_up().await
    }

    /// Waits until the component's `/healthz` says its stream is up.
    pub async fn wait_component_up(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.start_timeout;
        loop {
            self.component.check_alive()?;
            if matches!(http_get(self.component_metrics, "/healthz").await, Ok((200, _))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the component's stream was not up within {:?}; log tail:\n{}",
                    self.start_timeout,
                    tail(&self.component_log_path(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Which XMPP server runs.
    pub fn kind(&self) -> ServerKind {
        self.xmpp.kind()
    }

    /// The XMPP server fixture (to register users, restart it...).
    pub fn xmpp(&self) -> &XmppServer {
        &self.xmpp
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
        format!("http://{}", self.keydir_addr)
    }

    /// keydir's metrics page URL.
    pub fn keydir_metrics_url(&self) -> String {
        format!("http://{}/metrics", self.keydir_metrics)
    }

    /// The component's metrics and health address (`/metrics`, `/healthz`).
    pub fn component_metrics_addr(&self) -> SocketAddr {
        self.component_metrics
    }

    /// keydir's admin token (random, this stack's own).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The database URL (a database of its own in the shared Postgres).
    pub fn database_url(&self) -> &str {
        &self.database_url
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
        (self.keydir.pid(), self.component.pid())
    }

    /// Stops keydir (SIGTERM, graceful).
    pub async fn stop_keydir(&mut self) -> anyhow::Result<()> {
        self.keydir.stop().await
    }

    /// Kills keydir (SIGKILL, as a crash would).
    pub async fn kill_keydir(&mut self) -> anyhow::Result<()> {
        self.keydir.kill().await
    }

    /// Starts keydir again (if stopped) on the same ports and database.
    pub async fn start_keydir(&mut self) -> anyhow::Result<()> {
        if self.keydir.child.is_none() {
            self.keydir.spawn()?;
        }
        self.wait_keydir().await
    }

    /// Stops and starts keydir.
    pub async fn restart_keydir(&mut self) -> anyhow::Result<()> {
        self.keydir.stop().await?;
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

    /// Restarts the XMPP server (same ports and data) and waits until the component is back.
    pub async fn restart_xmpp(&mut self) -> anyhow::Result<()> {
        self.xmpp.restart().await?;
        self.wait_component_up().await
    }

    /// Stops the component, keydir and the XMPP server, in that order (their logs are then complete).
    /// The database and the folders stay until the stack is dropped.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let component = self.component.stop().await;
        let keydir = self.keydir.stop().await;
        let xmpp = self.xmpp.stop().await;
        component.and(keydir).and(xmpp)
    }

    /// `pg_dump` of the stack's database (plain SQL, data and schema).
    pub async fn pg_dump(&self) -> anyhow::Result<Vec<u8>> {
        let pg_dump = crate::postgres::bindir()?.join("pg_dump");
        let output = Command::new(&pg_dump)
            .arg("--no-owner")
            .arg(&self.database_url)
            .output()
            .await
            .with_context(|| format!("running {}", pg_dump.display()))?;
        if !output.status.success() {
            bail!("pg_dump failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(output.stdout)
    }
}
