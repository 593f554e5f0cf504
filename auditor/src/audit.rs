//! akd's append-only audit of a range of epochs, under keyward's akd configuration, with the epochs the proof claims checked against the range asked for.

use crate::error::{AuditorError, Result};
use crate::keydir::{base64, hash};
use keyward_contract::transparency::AuditProofResponse;
pub use keyward_proto::transparency::lookup::MapConfig as Config;
use keyward_transparency::akd;
use keyward_transparency::akd::proto::specs::types as pb;
use protobuf::Message;

/// Most epochs one audit answer covers (keydir's limit).
pub const MAX_CHUNK: u64 = 1000;

/// Checks an audit answer asked for `start` to `end`: it covers `start` to some `end'` with
/// `start < end' <= end`, one root per epoch, and akd's proof of each step from `start` to
/// `end'` verifies against those roots. Returns `end'` and the roots of `start..=end'`.
///
/// The roots are keydir's word only: the caller checks them against the signed log.
pub async fn verify_chunk(answer: &AuditProofResponse, start: u64, end: u64) -> Result<(u64, Vec<[u8; 32]>)> {
    if answer.start != start || answer.end <= start || answer.end > end {
        return Err(AuditorError::Malformed(format!(
            "asked for the audit of epochs {start} to {end}, got {} to {}",
            answer.start, answer.end
        )));
    }
    let steps = answer.end - start;
    if answer.roots.len() as u64 != steps + 1 {
        return Err(AuditorError::Malformed("an audit answer's roots are not one per epoch".into()));
    }
    let roots = answer.roots.iter().map(|root| hash(root, "an audited root")).collect::<Result<Vec<_>>>()?;
    let invalid = |detail: String| AuditorError::AuditProofInvalid { start, end: answer.end, detail };
    let bytes = base64(&answer.proof, "the audit proof")?;
    let proof = pb::AppendOnlyProof::parse_from_bytes(&bytes).map_err(|err| invalid(format!("protobuf: {err}")))?;
    let proof = akd::AppendOnlyProof::try_from(&proof).map_err(|err| invalid(format!("{err:?}")))?;
    // akd takes each step's epoch from the proof: it must be the range asked for.
    if !proof.epochs.iter().copied().eq(start..answer.end) {
        return Err(invalid("the proof's epochs are not the ones asked for".into()));
    }
    akd::auditor::audit_verify::<Config>(roots.clone(), proof).await.map_err(|err| invalid(err.to_string()))?;
    Ok((answer.end, roots))
}
