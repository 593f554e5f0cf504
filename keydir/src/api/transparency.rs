//! The key transparency endpoints: the map's epoch and VRF key, the audit proof and the signed epoch heads with their log proofs (public), lookup and history proofs (component token).
//!
//! Transparency data is public by design, but a lookup or history proof answers "does this
//! JID have an account, and how often did its key change": those two take the component
//! token like every other per-account read. The epoch, the VRF public key and the
//! append-only audit proof name no account (only VRF outputs and hashes) and need no token,
//! so anyone can audit; nor do the signed heads, the log's proofs and its keys.

use super::extract::{Body, JidPath, Params, parse_jid};
use super::openapi::ComponentErrors;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::transparency::heads::{Heads, HeadsError};
use crate::transparency::{Map, MapError};
use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_contract::Jid;
pub use keyward_contract::transparency::{
    AuditProofResponse, AuditQuery, ConsistencyProofResponse, ConsistencyQuery, EpochResponse, HeadResponse,
    HistoryProofResponse, HistoryQuery, InclusionProofResponse, InclusionQuery, LogKeyResponse, LookupHead,
    LookupProofItem, LookupProofResponse, LookupProofsRequest, LookupProofsResponse, VrfKeyResponse,
};
use keyward_proto::BareJid;
use keyward_proto::limits;
use keyward_proto::transparency::heads::proof::proof_to_bytes;
use keyward_proto::transparency::value::label;
use keyward_transparency::akd::proto::specs::types as pb;
use protobuf::Message;
use std::sync::Arc;

/// Most epochs one audit proof spans.
pub const MAX_AUDIT_EPOCHS: i64 = 1000;

/// The map, or 503 when this keydir has no VRF key.
fn map(state: &AppState) -> ApiResult<&Arc<Map>> {
    state.map.as_ref().ok_or_else(|| {
        ApiError::TransparencyUnavailable(
            "this keydir has no VRF key configured (KEYWARD_VRF_KEY): no transparency map is published".into(),
        )
    })
}

/// A map failure: the database's as usual, akd's logged and answered 503.
fn failed(err: MapError) -> ApiError {
    match err {
        MapError::Database(err) => err.into(),
        MapError::Akd(err) => {
            tracing::warn!(cause = %err, "the transparency map could not answer");
            ApiError::TransparencyUnavailable("the transparency map could not answer; retry later".into())
        }
        MapError::Encode(err) => {
            tracing::error!(cause = %err, "a proof does not encode");
            ApiError::Internal
        }
    }
}

/// The epoch log, or 503 when this keydir has no VRF key or no head signing key.
fn heads(state: &AppState) -> ApiResult<&Arc<Heads>> {
    state.heads.as_ref().ok_or_else(|| {
        ApiError::TransparencyUnavailable(
            "this keydir has no head signing key (KEYWARD_TRANSPARENCY_SIGNING_KEY) or no VRF key: \
             no epoch head is signed"
                .into(),
        )
    })
}

/// A log failure: the database's as usual; an inconsistent log raised as an alarm, answered 503.
fn log_failed(err: HeadsError) -> ApiError {
    match err {
        HeadsError::Database(err) => err.into(),
        err => {
            tracing::error!(alarm = "transparency-log-inconsistent", cause = %err, "the epoch log could not answer");
            ApiError::TransparencyUnavailable("the epoch log could not answer; retry later".into())
        }
    }
}

/// A protobuf message's bytes, base64.
fn encoded(message: &impl Message) -> ApiResult<String> {
    let bytes = message.write_to_bytes().map_err(|err| {
        tracing::error!(cause = %err, "a proof does not encode");
        ApiError::Internal
    })?;
    Ok(STANDARD.encode(bytes))
}

