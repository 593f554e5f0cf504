//! The guess-limited restore's component routes: the OPRF evaluation (counted, committed before it is answered) and the restore proof.

use super::extract::{Body, JidPath};
use super::openapi::ComponentErrors;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store;
use crate::store::restore::Policy;
use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_contract::Jid;
pub use keyward_contract::component::{OprfRequest, OprfResponse, RestoreProofRequest, RestoreProofResponse};
use keyward_proto::restore::{BlindedElement, OprfSeed, RestoreChallenge, evaluate, verify_proof};
use keyward_proto::{Error as ProtoError, IdentityPublic};

/// Decodes a base64 field of exactly `N` bytes (white space around it ignored), or a 400 naming it.
fn decode_fixed<const N: usize>(text: &str, field: &str) -> ApiResult<[u8; N]> {
    // Longer text cannot be N bytes: refused before decoding anything.
    if text.len() > 4 * N.div_ceil(3) + 64 {
        return Err(ApiError::BadRequest(format!("{field}: must be {N} bytes in base64")));
    }
    let bytes = STANDARD
        .decode(text.trim_ascii())
        .map_err(|_| ApiError::BadRequest(format!("{field}: not base64 (standard alphabet, padded)")))?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| ApiError::BadRequest(format!("{field}: must be {N} bytes, not {}", bytes.len())))
}

/// The seed, or 503 `restore-unavailable` when this keydir has none.
fn seed(state: &AppState) -> ApiResult<&OprfSeed> {
    state.settings.restore.seed.as_ref().ok_or(ApiError::RestoreUnavailable)
}

/// Evaluates the OPRF for the account's passphrase guess: counts one failed guess and issues a
/// single-use challenge, committed before the answer leaves. An account keydir does not know yet
/// is recorded (without a bundle) so that its guesses count before first use too.
#[utoipa::path(
    post, path = "/v0/component/accounts/{jid}/oprf", tag = "component",
    params(("jid" = Jid, Path, description = "Bare JID of the account: the requester, never a JID from a payload")),
    request_body = OprfRequest,
    responses(
        (status = 200, description = "The evaluation and its challenge; counted as a failed guess until a restore proof for the challenge arrives", body = OprfResponse),
        (status = 403, description = "The account is revoked (revoked), or its restore is locked (restore-locked)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "No OPRF seed is configured (restore-unavailable), or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn oprf(
    State(state): State<AppState>,
    JidPath(jid): JidPath,
    Body(body): Body<OprfRequest>,
) -> ApiResult<Json<OprfResponse>> {
    let seed = seed(&state)?;
    let blinded = decode_fixed::<32>(&body.blinded, "blinded")?;
    let blinded = BlindedElement::from_bytes(&blinded)
        .map_err(|_| ApiError::BadRequest("blinded: not a valid ristretto255 element (or the identity)".into()))?;
    let challenge = RestoreChallenge::generate().map_err(|err| {
        tracing::error!(cause = %err, "no randomness for a restore challenge");
        ApiError::Internal
    })?;
    let policy = Policy::from(&state.settings.restore);
    let counted = store::restore::count_evaluation(&state.pool, &jid, &challenge.to_bytes(), &policy).await;
    if matches!(counted, Err(ApiError::RestoreLocked(_))) {
        state.metrics.restore_locked_refused.inc();
    }
    let attempts_left = counted?;
    // Counted and committed: only now is the guess answered.
    let evaluated = evaluate(seed, &jid, &blinded).map_err(|err| {
        tracing::error!(cause = %err, "OPRF evaluation failed");
        ApiError::Internal
    })?;
    state.metrics.restore_evaluations.inc();
    if attempts_left == 0 {
        tracing::warn!(jid = %jid, "the last restore guess allowed without a valid proof: the next one locks the account");
    }
    Ok(Json(OprfResponse {
        evaluated: STANDARD.encode(evaluated.to_bytes()),
        challenge: STANDARD.encode(challenge.to_bytes()),
        attempts_left,
    }))
}

/// Checks a restore proof: a signature by the account's identity key over a challenge keydir
/// issued to it; a valid one clears the failed-guess count (not a lock).
#[utoipa::path(
    post, path = "/v0/component/accounts/{jid}/restore-proof", tag = "component",
    params(("jid" = Jid, Path, description = "Bare JID of the account: the requester")),
    request_body = RestoreProofRequest,
    responses(
        (status = 200, description = "Verified; the challenge is used up; reset says whether the count was cleared (false: the account is locked)", body = RestoreProofResponse),
        (status = 403, description = "The account is revoked (revoked); the challenge is unknown, used or expired, or the signature does not verify (bad-restore-proof)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "No OPRF seed is configured (restore-unavailable), or the database is unavailable", body = crate::problem::Problem, content_type = "application/problem+json"),
        ComponentErrors,
    ),
    security(("component" = []))
)]
pub async fn restore_proof(
    State(state): State<AppState>,
    JidPath(jid): JidPath,
    Body(body): Body<RestoreProofRequest>,
) -> ApiResult<Json<RestoreProofResponse>> {
    seed(&state)?;
    let challenge = RestoreChallenge::from_bytes(&decode_fixed::<32>(&body.challenge, "challenge")?);
    let sig = decode_fixed::<64>(&body.sig, "sig")?;
    let verify = |ik: &IdentityPublic| -> ApiResult<bool> {
        match verify_proof(ik, &jid, &challenge, &sig) {
            Ok(()) => Ok(true),
            Err(ProtoError::BadSignature) => Ok(false),
            Err(err) => {
                tracing::error!(cause = %err, "restore proof verification failed");
                Err(ApiError::Internal)
            }
        }
    };
    let policy = Policy::from(&state.settings.restore);
    let proved = store::restore::prove(&state.pool, &jid, &challenge.to_bytes(), verify, &policy).await;
    let outcome = match &proved {
        Ok(_) => "accepted",
        Err(ApiError::BadRestoreProof(_)) => "refused",
        Err(_) => "",
    };
    if !outcome.is_empty() {
        state.metrics.restore_proofs.with_label_values(&[outcome]).inc();
    }
    Ok(Json(RestoreProofResponse { reset: proved? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_fields_are_base64_of_exactly_their_length() {
        let text = STANDARD.encode([7u8; 32]);
        assert_eq!(decode_fixed::<32>(&format!(" {text}\n"), "blinded").expect("valid"), [7u8; 32]);
        for bad in
            [STANDARD.encode([7u8; 31]), STANDARD.encode([7u8; 33]), "%%%".into(), "A".repeat(500), String::new()]
        {
            let err = decode_fixed::<32>(&bad, "blinded").expect_err("refused");
            assert!(matches!(&err, ApiError::BadRequest(d) if d.starts_with("blinded: ")), "{err:?}");
        }
    }
}
