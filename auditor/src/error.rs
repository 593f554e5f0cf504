//! The auditor's one error type: alarms (the directory misbehaved, with evidence kept) and plain failures (usage, network, state file).

use std::path::PathBuf;

/// Why a round did not end in a cosignature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditorError {
    /// Alarm: the served head is smaller than the last verified one.
    #[error("rollback: keydir serves a head of size {served}, after the verified head of size {verified}")]
    Rollback {
        /// The last verified size.
        verified: u64,
        /// The served size.
        served: u64,
    },
    /// Alarm: two signed heads of one size with different roots.
    #[error("fork: keydir signed two different heads of size {size}")]
    Fork {
        /// The size.
        size: u64,
    },
    /// Alarm: the served head does not extend the last verified one (the consistency proof fails).
    #[error("log inconsistent: the head of size {served} does not extend the verified head of size {verified}")]
    Inconsistent {
        /// The last verified size.
        verified: u64,
        /// The served size.
        served: u64,
    },
    /// Alarm: the head's epoch line is not the log's last leaf.
    #[error("the head's epoch line is not the last leaf of its log")]
    HeadMismatch,
    /// Alarm: the head is not signed by the pinned log key (or names another origin).
    #[error("the head is not signed by the pinned log key: {0}")]
    SignatureInvalid(String),
    /// Alarm: akd's append-only proof does not verify.
    #[error("akd's append-only proof from epoch {start} to {end} does not verify: {detail}")]
    AuditProofInvalid {
        /// The first epoch of the chunk.
        start: u64,
        /// Its last epoch.
        end: u64,
        /// akd's or the auditor's reason.
        detail: String,
    },
    /// Alarm: the roots keydir audited are not the akd roots its signed log holds.
    #[error("the audited akd roots are not the leaves of the signed log: {0}")]
    RootsMismatch(String),
    /// Alarm: keydir serves another log key or VRF key than the pinned ones.
    #[error("keydir's {0} changed from the pinned one")]
    KeyChanged(&'static str),
    /// An alarm was raised before: this state never cosigns again until a person clears it.
    #[error("an alarm ({kind}) was raised before; its evidence is in {evidence}; no head is cosigned")]
    AlarmRecorded {
        /// The alarm's name.
        kind: String,
        /// Where its evidence is.
        evidence: String,
    },
    /// keydir answered something that is not what its API promises (not an alarm: no signature proves it).
    #[error("keydir's answer is malformed: {0}")]
    Malformed(String),
    /// keydir answered an HTTP error.
    #[error("keydir answered {status} to {route}: {detail}")]
    Http {
        /// The route.
        route: String,
        /// The status.
        status: u16,
        /// The problem's detail, if any.
        detail: String,
    },
    /// keydir could not be reached.
    #[error("keydir could not be reached: {0}")]
    Network(#[from] reqwest::Error),
    /// The command line or environment is not usable.
    #[error("usage: {0}")]
    Usage(String),
    /// The state directory could not be read or written.
    #[error("state {path}: {detail}")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
}

impl AuditorError {
    /// The alarm's name (`alarm = "..."` in the log), or `None` for a plain failure.
    pub fn alarm(&self) -> Option<&'static str> {
        match self {
            Self::Rollback { .. } => Some("rollback"),
            Self::Fork { .. } => Some("fork"),
            Self::Inconsistent { .. } => Some("log-inconsistent"),
            Self::HeadMismatch => Some("head-mismatch"),
            Self::SignatureInvalid(_) => Some("signature-invalid"),
            Self::AuditProofInvalid { .. } => Some("audit-proof-invalid"),
            Self::RootsMismatch(_) => Some("roots-mismatch"),
            Self::KeyChanged(_) => Some("key-changed"),
            Self::AlarmRecorded { .. } => Some("alarm-recorded"),
            Self::Malformed(_) | Self::Http { .. } | Self::Network(_) | Self::Usage(_) | Self::State { .. } => None,
        }
    }

    /// The process's exit code: 1 for an alarm, 2 for anything else.
    pub fn exit_code(&self) -> u8 {
        if self.alarm().is_some() { 1 } else { 2 }
    }
}

/// The auditor's result type.
pub type Result<T> = std::result::Result<T, AuditorError>;
