//! A real component for tests: the `keyward-component` binary attached to an XMPP server, its
//! metrics and health on a free loopback port.
//!
//! It is configured through the environment exactly as an operator configures it, and stopped
//! with SIGTERM (graceful) or SIGKILL (a crash). The stack and the component's own tests use it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::bail;
use tempfile::TempDir;

use crate::net::http_get;
use crate::process::{ServiceProcess, find_binary, log_location, retry_on_taken_port};
use crate::xmpp::XmppServer;

/// How a test component is configured (each field becomes the environment variable an operator sets).
#[derive(Debug, Clone)]
pub struct ComponentOptions {
    /// `KEYWARD_XMPP_ADDR`: the server's component port.
    pub xmpp_addr: SocketAddr,
    /// `KEYWARD_COMPONENT_JID`.
    pub component_jid: String,
    /// `KEYWARD_COMPONENT_SECRET`.
    pub secret: String,
    /// `KEYWARD_KEYDIR_URL`.
    pub keydir_url: String,
    /// `KEYWARD_COMPONENT_TOKEN`.
    pub token: String,
    /// `KEYWARD_KEYDIR_CA`, when set: the CA certificate (PEM) trusted for keydir's HTTPS.
    pub keydir_ca: Option<PathBuf>,
    /// `KEYWARD_RECONNECT_MIN_MS` (100 ms here: tests restart servers).
    pub reconnect_min: Duration,
    /// `KEYWARD_RECONNECT_MAX_MS` (1 s here).
    pub reconnect_max: Duration,
    /// `KEYWARD_KEYDIR_TIMEOUT_MS`, when set.
    pub keydir_timeout: Option<Duration>,
    /// `KEYWARD_MAX_IN_FLIGHT`, when set.
    pub max_in_flight: Option<usize>,
    /// `KEYWARD_MAX_QUEUED`, when set.
    pub max_queued: Option<usize>,
    /// `KEYWARD_SERVED_DOMAINS`, when not empty.
    pub served_domains: Vec<String>,
    /// `RUST_LOG`; by default `KEYWARD_TEST_LOG`, else `info`.
    pub log_filter: String,
    /// Any other variables; they override the ones above.
    pub env: Vec<(String, String)>,
    /// Where the log goes; by default a temp folder of the component's own.
    pub log: Option<PathBuf>,
    /// The folder holding the binary (see [`find_binary`]).
    pub bin_dir: Option<PathBuf>,
}

impl ComponentOptions {
    /// The component that `server` expects, talking to keydir at `keydir_url` with `token`.
    pub fn for_server(server: &XmppServer, keydir_url: &str, token: &str) -> Self {
        Self {
            xmpp_addr: server.component_addr(),
            component_jid: server.component_jid().to_owned(),
            secret: server.secret().to_owned(),
            keydir_url: keydir_url.to_owned(),
            token: token.to_owned(),
            keydir_ca: None,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(1),
            keydir_timeout: None,
            max_in_flight: None,
            max_queued: None,
            served_domains: Vec::new(),
            log_filter: std::env::var("KEYWARD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            env: Vec::new(),
            log: None,
            bin_dir: None,
        }
    }

    fn environment(&self, metrics: SocketAddr) -> Vec<(String, String)> {
        let ms = |d: Duration| d.as_millis().to_string();
        let mut env = vec![
            ("KEYWARD_XMPP_ADDR".to_owned(), self.xmpp_addr.to_string()),
            ("KEYWARD_COMPONENT_JID".to_owned(), self.component_jid.clone()),
            ("KEYWARD_COMPONENT_SECRET".to_owned(), self.secret.clone()),
            ("KEYWARD_KEYDIR_URL".to_owned(), self.keydir_url.clone()),
            ("KEYWARD_COMPONENT_TOKEN".to_owned(), self.token.clone()),
            ("KEYWARD_METRICS_LISTEN".to_owned(), metrics.to_string()),
            ("KEYWARD_RECONNECT_MIN_MS".to_owned(), ms(self.reconnect_min)),
            ("KEYWARD_RECONNECT_MAX_MS".to_owned(), ms(self.reconnect_max)),
            ("KEYWARD_LOG_FORMAT".to_owned(), "json".to_owned()),
            ("RUST_LOG".to_owned(), self.log_filter.clone()),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        if let Some(ca) = &self.keydir_ca {
            env.push(("KEYWARD_KEYDIR_CA".to_owned(), ca.display().to_string()));
        }
        if let Some(timeout) = self.keydir_timeout {
            env.push(("KEYWARD_KEYDIR_TIMEOUT_MS".to_owned(), ms(timeout)));
        }
        if let Some(max) = self.max_in_flight {
            env.push(("KEYWARD_MAX_IN_FLIGHT".to_owned(), max.to_string()));
        }
        if let Some(max) = self.max_queued {
            env.push(("KEYWARD_MAX_QUEUED".to_owned(), max.to_string()));
        }
        if !self.served_domains.is_empty() {
            env.push(("KEYWARD_SERVED_DOMAINS".to_owned(), self.served_domains.join(",")));
        }
        env.extend(self.env.iter().cloned());
        env
    }
}

/// A running `keyward-component serve`. Killed when dropped.
#[derive(Debug)]
pub struct Component {
    process: ServiceProcess,
    metrics: SocketAddr,
    _dir: Option<TempDir>,
}

impl Component {
    /// Starts the binary and waits until its metrics listener accepts connections (its XMPP
    /// stream may still be down: see [`start_up`](Self::start_up)).
    pub async fn start(options: ComponentOptions) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        let binary = find_binary("keyward-component", options.bin_dir.as_deref())?;
        let (dir, log) = log_location(options.log.as_deref(), "keyward-component")?;
        let mut component = retry_on_taken_port(|_| {
            let (binary, log, options) = (binary.clone(), log.clone(), &options);
            async move {
                let metrics = SocketAddr::from(([127, 0, 0, 1], crate::free_port()?));
                let env = options.environment(metrics);
                let process = ServiceProcess::new("keyward-component", binary, &["serve"], env, log);
                let mut component = Self { process, metrics, _dir: None };
                component.start_again().await?;
                Ok(component)
            }
        })
        .await?;
        component._dir = dir;
        Ok(component)
    }

    /// Starts the binary and waits until its XMPP stream is up.
    pub async fn start_up(options: ComponentOptions) -> anyhow::Result<Self> {
        let component = Self::start(options).await?;
        component.wait_up(Duration::from_secs(60)).await?;
        Ok(component)
    }

    /// Starts the process again (after [`stop`](Self::stop) or [`kill`](Self::kill)) with the
    /// same settings, and waits until its metrics listener accepts connections.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.process.spawn()?;
        self.process.wait_listening(&[self.metrics], Duration::from_secs(30)).await
    }

