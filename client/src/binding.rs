//! SCRAM channel binding that follows what the server offers (RFC 5802 §6).
//!
//! tokio-xmpp names its SCRAM mechanisms after the channel binding the TLS layer can give
//! (`SCRAM-SHA-1-PLUS` with TLS 1.3's `tls-exporter`) and then finds no match on a server
//! that offers SCRAM without `-PLUS` (Prosody 0.12 over TLS 1.3). RFC 5802 says what to do:
//! a client that supports binding but sees no `-PLUS` offer uses plain SCRAM with the `y`
//! flag, so a server that did offer `-PLUS` (and had it stripped by an attacker) notices.

use sasl::common::ChannelBinding;
use std::collections::BTreeSet;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::xmlstream::{PendingFeaturesRecv, Timeouts};

/// The binding to use, given what the TLS layer offers and the mechanisms the server offers.
pub(crate) fn binding_for(offered_by_tls: ChannelBinding, offered_mechanisms: &BTreeSet<String>) -> ChannelBinding {
    let server_binds = offered_mechanisms.iter().any(|m| m.starts_with("SCRAM-") && m.ends_with("-PLUS"));
    match offered_by_tls {
        ChannelBinding::None => ChannelBinding::None,
        binding if server_binds => binding,
        _ => ChannelBinding::Unsupported,
    }
}

/// A connector whose channel binding follows [`binding_for`], given the mechanisms the server
/// offered when the client first logged in.
#[derive(Debug, Clone)]
pub(crate) struct BindingAsOffered<C> {
    pub(crate) inner: C,
    pub(crate) offered_mechanisms: BTreeSet<String>,
}

impl<C: ServerConnector> ServerConnector for BindingAsOffered<C> {
    type Stream = C::Stream;

    fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> impl Future<Output = Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error>> + Send
    {
        let connecting = self.inner.connect(jid, ns, timeouts);
        let offered = self.offered_mechanisms.clone();
        async move {
            let (pending, binding) = connecting.await?;
            Ok((pending, binding_for(binding, &offered)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(mechanisms: &[&str]) -> BTreeSet<String> {
        mechanisms.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn binds_only_when_the_server_offers_plus() {
        let exporter = || ChannelBinding::TlsExporter(vec![7; 32]);
        assert!(matches!(
            binding_for(exporter(), &offered(&["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"])),
            ChannelBinding::TlsExporter(ref data) if data == &[7; 32]
        ));
        // TLS could bind, the server offers no -PLUS: plain SCRAM with the `y` flag.
        let y = binding_for(exporter(), &offered(&["PLAIN", "SCRAM-SHA-1"]));
        assert_eq!(y.header(), b"y,,");
        // No binding from TLS (TLS 1.2 here, or plain TCP): the `n` flag, whatever is offered.
        assert_eq!(binding_for(ChannelBinding::None, &offered(&["SCRAM-SHA-1-PLUS"])).header(), b"n,,");
    }
}
