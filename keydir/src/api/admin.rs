//! The admin API: revoke an account, unlock its restore, read accounts (with cursor pagination), read the audit log.

use super::extract::{Body, JidPath, Params, parse_jid};
use super::openapi::AdminErrors;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store;
use crate::store::restore::{Policy, State as Counted};
use axum::Json;
use axum::extract::State;
pub use keyward_contract::admin::{
    Account, AccountPage, AuditAction, AuditEntry, AuditPage, AuditQuery, ListQuery, RestoreState, RevokeRequest,
    RevokeResponse, UnlockRequest, UnlockResponse,
};
use keyward_contract::{AccountStatus, Jid};
use keyward_proto::limits;
use time::OffsetDateTime;

/// An admin's reason: 1 to 1024 bytes, no control characters.
fn checked_reason(reason: &str) -> ApiResult<()> {
    if reason.is_empty() || reason.len() > limits::REASON_BYTES {
        return Err(ApiError::BadRequest(format!("reason must be 1 to {} bytes", limits::REASON_BYTES)));
    }
    if reason.chars().any(char::is_control) {
        return Err(ApiError::BadRequest("reason must not contain control characters".into()));
    }
    Ok(())
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
    checked_reason(&reason)?;
    // No component cache may answer `active` once the revocation committed: record it as
    // pending, wait until every live cache dropped the account, then commit. An unknown
    // account or one already revoked is in no cache as active: answered without the wait.
    match store::admin::status(&state.pool, &jid).await? {
        None => return Err(ApiError::NotFound("no such account".into())),
        Some(store::Status::Revoked) => {}
        Some(store::Status::Active) => {
            let pending = store::leases::mark_pending(&state.pool, jid.as_str()).await?;
            store::leases::wait_for_caches(&state.pool, pending).await?;
        }
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
        revoked_at: revocation.at,
        reason: revocation.reason,
        notices: revocation.notices,
        changed: revocation.changed,
    }))
}

/// Clears an account's restore lock and failed-guess count, with an audit row.
#[utoipa::path(
    post, path = "/v0/admin/accounts/{jid}/unlock", tag = "admin",
    params(("jid" = Jid, Path, description = "Bare JID of the account")),
    request_body = UnlockRequest,
    responses(
        (status = 200, description = "Unlocked (changed: true, audited) or there was nothing to clear (changed: false)", body = UnlockResponse),
        (status = 404, description = "No such account", body = crate::problem::Problem, content_type = "application/problem+json"),
        AdminErrors,
    ),
    security(("admin" = []))
)]
pub async fn unlock(
    State(state): State<AppState>,
    JidPath(jid): JidPath,
    Body(body): Body<UnlockRequest>,
) -> ApiResult<Json<UnlockResponse>> {
    checked_reason(&body.reason)?;
    let changed = store::restore::unlock(&state.pool, &jid, &body.reason).await?;
    if changed {
        tracing::info!(jid = %jid, "restore unlocked by an admin");
    }
    let restore = restore_state(Counted { attempts: 0, locked_at: None }, &state);
    Ok(Json(UnlockResponse { jid: jid.to_string(), restore, changed }))
}

/// The restore state as admins see it: an expired lock is shown as gone.
fn restore_state(stored: Counted, state: &AppState) -> RestoreState {
    let policy = Policy::from(&state.settings.restore);
    let now = OffsetDateTime::now_utc();
    let effective = policy.effective(stored, now);
    RestoreState {
        attempts: i64::from(effective.attempts),
        locked: effective.locked_at.is_some(),
        locked_at: effective.locked_at,
        locked_until: effective.locked_at.and_then(|at| policy.locked_until(at)),
    }
}

/// An account row as the API shows it.
fn account_view(row: store::admin::AccountRow, state: &AppState) -> Account {
    let restore = restore_state(Counted { attempts: row.restore_attempts, locked_at: row.restore_locked_at }, state);
    Account {
        jid: row.jid,
        status: row.status.into(),
        fingerprint: row.fingerprint,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
        reason: row.reason,
        holders: row.holders,
        restore,
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
    Ok(Json(account_view(store::admin::account(&state.pool, &jid).await?, &state)))
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
        query.status.map(store::Status::from),
        after.as_ref().map(|jid| jid.as_str()),
        limit,
    )
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|row| row.jid.clone()) } else { None };
    Ok(Json(AccountPage { accounts: rows.into_iter().map(|row| account_view(row, &state)).collect(), next_cursor }))
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
    let entries = rows.into_iter().map(audit_entry).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(AuditPage { entries, next_cursor }))
}

/// An audit row as the API shows it; an action this version does not know is a bug.
fn audit_entry(row: store::admin::AuditRow) -> ApiResult<AuditEntry> {
    let action = match row.action.as_str() {
        "revoke" => AuditAction::Revoke,
        "unlock" => AuditAction::Unlock,
        other => {
            tracing::error!(action = other, "an audit row with an unknown action");
            return Err(ApiError::Internal);
        }
    };
    Ok(AuditEntry { id: row.id, at: row.at, action, jid: row.jid, detail: row.detail })
}
