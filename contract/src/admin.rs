//! The admin API (`/v0/admin/...`): revoke an account, unlock its restore, read accounts and the audit log.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::AccountStatus;

/// `POST /v0/admin/accounts/{jid}/revoke` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Why (1 to 1024 bytes, no control characters); sent to every holder.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub reason: String,
}

/// The outcome of a revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeResponse {
    /// The account.
    pub jid: String,
    /// Always `revoked`.
    pub status: AccountStatus,
    /// When it was revoked (the first time).
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    /// Why (the first revocation's reason).
    pub reason: String,
    /// Notices queued by the revocation: one per holder plus one to the account.
    pub notices: i64,
    /// true if this call revoked the account, false if it already was revoked.
    pub changed: bool,
}

/// An account as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// The account.
    pub jid: String,
    /// Its status.
    pub status: AccountStatus,
    /// Fingerprint of its identity key (64 hex digits).
    pub fingerprint: String,
    /// When it first published.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was revoked, or null.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked, or null.
    pub reason: Option<String>,
    /// How many accounts hold its key.
    pub holders: i64,
    /// Its guess-limited restore: failed guesses and the lock.
    pub restore: RestoreState,
}

/// An account's guess-limited restore (protocol section 6.2) as keydir counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreState {
    /// OPRF evaluations answered since the last valid restore proof or unlock (failed guesses).
    pub attempts: i64,
    /// Whether evaluations are refused (`restore-locked`).
    pub locked: bool,
    /// When the account was locked, or null.
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_at: Option<OffsetDateTime>,
    /// When the lock expires by itself, or null (not locked, or only an admin unlocks it).
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
}

/// `POST /v0/admin/accounts/{jid}/unlock` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    /// Why (1 to 1024 bytes, no control characters); kept in the audit log.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub reason: String,
}

/// The outcome of an unlock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnlockResponse {
    /// The account.
    pub jid: String,
    /// Its restore state now: no failed guess, not locked.
    pub restore: RestoreState,
    /// true if there was a lock or a count to clear (an audit row was written), false if not.
    pub changed: bool,
}

/// Query of the account list (`GET /v0/admin/accounts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ListQuery {
    /// Only accounts of this status.
    pub status: Option<AccountStatus>,
    /// Page size, 1 to 200 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (absent: the first page).
    #[cfg_attr(feature = "openapi", param(value_type = Option<crate::Jid>))]
    pub cursor: Option<String>,
}

/// A page of accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountPage {
    /// Accounts in JID order.
    pub accounts: Vec<Account>,
    /// Cursor of the next page, null on the last one.
    pub next_cursor: Option<String>,
}

/// Query of the audit log (`GET /v0/admin/audit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct AuditQuery {
    /// Only entries about this account.
    #[cfg_attr(feature = "openapi", param(value_type = Option<crate::Jid>))]
    pub jid: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (absent: the first page).
    #[cfg_attr(feature = "openapi", param(pattern = "^[0-9]{1,18}$"))]
    pub cursor: Option<String>,
}

/// What an admin did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuditAction {
    /// Revoked an account.
    Revoke,
    /// Cleared an account's restore lock and failed-guess count.
    Unlock,
}

/// One admin action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Increasing id.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What was done.
    pub action: AuditAction,
    /// To which account.
    pub jid: String,
    /// Details: for `revoke`, the reason, fingerprint and number of notices; for `unlock`, the
    /// reason, and the failed guesses and lock time it cleared.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
}

/// A page of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Cursor of the next (older) page, null on the last one.
    pub next_cursor: Option<String>,
}

/// A health answer (`/healthz`, `/readyz`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}
