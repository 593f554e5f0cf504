//! The HTTP contract between keyward's component and keydir (`docs/keydir-api.md`): serde types only.
//!
//! keydir serves these types and the component consumes them, so both sides agree on every field
//! by construction: statuses, notice kinds and problem types are enums, times are
//! [`time::OffsetDateTime`] (RFC 3339 on the wire), and a notice is structured data that the
//! component renders into XML once, never XML written by keydir. No HTTP, no SQL: keydir adds the
//! axum handlers and Postgres rows, the component the reqwest client.
//!
//! JIDs stay strings here: keydir parses each one with `keyward_proto::BareJid`, so that a bad JID
//! is a `bad-request` naming its field rather than a JSON error.
//!
//! With the `openapi` feature every type also derives its `utoipa` schema, from which keydir
//! serves `/openapi.json`.

pub mod admin;
pub mod component;
pub mod cosignatures;
pub mod int;
pub mod problem;
mod status;
pub mod transparency;

pub use problem::{Problem, ProblemType};
pub use status::{AccountStatus, KeyStatus, NoticeKind};

/// A bare JID as the API documents it (the OpenAPI schema only: values are parsed with
/// `keyward_proto::BareJid`). The pattern is what `BareJid::parse` accepts: no whitespace or
/// control characters, none of `"&'/:<>@` in the localpart, no empty domain label; at most
/// 255 characters, so each part stays within 1023 bytes.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(
    value_type = String,
    max_length = 255,
    example = "alice@example.test",
    pattern = r#"^([^\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"&'/:<>@]+@)?[^\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@/.]+(\.[^\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@/.]+)*\.?$"#
)]
pub struct Jid(#[allow(dead_code)] String);

/// Longest JID the API takes, in characters (so each part is within 1023 bytes).
pub const MAX_JID_CHARS: usize = 255;
