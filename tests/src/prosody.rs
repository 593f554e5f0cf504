//! A throwaway Prosody: its own temp folder and free loopback ports, the keyward component
//! configured with a secret and (optionally) XEP-0356 roster privilege, users registered
//! with prosodyctl, stopped by PID.
//!
//! Needs the Debian packages `prosody` and `prosody-modules`; without them `start` fails
//! with an error that names them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::net::wait_for_port;
use crate::xmpp::{Ports, ServerOptions};

/// How long Prosody may take to open its ports.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running (or stopped, between restarts) Prosody.
#[derive(Debug)]
pub struct Prosody {
    dir: TempDir,
    options: ServerOptions,
    ports: Ports,
    child: Option<Child>,
}

fn missing_packages() -> String {
    "prosody is not installed: install the Debian packages `prosody prosody-modules` \
     (apt-get install -y prosody prosody-modules)"
        .to_owned()
}

/// The folder holding `mod_privilege/` (from prosody-modules).
fn plugin_path() -> anyhow::Result<PathBuf> {
    let listing = std::process::Command::new("dpkg").args(["-L", "prosody-modules"]).output();
    if let Ok(listing) = listing {
        let text = String::from_utf8_lossy(&listing.stdout);
        if let Some(parent) = text.lines().find(|l| l.ends_with("/mod_privilege")).and_then(|d| Path::new(d).parent()) {
            return Ok(parent.to_path_buf());
        }
    }
    let fallback = PathBuf::from("/usr/lib/prosody/modules");
    if fallback.join("mod_privilege").is_dir() {
        return Ok(fallback);
    }
    bail!("mod_privilege not found: install the Debian package `prosody-modules`")
}

fn lua_string(value: &str) -> String {
    format!("{value:?}")
}

impl Prosody {
    /// Writes a config in a new temp folder and starts Prosody on free loopback ports.
    pub async fn start(options: ServerOptions) -> anyhow::Result<Self> {
        which("prosody").with_context(missing_packages)?;
        which("prosodyctl").with_context(missing_packages)?;
        let dir = tempfile::Builder::new().prefix("keyward-prosody-").tempdir()?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        let ports = Ports::pick(&options)?;
        let mut prosody = Self { dir, options, ports, child: None };
        std::fs::write(prosody.config_path(), prosody.config_text()?)?;
        prosody.launch().await?;
        Ok(prosody)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("prosody.cfg.lua")
    }

    fn config_text(&self) -> anyhow::Result<String> {
        let dir = self.dir.path();
        let o = &self.options;
        let privileged = format!(
            "privileged_entities = {{ [{}] = {{ roster = \"both\"; message = \"outgoing\"; presence = \"roster\" }} }}",
            lua_string(&o.component)
        );
        let (host_modules, component_modules, host_privileges) = if o.privilege {
            ("modules_enabled = { \"privilege\" }", "modules_enabled = { \"privilege\" }", privileged.as_str())
        } else {
            ("", "", "")
        };
        // Without TLS: plain c2s on loopback. With it: STARTTLS required, direct TLS on its own
        // port, and no plaintext authentication at all.
        let (encryption, disabled) = match (&o.tls, self.ports.direct_tls) {
            (Some(tls), Some(direct_tls)) => {
                // Prosody finds certificates by host name in its `certificates` folder.
                let certs = dir.join("certs");
                std::fs::create_dir_all(&certs)?;
                std::fs::copy(&tls.cert, certs.join(format!("{}.crt", o.domain)))?;
                std::fs::copy(&tls.key, certs.join(format!("{}.key", o.domain)))?;
                (
                    format!(
                        "c2s_require_encryption = true\nallow_unencrypted_plain_auth = false\nc2s_direct_tls_ports = {{ {} }}",
                        direct_tls
                    ),
                    "\"s2s\"",
                )
            }
            _ => ("c2s_require_encryption = false\nallow_unencrypted_plain_auth = true".to_owned(), "\"s2s\"; \"tls\""),
        };
        Ok(format!(
            r#"-- keyward test fixture
run_as_root = true
daemonize = false
pidfile = {pidfile}
data_path = {data}
plugin_paths = {{ {plugins} }}
certificates = {certs}
log = {{ {log_level} = {log} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
component_ports = {{ {component} }}
component_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
{encryption}
authentication = "internal_hashed"
allow_registration = {registration}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "offline"; "register"; "carbons"; "mam" }}
-- Message carbons (XEP-0280) and the archive (XEP-0313), as deploy/prosody.md asks operators to enable.
default_archive_policy = true
archive_expires_after = "1w"
modules_disabled = {{ {disabled} }}

VirtualHost {domain}
    {host_modules}
    {host_privileges}

Component {component_jid}
    component_secret = {secret}
    {component_modules}
{extra_components}"#,
            pidfile = lua_string(&dir.join("prosody.pid").display().to_string()),
            data = lua_string(&dir.join("data").display().to_string()),
            plugins = lua_string(&plugin_path()?.display().to_string()),
            certs = lua_string(&dir.join("certs").display().to_string()),
            log = lua_string(&dir.join("prosody.log").display().to_string()),
            log_level = if o.quiet_log { "info" } else { "debug" },
            c2s = self.ports.c2s,
            encryption = encryption,
            disabled = disabled,
            component = self.ports.component,
            domain = lua_string(&o.domain),
            component_jid = lua_string(&o.component),
            secret = lua_string(&o.secret),
            registration = o.registration,
            extra_components = o
                .extra_components
                .iter()
                .map(|jid| format!(
                    "\nComponent {}\n    component_secret = {}\n",
                    lua_string(jid),
                    lua_string(&o.extra_component_secret(jid))
                ))
                .collect::<String>(),
        ))
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let log_start = std::fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0);
        let child = Command::new("prosody")
            .arg("-F")
            .arg("--config")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(missing_packages)?;
        self.child = Some(child);
        for addr in self.ports.addrs() {
            if let Err(err) = wait_for_port(addr, START_TIMEOUT).await {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                bail!("{err}; prosody log tail:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
        }
        // Another process may have taken a port between picking it and Prosody binding it.
        let log = std::fs::read(self.log_path()).unwrap_or_default();
        let fresh = String::from_utf8_lossy(log.get(usize::try_from(log_start).unwrap_or(0)..).unwrap_or_default());
        if let Some(line) = fresh.lines().find(|l| l.contains("Failed to open server port")) {
            bail!("prosody could not bind its ports: {line}");
        }
        let pid = self.child.as_ref().and_then(Child::id).unwrap_or(0);
        for addr in self.ports.addrs() {
            if !crate::net::listens_on(pid, addr.port()).unwrap_or(false) {
                bail!("prosody could not bind {addr}: address already in use by another process");
            }
        }
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            bail!("prosody exited at start: {status}");
        }
        Ok(())
    }

