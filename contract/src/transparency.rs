//! Key transparency (`/v0/transparency/...` public, `/v0/component/transparency/...` for the component): the map's epoch, VRF key and proofs, and the signed epoch heads with their log proofs.
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
    /// The signed head of `epoch` with its proofs (as in [`LookupProofsResponse`]); absent when
    /// keydir has no head signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<LookupHead>,
}

/// `GET /v0/component/transparency/history/{jid}?known_size=`: the query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// The size of the newest head the client verified (the answer's head then carries the
    /// consistency proof from it).
    #[cfg_attr(feature = "openapi", param(minimum = 0, maximum = 9223372036854775807_i64))]
    pub known_size: Option<u64>,
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
    /// The size of the newest head the client verified (0 for none): the answer's `head` then
    /// carries the consistency proof from it. Absent: no consistency proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_size: Option<u64>,
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
    /// The signed head of the log whose last leaf is `epoch`, with its proofs; absent when
    /// keydir has no head signing key, and at epoch 0 (nothing published yet: no proofs either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<LookupHead>,
}

/// The signed head a [`LookupProofsResponse`]'s proofs are for, and the log proofs that place it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupHead {
    /// The log's size at this head (equal to the epoch).
    pub size: u64,
    /// The C2SP signed note, as text (as in [`HeadResponse`]).
    pub note: String,
    /// The inclusion proof of leaf `size - 1` in the tree of `size` leaves (hashes concatenated, base64).
    pub inclusion: String,
    /// The consistency proof from the request's `known_size` to `size` (hashes concatenated,
    /// base64; empty when they are equal); absent when `known_size` was absent, 0 or larger than `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
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

/// `GET /v0/transparency/head`: the newest signed head of the epoch log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeadResponse {
    /// The log's size (the number of epochs it holds).
    pub size: u64,
    /// The newest epoch (the head's `keyward-epoch` line).
    pub epoch: u64,
    /// The C2SP signed note, as text: the checkpoint (origin, size, root, `keyward-epoch`
    /// line), a blank line and keydir's signature line. Check it with
    /// `keyward_proto::transparency::heads::VerifiedHead::check`.
    pub note: String,
}

/// `GET /v0/transparency/consistency?from=&to=`: the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The older size (at least 1).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 9223372036854775807_i64))]
    pub from: u64,
    /// The newer size (at least `from`, at most the log's size).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 9223372036854775807_i64))]
    pub to: u64,
}

/// `GET /v0/transparency/consistency`: the RFC 6962 consistency proof between two sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProofResponse {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// The proof's hashes, concatenated (32 bytes each, `proof_to_bytes`), base64; empty when
    /// `from = to`.
    pub proof: String,
}

/// `GET /v0/transparency/inclusion?index=&size=`: the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    /// The leaf's index (epoch `index + 1`).
    #[cfg_attr(feature = "openapi", param(minimum = 0, maximum = 9223372036854775807_i64))]
    pub index: u64,
    /// The tree's size (above `index`, at most the log's size).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 9223372036854775807_i64))]
    pub size: u64,
}

/// `GET /v0/transparency/inclusion`: the RFC 6962 inclusion proof of one leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProofResponse {
    /// The leaf's index.
    pub index: u64,
    /// The tree's size.
    pub size: u64,
    /// The leaf's epoch (`index + 1`).
    pub epoch: u64,
    /// akd's root at that epoch (32 bytes, base64): with `epoch`, the leaf (`EpochLeaf`).
    pub akd_root: String,
    /// The proof's hashes, concatenated (32 bytes each), base64.
    pub proof: String,
}

/// `GET /v0/transparency/key`: what a client pins to check heads and proofs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogKeyResponse {
    /// The log's origin (the heads' first line).
    pub origin: String,
    /// keydir's note verifier key, `<name>+<key ID hex>+<base64(0x01 || Ed25519 public key)>`.
    pub log_key: String,
    /// akd's ECVRF public key (32 bytes, base64).
    pub vrf_public_key: String,
}
