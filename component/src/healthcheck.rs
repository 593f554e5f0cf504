//! `keyward-component healthcheck`: asks the running component's own `/healthz` (for a
//! container HEALTHCHECK in an image with no shell and no curl).

use core::time::Duration;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// Longest answer read from `/healthz`.
const MAX_ANSWER: u64 = 4096;

/// The arguments of `healthcheck`.
#[derive(Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// Where the component serves /metrics and /healthz (as for `serve`).
    #[arg(long, env = "KEYWARD_METRICS_LISTEN", default_value = "127.0.0.1:9102")]
    pub metrics_listen: SocketAddr,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// The address to probe for a listener bound to `listen`: loopback when it is the unspecified
/// address (`0.0.0.0`, `[::]`), else `listen` itself.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port()),
        _ => listen,
    }
}

/// GETs `/healthz` of the listener bound to `listen`, within `timeout`; returns the HTTP status.
pub async fn healthz_status(listen: SocketAddr, timeout: Duration) -> Result<u16> {
    tokio::time::timeout(timeout, get_status(probe_addr(listen)))
        .await
        .map_err(|_| Error::Timeout("asking /healthz"))?
}

async fn get_status(addr: SocketAddr) -> Result<u16> {
    let mut socket = TcpStream::connect(addr).await?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    socket.take(MAX_ANSWER).read_to_end(&mut answer).await?;
    status_of(&answer).ok_or_else(|| Error::Io(std::io::Error::other("not an HTTP answer")))
}

/// The status code of an HTTP/1.x answer.
fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\r' || b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
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
            ("0.0.0.0:9102", "127.0.0.1:9102"),
            ("[::]:9102", "[::1]:9102"),
            ("127.0.0.1:9", "127.0.0.1:9"),
            ("10.1.2.3:80", "10.1.2.3:80"),
        ];
        for (listen, probed) in cases {
            let listen: SocketAddr = listen.parse().expect("addr");
            assert_eq!(probe_addr(listen).to_string(), probed);
        }
    }

    #[test]
    fn reads_the_status_line() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nstream up"), Some(200));
        assert_eq!(status_of(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"), Some(503));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b""), None);
    }
}
