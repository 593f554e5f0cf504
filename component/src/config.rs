//! Configuration from flags and environment variables; secrets in a type that never prints.

use core::time::Duration;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use keyward_proto::BareJid;

use crate::error::{Error, Result};

pub use keyward_service::Secret;

/// The largest accepted `max_in_flight` and `max_queued`: a guard against typos (a queued
/// request holds its stanza, up to 64 KiB, so the default 1024 is at most 64 MiB).
pub const MAX_REQUESTS_LIMIT: usize = 65_536;

/// The flags of `keyward-component serve` (each also read from its environment variable).
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The XMPP server's component port, host:port.
    #[arg(long, env = "KEYWARD_XMPP_ADDR")]
    pub xmpp_addr: String,
    /// The component's JID, as configured on the server (e.g. keys.example.test).
    #[arg(long, env = "KEYWARD_COMPONENT_JID")]
    pub component_jid: String,
    /// The shared secret of the component on the server.
    #[arg(long, env = "KEYWARD_COMPONENT_SECRET", hide_env_values = true)]
    pub component_secret: Secret,
    /// keydir's base URL (https://host:port, or http:// on loopback or an encrypted network).
    #[arg(long, env = "KEYWARD_KEYDIR_URL")]
    pub keydir_url: String,
    /// PEM file of CA certificates trusted for keydir's HTTPS certificate, in addition to the
    /// system's (for a private CA).
    #[arg(long, env = "KEYWARD_KEYDIR_CA")]
    pub keydir_ca: Option<PathBuf>,
    /// The bearer token of keydir's component API.
    #[arg(long, env = "KEYWARD_COMPONENT_TOKEN", hide_env_values = true)]
    pub component_token: Secret,
    /// Where to serve /metrics and /healthz.
    #[arg(long, env = "KEYWARD_METRICS_LISTEN", default_value = "127.0.0.1:9102")]
    pub metrics_listen: SocketAddr,
    /// Domains whose accounts may publish and fetch secrets (comma separated); default: the parent
    /// domain of the component JID.
    #[arg(long, env = "KEYWARD_SERVED_DOMAINS", value_delimiter = ',')]
    pub served_domains: Vec<String>,
    /// Requests handled at once; more wait in a queue (see `max_queued`).
    #[arg(long, env = "KEYWARD_MAX_IN_FLIGHT", default_value_t = 64)]
    pub max_in_flight: usize,
    /// Requests waiting (in arrival order) for an in-flight slot; more are answered with
    /// resource-constraint. 0 refuses as soon as every slot is busy.
    #[arg(long, env = "KEYWARD_MAX_QUEUED", default_value_t = 1024)]
    pub max_queued: usize,
    /// Timeout of one keydir request, in milliseconds.
    #[arg(long, env = "KEYWARD_KEYDIR_TIMEOUT_MS", default_value_t = 3000)]
    pub keydir_timeout_ms: u64,
    /// Relays allowed per sender and minute.
    #[arg(long, env = "KEYWARD_RELAY_PER_MINUTE", default_value_t = 30)]
    pub relay_per_minute: u32,
    /// Most lookup answers kept in the answer cache (0 turns it off): `active` keys a requester
    /// holds, answered without keydir while keydir's cache lease is valid.
    #[arg(long, env = "KEYWARD_ANSWER_CACHE_ENTRIES", default_value_t = 100_000)]
    pub answer_cache_entries: usize,
    /// Requests of any kind allowed per sender (bare JID) and minute, on average.
    #[arg(long, env = "KEYWARD_REQUESTS_PER_MINUTE", default_value_t = 120)]
    pub requests_per_minute: u32,
    /// Requests one sender may make at once before the per-minute rate applies.
    #[arg(long, env = "KEYWARD_REQUESTS_BURST", default_value_t = 60)]
    pub requests_burst: u32,
    /// Requests allowed per minute (and burst) to each sender outside the served domains
    /// (0 refuses them all).
    #[arg(long, env = "KEYWARD_REMOTE_PER_MINUTE", default_value_t = 20)]
    pub remote_per_minute: u32,
    /// Requests allowed per minute (and burst) to all senders of one domain outside the served
    /// domains together (0 refuses them all).
    #[arg(long, env = "KEYWARD_REMOTE_DOMAIN_PER_MINUTE", default_value_t = 200)]
    pub remote_domain_per_minute: u32,
    /// Seconds of silence after which a whitespace keepalive is sent.
    #[arg(long, env = "KEYWARD_KEEPALIVE_SECS", default_value_t = 60)]
    pub keepalive_secs: u64,
    /// First reconnect delay, in milliseconds (doubles up to the maximum, with jitter).
    #[arg(long, env = "KEYWARD_RECONNECT_MIN_MS", default_value_t = 250)]
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, in milliseconds.
    #[arg(long, env = "KEYWARD_RECONNECT_MAX_MS", default_value_t = 30_000)]
    pub reconnect_max_ms: u64,
    /// Retry interval, in milliseconds (jittered: drawn from its upper half), while the server
    /// refuses the stream with `conflict` because another component holds the JID (Prosody's
    /// active-standby): the standby takes over within about this long of the active one's
    /// death. 50 to 60000.
    #[arg(long, env = "KEYWARD_STANDBY_RETRY_MS", default_value_t = 500)]
    pub standby_retry_ms: u64,
    /// How long claimed notices stay leased to this component, in milliseconds (1000 to
    /// 600000): a component that dies mid-batch delays that batch by at most this much.
    #[arg(long, env = "KEYWARD_NOTICE_LEASE_MS", default_value_t = 30_000)]
    pub notice_lease_ms: u64,
}

