//! The component API: publish, secret, lookup, relay, and the notice outbox (claim and ack).

use super::extract::{Body, JidPath, parse_jid};
use super::openapi::ComponentErrors;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
pub use keyward_contract::component::{
    AckResponse, CacheLeaseRequest, CacheLeaseResponse, ClaimRequest, ClaimResponse, LookupItem, LookupRequest,
    LookupResponse, Notice, NoticeEvent, NoticeIds, PublishRequest, Published, RelayRequest, RelayResponse,
    ReleaseResponse, SecretResponse,
};
use keyward_contract::{AccountStatus, Jid, KeyStatus};
use keyward_proto::restore::AnySecret;
use keyward_proto::{BareJid, Bundle, Error as ProtoError, SecretSig, XmlElement, limits};
use std::time::Duration;

/// Largest `secret_sig` text: a `<secret-sig/>` is about 150 bytes.
const SECRET_SIG_BYTES: usize = 1024;

/// Maps a bundle error to its API error.
fn bad_bundle(err: ProtoError) -> ApiError {
    match err {
        ProtoError::TooLarge { .. } => ApiError::TooLarge(format!("bundle: {err}")),
        ProtoError::JidMismatch => ApiError::BadBundle("the bundle is for another account".into()),
        other => ApiError::BadBundle(other.to_string()),
    }
}

/// Stores an account's bundle and secret blob.
#[utoipa::path(
    put, path = "/v0/component/accounts/{jid}", tag = "component",
    params(("jid" = Jid, Path, description = "Bare JID of the account")),
    request_body = PublishRequest,
    responses(
        (status = 201, description = "Stored", body = Published),
        (status = 200, description = "The same bundle was already stored; the secret blob was replaced (greater seq) or the stored update was repeated", body = Published),
        (status = 409, description = "A different bundle is stored (conflict), or the secret update's seq is not greater than the stored one (stale-secret)", body = crate::problem::Problem, content_type = "application/problem+json"),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn publish(
    State(state): State<AppState>,
    JidPath(jid): JidPath,
    Body(body): Body<PublishRequest>,
) -> ApiResult<(StatusCode, Json<Published>)> {
    if body.bundle.len() > limits::BUNDLE_BYTES {
        return Err(ApiError::TooLarge(format!("the bundle exceeds {} bytes", limits::BUNDLE_BYTES)));
    }
    if body.secret.len() > limits::SECRET_BYTES {
        return Err(ApiError::TooLarge(format!("the secret blob exceeds {} bytes", limits::SECRET_BYTES)));
    }
    let bundle = Bundle::parse(body.bundle.as_bytes()).and_then(|b| b.verify_for(&jid)).map_err(bad_bundle)?;
    let secret = AnySecret::parse(body.secret.as_bytes()).map_err(|err| match err {
        ProtoError::TooLarge { .. } => ApiError::TooLarge(format!("secret: {err}")),
        other => ApiError::BadSecret(other.to_string()),
    })?;
    if body.secret_sig.len() > SECRET_SIG_BYTES {
        return Err(ApiError::TooLarge(format!("the secret update exceeds {SECRET_SIG_BYTES} bytes")));
    }
    let update = SecretSig::parse(body.secret_sig.as_bytes())
        .map_err(|err| ApiError::BadSecretSignature(format!("malformed secret update: {err}")))?;
    let row = store::accounts::NewBundle::from_verified(&bundle)?;
    // The update is verified in the store, against the identity key of the stored bundle.
    let secret = store::accounts::NewSecret::new(secret, update)?;
    let created = store::accounts::publish(&state.pool, &row, &secret).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(Published { jid: jid.to_string(), fingerprint: bundle.fingerprint().to_hex() })))
}

