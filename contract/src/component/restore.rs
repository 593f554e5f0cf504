//! The guess-limited restore (protocol section 6.2): keydir evaluates the OPRF and counts the guesses, a restore proof clears the count.

use serde::{Deserialize, Serialize};

/// `POST /v0/component/accounts/{jid}/oprf` body: the requester's blinded passphrase.
///
/// `{jid}` is the requester (the stanza's `from`), never a JID taken from a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OprfRequest {
    /// The blinded element `B`: a 32 byte ristretto255 encoding, base64 (standard, padded).
    #[cfg_attr(feature = "openapi", schema(max_length = 64, example = "Vity/sqbQ8fPVkxsFYTBkRn1TZkVtfYHB92nZ3t16FM="))]
    pub blinded: String,
}

/// keydir's evaluation, counted as one failed guess until a restore proof for `challenge` arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OprfResponse {
    /// The evaluated element `E`: 32 bytes, base64.
    pub evaluated: String,
    /// A fresh single-use challenge for the restore proof: 32 bytes, base64.
    pub challenge: String,
    /// How many more evaluations keydir answers before the account is locked (0: this was the last).
    pub attempts_left: i64,
}

/// `POST /v0/component/accounts/{jid}/restore-proof` body: the account's identity key signed the challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RestoreProofRequest {
    /// The challenge of an evaluation keydir answered for this account: 32 bytes, base64.
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub challenge: String,
    /// Ed25519 signature by the identity key over the restore-proof message: 64 bytes, base64.
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub sig: String,
}

/// A restore proof that verified (its challenge is used up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreProofResponse {
    /// true: the failed-guess count is back to 0. false: the account is locked, and only an
    /// admin (or the lock's expiry) unlocks it; the proof changed nothing.
    pub reset: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_bodies_refuse_unknown_fields() {
        assert!(serde_json::from_str::<OprfRequest>(r#"{"blinded":"AA==","jid":"x"}"#).is_err());
        assert!(serde_json::from_str::<RestoreProofRequest>(r#"{"challenge":"AA==","sig":"AA==","x":1}"#).is_err());
        let answer = OprfResponse { evaluated: "e".into(), challenge: "c".into(), attempts_left: 9 };
        assert_eq!(
            serde_json::to_string(&answer).expect("serialises"),
            r#"{"evaluated":"e","challenge":"c","attempts_left":9}"#
        );
    }
}
