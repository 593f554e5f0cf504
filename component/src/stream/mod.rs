//! The XEP-0114 stream codec: pure, incremental, no I/O.
//!
//! [`Decoder`] turns bytes read from the server, split at any boundary, into
//! [`Frame`]s: the stream header, the handshake answer, stanzas (as parsed
//! [`Element`]s), stream errors and the stream's end. [`encode`] writes what the
//! component sends. The decoder refuses DTDs, comments, processing instructions and
//! undefined entities (RFC 6120 restricted XML), and bounds every stanza: an
//! oversized stanza is skipped without being buffered and reported as
//! [`Frame::Oversize`] with its start tag, so that the component can answer it.

mod decoder;
pub mod encode;
mod header;

pub use decoder::{Decoder, DecoderLimits};
pub use header::StreamHeader;

use core::fmt;
use keyward_proto::xml::Element;

/// `jabber:component:accept`, the default namespace of a component stream.
pub const NS_COMPONENT: &str = "jabber:component:accept";
/// The namespace of `<stream:stream>` and `<stream:error>`.
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// The namespace of stream error conditions.
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// One unit read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The server's `<stream:stream>` header.
    Header(StreamHeader),
    /// `<handshake/>`: the server accepted the component's secret.
    Handshake,
    /// An `<iq/>`, `<message/>` or `<presence/>`.
    Stanza(Element),
    /// A stanza larger than the limit, skipped; `head` is its start tag (without
    /// children) when the start tag itself was within the limit.
    Oversize {
        /// The stanza's start tag as an element without children, if it was small enough.
        head: Option<Element>,
    },
    /// `<stream:error>` from the server: the stream is over.
    StreamError {
        /// The condition's element name.
        condition: String,
        /// The optional `<text/>`.
        text: Option<String>,
    },
    /// `</stream:stream>`: the server ended the stream.
    Close,
}

/// RFC 6120 stream error conditions the component detects and sends.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCondition {
    /// The XML is not well-formed.
    NotWellFormed,
    /// A DTD, comment, processing instruction or undefined entity.
    RestrictedXml,
    /// Well-formed but not acceptable (text between stanzas, no header).
    BadFormat,
    /// The stream header or a stanza is in the wrong namespace.
    InvalidNamespace,
    /// A top-level element that is not a stanza.
    UnsupportedStanzaType,
    /// The stream header is larger than allowed.
    PolicyViolation,
    /// The peer stopped answering.
    ConnectionTimeout,
}

impl StreamCondition {
    /// The condition's element name.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotWellFormed => "not-well-formed",
            Self::RestrictedXml => "restricted-xml",
            Self::BadFormat => "bad-format",
            Self::InvalidNamespace => "invalid-namespace",
            Self::UnsupportedStanzaType => "unsupported-stanza-type",
            Self::PolicyViolation => "policy-violation",
            Self::ConnectionTimeout => "connection-timeout",
        }
    }
}

impl fmt::Display for StreamCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
