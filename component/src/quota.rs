//! Request quotas, checked before a request is queued: every sender's bucket, and the stricter
//! buckets of senders outside the served domains (per account and per domain).
//!
//! The sender is the bare JID of the `from` the server stamped. The served domains themselves
//! (the XMPP server, no localpart) are not limited: they are the server this component trusts.
//! A request without a usable `from` is not counted here; its handler refuses it.

use keyward_proto::BareJid;

use crate::config::{Config, RequestQuota};
use crate::ratelimit::RateLimiter;
use crate::stanza::{Condition, ErrorType, Iq, StanzaError};

/// Why a request was refused by a quota: the `reason` label of
/// `keyward_component_quota_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// The sender's own bucket (every sender).
    Requests(u32),
    /// The bucket of one sender outside the served domains.
    Remote(u32),
    /// The bucket shared by all senders of one domain outside the served domains.
    RemoteDomain(u32),
}

/// Every `reason` of `keyward_component_quota_refused_total`, so that each series exists from the start.
pub const REASONS: [&str; 5] =
    ["rate-limit", "remote-rate-limit", "remote-domain-rate-limit", "relay-rate-limit", "holding-limit"];

impl Exceeded {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Requests(_) => "rate-limit",
            Self::Remote(_) => "remote-rate-limit",
            Self::RemoteDomain(_) => "remote-domain-rate-limit",
        }
    }

    /// The answer: `policy-violation` of type `wait` (retry later), as for `relay`, with the limit.
    pub fn error(self) -> StanzaError {
        let text = match self {
            Self::Requests(n) => format!("at most {n} requests a minute; retry later"),
            Self::Remote(n) => format!("at most {n} requests a minute from an account of another domain; retry later"),
            Self::RemoteDomain(n) => format!("at most {n} requests a minute from your domain; retry later"),
        };
        StanzaError::new(Condition::PolicyViolation).kind(ErrorType::Wait).text(text)
    }
}

/// The request buckets of one component process.
#[derive(Debug)]
pub struct Quotas {
    requests: RateLimiter,
    remote: RateLimiter,
    remote_domain: RateLimiter,
}

impl Quotas {
    /// Empty buckets of the configured sizes.
    pub fn new(quota: &RequestQuota) -> Self {
        Self {
            requests: RateLimiter::new(quota.per_minute, quota.burst),
            remote: RateLimiter::new(quota.remote_per_minute, quota.remote_per_minute),
            remote_domain: RateLimiter::new(quota.remote_domain_per_minute, quota.remote_domain_per_minute),
        }
    }

    /// Takes a token for the request's sender from each bucket that applies, in order: its
    /// own, then (outside the served domains) its remote and its domain's. The first empty
    /// one refuses the request; tokens taken before it stay taken.
    pub fn check(&self, iq: &Iq, config: &Config) -> Result<(), Exceeded> {
        let Some(sender) = iq.from.as_deref().and_then(|from| BareJid::from_full(from).ok()) else {
            return Ok(());
        };
        let served = config.serves(sender.domain());
        if served && sender.local().is_none() {
            return Ok(());
        }
        if !self.requests.allow(&sender) {
            return Err(Exceeded::Requests(self.requests.per_minute()));
        }
        if served {
            return Ok(());
        }
        if !self.remote.allow(&sender) {
            return Err(Exceeded::Remote(self.remote.per_minute()));
        }
        let domain = BareJid::parse(sender.domain()).map_err(|_| Exceeded::RemoteDomain(0))?;
        if !self.remote_domain.allow(&domain) {
            return Err(Exceeded::RemoteDomain(self.remote_domain.per_minute()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use keyward_proto::xml::Element;

    fn config(quota: RequestQuota) -> Config {
        let mut config = Config::new(
            "127.0.0.1:5347",
            "keys.example.test",
            Secret::new("s"),
            "http://127.0.0.1:8080",
            Secret::new("t"),
        )
        .expect("valid");
        config.requests = quota;
        config
    }

    fn iq_from(from: &str) -> Iq {
        let element = Element::new("iq", crate::stream::NS_COMPONENT)
            .attr("type", "get")
            .attr("id", "1")
            .attr("from", from)
            .attr("to", "keys.example.test")
            .child(Element::new("ping", crate::route::NS_PING));
        Iq::from_element(element).expect("an iq")
    }

    #[tokio::test(start_paused = true)]
    async fn remote_senders_are_limited_per_account_and_per_domain() {
        let config =
            config(RequestQuota { per_minute: 100, burst: 100, remote_per_minute: 2, remote_domain_per_minute: 3 });
        let quotas = Quotas::new(&config.requests);
        let local = iq_from("alice@example.test/phone");
        assert!((0..10).all(|_| quotas.check(&local, &config).is_ok()), "local senders have only their own bucket");
        let (mallory, trent) = (iq_from("mallory@remote.test/a"), iq_from("trent@remote.test/b"));
        assert!(quotas.check(&mallory, &config).is_ok() && quotas.check(&mallory, &config).is_ok());
        assert_eq!(quotas.check(&mallory, &config), Err(Exceeded::Remote(2)));
        assert!(quotas.check(&trent, &config).is_ok(), "the domain's third request");
        assert_eq!(quotas.check(&trent, &config), Err(Exceeded::RemoteDomain(3)));
        assert!(quotas.check(&iq_from("eve@other.test"), &config).is_ok(), "domains are independent");
    }

    #[tokio::test(start_paused = true)]
    async fn every_sender_has_its_bucket_but_the_served_server_itself() {
        let config =
            config(RequestQuota { per_minute: 60, burst: 2, remote_per_minute: 10, remote_domain_per_minute: 10 });
        let quotas = Quotas::new(&config.requests);
        let alice = iq_from("alice@example.test/phone");
        assert!(quotas.check(&alice, &config).is_ok() && quotas.check(&alice, &config).is_ok());
        let refused = quotas.check(&alice, &config).expect_err("the third");
        assert_eq!(refused, Exceeded::Requests(60));
        assert_eq!(refused.error().condition, Condition::PolicyViolation);
        assert!(quotas.check(&iq_from("alice@example.test/laptop"), &config).is_err(), "per bare JID");
        let server = iq_from("example.test");
        assert!((0..10).all(|_| quotas.check(&server, &config).is_ok()));
        let remote_server = iq_from("remote.test");
        assert!(quotas.check(&remote_server, &config).is_ok() && quotas.check(&remote_server, &config).is_ok());
        assert!(quotas.check(&remote_server, &config).is_err(), "another server is a remote sender");
    }
}
