//! `keyward-keydir healthcheck`: asks the running keydir's own `/healthz` (for a container
//! HEALTHCHECK in an image with no shell and no curl).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::Args;

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
    let url = format!("http://{}/healthz", probe_target(listen));
    // No proxy: the probe is for this host's own listener, whatever HTTP_PROXY says.
    let client = reqwest::Client::builder().timeout(timeout).no_proxy().build().map_err(io::Error::other)?;
    let response = client.get(&url).send().await.map_err(|e| {
        let kind = if e.is_timeout() { io::ErrorKind::TimedOut } else { io::ErrorKind::Other };
        io::Error::new(kind, format!("asking {url}: {e}"))
    })?;
    Ok(response.status().as_u16())
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
}
