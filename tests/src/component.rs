//! The keyward component, run in-process against a given XMPP server and keydir URL.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keyward_component::{Config, Secret};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::net::http_get;
use crate::xmpp::XmppServer;

/// A configuration for the component attached to `server`, talking to keydir at `keydir_url`.
///
/// Reconnect delays are the production defaults; change fields before starting as needed.
pub fn config_for(server: &XmppServer, keydir_url: &str, token: &str) -> anyhow::Result<Config> {
    let config = Config::new(
        server.component_addr().to_string(),
        server.component_jid(),
        Secret::new(server.secret()),
        keydir_url,
        Secret::new(token),
    )?;
    Ok(config)
}

/// A running component with its metrics listener.
#[derive(Debug)]
pub struct Component {
    config: Config,
    metrics_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<keyward_component::Result<()>>>,
}

impl Component {
    /// Starts the component in this process, metrics on a free loopback port.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the metrics listener")?;
        let metrics_addr = listener.local_addr()?;
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(keyward_component::run(config.clone(), listener, async move {
            let _ = signal.await;
        }));
        Ok(Self { config, metrics_addr, shutdown: Some(shutdown), task: Some(task) })
    }

    /// Starts and waits until the XMPP stream is up.
    pub async fn start_up(config: Config) -> anyhow::Result<Self> {
        let component = Self::start(config).await?;
        component.wait_up(Duration::from_secs(15)).await?;
        Ok(component)
    }

    /// The address of `/metrics` and `/healthz`.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether `/healthz` says the stream is up.
    pub async fn is_up(&self) -> bool {
        matches!(http_get(self.metrics_addr, "/healthz").await, Ok((200, _)))
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
                bail!("the component's stream was not {} within {timeout:?}", if up { "up" } else { "down" });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let (status, body) = http_get(self.metrics_addr, "/metrics").await?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        Ok(body)
    }

    /// Shuts down gracefully (finishing in-flight requests) and waits for the end.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_now().await
    }

    async fn stop_now(&mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .context("the component did not stop within 20 s")?
                .context("the component task panicked")?
                .context("the component failed")?;
        }
        Ok(())
    }

    /// Stops and starts again with the same configuration (new metrics port).
    pub async fn restart(mut self) -> anyhow::Result<Self> {
        self.stop_now().await?;
        Self::start(self.config.clone()).await
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Sends the component's logs to the test output when `KEYWARD_TEST_LOG` is set (e.g. `debug`).
pub fn init_logs() {
    if let Ok(filter) = std::env::var("KEYWARD_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}
