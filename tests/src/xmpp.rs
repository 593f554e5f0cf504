//! The XMPP servers keyward is tested against, behind one interface: Prosody and ejabberd.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::ejabberd::Ejabberd;
use crate::prosody::Prosody;

/// What a test server is configured with.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The user domain (VirtualHost).
    pub domain: String,
    /// The component's JID.
    pub component: String,
    /// The component's shared secret.
    pub secret: String,
    /// More external components (XEP-0114) the server accepts, each with its own secret
    /// ([`ServerOptions::extra_component_secret`]): JIDs for processes a test connects itself
    /// (a rogue service at `keys.<domain>`, say). ejabberd gives a component connection the
    /// routes of every host of its listener that has the same password, hence secrets of their own.
    pub extra_components: Vec<String>,
    /// Grant the component XEP-0356 roster access, outgoing messages and roster presence.
    pub privilege: bool,
    /// Allow in-band registration (XEP-0077) from clients.
    pub registration: bool,
    /// Serve c2s over TLS with these files: STARTTLS required on the c2s port, and direct TLS
    /// (XEP-0368) on a port of its own. Without it c2s is plain TCP.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Log at `info`, as a production server would, instead of `debug` (which logs every
    /// stanza: tests read it when they fail; `cargo xtask bench` turns it off).
    pub quiet_log: bool,
}

impl ServerOptions {
    /// The secret of the extra component `jid`.
    pub fn extra_component_secret(&self, jid: &str) -> String {
        format!("{}-{jid}", self.secret)
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            domain: "example.test".into(),
            component: "keys.example.test".into(),
            secret: format!("secret-{}", std::process::id()),
            extra_components: Vec::new(),
            privilege: true,
            registration: false,
            tls: None,
            quiet_log: false,
        }
    }
}

/// The loopback ports a server fixture listens on, picked free when it is first started and
/// kept across restarts.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// c2s: plain TCP, or STARTTLS required with [`ServerOptions::tls`].
    pub c2s: u16,
    /// XEP-0114 components.
    pub component: u16,
    /// Direct TLS c2s (XEP-0368), only with [`ServerOptions::tls`].
    pub direct_tls: Option<u16>,
    /// A component port of its own for [`ServerOptions::extra_components`] (ejabberd only: a
    /// component connection there gets the routes of every host of its listener).
    pub extra_component: Option<u16>,
}

impl Ports {
    /// Picks free ports for a server started with `options`.
    pub fn pick(options: &ServerOptions) -> std::io::Result<Self> {
        let direct_tls = match options.tls {
            Some(_) => Some(crate::free_port()?),
            None => None,
        };
        let extra_component = if options.extra_components.is_empty() { None } else { Some(crate::free_port()?) };
        Ok(Self { c2s: crate::free_port()?, component: crate::free_port()?, direct_tls, extra_component })
    }

    /// The c2s address.
    pub fn c2s_addr(&self) -> SocketAddr {
        loopback(self.c2s)
    }

    /// The component port's address.
    pub fn component_addr(&self) -> SocketAddr {
        loopback(self.component)
    }

    /// The direct TLS c2s address, if there is one.
    pub fn direct_tls_addr(&self) -> Option<SocketAddr> {
        self.direct_tls.map(loopback)
    }

    /// Every address the server listens on: what its start waits for.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        [self.c2s_addr(), self.component_addr()].into_iter().chain(self.direct_tls_addr()).collect()
    }

    /// Where the extra components connect: their own port if there is one, else the component port.
    pub fn extra_component_addr(&self) -> SocketAddr {
        loopback(self.extra_component.unwrap_or(self.component))
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Which server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Prosody 0.12 (Debian packages `prosody prosody-modules`).
    Prosody,
    /// ejabberd 23.01 (Debian package `ejabberd`).
    Ejabberd,
}

impl ServerKind {
    /// Every server the suites run against.
    pub const ALL: [ServerKind; 2] = [ServerKind::Prosody, ServerKind::Ejabberd];

