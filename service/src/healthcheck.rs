//! The `healthcheck` subcommand: GET `/healthz` of the running service's own listener.
//!
//! A container image with no shell and no curl runs `keyward-keydir healthcheck` or
//! `keyward-component healthcheck` as its HEALTHCHECK: exit 0 on 200, else 1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::Error;

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

/// GETs `/healthz` of the listener bound to `listen`, within `timeout`; returns the HTTP status.
pub async fn healthz_status(listen: &str, timeout: Duration) -> Result<u16, Error> {
    crate::tls::install_crypto_provider();
    let url = format!("http://{}/healthz", probe_target(listen));
    let failed =
        |e: reqwest::Error| Error::Healthcheck { url: url.clone(), reason: e.to_string(), timed_out: e.is_timeout() };
    // No proxy: the probe is for this host's own listener, whatever HTTP_PROXY says.
    let client = reqwest::Client::builder().timeout(timeout).no_proxy().build().map_err(failed)?;
    let response = client.get(&url).send().await.map_err(failed)?;
    Ok(response.status().as_u16())
}

/// The exit code of the `healthcheck` subcommand: 0 when `/healthz` answers 200, else 1 (with
/// the reason on standard error).
pub async fn exit_code(listen: &str, timeout: Duration) -> i32 {
    match healthz_status(listen, timeout).await {
        Ok(200) => return 0,
        Ok(status) => eprintln!("unhealthy: /healthz answered {status}"),
        Err(err) => eprintln!("unhealthy: {err}"),
    }
    1
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
            ("10.1.2.3:80", "10.1.2.3:80"),
            ("keydir.internal:8080", "keydir.internal:8080"),
        ];
        for (listen, probed) in cases {
            assert_eq!(probe_target(listen), probed);
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_unhealthy_with_a_reason() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let listen = format!("127.0.0.1:{}", port.expect("a free port"));
        let err = healthz_status(&listen, Duration::from_secs(2)).await.expect_err("nothing listens");
        assert!(err.to_string().contains(&format!("http://{listen}/healthz")), "{err}");
        assert_eq!(exit_code(&listen, Duration::from_secs(2)).await, 1);
    }
}
