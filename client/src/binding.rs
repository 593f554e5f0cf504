//! SCRAM channel binding that follows what the server offers (RFC 5802 §6).
//!
//! tokio-xmpp names its SCRAM mechanisms after the channel binding the TLS layer can give
//! (`SCRAM-SHA-1-PLUS` with TLS 1.3's `tls-exporter`), which goes wrong both ways on real
//! servers over TLS 1.3:
//! - Prosody 0.12 offers SCRAM without `-PLUS`: no mechanism would match. RFC 5802: a
//!   client that could bind but sees no `-PLUS` uses plain SCRAM with the `y` flag (so a
//!   server whose `-PLUS` offer an attacker stripped notices).
//! - ejabberd 23.01 offers `-PLUS` but binds with `tls-unique` only, which TLS 1.3 lacks:
//!   binding with `tls-exporter` fails the login. A server says which types it binds with
//!   in XEP-0440's `<sasl-channel-binding/>`; without our type there, the client binds
//!   with nothing (the `n` flag), which every SCRAM server accepts.
//!
//! Every login, reconnects included, decides from that connection's own offer.

use sasl::common::ChannelBinding;
use std::collections::BTreeSet;
use tokio_xmpp::parsers::sasl_cb::Type as CbType;

/// The binding to use, given what the TLS layer offers, the mechanisms the server offers and
/// the binding types it announces (XEP-0440), if it does.
pub(crate) fn binding_for(
    offered_by_tls: ChannelBinding,
    offered_mechanisms: &BTreeSet<String>,
    server_types: Option<&[CbType]>,
) -> ChannelBinding {
    let server_binds = offered_mechanisms.iter().any(|m| m.starts_with("SCRAM-") && m.ends_with("-PLUS"));
    let ours = match offered_by_tls {
        ChannelBinding::TlsExporter(_) => CbType::TlsExporter,
        ChannelBinding::TlsUnique(_) => CbType::TlsUnique,
        _ => return ChannelBinding::None,
    };
    if !server_binds {
        return ChannelBinding::Unsupported;
    }
    if server_types.is_some_and(|types| types.contains(&ours)) { offered_by_tls } else { ChannelBinding::None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(mechanisms: &[&str]) -> BTreeSet<String> {
        mechanisms.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn binds_only_with_a_type_the_server_announces() {
        let exporter = || ChannelBinding::TlsExporter(vec![7; 32]);
        let plus = offered(&["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"]);
        let announced = [CbType::TlsUnique, CbType::TlsExporter];
        assert!(matches!(
            binding_for(exporter(), &plus, Some(&announced)),
            ChannelBinding::TlsExporter(ref data) if data == &[7; 32]
        ));
        // -PLUS offered, but only tls-unique announced, or nothing announced (ejabberd 23.01
        // over TLS 1.3): no binding, the `n` flag.
        assert_eq!(binding_for(exporter(), &plus, Some(&[CbType::TlsUnique])).header(), b"n,,");
        assert_eq!(binding_for(exporter(), &plus, None).header(), b"n,,");
        // TLS could bind, the server offers no -PLUS (Prosody 0.12): plain SCRAM, the `y` flag.
        let y = binding_for(exporter(), &offered(&["PLAIN", "SCRAM-SHA-1"]), None);
        assert_eq!(y.header(), b"y,,");
        // No binding from TLS (TLS 1.2 here, or plain TCP): the `n` flag, whatever is offered.
        assert_eq!(binding_for(ChannelBinding::None, &plus, Some(&announced)).header(), b"n,,");
    }
}
