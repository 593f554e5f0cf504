//! A real keydir for tests: in-process on port 0 (via `keyward_keydir::run`) or as the built binary.
//!
//! Both can be stopped and restarted against the same database; the process
//! form can also be killed (SIGKILL) or terminated (SIGTERM).

use anyhow::{Context, bail};
use keyward_keydir::Settings;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The admin token every test keydir uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The component token every test keydir uses.
pub const COMPONENT_TOKEN: &str = "test-component-token-0123456789";

/// Settings for a test keydir on `database_url`, with a short outbox sweep.
pub fn settings(database_url: &str) -> anyhow::Result<Settings> {
    let mut settings = Settings::new(database_url, ADMIN_TOKEN, COMPONENT_TOKEN)?;
    settings.sweep = Duration::from_millis(200);
    Ok(settings)
}

/// Applies keydir's migrations to `database_url`.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    let pool = keyward_keydir::connect(&settings(database_url)?)?;
    keyward_keydir::migrate(&pool).await?;
    pool.close().await;
    Ok(())
}

/// A keydir running in this process.
pub struct Keydir {
    settings: Settings,
    api: SocketAddr,
    metrics: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), keyward_keydir::Error>>>,
}

impl Keydir {
    /// Migrates the database, then serves on free loopback ports.
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let pool = keyward_keydir::connect(&settings)?;
        keyward_keydir::migrate(&pool).await.context("migrating")?;
        pool.close().await;
        Self::serve(settings, "127.0.0.1:0".parse()?, "127.0.0.1:0".parse()?).await
    }

    async fn serve(settings: Settings, api: SocketAddr, metrics: SocketAddr) -> anyhow::Result<Self> {
        let api = tokio::net::TcpListener::bind(api).await.context("binding the API")?;
        let metrics = tokio::net::TcpListener::bind(metrics).await.context("binding metrics")?;
        let (api_addr, metrics_addr) = (api.local_addr()?, metrics.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(keyward_keydir::run(settings.clone(), api, metrics, async move {
            let _ = stopped.await;
        }));
        Ok(Self { settings, api: api_addr, metrics: metrics_addr, stop: Some(stop), task: Some(task) })
    }

    /// Base URL of the API, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// URL of the metrics page.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics)
    }

    /// Graceful shutdown: waits until in-flight requests are answered.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task).await.context("keydir did not stop")???;
        }
        Ok(())
    }

    /// Stops abruptly, as a crash would: in-flight requests are dropped.
    pub async fn abort(&mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Starts again on the same addresses and database (after [`stop`](Self::stop) or [`abort`](Self::abort)).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.abort().await;
        let fresh = Self::serve(self.settings.clone(), self.api, self.metrics).await?;
        *self = fresh;
        Ok(())
    }
}

impl Drop for Keydir {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The built `keyward-keydir` binary next to the running test executable
/// (`target/<profile>/`); tests of the keydir crate pass `CARGO_BIN_EXE_keyward-keydir` instead.
pub fn binary_next_to_tests() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("no target folder")?;
    let binary = profile_dir.join("keyward-keydir");
    if !binary.exists() {
        bail!("{} is missing: build it with `cargo build -p keyward-keydir`", binary.display());
    }
    Ok(binary)
}

/// A keydir running as its own process (the real binary).
pub struct KeydirProcess {
    binary: PathBuf,
    database_url: String,
    api: SocketAddr,
    metrics: SocketAddr,
    child: Option<Child>,
}

impl KeydirProcess {
    /// Runs `binary migrate`, then `binary serve` on free ports, and waits until it answers.
    pub fn start(binary: &Path, database_url: &str) -> anyhow::Result<Self> {
        let status = Command::new(binary)
            .arg("migrate")
            .env("KEYWARD_DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .status()
            .context("running keyward-keydir migrate")?;
        if !status.success() {
            bail!("keyward-keydir migrate failed: {status}");
        }
        let api = SocketAddr::from(([127, 0, 0, 1], crate::free_port()?));
        let metrics = SocketAddr::from(([127, 0, 0, 1], crate::free_port()?));
        let mut process =
            Self { binary: binary.to_owned(), database_url: database_url.to_owned(), api, metrics, child: None };
        process.spawn()?;
        Ok(process)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.binary)
            .arg("serve")
            .env("KEYWARD_DATABASE_URL", &self.database_url)
            .env("KEYWARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("KEYWARD_COMPONENT_TOKEN", COMPONENT_TOKEN)
            .env("KEYWARD_LISTEN", self.api.to_string())
            .env("KEYWARD_METRICS_LISTEN", self.metrics.to_string())
            .env("KEYWARD_SWEEP_MS", "200")
            .env("KEYWARD_LOG_FORMAT", "json")
            .env("RUST_LOG", std::env::var("KEYWARD_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .spawn()
            .context("starting keyward-keydir serve")?;
        self.child = Some(child);
        crate::wait_for_port(self.api, Duration::from_secs(10))?;
        crate::wait_for_port(self.metrics, Duration::from_secs(10))
    }

    /// Base URL of the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// URL of the metrics page.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then waits (at most `timeout`) for it to exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("not running")?;
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("keyward-keydir did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again on the same ports and database.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.spawn()
    }
}

impl Drop for KeydirProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
