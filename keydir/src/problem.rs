//! HTTP errors as RFC 9457 `application/problem+json`, the only error shape the API returns.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Every error answer of the API. Database and unexpected failures become a
/// logged 500 (or 503 when the database is unreachable) without details.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 400: the bundle is malformed, badly signed, or for another account.
    BadBundle(String),
    /// 400: the secret blob is malformed.
    BadSecret(String),
    /// 400: the secret update is missing, malformed, or not signed by the account's identity key.
    BadSecretSignature(String),
    /// 401: no or unknown bearer token.
    Unauthorized,
    /// 403: the token is valid, but for the other API.
    Forbidden,
    /// 403: the account is revoked.
    Revoked,
    /// 404: no such account (or bundle, or route).
    NotFound(String),
    /// 409: a different bundle is already stored.
    Conflict(String),
    /// 409: the secret update's seq is not greater than the stored one.
    StaleSecret(String),
    /// 413: the body or a field is too large.
    TooLarge(String),
    /// 415: the body is not declared as JSON.
    UnsupportedMediaType,
    /// 503: the database is unreachable.
    Unavailable,
    /// 500: anything else; the cause is logged, never sent.
    Internal,
}

/// The body of an error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:keyward:problem:<name>`: what clients switch on.
    #[schema(example = "urn:keyward:problem:not-found")]
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What exactly was wrong with this request.
    pub detail: String,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use ApiError::*;
        match self {
            BadRequest(d) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request", d.clone()),
            BadBundle(d) => (StatusCode::BAD_REQUEST, "bad-bundle", "Bad bundle", d.clone()),
            BadSecret(d) => (StatusCode::BAD_REQUEST, "bad-secret", "Bad secret blob", d.clone()),
            BadSecretSignature(d) => {
                (StatusCode::BAD_REQUEST, "bad-secret-signature", "Bad secret update signature", d.clone())
            }
            Unauthorized => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", "a valid bearer token is required".into())
            }
            Forbidden => {
                (StatusCode::FORBIDDEN, "forbidden", "Forbidden", "this token is not valid for this API".into())
            }
            Revoked => (StatusCode::FORBIDDEN, "revoked", "Account revoked", "the account is revoked".into()),
            NotFound(d) => (StatusCode::NOT_FOUND, "not-found", "Not found", d.clone()),
            Conflict(d) => (StatusCode::CONFLICT, "conflict", "Conflict", d.clone()),
            StaleSecret(d) => (StatusCode::CONFLICT, "stale-secret", "Stale secret update", d.clone()),
            TooLarge(d) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Too large", d.clone()),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "the body must be application/json".into(),
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                "the database is unavailable; retry later".into(),
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "an internal error occurred; it was logged".into(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, name, title, detail) = self.parts();
        let problem = Problem {
            kind: format!("urn:keyward:problem:{name}"),
            title: title.into(),
            status: status.as_u16(),
            detail,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(cause = %err, "database unavailable");
                ApiError::Unavailable
            }
            _ => {
                tracing::error!(cause = %err, "database error");
                ApiError::Internal
            }
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
