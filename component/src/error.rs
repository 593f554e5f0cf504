//! The one error type of `keyward-component`.

use thiserror::Error;

use crate::stream::StreamCondition;

/// Everything that can go wrong in the component.
///
/// Errors caused by a peer (the XMPP server, keydir, a user) are values, never panics.
/// Messages never contain the component secret, the keydir token or user secrets.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum Error {
    /// The XMPP server broke the stream protocol; the component answers with this stream error.
    #[error("stream error {condition}: {detail}")]
    Stream {
        /// The RFC 6120 stream error condition.
        condition: StreamCondition,
        /// What exactly was wrong.
        detail: String,
    },
    /// The XMPP server sent a stream error and closed the stream.
    #[error("the server sent stream error {condition}{}", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
    ServerStreamError {
        /// The condition's element name (`not-authorized`, `conflict`, ...).
        condition: String,
        /// The optional human-readable text.
        text: Option<String>,
    },
    /// The XMPP server closed the stream.
    #[error("the server closed the stream")]
    Closed,
    /// Reading from or writing to a socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Something did not happen in time.
    #[error("timed out while {0}")]
    Timeout(&'static str),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// keydir could not be reached, timed out, or failed (5xx).
    #[error("keydir unavailable: {0}")]
    KeydirUnavailable(String),
    /// keydir refused the request with an `application/problem+json` answer.
    #[error("keydir refused the request: status {status}, problem {}", problem.map_or("unknown", |p| p.name()))]
    KeydirProblem {
        /// The HTTP status.
        status: u16,
        /// The problem type, when the answer was a problem this version knows.
        problem: Option<keyward_contract::ProblemType>,
    },
    /// keydir answered something that does not follow its API.
    #[error("unexpected answer from keydir: {0}")]
    KeydirProtocol(String),
    /// A protocol element failed to parse or verify.
    #[error(transparent)]
    Proto(#[from] keyward_proto::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
