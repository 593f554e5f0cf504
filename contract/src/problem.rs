//! Errors as RFC 9457 `application/problem+json`: the one error body keydir answers with.

use serde::{Deserialize, Serialize};

/// Prefix of every problem type URI.
pub const PROBLEM_PREFIX: &str = "urn:keyward:problem:";

/// What went wrong, as clients switch on it: `type` is `urn:keyward:problem:<name>`.
///
/// A consumer that meets a type it does not know (a newer keydir) fails to parse the
/// [`Problem`] and falls back on the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum ProblemType {
    /// 400: malformed JSON, an unknown field, a bad JID, a field out of range, a bad cursor.
    #[serde(rename = "urn:keyward:problem:bad-request")]
    BadRequest,
    /// 400: the bundle is malformed, badly signed, or for another account.
    #[serde(rename = "urn:keyward:problem:bad-bundle")]
    BadBundle,
    /// 400: the secret blob is malformed.
    #[serde(rename = "urn:keyward:problem:bad-secret")]
    BadSecret,
    /// 400: the secret update is missing, malformed, or not signed by the account's identity key.
    #[serde(rename = "urn:keyward:problem:bad-secret-signature")]
    BadSecretSignature,
    /// 401: no bearer token, or an unknown one.
    #[serde(rename = "urn:keyward:problem:unauthorized")]
    Unauthorized,
    /// 403: a valid token, but for the other API.
    #[serde(rename = "urn:keyward:problem:forbidden")]
    Forbidden,
    /// 403: the account is revoked.
    #[serde(rename = "urn:keyward:problem:revoked")]
    Revoked,
    /// 403: the lookup would give the requester keys it does not hold yet, and it already holds
    /// as many as keydir allows (`KEYWARD_MAX_HOLDINGS`); keys it holds are still answered.
    #[serde(rename = "urn:keyward:problem:holding-limit")]
    HoldingLimit,
    /// 403: the account's restore is locked: its failed guesses reached keydir's limit; an admin
    /// unlocks it (or the lock expires, when keydir is configured so).
    #[serde(rename = "urn:keyward:problem:restore-locked")]
    RestoreLocked,
    /// 403: a restore proof was refused: its challenge was not issued to this account, was
    /// used or expired, or its signature does not verify with the account's identity key.
    #[serde(rename = "urn:keyward:problem:bad-restore-proof")]
    BadRestoreProof,
    /// 400: an auditor's cosignature is malformed, does not verify over the stored head of its
    /// size, or is dated too far in the future.
    #[serde(rename = "urn:keyward:problem:bad-cosignature")]
    BadCosignature,
    /// 403: a cosignature's key is not one of keydir's configured auditors
    /// (`KEYWARD_TRANSPARENCY_AUDITORS`).
    #[serde(rename = "urn:keyward:problem:unknown-auditor")]
    UnknownAuditor,
    /// 404: no such account, bundle, secret or route.
    #[serde(rename = "urn:keyward:problem:not-found")]
    NotFound,
    /// 409: a different bundle is already stored.
    #[serde(rename = "urn:keyward:problem:conflict")]
    Conflict,
    /// 409: the secret update's `seq` is not greater than the stored one.
    #[serde(rename = "urn:keyward:problem:stale-secret")]
    StaleSecret,
    /// 413: the body or a field is too large.
    #[serde(rename = "urn:keyward:problem:too-large")]
    TooLarge,
    /// 415: the body is not declared as JSON.
    #[serde(rename = "urn:keyward:problem:unsupported-media-type")]
    UnsupportedMediaType,
    /// 503: the database is unreachable; retry later.
    #[serde(rename = "urn:keyward:problem:unavailable")]
    Unavailable,
    /// 503: keydir has no OPRF seed configured: the restore's evaluations and proofs are off.
    #[serde(rename = "urn:keyward:problem:restore-unavailable")]
    RestoreUnavailable,
    /// 500: a bug; logged by keydir, never detailed.
    #[serde(rename = "urn:keyward:problem:internal")]
    Internal,
}

