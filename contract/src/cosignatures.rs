//! Auditors' cosignatures of the signed epoch heads (`POST /v0/transparency/cosignatures`, public).
//!
//! An auditor that verified the head of size `size` posts its C2SP tlog-cosignature/v1
//! signature line; keydir keeps it if it verifies over its stored head of that size with one of
//! its configured auditor keys, and appends the newest one of each auditor to
//! `GET /v0/transparency/head`'s note.

use serde::{Deserialize, Serialize};

/// `POST /v0/transparency/cosignatures` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CosignatureRequest {
    /// The size of the head cosigned (a stored head's size).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 9223372036854775807_i64))]
    pub size: u64,
    /// The signature line as the C2SP signed note format writes it, without its newline:
    /// `— <key name> <base64(4 byte key ID || 8 byte big-endian time || 64 byte Ed25519 signature)>`
    /// (an em dash U+2014 and a space first).
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub signature: String,
}

/// `POST /v0/transparency/cosignatures` answer: what keydir stored (a repeated post of the same
/// cosignature answers the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CosignatureResponse {
    /// The head's size.
    pub size: u64,
    /// The auditor's key name.
    pub auditor: String,
    /// The time the auditor signed at (seconds since the Unix epoch).
    pub timestamp: u64,
}
