//! `oprf` and `restore-proof`: the guess-limited restore (protocol section 6.2), relayed to keydir for the sender's own account only.
//!
//! The component sees only blinded and evaluated group elements, a challenge and a signature:
//! nothing that tells the passphrase or opens the blob. Both directions are parsed into checked
//! elements, so a malformed value from either side is refused here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_proto::XmlElement;
use keyward_proto::elements::{OprfQuery, OprfResult, RestoreProof};
use keyward_proto::restore::{EvaluatedElement, RestoreChallenge};
use keyward_proto::xml::Element;
use tracing::warn;

use super::{Outcome, keydir_failed, refused, served_sender};
use crate::context::SessionContext;
use crate::stanza::{Condition, Iq, StanzaError};

/// One counted evaluation of the sender's blinded passphrase.
pub async fn oprf(iq: &Iq, payload: &Element, ctx: &SessionContext) -> Outcome {
    let sender = served_sender(iq, ctx)?;
    let query = OprfQuery::from_element(payload).map_err(|e| refused(&e))?;
    let answer = ctx
        .shared
        .keydir
        .oprf(&sender, STANDARD.encode(query.blinded.to_bytes()))
        .await
        .map_err(|e| keydir_failed(&e))?;
    let unreadable = |what: &str| {
        warn!(what, "keydir returned an unreadable OPRF answer");
        StanzaError::new(Condition::InternalServerError)
    };
    let evaluated = decode32(&answer.evaluated)
        .and_then(|bytes| EvaluatedElement::from_bytes(&bytes).ok())
        .ok_or_else(|| unreadable("evaluated"))?;
    let challenge = decode32(&answer.challenge)
        .map(|bytes| RestoreChallenge::from_bytes(&bytes))
        .ok_or_else(|| unreadable("challenge"))?;
    let left = u32::try_from(answer.attempts_left).ok();
    Ok(Some(OprfResult { challenge, evaluated, left }.to_element()))
}

/// The sender's proof that it opened its blob: keydir checks it and clears the failed guesses.
pub async fn proof(iq: &Iq, payload: &Element, ctx: &SessionContext) -> Outcome {
    let sender = served_sender(iq, ctx)?;
    let proof = RestoreProof::from_element(payload).map_err(|e| refused(&e))?;
    ctx.shared
        .keydir
        .restore_proof(&sender, STANDARD.encode(proof.challenge.to_bytes()), STANDARD.encode(proof.sig))
        .await
        .map_err(|e| keydir_failed(&e))?;
    Ok(None)
}

fn decode32(text: &str) -> Option<[u8; 32]> {
    STANDARD.decode(text).ok()?.try_into().ok()
}
