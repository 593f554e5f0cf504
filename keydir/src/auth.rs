//! Bearer-token checks for the two APIs: 401 without a known token, 403 with the other API's token.

use crate::problem::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which API a route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Component,
    Admin,
}

/// The bearer token of a request, if it carries one.
fn bearer(request: &Request) -> Option<&[u8]> {
    let value = request.headers().get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

fn check(state: &AppState, request: &Request, api: Api) -> Result<(), ApiError> {
    let Some(token) = bearer(request) else {
        return Err(ApiError::Unauthorized);
    };
    // Compare with both tokens every time: the timing does not say which matched.
    let component = state.settings.component_token.matches(token);
    let admin = state.settings.admin_token.matches(token);
    match (api, component, admin) {
        (Api::Component, true, _) | (Api::Admin, _, true) => Ok(()),
        (Api::Component, _, true) | (Api::Admin, true, _) => Err(ApiError::Forbidden),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Middleware of the component API.
pub async fn component(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match check(&state, &request, Api::Component) {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

/// Middleware of the admin API.
pub async fn admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match check(&state, &request, Api::Admin) {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}
