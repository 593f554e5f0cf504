//! Database access: small functions, one transaction each, returning API errors directly.

pub mod accounts;
pub mod admin;
pub mod edges;
pub mod holdings;
pub mod leases;
pub mod notices;
pub mod restore;
pub mod transparency;
pub mod transparency_cosignatures;
pub mod transparency_heads;

use keyward_contract::{AccountStatus, NoticeKind};

/// An account's status as the database stores it (the enum `account_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "account_status", rename_all = "lowercase")]
pub enum Status {
    /// Usable.
    Active,
    /// Revoked: terminal.
    Revoked,
}

impl From<Status> for AccountStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Active => Self::Active,
            Status::Revoked => Self::Revoked,
        }
    }
}

impl From<AccountStatus> for Status {
    fn from(status: AccountStatus) -> Self {
        match status {
            AccountStatus::Active => Self::Active,
            AccountStatus::Revoked => Self::Revoked,
        }
    }
}

/// A notice's kind as the database stores it (the enum `notice_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "notice_kind", rename_all = "kebab-case")]
pub enum Kind {
    /// A key relay.
    KeyRelay,
    /// A revocation.
    Revoked,
}

impl From<Kind> for NoticeKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::KeyRelay => Self::KeyRelay,
            Kind::Revoked => Self::Revoked,
        }
    }
}
