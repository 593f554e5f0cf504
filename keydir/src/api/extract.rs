//! Extractors whose rejections are problem+json: JSON bodies, query strings, and JIDs in paths.

use crate::problem::ApiError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use keyward_proto::BareJid;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde_json::{Number, Value};
use utoipa::ToSchema;

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

/// Longest JID the API takes, in characters (so each part is within 1023 bytes).
pub const MAX_JID_CHARS: usize = 255;

/// Parses a bare JID from a request field, as a 400 on failure.
pub fn parse_jid(text: &str, field: &str) -> Result<BareJid, ApiError> {
    if text.chars().count() > MAX_JID_CHARS {
        return Err(ApiError::BadRequest(format!("{field}: a JID has at most {MAX_JID_CHARS} characters here")));
    }
    BareJid::parse(text).map_err(|err| ApiError::BadRequest(format!("{field}: {err}")))
}

/// A bare JID as the API documents it (the schema only: values are parsed with
/// `keyward_proto::BareJid`). The pattern is what `BareJid::parse` accepts:
/// no whitespace or control characters, none of `"&'/:<>@` in the localpart,
/// no empty domain label; at most 255 characters, so each part stays within 1023 bytes.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    max_length = 255,
    example = "alice@example.test",
    pattern = r#"^([^\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"&'/:<>@]+@)?[^\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@/.]+(\.[^\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@/.]+)*\.?$"#
)]
pub struct Jid(#[allow(dead_code)] String);

/// An integer from JSON: JSON Schema counts `5.0` as the integer 5, and so does this.
fn integer(number: &Number) -> Option<i64> {
    number.as_i64().or_else(|| {
        let float = number.as_f64()?;
        // Exactly representable and in range: the cast is exact.
        (float.fract() == 0.0 && float.abs() < 9.2e18).then_some(float as i64)
    })
}

/// `deserialize_with` for an optional integer field.
pub fn opt_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    match Option::<Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(number) => {
            integer(&number).map(Some).ok_or_else(|| D::Error::custom(format!("{number} is not an integer")))
        }
    }
}

/// `deserialize_with` for a list of integers.
pub fn int_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<i64>, D::Error> {
    Vec::<Number>::deserialize(deserializer)?
        .iter()
        .map(|number| integer(number).ok_or_else(|| D::Error::custom(format!("{number} is not an integer"))))
        .collect()
}