/// The map's latest epoch and root hash.
#[utoipa::path(
    get, path = "/v0/transparency/epoch", tag = "transparency",
    responses(
        (status = 200, description = "The latest epoch", body = EpochResponse),
        (status = 503, description = "No VRF key is configured, or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn epoch(State(state): State<AppState>) -> ApiResult<Json<EpochResponse>> {
    let latest = map(&state)?.epoch_hash().await.map_err(failed)?;
    let number = i64::try_from(latest.epoch()).map_err(|_| ApiError::Internal)?;
    let recorded = crate::store::transparency::epochs(&state.pool, number, number).await?;
    Ok(Json(EpochResponse {
        epoch: latest.epoch(),
        root_hash: STANDARD.encode(latest.hash()),
        published_at: recorded.first().map(|e| e.published_at),
    }))
}

/// The map's VRF public key.
#[utoipa::path(
    get, path = "/v0/transparency/vrf-key", tag = "transparency",
    responses(
        (status = 200, description = "The VRF public key", body = VrfKeyResponse),
        (status = 503, description = "No VRF key is configured, or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn vrf_key(State(state): State<AppState>) -> ApiResult<Json<VrfKeyResponse>> {
    let key = map(&state)?.vrf_public_key().await.map_err(failed)?;
    Ok(Json(VrfKeyResponse { vrf_public_key: STANDARD.encode(key) }))
}

/// The append-only proof between two epochs, for auditors.
///
/// It covers `start` to the least of `end`, `start + 1000` and the latest recorded epoch; the
/// answer's `end` says which. Nothing to prove (that epoch is not after `start`) is 404.
#[utoipa::path(
    get, path = "/v0/transparency/audit", tag = "transparency",
    params(AuditQuery),
    responses(
        (status = 200, description = "The proof, up to the answer's end", body = AuditProofResponse),
        (status = 400, description = "A malformed query", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No recorded epoch after start up to end", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "No VRF key is configured, or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn audit(
    State(state): State<AppState>,
    Params(query): Params<AuditQuery>,
) -> ApiResult<Json<AuditProofResponse>> {
    let map = map(&state)?;
    let (Ok(start), Ok(end)) = (i64::try_from(query.start), i64::try_from(query.end)) else {
        return Err(ApiError::BadRequest("start and end must be below 2^63".into()));
    };
    let last = crate::store::transparency::last_epoch(&state.pool).await?;
    let end = end.min(start.saturating_add(MAX_AUDIT_EPOCHS)).min(last);
    if start < 1 || end <= start {
        return Err(ApiError::NotFound(format!("no recorded epoch after {start} up to {}", query.end)));
    }
    let recorded = crate::store::transparency::epochs(&state.pool, start, end).await?;
    let (Ok(from), Ok(to)) = (u64::try_from(start), u64::try_from(end)) else { return Err(ApiError::Internal) };
    if recorded.len() as u64 != to - from + 1 {
        tracing::error!(alarm = "transparency-epochs-missing", start, end, "recorded epochs are missing");
        return Err(ApiError::Internal);
    }
    let proof = map.audit(from, to).await.map_err(failed)?;
    Ok(Json(AuditProofResponse {
        start: from,
        end: to,
        roots: recorded.iter().map(|e| STANDARD.encode(&e.root_hash)).collect(),
        proof: encoded(&pb::AppendOnlyProof::from(&proof))?,
    }))
}

/// The newest signed head of the epoch log.
#[utoipa::path(
    get, path = "/v0/transparency/head", tag = "transparency",
    responses(
        (status = 200, description = "The newest signed head, with the newest cosignature of each configured auditor", body = HeadResponse),
        (status = 404, description = "No head is signed yet (no epoch published)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "No head signing key or VRF key is configured, or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn head(State(state): State<AppState>) -> ApiResult<Json<HeadResponse>> {
    let latest = heads(&state)?.latest().await.map_err(log_failed)?;
    let Some(head) = latest else {
        return Err(ApiError::NotFound("no epoch head is signed yet".into()));
    };
    let (Ok(size), Ok(epoch)) = (u64::try_from(head.size), u64::try_from(head.epoch)) else {
        return Err(ApiError::Internal);
    };
    let note = super::cosignatures::with_cosignatures(&state, head.size, head.note).await?;
    Ok(Json(HeadResponse { size, epoch, note }))
}

/// The consistency proof of the epoch log between two sizes.
#[utoipa::path(
    get, path = "/v0/transparency/consistency", tag = "transparency",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProofResponse),
        (status = 400, description = "A malformed query, or from = 0 or from > to", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "to is beyond the log's size", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "No head signing key or VRF key is configured, or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn consistency(
    State(state): State<AppState>,
    Params(query): Params<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyProofResponse>> {
    let heads = heads(&state)?;
    if query.from == 0 || query.from > query.to {
        return Err(ApiError::BadRequest("from must be at least 1 and at most to".into()));
    }
    let leaves = heads.sync().await.map_err(log_failed)?;
    if query.to > leaves.len() {
        return Err(ApiError::NotFound(format!("the log has {} epochs", leaves.len())));
    }
    let proof = leaves.consistency(query.from, query.to).map_err(log_failed)?;
    Ok(Json(ConsistencyProofResponse {
        from: query.from,
        to: query.to,
        proof: STANDARD.encode(proof_to_bytes(&proof)),
    }))
}

/// The inclusion proof of one leaf (epoch) of the epoch log.
#[utoipa::path(
    get, path = "/v0/transparency/inclusion", tag = "transparency",
    params(InclusionQuery),
    responses(
        (status = 200, description = "The leaf and its proof", body = InclusionProofResponse),
        (status = 400, description = "A malformed query, or index >= size", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "size is beyond the log's size", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "No head signing key or VRF key is configured, or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn inclusion(
    State(state): State<AppState>,
    Params(query): Params<InclusionQuery>,
) -> ApiResult<Json<InclusionProofResponse>> {
    let heads = heads(&state)?;
    if query.index >= query.size {
        return Err(ApiError::BadRequest("index must be below size".into()));
    }
    let leaves = heads.sync().await.map_err(log_failed)?;
    if query.size > leaves.len() {
        return Err(ApiError::NotFound(format!("the log has {} epochs", leaves.len())));
    }
    let leaf = leaves.leaf(query.index).ok_or(ApiError::Internal)?;
    let proof = leaves.inclusion(query.index, query.size).map_err(log_failed)?;
    Ok(Json(InclusionProofResponse {
        index: query.index,
        size: query.size,
        epoch: leaf.epoch,
        akd_root: STANDARD.encode(leaf.akd_root),
        proof: STANDARD.encode(proof_to_bytes(&proof)),
    }))
}

/// The keys a client pins: keydir's head verifier key (with the log's origin) and the VRF public key.
#[utoipa::path(
    get, path = "/v0/transparency/key", tag = "transparency",
    responses(
        (status = 200, description = "The log's origin and verifier key, and the VRF public key", body = LogKeyResponse),
        (status = 503, description = "No head signing key or VRF key is configured, or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn key(State(state): State<AppState>) -> ApiResult<Json<LogKeyResponse>> {
    let heads = heads(&state)?;
    let vrf = map(&state)?.vrf_public_key().await.map_err(failed)?;
    Ok(Json(LogKeyResponse {
        origin: heads.origin().to_owned(),
        log_key: heads.verifier().to_string(),
        vrf_public_key: STANDARD.encode(vrf),
    }))
}

/// The proof of an account's current map value.
#[utoipa::path(
    get, path = "/v0/component/transparency/lookup/{jid}", tag = "component",
    params(("jid" = Jid, Path, description = "Bare JID of the account")),
    responses(
        (status = 200, description = "The lookup proof", body = LookupProofResponse),
        (status = 404, description = "The JID is not in the map (akd 0.13 has no proof of absence for a lookup)", body = crate::problem::Problem, content_type = "application/problem+json"),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn lookup(State(state): State<AppState>, JidPath(jid): JidPath) -> ApiResult<Json<LookupProofResponse>> {
    let found = map(&state)?.lookup(&label(&jid)).await.map_err(failed)?;
    let Some((proof, at)) = found else {
        return Err(ApiError::NotFound("this JID is not in the transparency map".into()));
    };
    Ok(Json(LookupProofResponse {
        jid: jid.to_string(),
        epoch: at.epoch(),
        root_hash: STANDARD.encode(at.hash()),
        version: proof.version,
        value: STANDARD.encode(&proof.value.0),
        proof: encoded(&pb::LookupProof::from(&proof))?,
    }))
}

/// The proof of every value an account had, for the account's own client to monitor, with the
/// signed head of its epoch.
#[utoipa::path(
    get, path = "/v0/component/transparency/history/{jid}", tag = "component",
    params(("jid" = Jid, Path, description = "Bare JID of the account"), HistoryQuery),
    responses(
        (status = 200, description = "The history proof", body = HistoryProofResponse),
        (status = 404, description = "The JID is not in the map", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "No VRF key is configured, the epoch of the proof is not signed yet, or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn history(
    State(state): State<AppState>,
    JidPath(jid): JidPath,
    Params(query): Params<HistoryQuery>,
) -> ApiResult<Json<HistoryProofResponse>> {
    if query.known_size.is_some_and(|known| i64::try_from(known).is_err()) {
        return Err(ApiError::BadRequest("known_size must be below 2^63".into()));
    }
    let found = map(&state)?.key_history(&label(&jid)).await.map_err(failed)?;
    let Some((proof, at)) = found else {
        return Err(ApiError::NotFound("this JID is not in the transparency map".into()));
    };
    let head = match state.heads.as_ref() {
        Some(heads) => Some(lookup_head(&state, heads, at.epoch(), query.known_size).await?),
        None => None,
    };
    Ok(Json(HistoryProofResponse {
        jid: jid.to_string(),
        epoch: at.epoch(),
        root_hash: STANDARD.encode(at.hash()),
        proof: encoded(&pb::HistoryProof::from(&proof))?,
        head,
    }))
}

/// The lookup proofs of up to 100 accounts at once, all for one epoch (e.g. for one `keys` or
/// `roster-keys` answer), with the signed head of that epoch and its log proofs.
///
/// With a head signing key, an epoch published but not signed yet (a moment, or a publisher
/// that died in between until the next round) is 503: retry.
#[utoipa::path(
    post, path = "/v0/component/transparency/lookups", tag = "component",
    request_body = LookupProofsRequest,
    responses(
        (status = 200, description = "One item per requested JID, in order; an item without a proof is not in the map", body = LookupProofsResponse),
        (status = 503, description = "No VRF key is configured, the epoch of the proofs is not signed yet, or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn lookups(
    State(state): State<AppState>,
    Body(body): Body<LookupProofsRequest>,
) -> ApiResult<Json<LookupProofsResponse>> {
    if body.jids.is_empty() {
        return Err(ApiError::BadRequest("jids: at least one JID is required".into()));
    }
    if body.jids.len() > limits::KEYS_ITEMS {
        return Err(ApiError::TooLarge(format!("jids: at most {} per request", limits::KEYS_ITEMS)));
    }
    if body.known_size.is_some_and(|known| i64::try_from(known).is_err()) {
        return Err(ApiError::BadRequest("known_size must be below 2^63".into()));
    }
    let jids = body.jids.iter().map(|j| parse_jid(j, "jids")).collect::<Result<Vec<BareJid>, _>>()?;
    let mut labels: Vec<Vec<u8>> = jids.iter().map(label).collect();
    labels.sort_unstable();
    labels.dedup();
    let (proofs, at) = map(&state)?.batch_lookup(&labels).await.map_err(failed)?;
    let items = jids
        .iter()
        .map(|jid| {
            let proof = proofs.iter().find(|(of, _)| of[..] == *jid.as_str().as_bytes()).map(|(_, proof)| proof);
            match proof {
                None => LookupProofItem { jid: jid.to_string(), version: None, value: None, proof: None },
                Some(proof) => LookupProofItem {
                    jid: jid.to_string(),
                    version: Some(proof.version),
                    value: Some(STANDARD.encode(&proof.value)),
                    proof: Some(STANDARD.encode(&proof.proof)),
                },
            }
        })
        .collect::<Vec<_>>();
    // Before the first epoch the map is empty and no head exists.
    let head = match state.heads.as_ref() {
        Some(heads) if at.epoch() > 0 => Some(lookup_head(&state, heads, at.epoch(), body.known_size).await?),
        _ => None,
    };
    Ok(Json(LookupProofsResponse { epoch: at.epoch(), root_hash: STANDARD.encode(at.hash()), items, head }))
}

/// The signed head of `epoch` (the log's size then), with the auditors' newest cosignatures and
/// its proofs, for a lookup answer.
async fn lookup_head(state: &AppState, heads: &Heads, epoch: u64, known_size: Option<u64>) -> ApiResult<LookupHead> {
    let Some(proofs) = heads.proofs_at(epoch, known_size).await.map_err(log_failed)? else {
        return Err(ApiError::TransparencyUnavailable(format!("epoch {epoch} is not signed yet; retry")));
    };
    let size = i64::try_from(epoch).map_err(|_| ApiError::Internal)?;
    Ok(LookupHead {
        size: epoch,
        note: super::cosignatures::with_cosignatures(state, size, proofs.note).await?,
        inclusion: STANDARD.encode(proof_to_bytes(&proofs.inclusion)),
        consistency: proofs.consistency.map(|proof| STANDARD.encode(proof_to_bytes(&proof))),
    })
}
