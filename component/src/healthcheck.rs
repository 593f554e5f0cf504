//! `keyward-component healthcheck`: asks the running component's own `/healthz` (for a
//! container HEALTHCHECK in an image with no shell and no curl).

use core::time::Duration;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use clap::Args;

use crate::error::{Error, Result};

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
    let url = format!("http://{}/healthz", probe_addr(listen));
    let other = |e: reqwest::Error| Error::Io(std::io::Error::other(e));
    // No proxy: the probe is for this host's own listener, whatever HTTP_PROXY says.
    let client = reqwest::Client::builder().timeout(timeout).no_proxy().build().map_err(other)?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| if e.is_timeout() { Error::Timeout("asking /healthz") } else { other(e) })?;
    Ok(response.status().as_u16())
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
}
