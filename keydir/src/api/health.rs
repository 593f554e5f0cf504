//! Liveness (`/healthz`) and readiness (`/readyz`: the database answers).

use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
pub use keyward_contract::admin::Health;
use std::time::Duration;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// The database is reachable.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database is unreachable", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    let probe = sqlx::query_scalar!("SELECT 1").fetch_one(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => Ok(Json(Health { status: "ready".into() })),
        Ok(Err(err)) => {
            tracing::warn!(cause = %err, "not ready: database error");
            Err(ApiError::Unavailable)
        }
        Err(_) => {
            tracing::warn!("not ready: database timed out");
            Err(ApiError::Unavailable)
        }
    }
}
