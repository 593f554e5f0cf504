//! Extractors whose rejections are problem+json: JSON bodies, query strings, and JIDs in paths.

use crate::problem::ApiError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use keyward_proto::BareJid;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON body; malformed JSON is 400, a body over the limit 413, a missing
/// content type 415.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<Value>::from_request(req, state).await {
            // Every body is an object: serde would also take an array for a struct.
            Ok(axum::Json(value)) => json_object(value).map(Self),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge(format!("the body exceeds {} bytes", super::BODY_LIMIT)))
            }
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

/// A request body's JSON value as `T`: every body is an object (serde would also take an
/// array for a struct); anything else is 400.
pub fn json_object<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::BadRequest("the body must be a JSON object".into()));
    }
    serde_json::from_value(value).map_err(|err| ApiError::BadRequest(format!("invalid body: {err}")))
}

/// A query string; anything malformed is 400.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// The `{jid}` of the path, a valid bare JID (normalised); anything else is 400.
pub struct JidPath(pub BareJid);

impl<S: Send + Sync> FromRequestParts<S> for JidPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        parse_jid(&text, "path").map(Self)
    }
}

pub use keyward_contract::MAX_JID_CHARS;

/// Parses a bare JID from a request field, as a 400 on failure.
pub fn parse_jid(text: &str, field: &str) -> Result<BareJid, ApiError> {
    if text.chars().count() > MAX_JID_CHARS {
        return Err(ApiError::BadRequest(format!("{field}: a JID has at most {MAX_JID_CHARS} characters here")));
    }
    BareJid::parse(text).map_err(|err| ApiError::BadRequest(format!("{field}: {err}")))
}