/// Fetches an account's secret blob.
#[utoipa::path(
    get, path = "/v0/component/accounts/{jid}/secret", tag = "component",
    params(("jid" = Jid, Path, description = "Bare JID of the account")),
    responses(
        (status = 200, description = "The secret blob", body = SecretResponse),
        (status = 404, description = "No secret is stored for this account", body = crate::problem::Problem, content_type = "application/problem+json"),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn secret(State(state): State<AppState>, JidPath(jid): JidPath) -> ApiResult<Json<SecretResponse>> {
    let secret = store::accounts::secret(&state.pool, &jid).await?;
    Ok(Json(SecretResponse { secret }))
}

/// Looks up the bundles and status of up to 100 accounts.
#[utoipa::path(
    post, path = "/v0/component/lookup", tag = "component",
    request_body = LookupRequest,
    responses(
        (status = 200, description = "One item per requested JID, in order", body = LookupResponse),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn lookup(State(state): State<AppState>, Body(body): Body<LookupRequest>) -> ApiResult<Json<LookupResponse>> {
    if body.jids.is_empty() {
        return Err(ApiError::BadRequest("jids: at least one JID is required".into()));
    }
    if body.jids.len() > limits::KEYS_ITEMS {
        return Err(ApiError::TooLarge(format!("jids: at most {} per lookup", limits::KEYS_ITEMS)));
    }
    let requester = body.requester.as_deref().map(|r| parse_jid(r, "requester")).transpose()?;
    let jids = body.jids.iter().map(|j| parse_jid(j, "jids")).collect::<Result<Vec<BareJid>, _>>()?;
    let lookup =
        store::accounts::lookup(&state.pool, &state.edges, requester.as_ref(), &jids, state.settings.max_holdings)
            .await;
    if matches!(lookup, Err(ApiError::HoldingLimit(_))) {
        state.metrics.holding_limit_refused.inc();
    }
    // A bundle that neither the map nor its queue commits to is not served (a database edit).
    let known =
        crate::transparency::guard::withhold_uncommitted(&state.pool, &state.metrics.transparency, lookup?).await?;
    let items = jids
        .iter()
        .map(|jid| match known.iter().find(|k| k.jid == jid.as_str()) {
            None => LookupItem {
                jid: jid.to_string(),
                status: KeyStatus::None,
                revoked_at: None,
                reason: None,
                bundle: None,
            },
            // A row without a bundle (its restore counted guesses before first use) has no key yet.
            Some(k) if k.status == store::Status::Active && k.bundle.is_none() => LookupItem {
                jid: jid.to_string(),
                status: KeyStatus::None,
                revoked_at: None,
                reason: None,
                bundle: None,
            },
            Some(k) => LookupItem {
                jid: jid.to_string(),
                status: AccountStatus::from(k.status).into(),
                revoked_at: k.revoked_at,
                reason: k.reason.clone(),
                bundle: k.bundle.clone(),
            },
        })
        .collect();
    Ok(Json(LookupResponse { items }))
}

/// Records that `to` holds `from`'s key and queues a key-relay notice to `to`.
#[utoipa::path(
    post, path = "/v0/component/relays", tag = "component",
    request_body = RelayRequest,
    responses(
        (status = 202, description = "Recorded and queued", body = RelayResponse),
        (status = 404, description = "The sender has no bundle", body = crate::problem::Problem, content_type = "application/problem+json"),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn relay(
    State(state): State<AppState>,
    Body(body): Body<RelayRequest>,
) -> ApiResult<(StatusCode, Json<RelayResponse>)> {
    let from = parse_jid(&body.from, "from")?;
    let to = parse_jid(&body.to, "to")?;
    if from == to {
        return Err(ApiError::BadRequest("an account cannot relay its key to itself".into()));
    }
    let notice_id = store::accounts::relay(&state.pool, &from, &to).await?;
    state.metrics.notices_queued.with_label_values(&["key-relay"]).inc();
    Ok((StatusCode::ACCEPTED, Json(RelayResponse { notice_id })))
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    value: Option<T>,
    default: T,
    min: T,
    max: T,
    field: &str,
) -> ApiResult<T> {
    let value = value.unwrap_or(default);
    if value < min || value > max {
        return Err(ApiError::BadRequest(format!("{field} must be between {min} and {max}")));
    }
    Ok(value)
}

/// A checked, non-negative number of milliseconds.
fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Claims due notices, waiting (long poll) until one is due or `wait_ms` passes.
#[utoipa::path(
    post, path = "/v0/component/notices/claim", tag = "component",
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "Claimed notices, leased for lease_ms", body = ClaimResponse),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn claim(State(state): State<AppState>, Body(body): Body<ClaimRequest>) -> ApiResult<Json<ClaimResponse>> {
    let max = in_range(body.max, 100, 1, 1000, "max")?;
    let wait = millis(in_range(body.wait_ms, 20_000, 0, 30_000, "wait_ms")?).min(state.settings.max_claim_wait);
    let lease = millis(in_range(body.lease_ms, 30_000, 1_000, 600_000, "lease_ms")?);
    let deadline = tokio::time::Instant::now() + wait;
    let mut stopping = state.stopping.clone();
    loop {
        // Register for the wake-up before looking, so a NOTIFY between the
        // look and the wait is not lost.
        let woken = state.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let claimed = store::notices::claim(&state.pool, max, lease).await?;
        // A key relay whose bundle the map does not commit to stays leased, unsent.
        let claimed =
            crate::transparency::guard::withhold_uncommitted_relays(&state.pool, &state.metrics.transparency, claimed)
                .await?;
        let now = tokio::time::Instant::now();
        if !claimed.is_empty() || now >= deadline || *stopping.borrow() {
            return Ok(Json(ClaimResponse { notices: claimed }));
        }
        let sweep = state.settings.sweep.min(deadline - now);
        let _parked = Parked::new(&state.metrics.claims_waiting);
        tokio::select! {
            () = &mut woken => {}
            () = tokio::time::sleep(sweep) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
    }
}

/// Counts a claim in `claims_waiting` while it is parked, however the wait ends (even cancelled).
struct Parked<'a>(&'a prometheus::IntGauge);

impl<'a> Parked<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The ids of an ack or release, once their number is checked.
fn checked(ids: &NoticeIds) -> ApiResult<&[i64]> {
    if ids.ids.len() > 1000 {
        return Err(ApiError::BadRequest("ids: at most 1000 at once".into()));
    }
    Ok(&ids.ids)
}

/// Acknowledges delivered notices; acknowledging twice is harmless.
#[utoipa::path(
    post, path = "/v0/component/notices/ack", tag = "component",
    request_body = NoticeIds,
    responses(
        (status = 200, description = "Acknowledged", body = AckResponse),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn ack(State(state): State<AppState>, Body(body): Body<NoticeIds>) -> ApiResult<Json<AckResponse>> {
    let acknowledged = store::notices::ack(&state.pool, checked(&body)?).await?;
    state.metrics.notices_acked.inc_by(acknowledged as f64);
    Ok(Json(AckResponse { acknowledged }))
}

/// Hands claimed notices back undelivered: they are due again at once, not when their lease
/// runs out. Acknowledged notices stay acknowledged.
#[utoipa::path(
    post, path = "/v0/component/notices/release", tag = "component",
    request_body = NoticeIds,
    responses(
        (status = 200, description = "Released", body = ReleaseResponse),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn release(State(state): State<AppState>, Body(body): Body<NoticeIds>) -> ApiResult<Json<ReleaseResponse>> {
    let released = store::notices::release(&state.pool, checked(&body)?).await?;
    Ok(Json(ReleaseResponse { released }))
}

/// Renews the lease of a component's answer cache and tells it which accounts to drop: those
/// whose revocation is pending (a revocation commits only once every live cache dropped it).
#[utoipa::path(
    post, path = "/v0/component/cache/lease", tag = "component",
    request_body = CacheLeaseRequest,
    responses(
        (status = 200, description = "The lease, renewed; drop `revoking` (or everything when `flush`)", body = CacheLeaseResponse),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn cache_lease(
    State(state): State<AppState>,
    Body(body): Body<CacheLeaseRequest>,
) -> ApiResult<Json<CacheLeaseResponse>> {
    if body.holder.is_empty() || body.holder.chars().count() > 64 || body.holder.chars().any(char::is_control) {
        return Err(ApiError::BadRequest("holder: 1 to 64 characters, no control characters".into()));
    }
    if body.seen_seq < 0 {
        return Err(ApiError::BadRequest("seen_seq must not be negative".into()));
    }
    let renewal = store::leases::renew(&state.pool, &body.holder, body.seen_seq).await?;
    Ok(Json(CacheLeaseResponse {
        seq: renewal.seq,
        lease_ms: i64::try_from(store::leases::LEASE.as_millis()).unwrap_or(i64::MAX),
        revoking: renewal.revoking,
        flush: renewal.flush,
    }))
}
