//! What a session reports: received messages with their trust and warnings, key events, contact requests.

use crate::contacts::Trust;
use keyward_proto::{BareJid, Fingerprint};
use std::fmt;

/// Something the user should be told about a message or a contact's key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// The contact now presents a different key than the pinned one; not adopted, never used.
    KeyChanged {
        /// The pinned fingerprint.
        pinned: Fingerprint,
        /// The new, unconfirmed fingerprint.
        offered: Fingerprint,
    },
    /// The contact's key was revoked: no message opened from now on can be trusted, whatever
    /// time it claims (a thief of the key chooses it).
    ContactRevoked {
        /// When the account was revoked (RFC 3339).
        at: String,
    },
    /// The sender's client signed into this message a head of the key directory's log of the
    /// same size as ours with another root: the directory shows the two of you different
    /// histories (key transparency gossip). The message itself verified.
    DirectoryForked {
        /// The size of the two heads.
        size: u64,
    },
}

impl Warning {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::KeyChanged { .. } => "key-changed",
            Self::ContactRevoked { .. } => "contact-revoked",
            Self::DirectoryForked { .. } => "directory-forked",
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyChanged { pinned, offered } => write!(
                f,
                "key-changed: the contact's key CHANGED from {pinned} to {offered}; not trusted until you compare safety numbers (keyward verify)"
            ),
            Self::ContactRevoked { at } => write!(
                f,
                "contact-revoked: the contact's key was revoked at {at}: this message cannot be verified, do not trust it"
            ),
            Self::DirectoryForked { size } => write!(
                f,
                "directory-forked: ALARM: the key directory showed this contact another history than you (two logs of {size} epochs): keys it served may be forged; compare safety numbers"
            ),
        }
    }
}

/// A message that was decrypted and whose signature was checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Received {
    /// The sender (server-stamped, and bound inside the signature).
    pub from: BareJid,
    /// The recipient, bound inside the signature: this account, or for a message the account
    /// sent from another device ([`Incoming::Sent`]), the contact it went to.
    pub to: BareJid,
    /// The sender's message id.
    pub id: String,
    /// When the sender sealed it (Unix ms, the sender's clock).
    pub sent_at_ms: u64,
    /// The text.
    pub body: String,
    /// The signature checked out against the contact's pinned key (or the own key for own
    /// messages) and no revocation of it is known.
    pub verified: bool,
    /// How the pinned key is trusted.
    pub trust: Trust,
    /// What the user should know.
    pub warnings: Vec<Warning>,
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body is plaintext: never in logs.
        f.debug_struct("Received")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("id", &self.id)
            .field("verified", &self.verified)
            .field("trust", &self.trust)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

/// A change in what the client knows about a contact's key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyEvent {
    /// A key was pinned for the first time (trust on first use).
    Pinned {
        /// The contact.
        jid: BareJid,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// The key offered is the pinned one.
    Unchanged {
        /// The contact.
        jid: BareJid,
    },
    /// A DIFFERENT key was offered: held back, not pinned.
    Changed {
        /// The contact.
        jid: BareJid,
        /// The pinned fingerprint (still in force).
        pinned: Fingerprint,
        /// The new fingerprint.
        offered: Fingerprint,
    },
    /// The contact's account was revoked.
    Revoked {
        /// The contact.
        jid: BareJid,
        /// When (RFC 3339).
        at: String,
        /// The administrator's reason.
        reason: String,
    },
    /// The contact has no keyward key (yet).
    NoKey {
        /// The contact.
        jid: BareJid,
    },
}

/// Everything `Session::next_event` can report.
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming {
    /// A decrypted message.
    Message(Received),
    /// A message this account sent from another of its devices (an XEP-0280 carbon), opened
    /// with the own key; `to` is the contact it went to.
    Sent(Received),
    /// A key was relayed, changed or revoked.
    Key(KeyEvent),
    /// Our own account was revoked.
    SelfRevoked {
        /// When (RFC 3339).
        at: String,
        /// The administrator's reason.
        reason: String,
    },
    /// Someone asks to add us (`keyward accept JID` answers).
    ContactRequest(BareJid),
    /// Someone we had asked to add asked back, and the client approved it by itself.
    RequestApproved(BareJid),
    /// Someone accepted our request.
    ContactAccepted(BareJid),
    /// Someone ended the subscription.
    ContactEnded(BareJid),
    /// A keyward stanza was refused (bad signature, tampered, replayed, forged notice...).
    Rejected {
        /// Who sent it.
        from: BareJid,
        /// Why.
        error: crate::Error,
    },
    /// A message without keyward encryption; its text is not shown.
    Unencrypted {
        /// Who sent it.
        from: BareJid,
    },
    /// A message we sent bounced.
    Bounce {
        /// Who bounced it.
        from: BareJid,
        /// The RFC 6120 condition.
        condition: String,
    },
    /// The connection to the server broke ([`Link::Lost`](crate::Link::Lost)) or is back
    /// ([`Link::Restored`](crate::Link::Restored)); the session reconnects by itself, and
    /// on its return asks again for carbons and for revocations it may have missed.
    Link(crate::Link),
}