/// The validated configuration of a running component.
#[derive(Debug, Clone)]
pub struct Config {
    /// The XMPP server's component port, host:port.
    pub xmpp_addr: String,
    /// The component's JID (a domain).
    pub component_jid: BareJid,
    /// The shared secret.
    pub component_secret: Secret,
    /// keydir's base URL.
    pub keydir_url: String,
    /// Extra CA certificates (PEM file) trusted for keydir's certificate.
    pub keydir_ca: Option<PathBuf>,
    /// keydir's component API token.
    pub component_token: Secret,
    /// Domains whose accounts may publish and fetch secrets.
    pub served_domains: Vec<String>,
    /// Requests handled at once.
    pub max_in_flight: usize,
    /// Requests waiting for an in-flight slot; more are refused with `resource-constraint`.
    pub max_queued: usize,
    /// Timeout of one keydir request.
    pub keydir_timeout: Duration,
    /// Relays allowed per sender and minute.
    pub relay_per_minute: u32,
    /// Most entries of the answer cache (0: off).
    pub answer_cache_entries: usize,
    /// Requests allowed per sender and minute, and the burst.
    pub requests: RequestQuota,
    /// Silence after which a whitespace keepalive is sent.
    pub keepalive: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Retry interval while another component holds the JID (`conflict`), jittered.
    pub standby_retry: Duration,
    /// How long to wait for the server's roster answer (XEP-0356).
    pub roster_timeout: Duration,
    /// How long to connect and authenticate before giving up on an attempt.
    pub connect_timeout: Duration,
    /// How long a shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Long-poll wait of one notice claim.
    pub claim_wait: Duration,
    /// Lease of a claimed notice (handed out again after it, unless acknowledged).
    pub claim_lease: Duration,
}

/// The request buckets (`docs/protocol.md` section 11): every sender's, and the stricter ones of
/// senders outside the served domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestQuota {
    /// Requests per sender and minute, on average.
    pub per_minute: u32,
    /// Requests one sender may make at once.
    pub burst: u32,
    /// Requests per minute (and burst) of each sender outside the served domains; 0 refuses them.
    pub remote_per_minute: u32,
    /// Requests per minute (and burst) of all senders of one domain outside the served domains.
    pub remote_domain_per_minute: u32,
}

impl Default for RequestQuota {
    fn default() -> Self {
        Self { per_minute: 120, burst: 60, remote_per_minute: 20, remote_domain_per_minute: 200 }
    }
}

