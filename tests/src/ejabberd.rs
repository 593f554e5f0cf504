//! A throwaway ejabberd 23.01: its own temp folder, spool and free loopback ports, the keyward
//! component configured with a password and (optionally) XEP-0356 privileges, users registered
//! through a command channel on its standard input, stopped by PID.
//!
//! It runs `erl` directly (no ejabberdctl, no epmd, no node name). Needs the Debian package
//! `ejabberd`; without it `start` fails with an error that names it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Mutex, mpsc};

use crate::net::{listens_on, wait_for_port};
use crate::xmpp::{Ports, ServerOptions};

/// How long ejabberd may take to start (about 1.5 s on an idle machine, far more under load).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Reads user registrations from standard input, one `user host password` per line, and
/// stops the node at end of input (so dropping the fixture's pipe stops the server).
const EVAL: &str = r#"Loop = fun L() -> case io:get_line("") of eof -> init:stop(); {error, _} -> init:stop(); Line -> case string:lexemes(string:trim(Line), " ") of [U, H, P] -> R = ejabberd_auth:try_register(unicode:characters_to_binary(U), unicode:characters_to_binary(H), unicode:characters_to_binary(P)), io:format("REGISTERED ~ts ~p~n", [U, R]); _ -> io:format("BAD-COMMAND~n") end, L() end end, io:format("READY~n"), Loop()."#;

fn missing_package() -> String {
    "ejabberd is not installed: install the Debian package `ejabberd` (apt-get install -y ejabberd)".to_owned()
}

/// The folder holding ejabberd's own `ebin` library (for ERL_LIBS).
fn erl_libs() -> anyhow::Result<PathBuf> {
    let listing = std::process::Command::new("dpkg").args(["-L", "ejabberd"]).output().with_context(missing_package)?;
    let text = String::from_utf8_lossy(&listing.stdout);
    let app = text.lines().find(|l| l.ends_with("/ebin/ejabberd.app")).with_context(missing_package)?;
    // .../<libs>/ejabberd-23.01-1/ebin/ejabberd.app -> .../<libs>
    PathBuf::from(app)
        .ancestors()
        .nth(3)
        .map(PathBuf::from)
        .with_context(|| format!("unexpected ejabberd layout: {app}"))
}

/// A running (or stopped, between restarts) ejabberd.
#[derive(Debug)]
pub struct Ejabberd {
    dir: TempDir,
    options: ServerOptions,
    ports: Ports,
    process: Option<Running>,
}

#[derive(Debug)]
struct Running {
    child: Child,
    stdin: Mutex<ChildStdin>,
    /// The node's answers (`READY`, `REGISTERED ...`); everything else it prints is drained.
    replies: Mutex<mpsc::UnboundedReceiver<String>>,
}

impl Ejabberd {
    /// Writes a config in a new temp folder and starts ejabberd on free loopback ports.
    pub async fn start(options: ServerOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("keyward-ejabberd-").tempdir()?;
        let ports = Ports::pick(&options)?;
        let mut server = Self { dir, options, ports, process: None };
        std::fs::write(server.config_path(), server.config_text())?;
        server.launch().await?;
        Ok(server)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("ejabberd.yml")
    }

