//! The enums both sides switch on: an account's status, a looked-up key's status, a notice's kind.

use serde::{Deserialize, Serialize};

/// Status of an account in the directory. Revocation is terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Usable.
    Active,
    /// Revoked by an admin: never encrypt to it again.
    Revoked,
}

impl AccountStatus {
    /// The wire (and database) name: `active` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
        }
    }
}

/// Status of a looked-up JID: an account's status, or `none` when the directory has no account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// It has a usable bundle.
    Active,
    /// It was revoked: never encrypt to it.
    Revoked,
    /// The directory has no such account.
    None,
}

impl From<AccountStatus> for KeyStatus {
    fn from(status: AccountStatus) -> Self {
        match status {
            AccountStatus::Active => Self::Active,
            AccountStatus::Revoked => Self::Revoked,
        }
    }
}

impl KeyStatus {
    /// The wire name: `active`, `revoked` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::None => "none",
        }
    }
}

/// What a notice tells its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// `<key-relay/>`: the subject's bundle, because the recipient subscribed to them.
    KeyRelay,
    /// `<revoked/>`: the subject's key was revoked.
    Revoked,
}

impl NoticeKind {
    /// The wire (and metrics label) name: `key-relay` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyRelay => "key-relay",
            Self::Revoked => "revoked",
        }
    }
}
