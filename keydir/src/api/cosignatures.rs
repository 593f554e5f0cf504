//! The auditors' cosignatures: `POST /v0/transparency/cosignatures` (public) stores one that verifies, and the head route serves the newest ones with the head.

use super::extract::Body;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::transparency_cosignatures as store;
use crate::transparency::cosignatures::{Refused, cosigned, identify, verify};
use axum::Json;
use axum::extract::State;
pub use keyward_contract::cosignatures::{CosignatureRequest, CosignatureResponse};
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest signature line taken, in bytes (an Ed25519 cosignature line is under 400).
pub const MAX_LINE_BYTES: usize = 1024;

fn refused(err: Refused) -> ApiError {
    match err {
        Refused::UnknownAuditor(detail) => ApiError::UnknownAuditor(detail),
        Refused::Malformed(detail) | Refused::Invalid(detail) => ApiError::BadCosignature(detail),
    }
}

/// Stores an auditor's cosignature of a signed head.
///
/// Kept only if its key is one of `KEYWARD_TRANSPARENCY_AUDITORS` and it verifies over the
/// stored head of `size`; the newest one of each auditor is then appended to that head's note
/// on `GET /v0/transparency/head`.
#[utoipa::path(
    post, path = "/v0/transparency/cosignatures", tag = "transparency",
    request_body = CosignatureRequest,
    responses(
        (status = 200, description = "Stored (or stored before)", body = CosignatureResponse),
        (status = 400, description = "A malformed body (bad-request), or a cosignature that is not one signature line, does not verify over the head of that size or is dated too far ahead (bad-cosignature)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key is not a configured auditor's (unknown-auditor)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No head of that size is stored", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not declared as application/json", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "No head signing key or VRF key is configured, or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    Body(body): Body<CosignatureRequest>,
) -> ApiResult<Json<CosignatureResponse>> {
    if state.heads.is_none() {
        return Err(ApiError::TransparencyUnavailable(
            "this keydir signs no heads (no head signing key or no VRF key): nothing to cosign".into(),
        ));
    }
    let size = i64::try_from(body.size)
        .ok()
        .filter(|size| *size >= 1)
        .ok_or_else(|| ApiError::BadRequest("size must be 1 to 2^63 - 1".into()))?;
    if body.signature.len() > MAX_LINE_BYTES {
        return Err(ApiError::BadCosignature(format!("a signature line is at most {MAX_LINE_BYTES} bytes")));
    }
    let identified = identify(&state.settings.transparency.auditors, &body.signature).map_err(refused)?;
    let head = crate::store::transparency_heads::head_of_size(&state.pool, size)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no head of size {size} is stored")))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let timestamp = verify(&identified, &head.note, now).map_err(refused)?;
    let signed_at = i64::try_from(timestamp).map_err(|_| ApiError::BadCosignature("time out of range".into()))?;
    store::insert(
        &state.pool,
        &store::NewCosignature {
            size,
            key_name: identified.key.name(),
            key_id: &identified.key.id(),
            signed_at,
            line: &identified.line,
        },
    )
    .await?;
    tracing::info!(size, auditor = identified.key.name(), timestamp, "stored an auditor's cosignature");
    Ok(Json(CosignatureResponse { size: body.size, auditor: identified.key.name().to_owned(), timestamp }))
}

/// The head of `size`'s note with the newest cosignature of each configured auditor appended.
pub(super) async fn with_cosignatures(state: &AppState, size: i64, note: String) -> ApiResult<String> {
    let auditors = &state.settings.transparency.auditors;
    if auditors.is_empty() {
        return Ok(note);
    }
    let lines = store::newest(&state.pool, size).await?;
    Ok(cosigned(auditors, &note, &lines))
}
