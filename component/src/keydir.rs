//! The keydir client: the component API of `docs/keydir-api.md` over pooled HTTP with timeouts.
//!
//! Every call is bounded by a timeout, so a slow or dead keydir turns into
//! [`Error::KeydirUnavailable`] quickly, which handlers answer with `service-unavailable`.

use core::time::Duration;
use std::path::Path;
use std::sync::Arc;

use keyward_contract::Problem;
use keyward_contract::component::{
    AckResponse, CacheLeaseRequest, CacheLeaseResponse, ClaimRequest, ClaimResponse, LookupRequest, LookupResponse,
    NoticeIds, OprfRequest, OprfResponse, PublishRequest, RelayRequest, RelayResponse, ReleaseResponse,
    RestoreProofRequest, RestoreProofResponse, SecretResponse,
};
use keyward_contract::transparency::{HistoryProofResponse, LogKeyResponse, LookupProofsRequest, LookupProofsResponse};
use keyward_proto::BareJid;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::config::Secret;
use crate::error::{Error, Result};

/// How long to wait for a TCP connection to keydir.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A client of keydir's component API. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct KeydirClient {
    http: reqwest::Client,
    base: Url,
    token: Secret,
    timeout: Duration,
}

/// What `publish` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The account was created.
    Created,
    /// The same bundle was already stored (the secret blob was replaced).
    Unchanged,
}

pub use keyward_contract::component::{LookupItem, Notice, NoticeEvent};

fn unavailable(err: reqwest::Error) -> Error {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // The causes below reqwest's own message (which names the URL): "tcp connect error",
    // "invalid peer certificate: UnknownIssuer"... never a header, so never the token.
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    causes.dedup();
    if causes.is_empty() {
        Error::KeydirUnavailable(what.to_owned())
    } else {
        Error::KeydirUnavailable(format!("{what}: {}", causes.join(": ")))
    }
}

pub use keyward_service::tls::install_crypto_provider;

