//! The component API (`/v0/component/...`): publish, secret, lookup, relay, the notice outbox, and the restore's OPRF and proof.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::int::{int_list, opt_int};
use crate::{KeyStatus, NoticeKind};

mod restore;
pub use restore::{OprfRequest, OprfResponse, RestoreProofRequest, RestoreProofResponse};

/// `PUT /v0/component/accounts/{jid}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The `<bundle/>` element, as XML text (at most 1024 bytes).
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub bundle: String,
    /// The `<secret/>` element, as XML text (at most 4096 bytes).
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub secret: String,
    /// The `<secret-sig seq='N'/>` element, as XML text: the account's identity key
    /// signs the secret blob (protocol section 6.1). A stored blob is replaced only by
    /// a correctly signed update with a greater `seq`.
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub secret_sig: String,
}

/// The stored account: the answer to a publish (201 created, 200 already stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Published {
    /// The account (normalised bare JID).
    pub jid: String,
    /// Fingerprint of its identity key (64 hex digits).
    pub fingerprint: String,
}

/// An account's secret blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretResponse {
    /// The `<secret/>` element, as XML text.
    pub secret: String,
}

/// `POST /v0/component/lookup` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// Who asks: recorded as a holder of every active bundle returned. May be null.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::Jid>))]
    pub requester: Option<String>,
    /// The accounts to look up: 1 to 100 bare JIDs.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100, value_type = Vec<crate::Jid>))]
    pub jids: Vec<String>,
}

/// One account in a lookup answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupItem {
    /// The account, as asked (normalised).
    pub jid: String,
    /// Its status.
    pub status: KeyStatus,
    /// When it was revoked, for revoked accounts.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked, for revoked accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its `<bundle/>`, when there is one (a revoked account's too, so that clients recognise the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

/// A lookup answer: one item per requested JID, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LookupResponse {
    /// The items.
    pub items: Vec<LookupItem>,
}

/// `POST /v0/component/relays` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RelayRequest {
    /// Whose bundle to send.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::Jid))]
    pub from: String,
    /// Who receives it (and is recorded as holding it); not `from`.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::Jid))]
    pub to: String,
}

/// A queued relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelayResponse {
    /// The id of the queued key-relay notice.
    pub notice_id: i64,
}

/// `POST /v0/component/notices/claim` body; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Most notices to return (1 to 1000, default 100).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    #[serde(default, deserialize_with = "opt_int", skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// How long to wait for a notice when none is due (0 to 30000 ms, default 20000;
    /// a server may be configured to wait less).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 30000))]
    #[serde(default, deserialize_with = "opt_int", skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<i64>,
    /// How long claimed notices stay leased (1000 to 600000 ms, default 30000).
    #[cfg_attr(feature = "openapi", schema(minimum = 1000, maximum = 600000))]
    #[serde(default, deserialize_with = "opt_int", skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<i64>,
}

/// A notice to deliver: structured data that the component renders as the XML element of
/// `docs/protocol.md` (`<key-relay/>` or `<revoked/>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notice {
    /// Its id, to acknowledge it with.
    pub id: i64,
    /// The bare JID to send it to.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::Jid))]
    pub to: String,
    /// The account it is about: whose key is relayed or revoked.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::Jid))]
    pub subject: String,
    /// What it tells.
    pub event: NoticeEvent,
}

/// What a notice tells, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum NoticeEvent {
    /// The subject's bundle, because the recipient subscribed to them.
    KeyRelay {
        /// The subject's `<bundle/>` element, as XML text.
        bundle: String,
    },
    /// The subject's key was revoked.
    Revoked {
        /// Fingerprint of the revoked identity key (64 hex digits).
        fingerprint: String,
        /// When it was revoked.
        #[serde(with = "time::serde::rfc3339")]
        revoked_at: OffsetDateTime,
        /// The admin's reason.
        reason: String,
    },
}

impl NoticeEvent {
    /// Its kind.
    pub fn kind(&self) -> NoticeKind {
        match self {
            Self::KeyRelay { .. } => NoticeKind::KeyRelay,
            Self::Revoked { .. } => NoticeKind::Revoked,
        }
    }
}