    /// The ports it listens on.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The options it was started with.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// The folder holding its data (users, rosters, offline messages) and its log.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The user domain.
    pub fn domain(&self) -> &str {
        &self.options.domain
    }

    /// The component's JID.
    pub fn component_jid(&self) -> &str {
        &self.options.component
    }

    /// The component's shared secret.
    pub fn secret(&self) -> &str {
        &self.options.secret
    }

    /// Prosody's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prosody.log")
    }

    /// The PID of the running server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Registers `user@domain` with `password` (prosodyctl; works while the server runs).
    /// Fails if the user exists already (`prosodyctl register` alone would reset the password).
    pub async fn register(&self, user: &str, password: &str) -> anyhow::Result<String> {
        if self.account_file(user).exists() {
            bail!("{user}@{} is already registered", self.options.domain);
        }
        let output = Command::new("prosodyctl")
            .arg("--config")
            .arg(self.config_path())
            .args(["register", user, &self.options.domain, password])
            .output()
            .await
            .with_context(missing_packages)?;
        if !output.status.success() {
            bail!(
                "prosodyctl register {user} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(format!("{user}@{}", self.options.domain))
    }

    /// Where Prosody's internal storage keeps an account (names are percent-encoded).
    fn account_file(&self, user: &str) -> PathBuf {
        let encode =
            |text: &str| -> String {
                text.bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b == b'_' {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02x}")
                        }
                    })
                    .collect()
            };
        self.dir
            .path()
            .join("data")
            .join(encode(&self.options.domain))
            .join("accounts")
            .join(format!("{}.dat", encode(user)))
    }

    /// Stops the server with SIGTERM (SIGKILL after 10 s), by PID.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        if let Some(pid) = child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
            child.kill().await.context("killing prosody")?;
        }
        Ok(())
    }

    /// SIGKILL: a crash, no shutdown at all; [`restart`](Self::restart) starts it again.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("killing prosody")?;
        }
        Ok(())
    }

    /// Stops and starts the server again on the same ports, with the same data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.launch().await
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::env::var_os("KEYWARD_TEST_KEEP").is_some() {
            eprintln!("keeping the Prosody folder {}", self.dir.path().display());
            let dir = std::mem::replace(&mut self.dir, TempDir::new().unwrap_or_else(|_| std::process::abort()));
            let _ = dir.keep();
        }
    }
}

/// Whether `program` is on PATH.
fn which(program: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .with_context(|| format!("{program} not found on PATH"))
}
