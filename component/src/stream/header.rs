//! The `<stream:stream>` header: parsed from the server's start tag with quick-xml.

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use super::{NS_COMPONENT, NS_STREAMS, StreamCondition};
use crate::error::{Error, Result};

/// What the component needs from the server's stream header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    /// The stream id, the salt of the handshake.
    pub id: Option<String>,
    /// The `from` the server put on the header.
    pub from: Option<String>,
    /// The namespace declarations of the header (`xmlns`, `xmlns:stream`, ...), in order,
    /// which every stanza inherits.
    pub namespaces: Vec<(String, String)>,
}

fn bad(condition: StreamCondition, detail: impl Into<String>) -> Error {
    Error::Stream { condition, detail: detail.into() }
}

impl StreamHeader {
    /// Parses the complete start tag `<stream:stream ...>` (the bytes from `<` to `>`).
    pub fn parse(tag: &[u8]) -> Result<Self> {
        let mut reader = Reader::from_reader(tag);
        reader.config_mut().check_end_names = false;
        let start = match reader.read_event() {
            Ok(Event::Start(start)) => start,
            Ok(_) => return Err(bad(StreamCondition::BadFormat, "the stream does not start with a header")),
            Err(err) => return Err(bad(StreamCondition::NotWellFormed, format!("stream header: {err}"))),
        };
        let mut header = Self { id: None, from: None, namespaces: Vec::new() };
        for attr in start.attributes() {
            let attr = attr.map_err(|e| bad(StreamCondition::NotWellFormed, format!("stream header: {e}")))?;
            let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
            let value = attr
                .unescape_value()
                .map_err(|e| bad(StreamCondition::NotWellFormed, format!("stream header: {e}")))?
                .into_owned();
            if key == "xmlns" || key.starts_with("xmlns:") {
                header.namespaces.push((key, value));
            } else if key == "id" {
                header.id = Some(value);
            } else if key == "from" {
                header.from = Some(value);
            }
        }
        let qname = String::from_utf8_lossy(start.name().as_ref()).into_owned();
        let (prefix, local) = match qname.split_once(':') {
            Some((prefix, local)) => (Some(prefix), local),
            None => (None, qname.as_str()),
        };
        let element_ns = match prefix {
            Some(prefix) => header.namespace(&format!("xmlns:{prefix}")),
            None => header.namespace("xmlns"),
        };
        if local != "stream" || element_ns != Some(NS_STREAMS) {
            return Err(bad(StreamCondition::InvalidNamespace, format!("stream header is <{qname}>")));
        }
        if header.namespace("xmlns") != Some(NS_COMPONENT) {
            return Err(bad(StreamCondition::InvalidNamespace, "the default namespace is not jabber:component:accept"));
        }
        Ok(header)
    }

    fn namespace(&self, key: &str) -> Option<&str> {
        self.namespaces.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prosody_header() {
        let tag = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
                    xmlns='jabber:component:accept' id='a1b2' from='keys.example.test'>";
        let header = StreamHeader::parse(tag).expect("valid");
        assert_eq!(header.id.as_deref(), Some("a1b2"));
        assert_eq!(header.from.as_deref(), Some("keys.example.test"));
        assert_eq!(header.namespaces.len(), 2);
    }

    #[test]
    fn refuses_wrong_namespaces() {
        let cases: [&[u8]; 3] = [
            b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' id='1'>",
            b"<stream:stream xmlns:stream='urn:other' xmlns='jabber:component:accept' id='1'>",
            b"<stream xmlns='jabber:component:accept' id='1'>",
        ];
        for case in cases {
            let err = StreamHeader::parse(case).expect_err("refused");
            assert!(matches!(err, Error::Stream { condition: StreamCondition::InvalidNamespace, .. }), "{err}");
        }
    }
}
