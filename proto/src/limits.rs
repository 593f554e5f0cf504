//! The protocol's size limits (defaults of version 0).

/// Largest stanza the component handles, in bytes.
pub const STANZA_BYTES: usize = 64 * 1024;
/// Largest encoded `<bundle/>`, in bytes.
pub const BUNDLE_BYTES: usize = 1024;
/// Largest encoded `<secret/>`, in bytes.
pub const SECRET_BYTES: usize = 4096;
/// Most `<item/>`s in one `<keys/>` query.
pub const KEYS_ITEMS: usize = 100;
/// Most `<item/>`s in one `<roster-keys/>` answer.
pub const ROSTER_ITEMS: usize = 5000;
/// Most recipient keys in one `<sealed/>` message.
pub const SEALED_KEYS: usize = 64;
/// Largest message body, in bytes (UTF-8).
pub const BODY_BYTES: usize = 32 * 1024;
/// Longest message id, in bytes.
pub const MSG_ID_BYTES: usize = 128;
/// Longest revocation reason, in bytes.
pub const REASON_BYTES: usize = 1024;