    /// Whether `/healthz` says the stream is up.
    pub async fn is_up(&self) -> bool {
        matches!(http_get(self.metrics, "/healthz").await, Ok((200, _)))
    }

    /// Waits until the stream is up; returns how long that took.
    pub async fn wait_up(&self, timeout: Duration) -> anyhow::Result<Duration> {
        self.wait_health(true, timeout).await
    }

    /// Waits until the stream is down; returns how long that took.
    pub async fn wait_down(&self, timeout: Duration) -> anyhow::Result<Duration> {
        self.wait_health(false, timeout).await
    }

    async fn wait_health(&self, up: bool, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if self.is_up().await == up {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                let state = if up { "up" } else { "down" };
                bail!("the component's stream was not {state} within {timeout:?}; log tail:\n{}", self.tail(30));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let (status, body) = http_get(self.metrics, "/metrics").await?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        Ok(body)
    }

    /// Waits until the metrics page has a line for which `holds` is true; returns the page.
    pub async fn wait_for_metrics(&self, what: &str, holds: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let page = self.metrics().await?;
            if page.lines().any(&holds) {
                return Ok(page);
            }
            if Instant::now() > deadline {
                bail!("the metrics never showed {what}:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of the metric line `series` (exact name and labels, e.g.
    /// `keyward_component_standby`), 0 when absent.
    pub async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        Ok(metric_value(&self.metrics().await?, series))
    }

    /// The address of `/metrics` and `/healthz`.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    /// SIGTERM (graceful: in-flight requests are finished) and wait; fails unless it exits with success.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if self.process.is_started() {
            let status = self.process.terminate(Duration::from_secs(20)).await?;
            if !status.success() {
                bail!("the component exited with {status}; log tail:\n{}", self.tail(30));
            }
        }
        Ok(())
    }

    /// SIGTERM, then waits at most `timeout` for the exit, and returns the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.process.terminate(timeout).await
    }

    /// SIGKILL: no shutdown at all, as a crash.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.process.kill().await
    }

    /// Whether it was started and not stopped or killed.
    pub fn is_started(&self) -> bool {
        self.process.is_started()
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Its log (stdout and stderr of every run).
    pub fn log_path(&self) -> PathBuf {
        self.process.log_path().to_path_buf()
    }

    /// The last `lines` lines of its log.
    pub fn tail(&self, lines: usize) -> String {
        self.process.tail(lines)
    }

    /// The underlying process (to check whether it exited, say).
    pub fn process(&mut self) -> &mut ServiceProcess {
        &mut self.process
    }
}

/// The value of the line `series value` of a metrics page (exact name and labels), 0 when absent.
pub fn metric_value(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.trim().parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}
