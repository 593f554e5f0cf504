//! The admin API: revoke an account, read accounts (with cursor pagination), read the audit log.

use super::extract::{Body, Jid, JidPath, Params, parse_jid};
use super::openapi::AdminErrors;
use super::rfc3339;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store;
use axum::Json;
use axum::extract::State;
use keyward_proto::limits;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /v0/admin/accounts/{jid}/revoke` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Why (1 to 1024 bytes, no control characters); sent to every holder.
    #[schema(min_length = 1, max_length = 1024)]
    pub reason: String,
}

/// Status of an account.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Usable.
    Active,
    /// Revoked by an admin: terminal.
    Revoked,
}

impl AccountStatus {
    fn from_db(status: &str) -> Self {
        if status == "active" { Self::Active } else { Self::Revoked }
    }

    fn as_db(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
        }
    }
}

/// The outcome of a revocation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeResponse {
    /// The account.
    pub jid: String,
    /// Always `revoked`.
    pub status: AccountStatus,
    /// When it was revoked (the first time), RFC 3339.
    #[schema(format = DateTime)]
    pub revoked_at: String,
    /// Why (the first revocation's reason).
    pub reason: String,
    /// Notices queued by the revocation: one per holder plus one to the account.
    pub notices: i64,
    /// true if this call revoked the account, false if it already was revoked.
    pub changed: bool,
}

/// Revokes an account: terminal, idempotent, in one transaction with its audit row and notices.
#[utoipa::path(
    post, path = "/v0/admin/accounts/{jid}/revoke", tag = "admin",
    params(("jid" = Jid, Path, description = "Bare JID of the account")),
    request_body = RevokeRequest,
    responses(
        (status = 200, description = "Revoked (changed: true) or already revoked (changed: false)", body = RevokeResponse),
        (status = 404, description = "No such account", body = crate::problem::Problem, content_type = "application/problem+json"),
        AdminErrors,
    ),
    security(("admin" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    JidPath(jid): JidPath,
    Body(body): Body<RevokeRequest>,
) -> ApiResult<Json<RevokeResponse>> {
    let reason = body.reason;
    if reason.is_empty() || reason.len() > limits::REASON_BYTES {
        return Err(ApiError::BadRequest(format!("reason must be 1 to {} bytes", limits::REASON_BYTES)));
    }
    if reason.chars().any(char::is_control) {
        return Err(ApiError::BadRequest("reason must not contain control characters".into()));
    }
    let revocation = store::admin::revoke(&state.pool, &jid, &reason).await?;
    if revocation.changed {
        state.metrics.revocations.inc();
        state.metrics.notices_queued.with_label_values(&["revoked"]).inc_by(revocation.notices as f64);
        tracing::info!(jid = %jid, notices = revocation.notices, "account revoked");
    }
    Ok(Json(RevokeResponse {
        jid: jid.to_string(),
        status: AccountStatus::Revoked,
        revoked_at: rfc3339(revocation.at),
        reason: revocation.reason,
        notices: revocation.notices,
        changed: revocation.changed,
    }))
}

/// An account as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Account {
    /// The account.
    pub jid: String,
    /// Its status.
    pub status: AccountStatus,
    /// Fingerprint of its identity key (64 hex digits).
    pub fingerprint: String,
    /// When it first published, RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it was revoked, RFC 3339, or null.
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// Why it was revoked, or null.
    pub reason: Option<String>,
    /// How many accounts hold its key.
    pub holders: i64,
}

impl From<store::admin::AccountRow> for Account {
    fn from(row: store::admin::AccountRow) -> Self {
        Self {
            jid: row.jid,
            status: AccountStatus::from_db(&row.status),
            fingerprint: row.fingerprint,
            created_at: rfc3339(row.created_at),
            revoked_at: row.revoked_at.map(rfc3339),
            reason: row.reason,
            holders: row.holders,
        }
    }
}

/// Reads one account.
#[utoipa::path(
    get, path = "/v0/admin/accounts/{jid}", tag = "admin",
    params(("jid" = Jid, Path, description = "Bare JID of the account")),
    responses(
        (status = 200, description = "The account", body = Account),
        (status = 404, description = "No such account", body = crate::problem::Problem, content_type = "application/problem+json"),
        AdminErrors,
    ),
    security(("admin" = []))
)]
pub async fn account(State(state): State<AppState>, JidPath(jid): JidPath) -> ApiResult<Json<Account>> {
    Ok(Json(store::admin::account(&state.pool, &jid).await?.into()))
}

/// Query of the account list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only accounts of this status.
    pub status: Option<AccountStatus>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (absent: the first page).
    #[param(value_type = Option<Jid>)]
    pub cursor: Option<String>,
}

/// A page of accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountPage {
    /// Accounts in JID order.
    pub accounts: Vec<Account>,
    /// Cursor of the next page, null on the last one.
    pub next_cursor: Option<String>,
}

fn page_size(limit: Option<i64>) -> ApiResult<i64> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 200".into()));
    }
    Ok(limit)
}

/// Lists accounts in JID order, a page at a time.
#[utoipa::path(
    get, path = "/v0/admin/accounts", tag = "admin",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of accounts", body = AccountPage),
        AdminErrors,
    ),
    security(("admin" = []))
)]
pub async fn list(State(state): State<AppState>, Params(query): Params<ListQuery>) -> ApiResult<Json<AccountPage>> {
    let limit = page_size(query.limit)?;
    let after = match query.cursor.as_deref() {
        Some(cursor) => Some(parse_jid(cursor, "cursor").map_err(|_| ApiError::BadRequest("bad cursor".into()))?),
        None => None,
    };
    let mut rows = store::admin::accounts(
        &state.pool,
        query.status.map(AccountStatus::as_db),
        after.as_ref().map(|jid| jid.as_str()),
        limit,
    )
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|row| row.jid.clone()) } else { None };
    Ok(Json(AccountPage { accounts: rows.into_iter().map(Account::from).collect(), next_cursor }))
}

/// Query of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this account.
    #[param(value_type = Option<Jid>)]
    pub jid: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (absent: the first page).
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// One admin action.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Increasing id.
    pub id: i64,
    /// When, RFC 3339.
    #[schema(format = DateTime)]
    pub at: String,
    /// What was done (`revoke`).
    pub action: String,
    /// To which account.
    pub jid: String,
    /// Details: for `revoke`, the reason, fingerprint and number of notices.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Cursor of the next (older) page, null on the last one.
    pub next_cursor: Option<String>,
}

/// Reads the audit log, newest first, a page at a time.
#[utoipa::path(
    get, path = "/v0/admin/audit", tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditPage),
        AdminErrors,
    ),
    security(("admin" = []))
)]
pub async fn audit(State(state): State<AppState>, Params(query): Params<AuditQuery>) -> ApiResult<Json<AuditPage>> {
    let limit = page_size(query.limit)?;
    let jid = query.jid.as_deref().map(|jid| parse_jid(jid, "jid")).transpose()?;
    let before = match query.cursor.as_deref() {
        Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| ApiError::BadRequest("bad cursor".into()))?),
        None => None,
    };
    let mut rows = store::admin::audit(&state.pool, jid.as_ref().map(|j| j.as_str()), before, limit).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|row| row.id.to_string()) } else { None };
    let entries = rows
        .into_iter()
        .map(|row| AuditEntry { id: row.id, at: rfc3339(row.at), action: row.action, jid: row.jid, detail: row.detail })
        .collect();
    Ok(Json(AuditPage { entries, next_cursor }))
}
