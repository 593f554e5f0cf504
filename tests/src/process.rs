//! The one way keyward-tests runs a service binary: a child process with its output in a log file.
//!
//! keydir and the component run as their real binaries, configured through the environment
//! exactly as an operator would, so a test exercises the same start-up, configuration and
//! signal handling as production. [`find_binary`] is the one place that finds them.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// The workspace binaries that tests run; the test command builds them before any test.
pub const BINARIES: [&str; 3] = ["keyward-keydir", "keyward-component", "keyward"];

/// How to build [`BINARIES`], for error messages.
pub const BUILD_HINT: &str = "cargo build -p keyward-keydir -p keyward-component -p keyward-client --bins";

/// Finds a workspace binary: in `bin_dir`, else in `KEYWARD_BIN_DIR`, else next to the running
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
    candidates
        .iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| format!("{name} not found in {candidates:?}: build it first with `{BUILD_HINT}`"))
}

/// A service binary run as a child process, its stdout and stderr appended to a log file.
/// Killed when dropped.
#[derive(Debug)]
pub struct ServiceProcess {
    name: &'static str,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl ServiceProcess {
    /// Describes the process; nothing runs until [`spawn`](Self::spawn). The environment is
    /// `env` and `PATH` only, so nothing of the test's own environment leaks in.
    pub fn new(name: &'static str, binary: PathBuf, args: &[&str], env: Vec<(String, String)>, log: PathBuf) -> Self {
        Self { name, binary, args: args.iter().map(|a| (*a).to_owned()).collect(), env, log, child: None }
    }

    /// Sets (or replaces) one environment variable for the next start.
    pub fn set_env(&mut self, key: &str, value: impl Into<String>) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.into()));
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

    /// Runs the binary once with other arguments (e.g. `migrate`) and checks that it succeeds.
    pub async fn run_once(&self, args: &[&str]) -> anyhow::Result<()> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let status = self.command(&args)?.status().await.with_context(|| format!("running {}", self.name))?;
        if !status.success() {
            bail!("{} {args:?} failed ({status}); log tail:\n{}", self.name, self.tail(30));
        }
        Ok(())
    }

    /// Starts the process (its usual arguments).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let child = self.command(&self.args)?.spawn().with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether it was started and not stopped (it may have exited since: see [`check_alive`](Self::check_alive)).
    pub fn is_started(&self) -> bool {
        self.child.is_some()
    }

    /// Fails, with the log's tail, if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.child = None;
            bail!("{} exited ({status}); log tail:\n{}", self.name, self.tail(30));
        }
        Ok(())
    }

    /// Whether the process has exited by itself (after a start, without stop or kill).
    pub fn has_exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(Some(_))))
    }

    /// Waits until every address in `addrs` accepts connections, failing early with the log's
    /// tail if the process exits meanwhile.
    pub async fn wait_listening(&mut self, addrs: &[SocketAddr], timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for addr in addrs {
            loop {
                self.check_alive()?;
                if crate::net::wait_for_port(*addr, Duration::from_millis(100)).await.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{} did not listen on {addr} within {timeout:?}; log tail:\n{}", self.name, self.tail(30));
                }
            }
        }
        Ok(())
    }

    /// SIGTERM, then waits at most `timeout` for the exit; SIGKILL and an error after that.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().with_context(|| format!("{} is not running", self.name))?;
        if let Some(pid) = child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                child.kill().await.with_context(|| format!("killing {}", self.name))?;
                bail!("{} did not stop within {timeout:?} of SIGTERM", self.name)
            }
        }
    }

    /// SIGTERM and wait (SIGKILL after 15 s); nothing to do if it is not running.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.terminate(Duration::from_secs(15)).await?;
        }
        Ok(())
    }

    /// SIGKILL: a crash, no shutdown at all.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.with_context(|| format!("killing {}", self.name))?;
        }
        Ok(())
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The log file (stdout and stderr of every run).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log.
    pub fn tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

/// The last `lines` lines of a text file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Where a service's log goes: `log` when given, else `<name>.log` in a fresh temp folder,
/// Waits up to `timeout` for the log at `path` to contain `needle`; returns the whole log.
pub async fn wait_for_log(path: &Path, needle: &str, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(needle) {
            return Ok(log);
        }
        if Instant::now() >= deadline {
            bail!("{needle:?} never logged in {} within {timeout:?}:\n{log}", path.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// returned too so that the caller keeps it as long as the service runs.
pub fn log_location(log: Option<&Path>, name: &str) -> anyhow::Result<(Option<TempDir>, PathBuf)> {
    match log {
        Some(log) => Ok((None, log.to_path_buf())),
        None => {
            let dir = crate::temp_dir(&format!("{name}-")).with_context(|| format!("creating a folder for {name}"))?;
            let log = dir.path().join(format!("{name}.log"));
            Ok((Some(dir), log))
        }
    }
}

/// Runs `start` (attempt 1, 2, ...), which picks free ports and starts a service on them, again
/// while it fails because a parallel test took a picked port first (at most five attempts).
pub async fn retry_on_taken_port<T, F>(mut start: impl FnMut(u32) -> F) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match start(attempt).await {
            Err(err) if attempt < 5 && is_port_taken(&err) => continue,
            result => return result,
        }
    }
}

/// Whether a failed start was a port taken by another process between picking and binding it
/// (the ports are picked free, then bound by the child: a parallel test can get there first).
pub fn is_port_taken(err: &anyhow::Error) -> bool {
    let text = format!("{err:#}").to_lowercase();
    ["address already in use", "eaddrinuse", "addrinuse", "could not bind"].iter().any(|s| text.contains(s))
}
