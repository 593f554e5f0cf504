//! `cargo xtask stack up`: Postgres, an XMPP server with the component, keydir and the
//! component on loopback, with an env file describing them, until interrupted.

use crate::install;
use anyhow::{Context, Result};
use keyward_tests::stack::{BINARIES, Stack, StackOptions};
use keyward_tests::xmpp::ServerKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the parts of a running stack are, as a client, an admin or a script needs them.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub(crate) server: ServerKind,
    pub(crate) c2s_addr: SocketAddr,
    pub(crate) domain: String,
    pub(crate) component_jid: String,
    pub(crate) keydir_url: String,
    pub(crate) admin_token: String,
    pub(crate) database_url: String,
    pub(crate) server_data_dir: PathBuf,
}

impl Endpoints {
    pub(crate) fn of(stack: &Stack) -> Self {
        Self {
            server: stack.kind(),
            c2s_addr: stack.c2s_addr(),
            domain: stack.domain().to_owned(),
            component_jid: stack.component_jid().to_owned(),
            keydir_url: stack.keydir_url(),
            admin_token: stack.admin_token().to_owned(),
            database_url: stack.database_url().to_owned(),
            server_data_dir: stack.server_data_dir(),
        }
    }

    /// The env file: `KEY=value` lines a shell can `source` or `set -a; . FILE`.
    pub(crate) fn env_file_text(&self) -> String {
        [
            ("KEYWARD_XMPP_SERVER", self.server.name().to_owned()),
            ("KEYWARD_C2S_ADDR", self.c2s_addr.to_string()),
            ("KEYWARD_DOMAIN", self.domain.clone()),
            ("KEYWARD_COMPONENT_JID", self.component_jid.clone()),
            ("KEYWARD_KEYDIR_URL", self.keydir_url.clone()),
            ("KEYWARD_ADMIN_TOKEN", self.admin_token.clone()),
            ("KEYWARD_DATABASE_URL", self.database_url.clone()),
            ("KEYWARD_SERVER_DATA_DIR", self.server_data_dir.display().to_string()),
        ]
        .iter()
        .map(|(key, value)| format!("{key}='{}'\n", value.replace('\'', "'\\''")))
        .collect()
    }
}

/// The Debian packages a stack with `server` needs.
pub(crate) fn packages(server: ServerKind) -> &'static [&'static str] {
    match server {
        ServerKind::Prosody => &["postgresql", "prosody", "prosody-modules", "curl"],
        ServerKind::Ejabberd => &["postgresql", "ejabberd", "curl"],
    }
}

/// A PostgreSQL client or server program (they are not on PATH on Debian).
pub(crate) fn pg_tool(name: &str) -> Result<PathBuf> {
    let output =
        Command::new("pg_config").arg("--bindir").output().context("pg_config (Debian package `postgresql`)")?;
    Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join(name))
}

/// Builds the service binaries (and the `keyward` CLI) that the stack and the demo run.
pub(crate) fn build_binaries() -> Result<PathBuf> {
    println!("building keyward…");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.current_dir(crate::repo_root()).args(["build", "--quiet"]);
    for bin in BINARIES.iter().chain(&["keyward"]) {
        build.args(["--bin", bin]);
    }
    install::run(&mut build)?;
    Ok(crate::repo_root().join("target/debug"))
}

/// Starts a stack on loopback, with in-band registration open, for local use.
pub(crate) async fn start(server: ServerKind, bin_dir: PathBuf) -> Result<Stack> {
    let options = StackOptions { bin_dir: Some(bin_dir), log_filter: "info".into(), ..StackOptions::default() };
    Stack::start(server, options).await.with_context(|| format!("starting the local stack with {}", server.name()))
}

/// `stack up`: runs until Ctrl-C or SIGTERM, then stops everything and removes the env file.
pub(crate) async fn up(server: ServerKind, env_file: &Path) -> Result<()> {
    install::apt_packages(packages(server))?;
    let mut stack = start(server, build_binaries()?).await?;
    let endpoints = Endpoints::of(&stack);
    std::fs::write(env_file, endpoints.env_file_text()).with_context(|| format!("writing {}", env_file.display()))?;
    println!("keyward stack is up ({}):", server.name());
    print!("{}", endpoints.env_file_text());
    println!("\nenv file: {}   (set -a; . {0}; set +a)", env_file.display());
    println!(
        "try: keyward --jid alice@{} --server {} --insecure-plaintext register",
        endpoints.domain, endpoints.c2s_addr
    );
    println!("Ctrl-C stops everything and cleans up.");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    println!("\nstopping…");
    let stopped = stack.stop().await;
    let _ = std::fs::remove_file(env_file);
    stopped
}