impl Config {
    /// A configuration with the defaults for everything but the required settings.
    pub fn new(
        xmpp_addr: impl Into<String>,
        component_jid: &str,
        component_secret: Secret,
        keydir_url: impl Into<String>,
        component_token: Secret,
    ) -> Result<Self> {
        let component_jid = BareJid::parse(component_jid)
            .map_err(|e| Error::Config(format!("component JID {component_jid:?}: {e}")))?;
        if component_jid.local().is_some() {
            return Err(Error::Config("the component JID must be a domain".into()));
        }
        let parent = match component_jid.domain().split_once('.') {
            Some((_, parent)) if !parent.is_empty() => parent.to_owned(),
            _ => return Err(Error::Config("the component JID has no parent domain; set served domains".into())),
        };
        Ok(Self {
            xmpp_addr: xmpp_addr.into(),
            component_jid,
            component_secret,
            keydir_url: keydir_url.into(),
            keydir_ca: None,
            component_token,
            served_domains: vec![parent],
            max_in_flight: 64,
            max_queued: 1024,
            keydir_timeout: Duration::from_secs(3),
            relay_per_minute: 30,
            answer_cache_entries: 100_000,
            requests: RequestQuota::default(),
            keepalive: Duration::from_secs(60),
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
            standby_retry: Duration::from_millis(500),
            roster_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            claim_wait: Duration::from_secs(20),
            claim_lease: Duration::from_secs(30),
        })
    }

    /// Validates the flags.
    pub fn from_args(args: &ServeArgs) -> Result<Self> {
        let mut config = Self::new(
            args.xmpp_addr.clone(),
            &args.component_jid,
            args.component_secret.clone(),
            args.keydir_url.clone(),
            args.component_token.clone(),
        )?;
        if !args.served_domains.is_empty() {
            config.served_domains = args
                .served_domains
                .iter()
                .map(|d| {
                    BareJid::parse(d.trim())
                        .ok()
                        .filter(|j| j.local().is_none())
                        .map(|j| j.as_str().to_owned())
                        .ok_or_else(|| Error::Config(format!("served domain {d:?} is not a domain")))
                })
                .collect::<Result<_>>()?;
        }
        if args.max_in_flight == 0 {
            return Err(Error::Config("max in flight must be at least 1".into()));
        }
        if args.max_in_flight > MAX_REQUESTS_LIMIT {
            return Err(Error::Config(format!("max in flight must be at most {MAX_REQUESTS_LIMIT}")));
        }
        if args.max_queued > MAX_REQUESTS_LIMIT {
            return Err(Error::Config(format!(
                "max queued must be at most {MAX_REQUESTS_LIMIT} (0 disables the queue)"
            )));
        }
        if args.reconnect_min_ms == 0 || args.reconnect_max_ms < args.reconnect_min_ms {
            return Err(Error::Config("reconnect delays must be 0 < min <= max".into()));
        }
        if args.requests_per_minute == 0 || args.requests_burst == 0 {
            return Err(Error::Config("requests per minute and the requests burst must be at least 1".into()));
        }
        if !(50..=60_000).contains(&args.standby_retry_ms) {
            return Err(Error::Config("the standby retry interval must be 50 to 60000 ms".into()));
        }
        if !(1_000..=600_000).contains(&args.notice_lease_ms) {
            return Err(Error::Config("the notice lease must be 1000 to 600000 ms".into()));
        }
        config.keydir_ca = args.keydir_ca.clone();
        config.max_in_flight = args.max_in_flight;
        config.max_queued = args.max_queued;
        config.keydir_timeout = Duration::from_millis(args.keydir_timeout_ms.max(1));
        config.relay_per_minute = args.relay_per_minute;
        config.answer_cache_entries = args.answer_cache_entries;
        config.requests = RequestQuota {
            per_minute: args.requests_per_minute,
            burst: args.requests_burst,
            remote_per_minute: args.remote_per_minute,
            remote_domain_per_minute: args.remote_domain_per_minute,
        };
        config.keepalive = Duration::from_secs(args.keepalive_secs.max(1));
        config.reconnect_min = Duration::from_millis(args.reconnect_min_ms);
        config.reconnect_max = Duration::from_millis(args.reconnect_max_ms);
        config.standby_retry = Duration::from_millis(args.standby_retry_ms);
        config.claim_lease = Duration::from_millis(args.notice_lease_ms);
        Ok(config)
    }