    /// Parses `prosody` or `ejabberd`.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "prosody" => Ok(Self::Prosody),
            "ejabberd" => Ok(Self::Ejabberd),
            other => anyhow::bail!("unknown XMPP server {other:?}: use prosody or ejabberd"),
        }
    }

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prosody => "prosody",
            Self::Ejabberd => "ejabberd",
        }
    }
}

/// A running test server of either kind.
#[derive(Debug)]
pub enum XmppServer {
    /// A Prosody fixture.
    Prosody(Prosody),
    /// An ejabberd fixture.
    Ejabberd(Ejabberd),
}

/// Forwards a method to whichever server runs.
macro_rules! either {
    ($self:ident, $server:ident => $body:expr) => {
        match $self {
            XmppServer::Prosody($server) => $body,
            XmppServer::Ejabberd($server) => $body,
        }
    };
}

impl XmppServer {
    /// Starts a server of `kind` on free loopback ports in a temp folder. A port is picked
    /// free and bound a moment later by the server: when another process (a parallel test)
    /// took it in between, it starts again on new ports, up to four times.
    pub async fn start(kind: ServerKind, options: ServerOptions) -> anyhow::Result<Self> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = match kind {
                ServerKind::Prosody => Prosody::start(options.clone()).await.map(Self::Prosody),
                ServerKind::Ejabberd => Ejabberd::start(options.clone()).await.map(Self::Ejabberd),
            };
            match started {
                Err(err) if attempt < 4 && crate::process::is_port_taken(&err) => continue,
                other => return other,
            }
        }
    }

    /// Which server this is.
    pub fn kind(&self) -> ServerKind {
        match self {
            Self::Prosody(_) => ServerKind::Prosody,
            Self::Ejabberd(_) => ServerKind::Ejabberd,
        }
    }

    /// The c2s address (plain TCP on loopback).
    pub fn c2s_addr(&self) -> SocketAddr {
        either!(self, s => s.ports().c2s_addr())
    }

    /// The component port's address.
    pub fn component_addr(&self) -> SocketAddr {
        either!(self, s => s.ports().component_addr())
    }

    /// Where [`ServerOptions::extra_components`] connect.
    pub fn extra_component_addr(&self) -> SocketAddr {
        match self {
            Self::Prosody(s) => s.ports().component_addr(),
            Self::Ejabberd(s) => s.ports().extra_component_addr(),
        }
    }

    /// The direct TLS c2s address, when started with [`ServerOptions::tls`].
    pub fn direct_tls_addr(&self) -> Option<SocketAddr> {
        either!(self, s => s.ports().direct_tls_addr())
    }

    /// The options it was started with.
    pub fn options(&self) -> &ServerOptions {
        either!(self, s => s.options())
    }

    /// The user domain.
    pub fn domain(&self) -> &str {
        &self.options().domain
    }

    /// The component's JID.
    pub fn component_jid(&self) -> &str {
        &self.options().component
    }

    /// The component's shared secret.
    pub fn secret(&self) -> &str {
        &self.options().secret
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        either!(self, s => s.log_path())
    }

    /// The folder holding everything the server stores (users, rosters, offline messages, logs).
    pub fn data_dir(&self) -> PathBuf {
        either!(self, s => s.data_dir())
    }

    /// Registers `user@domain` with `password`; returns the bare JID.
    pub async fn register(&self, user: &str, password: &str) -> anyhow::Result<String> {
        either!(self, s => s.register(user, password).await)
    }

    /// Stops the server.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        either!(self, s => s.stop().await)
    }

    /// SIGKILL: a crash, no shutdown at all; [`restart`](Self::restart) starts it again.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        either!(self, s => s.kill().await)
    }

    /// The server's process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        either!(self, s => s.pid())
    }

    /// Stops (if running) and starts it again on the same ports with the same data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        either!(self, s => s.restart().await)
    }
}
