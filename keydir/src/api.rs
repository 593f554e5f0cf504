//! The HTTP surface: routes of both APIs (the restore's among them), health, the OpenAPI document, and the metrics router.

pub mod admin;
pub mod component;
pub mod cosignatures;
#[doc(hidden)] // public for the fuzz targets only
pub mod extract;
pub mod health;
pub mod openapi;
pub mod restore;
pub mod transparency;

use crate::problem::ApiError;
use crate::state::AppState;
use crate::{auth, metrics};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;

/// Largest request body, in bytes (a bundle and a secret blob with room to spare).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Longest any request may take; above the longest claim wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

/// The API router: component and admin routes, health, and `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let component_api = Router::new()
        .route("/v0/component/accounts/{jid}", put(component::publish))
        .route("/v0/component/accounts/{jid}/secret", get(component::secret))
        .route("/v0/component/accounts/{jid}/oprf", post(restore::oprf))
        .route("/v0/component/accounts/{jid}/restore-proof", post(restore::restore_proof))
        .route("/v0/component/lookup", post(component::lookup))
        .route("/v0/component/relays", post(component::relay))
        .route("/v0/component/notices/claim", post(component::claim))
        .route("/v0/component/notices/ack", post(component::ack))
        .route("/v0/component/notices/release", post(component::release))
        .route("/v0/component/cache/lease", post(component::cache_lease))
        .route("/v0/component/transparency/lookup/{jid}", get(transparency::lookup))
        .route("/v0/component/transparency/history/{jid}", get(transparency::history))
        .route("/v0/component/transparency/lookups", post(transparency::lookups))
        .route_layer(from_fn_with_state(state.clone(), auth::component));
    let admin_api = Router::new()
        .route("/v0/admin/accounts", get(admin::list))
        .route("/v0/admin/accounts/{jid}", get(admin::account))
        .route("/v0/admin/accounts/{jid}/revoke", post(admin::revoke))
        .route("/v0/admin/accounts/{jid}/unlock", post(admin::unlock))
        .route("/v0/admin/audit", get(admin::audit))
        .route_layer(from_fn_with_state(state.clone(), auth::admin));
    Router::new()
        .merge(component_api)
        .merge(admin_api)
        .route("/v0/transparency/epoch", get(transparency::epoch))
        .route("/v0/transparency/vrf-key", get(transparency::vrf_key))
        .route("/v0/transparency/audit", get(transparency::audit))
        .route("/v0/transparency/head", get(transparency::head))
        .route("/v0/transparency/consistency", get(transparency::consistency))
        .route("/v0/transparency/inclusion", get(transparency::inclusion))
        .route("/v0/transparency/key", get(transparency::key))
        .route("/v0/transparency/cosignatures", post(cosignatures::submit))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::serve))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .with_state(state)
}

/// The metrics router: `GET /metrics` only.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(metrics::render)).fallback(not_found).with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}
