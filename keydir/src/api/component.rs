//! The component API: publish, secret, lookup, relay, and the notice outbox (claim and ack).

use super::extract::{Body, Jid, JidPath, int_list, opt_int, parse_jid};
use super::openapi::ComponentErrors;
use super::rfc3339;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keyward_proto::{BareJid, Bundle, Error as ProtoError, SecretBlob, SecretSig, XmlElement, limits};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// `PUT /v0/component/accounts/{jid}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The `<bundle/>` element, as XML text (at most 1024 bytes).
    #[schema(max_length = 1024)]
    pub bundle: String,
    /// The `<secret/>` element, as XML text (at most 4096 bytes).
    #[schema(max_length = 4096)]
    pub secret: String,
    /// The `<secret-sig seq='N'/>` element, as XML text: the account's identity key
    /// signs the secret blob (protocol section 6.1). A stored blob is replaced only by
    /// a correctly signed update with a greater `seq`.
    #[schema(max_length = 1024)]
    pub secret_sig: String,
}

/// The stored account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    /// The account (normalised bare JID).
    pub jid: String,
    /// Fingerprint of its identity key (64 hex digits).
    pub fingerprint: String,
}

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
    let secret = SecretBlob::parse(body.secret.as_bytes()).map_err(|err| match err {
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

/// An account's secret blob.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretResponse {
    /// The `<secret/>` element, as XML text.
    pub secret: String,
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

/// `POST /v0/component/lookup` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// Who asks: recorded as a holder of every active bundle returned. May be null.
    #[serde(default)]
    #[schema(value_type = Option<Jid>)]
    pub requester: Option<String>,
    /// The accounts to look up: 1 to 100 bare JIDs.
    #[schema(min_items = 1, max_items = 100, value_type = Vec<Jid>)]
    pub jids: Vec<String>,
}

/// Status of an account in a lookup.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// It has a usable bundle.
    Active,
    /// It was revoked: never encrypt to it.
    Revoked,
    /// The directory has no such account.
    None,
}

/// One account in a lookup answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LookupItem {
    /// The account, as asked (normalised).
    pub jid: String,
    /// Its status.
    pub status: KeyState,
    /// When it was revoked (RFC 3339), for revoked accounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// Why it was revoked, for revoked accounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its `<bundle/>`, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

/// A lookup answer: one item per requested JID, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct LookupResponse {
    /// The items.
    pub items: Vec<LookupItem>,
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
    let known = store::accounts::lookup(&state.pool, requester.as_ref(), &jids).await?;
    let items = jids
        .iter()
        .map(|jid| match known.iter().find(|k| k.jid == jid.as_str()) {
            None => LookupItem {
                jid: jid.to_string(),
                status: KeyState::None,
                revoked_at: None,
                reason: None,
                bundle: None,
            },
            Some(k) => LookupItem {
                jid: jid.to_string(),
                status: if k.status == "active" { KeyState::Active } else { KeyState::Revoked },
                revoked_at: k.revoked_at.map(rfc3339),
                reason: k.reason.clone(),
                bundle: k.bundle.clone(),
            },
        })
        .collect();
    Ok(Json(LookupResponse { items }))
}

/// `POST /v0/component/relays` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayRequest {
    /// Whose bundle to send.
    #[schema(value_type = Jid)]
    pub from: String,
    /// Who receives it (and is recorded as holding it); not `from`.
    #[schema(value_type = Jid)]
    pub to: String,
}

/// A queued relay.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayResponse {
    /// The id of the queued key-relay notice.
    pub notice_id: i64,
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

/// `POST /v0/component/notices/claim` body; every field is optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Most notices to return (1 to 1000, default 100).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "opt_int")]
    pub max: Option<i64>,
    /// How long to wait for a notice when none is due (0 to 30000 ms, default 20000;
    /// a server may be configured to wait less).
    #[schema(minimum = 0, maximum = 30000)]
    #[serde(default, deserialize_with = "opt_int")]
    pub wait_ms: Option<i64>,
    /// How long claimed notices stay leased (1000 to 600000 ms, default 30000).
    #[schema(minimum = 1000, maximum = 600000)]
    #[serde(default, deserialize_with = "opt_int")]
    pub lease_ms: Option<i64>,
}

/// Kind of a notice.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// `<key-relay/>`: someone's bundle.
    KeyRelay,
    /// `<revoked/>`: an account was revoked.
    Revoked,
}

/// A notice to deliver.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notice {
    /// Its id, to acknowledge it with.
    pub id: i64,
    /// The bare JID to send it to.
    pub to: String,
    /// What it is.
    pub kind: NoticeKind,
    /// The complete XML element to send.
    pub payload: String,
}

/// Claimed notices.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimResponse {
    /// Oldest first; empty when none became due within the wait.
    pub notices: Vec<Notice>,
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
        let now = tokio::time::Instant::now();
        if !claimed.is_empty() || now >= deadline || *stopping.borrow() {
            let notices = claimed
                .into_iter()
                .filter_map(|row| {
                    let kind = match row.kind.as_str() {
                        "key-relay" => NoticeKind::KeyRelay,
                        "revoked" => NoticeKind::Revoked,
                        _ => return None,
                    };
                    Some(Notice { id: row.id, to: row.recipient, kind, payload: row.payload })
                })
                .collect();
            return Ok(Json(ClaimResponse { notices }));
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

/// The body of `POST /v0/component/notices/ack` and `/release`: notice ids, at most 1000.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeIds {
    /// Ids of claimed notices (at most 1000).
    #[schema(max_items = 1000)]
    #[serde(deserialize_with = "int_list")]
    pub ids: Vec<i64>,
}

impl NoticeIds {
    /// The ids, once their number is checked.
    fn checked(&self) -> ApiResult<&[i64]> {
        if self.ids.len() > 1000 {
            return Err(ApiError::BadRequest("ids: at most 1000 at once".into()));
        }
        Ok(&self.ids)
    }
}

/// The acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct AckResponse {
    /// How many of the notices were newly acknowledged (already acknowledged and unknown ids count 0).
    pub acknowledged: u64,
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
    let acknowledged = store::notices::ack(&state.pool, body.checked()?).await?;
    state.metrics.notices_acked.inc_by(acknowledged as f64);
    Ok(Json(AckResponse { acknowledged }))
}

/// The release.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseResponse {
    /// How many notices are due again (acknowledged and unknown ids count 0).
    pub released: u64,
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
    let released = store::notices::release(&state.pool, body.checked()?).await?;
    Ok(Json(ReleaseResponse { released }))
}