    fn config_text(&self) -> String {
        let o = &self.options;
        let privilege = if o.privilege {
            "  mod_privilege:\n    roster:\n      both: all\n    message:\n      outgoing: all\n    presence:\n      roster: all\n"
        } else {
            ""
        };
        // Without TLS: plain c2s. With it: STARTTLS required, and direct TLS on its own port.
        let (certfiles, c2s_tls) = match (&o.tls, self.ports.direct_tls) {
            (Some(tls), Some(direct_tls)) => (
                format!(
                    "certfiles:\n  - {:?}\n  - {:?}\n",
                    tls.cert.display().to_string(),
                    tls.key.display().to_string()
                ),
                format!(
                    "    starttls_required: true\n  - port: {}\n    ip: \"127.0.0.1\"\n    module: ejabberd_c2s\n    tls: true\n",
                    direct_tls
                ),
            ),
            _ => (String::new(), "    starttls: false\n".to_owned()),
        };
        format!(
            r#"# keyward test fixture
hosts:
  - {domain:?}
loglevel: {loglevel}
auth_method: internal
auth_password_format: scram
# Tests register many accounts from 127.0.0.1 in a row; the default allows one per 600 s.
registration_timeout: infinity
{certfiles}listen:
  - port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
{c2s_tls}  - port: {component}
    ip: "127.0.0.1"
    module: ejabberd_service
    hosts:
      {component_jid:?}:
        password: {secret:?}
{extra_listener}acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  register:
    allow: all
shaper_rules:
  max_user_offline_messages: 5000
modules:
  mod_disco:
    # ejabberd 23.01 does not list external components in disco#items of the host by itself;
    # clients discover the keyward component there (protocol 12.4).
    extra_domains:
{disco_items}
  mod_ping: {{}}
  mod_roster: {{}}
  # Message carbons (XEP-0280) and the archive (XEP-0313), as deploy/ejabberd.md asks operators to enable.
  mod_carboncopy: {{}}
  mod_mam:
    default: always
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_register:
    access: register
    ip_access: all
{privilege}"#,
            domain = o.domain,
            c2s = self.ports.c2s,
            loglevel = if o.quiet_log { "info" } else { "debug" },
            certfiles = certfiles,
            c2s_tls = c2s_tls,
            component = self.ports.component,
            component_jid = o.component,
            secret = o.secret,
            extra_listener = match self.ports.extra_component {
                Some(port) if !o.extra_components.is_empty() => format!(
                    "  - port: {port}\n    ip: \"127.0.0.1\"\n    module: ejabberd_service\n    hosts:\n{}",
                    o.extra_components
                        .iter()
                        .map(|jid| format!("      {jid:?}:\n        password: {:?}\n", o.extra_component_secret(jid)))
                        .collect::<String>()
                ),
                _ => String::new(),
            },
            disco_items = o
                .extra_components
                .iter()
                .chain(std::iter::once(&o.component))
                .map(|jid| format!("      - {jid:?}\n"))
                .collect::<String>(),
        )
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.path();
        let mut child = Command::new("erl")
            .env("ERL_LIBS", erl_libs()?)
            .env("EJABBERD_CONFIG_PATH", self.config_path())
            .env("EJABBERD_LOG_PATH", self.log_path())
            .env("HOME", dir)
            .arg("-noshell")
            .arg("-mnesia")
            .arg("dir")
            .arg(format!("\"{}\"", dir.join("spool").display()))
            .args(["-s", "ejabberd", "-eval", EVAL])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting erl: {}", missing_package()))?;
        let stdin = child.stdin.take().context("ejabberd stdin")?;
        let stdout = child.stdout.take().context("ejabberd stdout")?;
        let (sender, replies) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if (line.starts_with("READY") || line.starts_with("REGISTERED ")) && sender.send(line).is_err() {
                    break;
                }
            }
        });
        let process = Running { child, stdin: Mutex::new(stdin), replies: Mutex::new(replies) };
        let ready = async {
            let mut replies = process.replies.lock().await;
            while let Some(line) = replies.recv().await {
                if line.trim() == "READY" {
                    return Ok(());
                }
            }
            bail!("ejabberd exited before it was ready")
        };
        let outcome = match tokio::time::timeout(START_TIMEOUT, ready).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow::anyhow!("ejabberd was not ready after {START_TIMEOUT:?}")),
        };
        self.process = Some(process);
        let outcome = match outcome {
            Ok(()) => {
                let mut waited = Ok(());
                for addr in self.ports.addrs() {
                    waited = waited.and(wait_for_port(addr, START_TIMEOUT).await);
                }
                // ejabberd starts even when a listener cannot bind, and another process then
                // answers on that port: make sure every port is ejabberd's own.
                let pid = self.process.as_ref().and_then(|p| p.child.id()).unwrap_or(0);
                for addr in self.ports.addrs() {
                    if waited.is_ok() && !listens_on(pid, addr.port()).unwrap_or(false) {
                        waited = Err(anyhow::anyhow!(
                            "ejabberd could not bind {addr}: address already in use by another process"
                        ));
                    }
                }
                waited
            }
            Err(err) => Err(err),
        };
        outcome.map_err(|err| {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            anyhow::anyhow!("{err}; ejabberd log tail:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        })
    }

    /// The ports it listens on.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The options it was started with.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// ejabberd's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ejabberd.log")
    }

    /// The folder holding its spool (Mnesia: users, rosters, offline messages) and logs.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Registers `user@domain` with `password` through the running node.
    pub async fn register(&self, user: &str, password: &str) -> anyhow::Result<String> {
        if [user, password].iter().any(|s| s.is_empty() || s.contains(char::is_whitespace)) {
            bail!("fixture users and passwords have no white space");
        }
        let process = self.process.as_ref().context("ejabberd is not running")?;
        // One registration at a time: the reply is the next REGISTERED line.
        let mut replies = process.replies.lock().await;
        let command = format!("{user} {} {password}\n", self.options.domain);
        process.stdin.lock().await.write_all(command.as_bytes()).await.context("writing to ejabberd")?;
        while let Some(line) = replies.recv().await {
            if let Some(result) = line.strip_prefix(&format!("REGISTERED {user} ")) {
                if result.trim() != "ok" {
                    bail!("ejabberd could not register {user}: {result}");
                }
                return Ok(format!("{user}@{}", self.options.domain));
            }
        }
        bail!("ejabberd exited while registering {user}")
    }

    /// Stops the server: closes its command channel (a clean `init:stop()`), SIGKILL after 10 s.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(Running { mut child, stdin, .. }) = self.process.take() else { return Ok(()) };
        drop(stdin);
        if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
            child.kill().await.context("killing ejabberd")?;
        }
        Ok(())
    }

    /// SIGKILL to the Erlang node: a crash, no shutdown at all; [`restart`](Self::restart) starts it again.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(Running { mut child, .. }) = self.process.take() {
            child.kill().await.context("killing ejabberd")?;
        }
        Ok(())
    }

    /// The Erlang node's process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.child.id())
    }

    /// Stops and starts the server again on the same ports, with the same spool (users, rosters).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.launch().await
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        if let Some(process) = self.process.as_mut() {
            let _ = process.child.start_kill();
        }
        if std::env::var_os("KEYWARD_TEST_KEEP").is_some() {
            eprintln!("keeping the ejabberd folder {}", self.dir.path().display());
            let dir = std::mem::replace(&mut self.dir, TempDir::new().unwrap_or_else(|_| std::process::abort()));
            let _ = dir.keep();
        }
    }
}
