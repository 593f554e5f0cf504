//! Checking akd's proofs about one account against a verified head: what the map says the account's key is.
//!
//! keydir's map is akd 0.13 with keyward's configuration (`ExperimentalConfiguration` with
//! [`DOMAIN_LABEL`], protocol section 15.1.1). The proofs travel in akd's protobuf encoding;
//! these functions decode them, check them with akd's own client code (`akd_core::verify`,
//! pure like the rest of this crate) against the akd root of a head whose signature and place
//! in the log the caller checked first, and parse the value with keyward's strict rules.

use super::value::{DOMAIN_LABEL, MapValue, label};
use crate::error::{Error, Result};
use crate::jid::BareJid;
use akd_core::proto::specs::types as pb;
use akd_core::verify::{HistoryVerificationParams, key_history_verify, lookup_verify};
use akd_core::{AkdLabel, DomainLabel, ExperimentalConfiguration};
use protobuf::Message;

/// keyward's akd domain label ([`DOMAIN_LABEL`]).
#[derive(Clone, Copy, Debug)]
pub struct KeywardDomain;

impl DomainLabel for KeywardDomain {
    fn domain_label() -> &'static [u8] {
        DOMAIN_LABEL
    }
}

/// akd's configuration of keyward's map.
pub type MapConfig = ExperimentalConfiguration<KeywardDomain>;

/// Most bytes of one encoded lookup proof a client reads (a proof at a million accounts is
/// about 4,000 bytes; akd's grow with the logarithm of the map's size).
pub const MAX_LOOKUP_PROOF_BYTES: usize = 16 * 1024;
/// Most bytes of one encoded history proof.
pub const MAX_HISTORY_PROOF_BYTES: usize = 64 * 1024;

/// What a verified lookup proof says about an account: its value's version and the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenValue {
    /// The value's version (1 for the first value of a label).
    pub version: u64,
    /// The epoch the value was published in.
    pub epoch: u64,
    /// The value, parsed.
    pub value: MapValue,
}

/// Checks akd's lookup proof (`proof`, protobuf) of `jid` against the map's `akd_root` at
/// `epoch` (both from a verified head) with the map's VRF public key, and parses the value.
pub fn verify_lookup(
    vrf_key: &[u8; 32],
    akd_root: &[u8; 32],
    epoch: u64,
    jid: &BareJid,
    proof: &[u8],
) -> Result<ProvenValue> {
    if proof.len() > MAX_LOOKUP_PROOF_BYTES {
        return Err(Error::TooLarge { what: "lookup proof", limit: MAX_LOOKUP_PROOF_BYTES });
    }
    let decoded =
        pb::LookupProof::parse_from_bytes(proof).map_err(|_| Error::MapProof("lookup proof does not decode"))?;
    let proof = akd_core::LookupProof::try_from(&decoded).map_err(|_| Error::MapProof("lookup proof is malformed"))?;
    let result = lookup_verify::<MapConfig>(vrf_key, *akd_root, epoch, AkdLabel(label(jid)), proof)
        .map_err(|_| Error::MapProof("lookup proof does not verify"))?;
    Ok(ProvenValue { version: result.version, epoch: result.epoch, value: MapValue::parse(&result.value.0)? })
}

/// Checks akd's complete history proof of `jid` (protobuf) against `akd_root` at `epoch`;
/// the account's values, newest first.
pub fn verify_history(
    vrf_key: &[u8; 32],
    akd_root: &[u8; 32],
    epoch: u64,
    jid: &BareJid,
    proof: &[u8],
) -> Result<Vec<ProvenValue>> {
    if proof.len() > MAX_HISTORY_PROOF_BYTES {
        return Err(Error::TooLarge { what: "history proof", limit: MAX_HISTORY_PROOF_BYTES });
    }
    let decoded =
        pb::HistoryProof::parse_from_bytes(proof).map_err(|_| Error::MapProof("history proof does not decode"))?;
    let proof =
        akd_core::HistoryProof::try_from(&decoded).map_err(|_| Error::MapProof("history proof is malformed"))?;
    let results = key_history_verify::<MapConfig>(
        vrf_key,
        *akd_root,
        epoch,
        AkdLabel(label(jid)),
        proof,
        HistoryVerificationParams::default(),
    )
    .map_err(|_| Error::MapProof("history proof does not verify"))?;
    results
        .into_iter()
        .map(|r| Ok(ProvenValue { version: r.version, epoch: r.epoch, value: MapValue::parse(&r.value.0)? }))
        .collect()
}
