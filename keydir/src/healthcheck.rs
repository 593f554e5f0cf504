//! `keyward-keydir healthcheck`: asks the running keydir's own `/healthz` (for a container
//! HEALTHCHECK in an image with no shell and no curl).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest answer read from `/healthz`.
const MAX_ANSWER: u64 = 4096;

/// The arguments of `healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// host:port of the HTTP API (as for `serve`).
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// The address to probe for a listener bound to `listen` (`host:port`): loopback when the host
/// is the unspecified address (`0.0.0.0`, `[::]`), else `listen` itself.
pub fn probe_target(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => {
            let loopback: IpAddr = match addr.ip() {
                IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            };
            SocketAddr::new(loopback, addr.port()).to_string()
        }
        _ => listen.to_owned(),
    }
}

/// GETs `/healthz` of the API bound to `listen`, within `timeout`; returns the HTTP status.
pub async fn healthz_status(listen: &str, timeout: Duration) -> io::Result<u16> {
    let target = probe_target(listen);
    tokio::time::timeout(timeout, get_status(&target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {target} within {timeout:?}")))?
}

async fn get_status(target: &str) -> io::Result<u16> {
    let mut socket = TcpStream::connect(target).await?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    socket.take(MAX_ANSWER).read_to_end(&mut answer).await?;
    status_of(&answer).ok_or_else(|| io::Error::other(format!("{target} did not answer HTTP")))
}

/// The status code of an HTTP/1.x answer.
fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\r' || b == b'\n').next()?;
    let mut parts = std::str::from_utf8(line).ok()?.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listeners_are_probed_on_loopback() {
        let cases = [
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("[::]:8080", "[::1]:8080"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("keydir.internal:8080", "keydir.internal:8080"),
        ];
        for (listen, probed) in cases {
            assert_eq!(probe_target(listen), probed);
        }
    }

    #[test]
    fn reads_the_status_line() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n\r\n{\"status\":\"ok\"}"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 500 Internal Server Error\r\n"), Some(500));
        assert_eq!(status_of(b"220 smtp ready\r\n"), None);
    }
}