    /// Whether accounts of `domain` may publish and fetch secrets here.
    pub fn serves(&self, domain: &str) -> bool {
        self.served_domains.iter().any(|d| d == domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_the_parent_domain_and_hide_secrets() {
        let config = Config::new(
            "127.0.0.1:5347",
            "keys.example.test",
            Secret::new("hunter2"),
            "http://127.0.0.1:8080",
            Secret::new("tok3n"),
        )
        .expect("valid");
        assert!(config.serves("example.test"));
        assert!(!config.serves("other.test"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("tok3n"), "{printed}");
    }

    /// `serve`'s flags, parsed like the binary does (flags only: the environment is process-wide).
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn from_flags(extra: &[&str]) -> Result<Config> {
        use clap::Parser;
        let mut argv = vec![
            "serve",
            "--xmpp-addr=127.0.0.1:5347",
            "--component-jid=keys.example.test",
            "--component-secret=s",
            "--keydir-url=http://127.0.0.1:8080",
            "--component-token=t",
        ];
        argv.extend_from_slice(extra);
        Config::from_args(&Cli::try_parse_from(argv).expect("flags parse").args)
    }

    #[test]
    fn request_limits_default_validate_and_allow_no_queue() {
        let config = from_flags(&[]).expect("defaults");
        assert_eq!((config.max_in_flight, config.max_queued), (64, 1024));
        let config = from_flags(&["--max-in-flight=1", "--max-queued=0"]).expect("no queue is valid");
        assert_eq!((config.max_in_flight, config.max_queued), (1, 0));
        let config = from_flags(&["--max-queued=65536"]).expect("the largest queue");
        assert_eq!(config.max_queued, MAX_REQUESTS_LIMIT);
        for bad in [&["--max-in-flight=0"][..], &["--max-in-flight=65537"], &["--max-queued=65537"]] {
            assert!(matches!(from_flags(bad), Err(Error::Config(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn request_quotas_default_and_refuse_zero_for_local_senders() {
        assert_eq!(from_flags(&[]).expect("defaults").requests, RequestQuota::default());
        let config =
            from_flags(&["--requests-per-minute=6", "--requests-burst=2", "--remote-per-minute=0"]).expect("valid");
        assert_eq!(
            config.requests,
            RequestQuota { per_minute: 6, burst: 2, remote_per_minute: 0, remote_domain_per_minute: 200 }
        );
        for bad in ["--requests-per-minute=0", "--requests-burst=0"] {
            assert!(matches!(from_flags(&[bad]), Err(Error::Config(_))), "{bad} accepted");
        }
    }

    #[test]
    fn the_notice_lease_defaults_to_thirty_seconds_and_is_bounded() {
        assert_eq!(from_flags(&[]).expect("defaults").claim_lease, Duration::from_secs(30));
        let config = from_flags(&["--notice-lease-ms=600000"]).expect("the longest lease");
        assert_eq!(config.claim_lease, Duration::from_secs(600));
        for bad in ["--notice-lease-ms=999", "--notice-lease-ms=600001"] {
            assert!(matches!(from_flags(&[bad]), Err(Error::Config(_))), "{bad} accepted");
        }
    }

    #[test]
    fn the_standby_retry_defaults_to_half_a_second_and_is_bounded() {
        assert_eq!(from_flags(&[]).expect("defaults").standby_retry, Duration::from_millis(500));
        let config = from_flags(&["--standby-retry-ms=250"]).expect("valid");
        assert_eq!(config.standby_retry, Duration::from_millis(250));
        for bad in ["--standby-retry-ms=49", "--standby-retry-ms=60001"] {
            assert!(matches!(from_flags(&[bad]), Err(Error::Config(_))), "{bad} accepted");
        }
    }

    #[test]
    fn refuses_bad_jids() {
        for jid in ["user@keys.example.test", "keys", "a b"] {
            assert!(Config::new("x:1", jid, Secret::new("s"), "http://x", Secret::new("t")).is_err(), "{jid} accepted");
        }
    }
}
