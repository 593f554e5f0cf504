//! HTTP errors as RFC 9457 `application/problem+json`, the only error shape the API returns.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every error answer of the API. Database and unexpected failures become a
/// logged 500 (or 503 when the database is unreachable) without details.
#[derive(Debug, Clone)]
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
    /// 403: the lookup would give the requester new keys past `KEYWARD_MAX_HOLDINGS`.
    HoldingLimit(String),
    /// 403: the account's restore is locked (too many evaluations without a valid proof).
    RestoreLocked(String),
    /// 403: a restore proof with an unknown, used or expired challenge, or a bad signature.
    BadRestoreProof(String),
    /// 400: an auditor's cosignature is malformed or does not verify over the stored head.
    BadCosignature(String),
    /// 403: a cosignature's key is not a configured auditor's.
    UnknownAuditor(String),
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
    /// 503: no OPRF seed is configured: the restore endpoints are off.
    RestoreUnavailable,
    /// 503: no VRF key is configured, or the map could not answer: the transparency endpoints are off.
    TransparencyUnavailable(String),
    /// 500: anything else; the cause is logged, never sent.
    Internal,
}

pub use keyward_contract::{Problem, ProblemType};

impl ApiError {
    /// The problem type and the detail sent with it.
    fn parts(self) -> (ProblemType, String) {
        use ApiError::*;
        match self {
            BadRequest(d) => (ProblemType::BadRequest, d),
            BadBundle(d) => (ProblemType::BadBundle, d),
            BadSecret(d) => (ProblemType::BadSecret, d),
            BadSecretSignature(d) => (ProblemType::BadSecretSignature, d),
            Unauthorized => (ProblemType::Unauthorized, "a valid bearer token is required".into()),
            Forbidden => (ProblemType::Forbidden, "this token is not valid for this API".into()),
            Revoked => (ProblemType::Revoked, "the account is revoked".into()),
            HoldingLimit(d) => (ProblemType::HoldingLimit, d),
            RestoreLocked(d) => (ProblemType::RestoreLocked, d),
            BadRestoreProof(d) => (ProblemType::BadRestoreProof, d),
            BadCosignature(d) => (ProblemType::BadCosignature, d),
            UnknownAuditor(d) => (ProblemType::UnknownAuditor, d),
            NotFound(d) => (ProblemType::NotFound, d),
            Conflict(d) => (ProblemType::Conflict, d),
            StaleSecret(d) => (ProblemType::StaleSecret, d),
            TooLarge(d) => (ProblemType::TooLarge, d),
            UnsupportedMediaType => (ProblemType::UnsupportedMediaType, "the body must be application/json".into()),
            Unavailable => (ProblemType::Unavailable, "the database is unavailable; retry later".into()),
            RestoreUnavailable => (
                ProblemType::RestoreUnavailable,
                "this keydir has no OPRF seed configured: the guess-limited restore is off".into(),
            ),
            TransparencyUnavailable(d) => (ProblemType::Unavailable, d),
            Internal => (ProblemType::Internal, "an internal error occurred; it was logged".into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (kind, detail) = self.parts();
        let status = StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&Problem::new(kind, detail)).unwrap_or_default();
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