impl ProblemType {
    /// Every problem type, in the order of `docs/keydir-api.md`.
    pub const ALL: [Self; 20] = [
        Self::BadRequest,
        Self::BadBundle,
        Self::BadSecret,
        Self::BadSecretSignature,
        Self::Unauthorized,
        Self::Forbidden,
        Self::Revoked,
        Self::HoldingLimit,
        Self::RestoreLocked,
        Self::BadRestoreProof,
        Self::BadCosignature,
        Self::UnknownAuditor,
        Self::NotFound,
        Self::Conflict,
        Self::StaleSecret,
        Self::TooLarge,
        Self::UnsupportedMediaType,
        Self::Unavailable,
        Self::RestoreUnavailable,
        Self::Internal,
    ];

    /// The name: the last segment of the type URI (`not-found`).
    pub fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::BadBundle => "bad-bundle",
            Self::BadSecret => "bad-secret",
            Self::BadSecretSignature => "bad-secret-signature",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Revoked => "revoked",
            Self::HoldingLimit => "holding-limit",
            Self::RestoreLocked => "restore-locked",
            Self::BadRestoreProof => "bad-restore-proof",
            Self::BadCosignature => "bad-cosignature",
            Self::UnknownAuditor => "unknown-auditor",
            Self::NotFound => "not-found",
            Self::Conflict => "conflict",
            Self::StaleSecret => "stale-secret",
            Self::TooLarge => "too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::Unavailable => "unavailable",
            Self::RestoreUnavailable => "restore-unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status that carries it.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest | Self::BadBundle | Self::BadSecret | Self::BadSecretSignature | Self::BadCosignature => {
                400
            }
            Self::Unauthorized => 401,
            Self::Forbidden
            | Self::Revoked
            | Self::HoldingLimit
            | Self::RestoreLocked
            | Self::BadRestoreProof
            | Self::UnknownAuditor => 403,
            Self::NotFound => 404,
            Self::Conflict | Self::StaleSecret => 409,
            Self::TooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Internal => 500,
            Self::Unavailable | Self::RestoreUnavailable => 503,
        }
    }

    /// The short summary (`title`) of the kind.
    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad request",
            Self::BadBundle => "Bad bundle",
            Self::BadSecret => "Bad secret blob",
            Self::BadSecretSignature => "Bad secret update signature",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::Revoked => "Account revoked",
            Self::HoldingLimit => "Holding limit reached",
            Self::RestoreLocked => "Restore locked",
            Self::BadRestoreProof => "Restore proof refused",
            Self::BadCosignature => "Cosignature refused",
            Self::UnknownAuditor => "Unknown auditor",
            Self::NotFound => "Not found",
            Self::Conflict => "Conflict",
            Self::StaleSecret => "Stale secret update",
            Self::TooLarge => "Too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::Unavailable => "Service unavailable",
            Self::RestoreUnavailable => "Restore unavailable",
            Self::Internal => "Internal error",
        }
    }
}

impl std::fmt::Display for ProblemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// `urn:keyward:problem:<name>`: what clients switch on.
    #[serde(rename = "type")]
    pub kind: ProblemType,
    /// Short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What exactly was wrong with this request.
    pub detail: String,
}

impl Problem {
    /// The problem of `kind`, with its own title and status, and `detail`.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self { kind, title: kind.title().to_owned(), status: kind.status(), detail: detail.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_its_uri_on_the_wire_and_back() {
        for kind in ProblemType::ALL {
            let text = serde_json::to_string(&kind).expect("serialises");
            assert_eq!(text, format!("\"{PROBLEM_PREFIX}{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<ProblemType>(&text).expect("parses"), kind);
        }
    }

    #[test]
    fn an_unknown_type_does_not_parse() {
        let body = r#"{"type":"urn:keyward:problem:from-the-future","title":"t","status":400,"detail":"d"}"#;
        assert!(serde_json::from_str::<Problem>(body).is_err());
    }

    #[test]
    fn statuses_are_the_documented_ones() {
        let client_errors = ProblemType::ALL.iter().filter(|k| (400..500).contains(&k.status())).count();
        assert_eq!(client_errors, 17);
        assert_eq!(ProblemType::HoldingLimit.status(), 403);
        assert_eq!(ProblemType::Unavailable.status(), 503);
        assert_eq!(ProblemType::RestoreUnavailable.status(), 503);
        assert_eq!(ProblemType::RestoreLocked.status(), 403);
        assert_eq!(Problem::new(ProblemType::Revoked, "x").title, "Account revoked");
    }
}
