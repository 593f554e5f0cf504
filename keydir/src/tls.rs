//! Transport security: HTTPS for the API (`KEYWARD_TLS_CERT`/`KEYWARD_TLS_KEY`) and the
//! start-up report of how the database is reached (TLS verified, TLS unverified, or plain).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::error::Error;

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once; further connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 1024;

/// The certificate chain and private key files of the API's HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads both files into a rustls server configuration (HTTP/1.1, ring provider).
    ///
    /// Errors name the file, never its contents.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, Error> {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::Tls(format!("reading the certificate chain {}: {e}", self.cert.display())))?;
        if certs.is_empty() {
            return Err(Error::Tls(format!("{} holds no PEM certificate", self.cert.display())));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| Error::Tls(format!("reading the private key {}: {e}", self.key.display())))?;
        let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                Error::Tls(format!("certificate {} and key {}: {e}", self.cert.display(), self.key.display()))
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A TCP listener that hands out connections once their TLS handshake is done.
///
/// Handshakes run in their own tasks (at most [`MAX_HANDSHAKES`], each bounded by
/// [`HANDSHAKE_TIMEOUT`]), so a slow or silent client never holds up the others.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    /// Serves TLS with `config` on `tcp`.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> Self {
        Self { tcp, acceptor: TlsAcceptor::from(config), handshakes: JoinSet::new() }
    }

    fn start_handshake(&mut self, stream: TcpStream, peer: SocketAddr) {
        let acceptor = self.acceptor.clone();
        self.handshakes.spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Some((tls, peer)),
                Ok(Err(err)) => {
                    tracing::debug!(%peer, cause = %err, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    None
                }
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let room = self.handshakes.len() < MAX_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if room => match accepted {
                    Ok((stream, peer)) => self.start_handshake(stream, peer),
                    Err(err) => {
                        // As axum's own TCP listener: per-connection errors are the peer's;
                        // others (out of file descriptors) get a pause before retrying.
                        tracing::debug!(cause = %err, "accept failed");
                        if !matches!(
                            err.kind(),
                            std::io::ErrorKind::ConnectionRefused
                                | std::io::ErrorKind::ConnectionAborted
                                | std::io::ErrorKind::ConnectionReset
                        ) {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

pub use keyward_service::tls::install_crypto_provider;

/// How the key directory reaches its database, as far as its connection options tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbTransport {
    /// A Unix-domain socket: never leaves the host.
    UnixSocket,
    /// Plain TCP (or TLS only if the server offers it) to a loopback address.
    LoopbackPlain,
    /// Plain TCP (or TLS only if the server offers it) to another host.
    RemotePlain,
    /// TLS without checking the server's certificate (`sslmode=require`).
    TlsUnverified,
    /// TLS with the certificate checked against a CA (`verify-ca`, `verify-full`).
    TlsVerified,
}

/// Whether `host` (a name or an address, IPv6 possibly in brackets) is this machine's loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Sorts connection options by their transport.
pub fn db_transport(options: &PgConnectOptions) -> DbTransport {
    match options.get_ssl_mode() {
        PgSslMode::VerifyCa | PgSslMode::VerifyFull => DbTransport::TlsVerified,
        PgSslMode::Require => DbTransport::TlsUnverified,
        PgSslMode::Disable | PgSslMode::Allow | PgSslMode::Prefer => {
            if options.get_socket().is_some() || options.get_host().starts_with('/') {
                DbTransport::UnixSocket
            } else if is_loopback_host(options.get_host()) {
                DbTransport::LoopbackPlain
            } else {
                DbTransport::RemotePlain
            }
        }
    }
}

/// Logs, once at start, how the database is reached: a warning when the connection may
/// cross a network unencrypted or unauthenticated. Host and port only: never the URL.
pub fn log_db_transport(options: &PgConnectOptions) {
    let host = options.get_host();
    let port = options.get_port();
    match db_transport(options) {
        DbTransport::TlsVerified => tracing::info!(host, port, "database over TLS, server certificate verified"),
        DbTransport::UnixSocket => tracing::info!(socket = host, "database over a Unix socket"),
        DbTransport::LoopbackPlain => {
            tracing::info!(host, port, "database over plain TCP on loopback (no TLS needed on this host)")
        }
        DbTransport::TlsUnverified => tracing::warn!(
            host,
            port,
            "database over TLS without certificate verification (sslmode=require): \
             set sslmode=verify-full and sslrootcert"
        ),
        DbTransport::RemotePlain => tracing::warn!(
            host,
            port,
            "database over plain TCP to a non-loopback host (sslmode disable, allow, prefer or unset): \
             set sslmode=verify-full and sslrootcert unless the network itself is encrypted"
        ),
    }
}

/// Whether the settings' TLS files are both set, both unset, or (an error) only one.
pub fn tls_files(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<TlsFiles>, Error> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert: cert.to_owned(), key: key.to_owned() })),
        (None, None) => Ok(None),
        _ => Err(Error::Config("set both KEYWARD_TLS_CERT and KEYWARD_TLS_KEY, or neither".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn transport(url: &str) -> DbTransport {
        db_transport(&PgConnectOptions::from_str(url).expect("valid URL"))
    }

    #[test]
    fn transports_are_sorted_by_sslmode_and_host() {
        let cases = [
            ("postgres://u:p@db.internal/k?sslmode=verify-full", DbTransport::TlsVerified),
            ("postgres://u@db.internal/k?sslmode=verify-ca", DbTransport::TlsVerified),
            ("postgres://u@db.internal/k?sslmode=require", DbTransport::TlsUnverified),
            ("postgres://u@db.internal/k", DbTransport::RemotePlain),
            ("postgres://u@db.internal/k?sslmode=disable", DbTransport::RemotePlain),
            ("postgres://u@10.0.0.5/k?sslmode=prefer", DbTransport::RemotePlain),
            ("postgres://u@127.0.0.1:5433/k?sslmode=disable", DbTransport::LoopbackPlain),
            ("postgres://u@localhost/k", DbTransport::LoopbackPlain),
            ("postgres://u@[::1]/k?sslmode=allow", DbTransport::LoopbackPlain),
            ("postgres://u@%2Fvar%2Frun%2Fpostgresql/k", DbTransport::UnixSocket),
            ("postgres:///k?host=/var/run/postgresql", DbTransport::UnixSocket),
        ];
        for (url, expected) in cases {
            assert_eq!(transport(url), expected, "{url}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "LOCALHOST", "db.localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["db", "10.0.0.1", "localhost.example.org", "::2", "0.0.0.0"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let (cert, key) = (Path::new("/c.pem"), Path::new("/k.pem"));
        assert!(tls_files(None, None).expect("neither").is_none());
        assert!(tls_files(Some(cert), Some(key)).expect("both").is_some());
        assert!(tls_files(Some(cert), None).is_err());
        assert!(tls_files(None, Some(key)).is_err());
    }

    #[test]
    fn missing_or_empty_files_are_errors_that_name_the_file() {
        let files = TlsFiles { cert: "/nonexistent/cert.pem".into(), key: "/nonexistent/key.pem".into() };
        let err = files.server_config().expect_err("no such file").to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