/// The TLS settings of the keydir client: rustls with the ring provider, HTTP/1.1, trusting
/// the system's CA certificates and those of the PEM file `extra_ca`.
pub fn tls_config(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!(cause = %err, "a system CA certificate could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system CA certificates");
    if let Some(path) = extra_ca {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::Config(format!("keydir CA file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Error::Config(format!("keydir CA file {} holds no PEM certificate", path.display())));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| Error::Config(format!("keydir CA file {}: {e}", path.display())))?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Whether `host` (a name or an address, IPv6 possibly in brackets) is this machine's loopback.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl KeydirClient {
    /// A client of the keydir at `base_url`, with `timeout` per request, trusting the system's CAs.
    pub fn new(base_url: &str, token: Secret, timeout: Duration) -> Result<Self> {
        Self::with_ca(base_url, token, timeout, None)
    }

    /// A client of the keydir at `base_url` that also trusts the CA certificates of the PEM
    /// file `extra_ca` (for keydir's certificate from a private CA).
    pub fn with_ca(base_url: &str, token: Secret, timeout: Duration, extra_ca: Option<&Path>) -> Result<Self> {
        let base = Url::parse(base_url).map_err(|e| Error::Config(format!("keydir URL: {e}")))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Config("keydir URL must be http(s)://host[:port][/path]".into()));
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(extra_ca)?)
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Self { http, base, token, timeout })
    }

    /// Logs, once at start, whether keydir is reached over HTTPS or plain HTTP: a warning
    /// when plain HTTP leaves this host. Scheme, host and port only: never a path or userinfo.
    pub fn log_transport(&self) {
        let host = self.base.host_str().unwrap_or_default();
        let port = self.base.port_or_known_default().unwrap_or_default();
        if self.base.scheme() == "https" {
            tracing::info!(host, port, "keydir over HTTPS");
        } else if is_loopback_host(host) {
            tracing::info!(host, port, "keydir over plain HTTP on loopback");
        } else {
            tracing::warn!(
                host,
                port,
                "keydir over plain HTTP to a non-loopback host: the component token and users' key \
                 material cross the network unencrypted unless the network itself is; use https://"
            );
        }
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["v0", "component"]).extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.http.request(method, self.url(segments)).bearer_auth(self.token.expose())
    }

    /// Sends and sorts the answer: success, a problem, or unavailable.
    async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.is_server_error() {
            return Err(Error::KeydirUnavailable(format!("status {status}")));
        }
        // A problem type this version does not know (a newer keydir) leaves only the status.
        let problem = response.json::<Problem>().await.ok().map(|problem| problem.kind);
        Err(Error::KeydirProblem { status: status.as_u16(), problem })
    }

    async fn json<T: DeserializeOwned>(response: Response) -> Result<T> {
        response
            .json()
            .await
            .map_err(|e| if e.is_timeout() { unavailable(e) } else { Error::KeydirProtocol(format!("bad JSON: {e}")) })
    }

    /// Stores `jid`'s bundle and secret blob with its signed secret update (their XML).
    pub async fn publish(&self, jid: &BareJid, bundle: &str, secret: &str, secret_sig: &str) -> Result<Published> {
        let body = PublishRequest { bundle: bundle.into(), secret: secret.into(), secret_sig: secret_sig.into() };
        let request = self.request(Method::PUT, &["accounts", jid.as_str()]).json(&body);
        let response = self.send(request).await?;
        Ok(if response.status() == StatusCode::CREATED { Published::Created } else { Published::Unchanged })
    }

    /// `jid`'s secret blob (XML).
    pub async fn secret(&self, jid: &BareJid) -> Result<String> {
        let response = self.send(self.request(Method::GET, &["accounts", jid.as_str(), "secret"])).await?;
        Ok(Self::json::<SecretResponse>(response).await?.secret)
    }

    /// One counted OPRF evaluation of `jid`'s blinded passphrase (base64 in and out).
    pub async fn oprf(&self, jid: &BareJid, blinded: String) -> Result<OprfResponse> {
        let request = self.request(Method::POST, &["accounts", jid.as_str(), "oprf"]).json(&OprfRequest { blinded });
        Self::json(self.send(request).await?).await
    }

    /// `jid`'s restore proof (base64 challenge and signature); whether keydir reset the count.
    pub async fn restore_proof(&self, jid: &BareJid, challenge: String, sig: String) -> Result<bool> {
        let body = RestoreProofRequest { challenge, sig };
        let request = self.request(Method::POST, &["accounts", jid.as_str(), "restore-proof"]).json(&body);
        Ok(Self::json::<RestoreProofResponse>(self.send(request).await?).await?.reset)
    }

    /// Looks up 1 to 100 accounts, recording that `requester` now holds each returned bundle.
    pub async fn lookup(&self, requester: Option<&BareJid>, jids: &[BareJid]) -> Result<Vec<LookupItem>> {
        let body = LookupRequest {
            requester: requester.map(|jid| jid.as_str().to_owned()),
            jids: jids.iter().map(|jid| jid.as_str().to_owned()).collect(),
        };
        let response = self.send(self.request(Method::POST, &["lookup"]).json(&body)).await?;
        let items = Self::json::<LookupResponse>(response).await?.items;
        if items.len() != jids.len() {
            return Err(Error::KeydirProtocol(format!("{} items for {} jids", items.len(), jids.len())));
        }
        Ok(items)
    }

    /// Records that `to` holds `from`'s key and queues a key-relay notice; returns the notice id.
    pub async fn relay(&self, from: &BareJid, to: &BareJid) -> Result<i64> {
        let body = RelayRequest { from: from.as_str().to_owned(), to: to.as_str().to_owned() };
        let response = self.send(self.request(Method::POST, &["relays"]).json(&body)).await?;
        Ok(Self::json::<RelayResponse>(response).await?.notice_id)
    }

    /// Claims up to `max` due notices, waiting up to `wait` for one (long poll), leasing them for `lease`.
    pub async fn claim(&self, max: u32, wait: Duration, lease: Duration) -> Result<Vec<Notice>> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(30_000).min(30_000);
        let body = ClaimRequest {
            max: Some(i64::from(max)),
            wait_ms: Some(i64::try_from(wait_ms).unwrap_or(30_000)),
            lease_ms: Some(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)),
        };
        let request = self
            .request(Method::POST, &["notices", "claim"])
            .json(&body)
            .timeout(Duration::from_millis(wait_ms) + self.timeout);
        let response = self.send(request).await?;
        Ok(Self::json::<ClaimResponse>(response).await?.notices)
    }

    /// Renews the lease of this process's answer cache (`holder`), reporting the last pending
    /// revocation it acted on; returns what it must drop.
    pub async fn renew_cache_lease(&self, holder: &str, seen_seq: i64) -> Result<CacheLeaseResponse> {
        let body = CacheLeaseRequest { holder: holder.to_owned(), seen_seq };
        let response = self.send(self.request(Method::POST, &["cache", "lease"]).json(&body)).await?;
        Self::json::<CacheLeaseResponse>(response).await
    }

    /// The proofs of `jids` (1 to 100) in the map and the signed head of their epoch, with the
    /// consistency proof from `known_size`. keydir answers 503 while the epoch is not signed.
    pub async fn lookup_proofs(&self, jids: &[BareJid], known_size: u64) -> Result<LookupProofsResponse> {
        let body = LookupProofsRequest {
            jids: jids.iter().map(|jid| jid.as_str().to_owned()).collect(),
            known_size: Some(known_size),
        };
        let response = self.send(self.request(Method::POST, &["transparency", "lookups"]).json(&body)).await?;
        let answer = Self::json::<LookupProofsResponse>(response).await?;
        if answer.items.len() != jids.len() {
            return Err(Error::KeydirProtocol(format!("{} proofs for {} jids", answer.items.len(), jids.len())));
        }
        Ok(answer)
    }

    /// The map's whole history of `jid` with the signed head of its epoch and the consistency
    /// proof from `known_size`; `None` when `jid` is not in the map (404).
    pub async fn history_proof(&self, jid: &BareJid, known_size: u64) -> Result<Option<HistoryProofResponse>> {
        let mut url = self.url(&["transparency", "history", jid.as_str()]);
        url.query_pairs_mut().append_pair("known_size", &known_size.to_string());
        let request = self.http.get(url).bearer_auth(self.token.expose());
        match self.send(request).await {
            Ok(response) => Ok(Some(Self::json::<HistoryProofResponse>(response).await?)),
            Err(Error::KeydirProblem { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The keys of keydir's transparency log (public route); `None` when keydir signs no heads
    /// (503: no VRF key or no signing key).
    pub async fn transparency_key(&self) -> Result<Option<LogKeyResponse>> {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["v0", "transparency", "key"]);
        }
        let response = self.http.get(url).timeout(self.timeout).send().await.map_err(unavailable)?;
        match response.status() {
            StatusCode::OK => Ok(Some(Self::json::<LogKeyResponse>(response).await?)),
            StatusCode::SERVICE_UNAVAILABLE => Ok(None),
            status => Err(Error::KeydirUnavailable(format!("status {status}"))),
        }
    }

    /// Acknowledges delivered notices.
    pub async fn ack(&self, ids: &[i64]) -> Result<u64> {
        let body = NoticeIds { ids: ids.to_vec() };
        let response = self.send(self.request(Method::POST, &["notices", "ack"]).json(&body)).await?;
        Ok(Self::json::<AckResponse>(response).await?.acknowledged)
    }

    /// Hands claimed notices back undelivered, so that they are due again at once instead of
    /// when their lease runs out.
    pub async fn release(&self, ids: &[i64]) -> Result<u64> {
        let body = NoticeIds { ids: ids.to_vec() };
        let response = self.send(self.request(Method::POST, &["notices", "release"]).json(&body)).await?;
        Ok(Self::json::<ReleaseResponse>(response).await?.released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in ["localhost", "db.localhost", "127.0.0.1", "127.9.9.9", "[::1]", "::1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["keyward-keydir", "10.0.0.1", "localhost.example.org", "[::2]"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_configuration_error() {
        let missing = tls_config(Some(Path::new("/nonexistent/ca.pem")));
        assert!(matches!(missing, Err(Error::Config(ref m)) if m.contains("/nonexistent/ca.pem")), "{missing:?}");
        let empty = tempfile_path("empty.pem", "");
        assert!(matches!(tls_config(Some(&empty)), Err(Error::Config(_))));
        let _ = std::fs::remove_file(empty);
        assert!(tls_config(None).is_ok());
    }

    fn tempfile_path(name: &str, contents: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("keyward-component-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("writes");
        path
    }

    #[test]
    fn paths_percent_encode_jids() {
        let client =
            KeydirClient::new("http://127.0.0.1:1/base/", Secret::new("t"), Duration::from_secs(1)).expect("valid");
        let url = client.url(&["accounts", "a/b@example.test", "secret"]);
        assert_eq!(url.as_str(), "http://127.0.0.1:1/base/v0/component/accounts/a%2Fb@example.test/secret");
        assert!(KeydirClient::new("mailto:x", Secret::new("t"), Duration::from_secs(1)).is_err());
    }

    #[tokio::test]
    async fn a_dead_keydir_is_unavailable_quickly() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let client =
            KeydirClient::new(&format!("http://{addr}"), Secret::new("t"), Duration::from_millis(500)).expect("valid");
        let started = std::time::Instant::now();
        let jid = BareJid::parse("alice@example.test").expect("valid");
        assert!(matches!(client.secret(&jid).await, Err(Error::KeydirUnavailable(_))));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_silent_keydir_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _hold = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let client =
            KeydirClient::new(&format!("http://{addr}"), Secret::new("t"), Duration::from_millis(300)).expect("valid");
        let started = std::time::Instant::now();
        let jid = BareJid::parse("alice@example.test").expect("valid");
        assert!(matches!(client.secret(&jid).await, Err(Error::KeydirUnavailable(_))));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
