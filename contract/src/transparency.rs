//! Key transparency (`/v0/transparency/...` public, `/v0/component/transparency/...` for the component): the map's epoch, VRF key and proofs.
//!
//! Every byte string is standard base64 with padding. Proofs are akd 0.13's protobuf
//! encodings (`akd_core::proto::specs::types`: `LookupProof`, `HistoryProof`,
//! `AppendOnlyProof`), checked with akd's `client::lookup_verify`,
//! `client::key_history_verify` and `auditor::audit_verify` under
//! `ExperimentalConfiguration` with keyward's domain label
//! (`keyward_proto::transparency::value::DOMAIN_LABEL`). Map values are
//! `keyward_proto::transparency::value::MapValue`s.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `GET /v0/transparency/epoch`: the map's latest epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EpochResponse {
    /// The epoch (0: nothing published yet).
    pub epoch: u64,
    /// akd's root hash at it (32 bytes, base64).
    pub root_hash: String,
    /// When keydir recorded it; absent for epoch 0 (or for a moment after a publish).
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub published_at: Option<OffsetDateTime>,
}

/// `GET /v0/transparency/vrf-key`: the VRF public key with which clients check proofs' labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VrfKeyResponse {
    /// akd's ECVRF public key (32 bytes, base64).
    pub vrf_public_key: String,
}

/// `GET /v0/component/transparency/lookup/{jid}`: the proof of an account's current map value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupProofResponse {
    /// The account (the label is its UTF-8 bytes).
    pub jid: String,
    /// The epoch the proof is for.
    pub epoch: u64,
    /// akd's root hash at that epoch (base64).
    pub root_hash: String,
    /// The value's version (1 for the first value of the label).
    pub version: u64,
    /// The map value (base64): `0x01 || SHA-256(bundle)` or the revocation.
    pub value: String,
    /// akd's `LookupProof`, protobuf, base64.
    pub proof: String,
}

/// `GET /v0/component/transparency/history/{jid}`: the proof of every value an account had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryProofResponse {
    /// The account.
    pub jid: String,
    /// The epoch the proof is for.
    pub epoch: u64,
    /// akd's root hash at that epoch (base64).
    pub root_hash: String,
    /// akd's `HistoryProof` (complete history), protobuf, base64.
    pub proof: String,
}

/// `GET /v0/transparency/audit?start=&end=`: the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The first epoch (at least 1).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 9223372036854775807_i64))]
    pub start: u64,
    /// The last epoch wanted: the proof goes up to it, to `start + 1000` or to the latest
    /// recorded epoch, whichever comes first.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 9223372036854775807_i64))]
    pub end: u64,
}

/// `GET /v0/transparency/audit`: the append-only proof from `start` to `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditProofResponse {
    /// The first epoch.
    pub start: u64,
    /// The last epoch it covers (see [`AuditQuery::end`]).
    pub end: u64,
    /// The root hashes keydir recorded for epochs `start..=end` (base64), in order. An auditor
    /// takes the roots from the signed heads, not from here.
    pub roots: Vec<String>,
    /// akd's `AppendOnlyProof`, protobuf, base64.
    pub proof: String,
}

/// `POST /v0/component/transparency/lookups` body: the accounts whose proofs the component
/// wants, e.g. those of one `keys` or `roster-keys` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LookupProofsRequest {
    /// 1 to 100 bare JIDs.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100, value_type = Vec<crate::Jid>))]
    pub jids: Vec<String>,
}

/// `POST /v0/component/transparency/lookups`: one proof per requested account, all for one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupProofsResponse {
    /// The epoch every proof is for.
    pub epoch: u64,
    /// akd's root hash at that epoch (base64).
    pub root_hash: String,
    /// One item per requested JID, in request order.
    pub items: Vec<LookupProofItem>,
}

/// One account's proof in a [`LookupProofsResponse`]; `version`, `value` and `proof` are all
/// absent when the JID is not in the map (akd 0.13 proves no absence for a lookup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupProofItem {
    /// The account.
    pub jid: String,
    /// The value's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The map value (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// akd's `LookupProof`, protobuf, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}
