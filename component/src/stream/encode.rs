//! What the component writes: the stream header, the handshake, stanzas, stream errors, the close tag.

use keyward_proto::xml::Element;
use quick_xml::escape::escape;
use sha1::{Digest, Sha1};

use super::{NS_COMPONENT, NS_STREAM_ERRORS, StreamCondition};

/// The component's stream header, addressed to the component's own JID.
pub fn open_stream(to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_COMPONENT}' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{}'>",
        escape(to)
    )
}

/// The XEP-0114 handshake digest: lowercase hex SHA-1 of stream id followed by the secret.
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(stream_id.as_bytes());
    sha.update(secret.as_bytes());
    hex::encode(sha.finalize())
}

/// The `<handshake>` element carrying the digest.
pub fn handshake(stream_id: &str, secret: &str) -> String {
    format!("<handshake>{}</handshake>", handshake_digest(stream_id, secret))
}

/// A stanza in the stream's default namespace (no `xmlns` on the stanza itself).
pub fn stanza(element: &Element) -> String {
    let mut out = String::new();
    element.write_into(&mut out, NS_COMPONENT);
    out
}

/// A stream error followed by the close tag.
pub fn stream_error(condition: StreamCondition) -> String {
    format!("<stream:error><{} xmlns='{NS_STREAM_ERRORS}'/></stream:error></stream:stream>", condition.name())
}

/// The end of the component's stream.
pub const CLOSE: &str = "</stream:stream>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_is_sha1_hex_of_id_and_secret() {
        // Stream id 3BF96D32 and secret "sesame", as in XEP-0114's example.
        assert_eq!(handshake_digest("3BF96D32", "sesame"), "7a98dc4c9e92493d7fd66a25364c862637789c45");
        assert_eq!(handshake_digest("", ""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn stanza_omits_default_namespace_and_escapes() {
        let iq = Element::new("iq", NS_COMPONENT).attr("to", "a'b@example.test").attr("type", "result");
        assert_eq!(stanza(&iq), "<iq to='a&apos;b@example.test' type='result'/>");
        let with_ns = Element::new("ping", "urn:xmpp:ping");
        assert_eq!(stanza(&with_ns), "<ping xmlns='urn:xmpp:ping'/>");
    }
}
