//! `cargo xtask stack up`: Postgres, an XMPP server with the component, keydir and the
//! component on loopback, with an env file describing them, until interrupted.

use crate::install;
use anyhow::{Context, Result};
use keyward_tests::process::BINARIES;
use keyward_tests::stack::{Stack, StackOptions};
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
    /// Every server-side log: the XMPP server's, keydir's, the component's.
    pub(crate) log_paths: Vec<PathBuf>,
}

impl Endpoints {
    pub(crate) fn of(stack: &Stack) -> Result<Self> {
        Ok(Self {
            server: stack.kind(),
            c2s_addr: stack.c2s_addr(),
            domain: stack.domain().to_owned(),
            component_jid: stack.component_jid().to_owned(),
            keydir_url: stack.keydir_url(),
            admin_token: stack.admin_token().to_owned(),
            database_url: stack.database_url()?.to_owned(),
            server_data_dir: stack.server_data_dir(),
            log_paths: stack.log_paths(),
        })
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
            // The `keyward` CLI's own settings, so that it works once the file is sourced.
            ("KEYWARD_SERVER", self.c2s_addr.to_string()),
            ("KEYWARD_COMPONENT", self.component_jid.clone()),
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

/// A PostgreSQL client or server program (they are not on PATH on Debian), from the same
/// folder the Postgres fixture runs.
pub(crate) fn pg_tool(name: &str) -> Result<PathBuf> {
    Ok(keyward_tests::postgres::bindir()?.join(name))
}

/// For the chaos and soak runs: the server kinds `servers` names (`prosody`, `ejabberd` or
/// `both`), their Debian packages installed, and the folder of the freshly built binaries.
pub(crate) fn prepare(servers: &str) -> Result<(Vec<ServerKind>, PathBuf)> {
    let kinds = match servers {
        "both" => ServerKind::ALL.to_vec(),
        one => vec![ServerKind::parse(one)?],
    };
    let mut packages: Vec<&str> = kinds.iter().flat_map(|k| packages(*k).iter().copied()).collect();
    packages.sort_unstable();
    packages.dedup();
    install::apt_packages(&packages)?;
    Ok((kinds, build_binaries()?))
}

/// Builds the service binaries (and the `keyward` CLI) that the stack and the demo run.
pub(crate) fn build_binaries() -> Result<PathBuf> {
    println!("building keyward…");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.current_dir(crate::repo_root()).args(["build", "--quiet"]);
    for bin in BINARIES {
        build.args(["--bin", bin]);
    }
    install::run(&mut build)?;
    Ok(debug_dir())
}

/// Where cargo puts the debug binaries (`CARGO_TARGET_DIR` honoured).
pub(crate) fn debug_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => crate::repo_root().join(dir),
        None => crate::repo_root().join("target"),
    };
    target.join("debug")
}

/// Starts a stack on loopback, with in-band registration open, for local use.
pub(crate) async fn start(server: ServerKind, bin_dir: PathBuf) -> Result<Stack> {
    let options = StackOptions { bin_dir: Some(bin_dir), log_filter: "info".into(), ..StackOptions::default() };
    Stack::start(server, options).await.with_context(|| format!("starting the local stack with {}", server.name()))
}

/// `stack up`: runs until Ctrl-C or SIGTERM, then stops everything and removes the env file
/// (the admin and component tokens are random, this run's own).
pub(crate) async fn up(server: ServerKind, env_file: &Path) -> Result<()> {
    install::apt_packages(packages(server))?;
    let bin_dir = build_binaries()?;
    let mut stack = start(server, bin_dir.clone()).await?;
    let endpoints = Endpoints::of(&stack)?;
    std::fs::write(env_file, endpoints.env_file_text()).with_context(|| format!("writing {}", env_file.display()))?;
    println!("keyward stack is up ({}):", server.name());
    print!("{}", endpoints.env_file_text());
    println!("\nenv file: {}", env_file.display());
    println!("try, in another shell:");
    println!("  set -a; . {}; set +a", env_file.display());
    println!("  alias keyward={}", bin_dir.join("keyward").display());
    println!(
        "  keyward --jid alice@{} --insecure-plaintext register   # then init, add, send, recv…",
        endpoints.domain
    );
    for log in &endpoints.log_paths {
        println!("log: {}", log.display());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_names_everything_and_quotes_for_the_shell() -> Result<()> {
        let endpoints = Endpoints {
            server: ServerKind::Ejabberd,
            c2s_addr: "127.0.0.1:5222".parse()?,
            domain: "example.test".into(),
            component_jid: "keys.example.test".into(),
            keydir_url: "http://127.0.0.1:8080".into(),
            admin_token: "it's-secret".into(),
            database_url: "postgres://postgres@127.0.0.1:5432/keyward".into(),
            server_data_dir: "/tmp/keyward server".into(),
            log_paths: Vec::new(),
        };
        let text = endpoints.env_file_text();
        for key in [
            "KEYWARD_C2S_ADDR='127.0.0.1:5222'",
            "KEYWARD_DOMAIN='example.test'",
            "KEYWARD_COMPONENT_JID='keys.example.test'",
            "KEYWARD_KEYDIR_URL='http://127.0.0.1:8080'",
            "KEYWARD_ADMIN_TOKEN='it'\\''s-secret'",
            "KEYWARD_DATABASE_URL='postgres://postgres@127.0.0.1:5432/keyward'",
            "KEYWARD_SERVER_DATA_DIR='/tmp/keyward server'",
            "KEYWARD_SERVER='127.0.0.1:5222'",
            "KEYWARD_COMPONENT='keys.example.test'",
            "KEYWARD_XMPP_SERVER='ejabberd'",
        ] {
            assert!(text.lines().any(|line| line == key), "{key} missing from:\n{text}");
        }
        // A shell reads it back unchanged.
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), &text)?;
        let echoed = Command::new("sh")
            .arg("-c")
            .arg(format!(
                ". '{}' && printf '%s|%s' \"$KEYWARD_ADMIN_TOKEN\" \"$KEYWARD_SERVER_DATA_DIR\"",
                file.path().display()
            ))
            .output()?;
        assert_eq!(String::from_utf8_lossy(&echoed.stdout), "it's-secret|/tmp/keyward server");
        Ok(())
    }
}