/// Claimed notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimResponse {
    /// Oldest first; empty when none became due within the wait.
    pub notices: Vec<Notice>,
}

/// `POST /v0/component/notices/ack` and `.../release` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NoticeIds {
    /// Notice ids, at most 1000.
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    #[serde(deserialize_with = "int_list")]
    pub ids: Vec<i64>,
}

/// Acknowledged notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckResponse {
    /// How many were newly acknowledged (a repeated or unknown id counts 0).
    pub acknowledged: u64,
}

/// Released notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseResponse {
    /// How many claimed, unacknowledged notices are due again at once.
    pub released: u64,
}

/// `POST /v0/component/cache/lease` body: a component renews the lease of its answer cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CacheLeaseRequest {
    /// The component process's random id (1 to 64 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub holder: String,
    /// The last pending revocation (`seq` of an earlier renewal) whose account the cache has
    /// dropped; 0 for a cache that never renewed.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub seen_seq: i64,
}

/// The renewed lease, and what the cache must drop before it answers under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CacheLeaseResponse {
    /// The newest pending revocation: report it as `seen_seq` once its account is dropped.
    pub seq: i64,
    /// How long the lease is valid, counted from the request (the cache stops answering a
    /// little before).
    pub lease_ms: i64,
    /// Accounts whose revocation is pending or committed since `seen_seq`: drop them, and do not
    /// cache them again for a while.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::Jid>))]
    pub revoking: Vec<String>,
    /// Too far behind to list: drop every entry.
    pub flush: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_notice_round_trips_with_its_time() {
        let text = r#"{"id":17,"to":"bob@example.test","subject":"alice@example.test",
            "event":{"kind":"revoked","fingerprint":"ab","revoked_at":"2026-12-06T10:00:00.5Z","reason":"stolen"}}"#;
        let notice: Notice = serde_json::from_str(text).expect("parses");
        assert_eq!(notice.event.kind(), NoticeKind::Revoked);
        let NoticeEvent::Revoked { revoked_at, .. } = &notice.event else { panic!("revoked") };
        assert_eq!(revoked_at.unix_timestamp(), 1_796_551_200);
        assert_eq!(revoked_at.millisecond(), 500);
        let again: Notice = serde_json::from_str(&serde_json::to_string(&notice).expect("serialises")).expect("parses");
        assert_eq!(again, notice);
    }

    #[test]
    fn an_unknown_notice_kind_or_status_is_refused() {
        let relay = r#"{"id":1,"to":"b@x","subject":"a@x","event":{"kind":"key-swap","bundle":"<bundle/>"}}"#;
        assert!(serde_json::from_str::<Notice>(relay).is_err());
        assert!(serde_json::from_str::<LookupItem>(r#"{"jid":"a@x","status":"maybe"}"#).is_err());
    }

    #[test]
    fn claim_fields_take_whole_floats_and_refuse_unknown_fields() {
        let claim: ClaimRequest = serde_json::from_str(r#"{"max":5.0}"#).expect("parses");
        assert_eq!(claim.max, Some(5));
        assert!(serde_json::from_str::<ClaimRequest>(r#"{"max":5.5}"#).is_err());
        assert!(serde_json::from_str::<ClaimRequest>(r#"{"limit":5}"#).is_err());
        assert_eq!(
            serde_json::to_string(&ClaimRequest { max: Some(3), ..ClaimRequest::default() }).expect("ok"),
            r#"{"max":3}"#
        );
    }

    #[test]
    fn a_lookup_item_without_revocation_fields_leaves_them_out() {
        let item = LookupItem {
            jid: "a@x".into(),
            status: KeyStatus::Active,
            revoked_at: None,
            reason: None,
            bundle: Some("<bundle/>".into()),
        };
        assert_eq!(
            serde_json::to_string(&item).expect("ok"),
            r#"{"jid":"a@x","status":"active","bundle":"<bundle/>"}"#
        );
    }
}
