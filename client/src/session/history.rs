//! A conversation's history from the server's archive (XEP-0313), opened under the same checks as live messages but shown as history, not replays.
//!
//! The archive is the server's: it may leave messages out, but it cannot make one up or change
//! one. Every archived message is opened and verified like a live one (signature against the
//! pinned key, or the own key for messages this account sent from any device; the binding of
//! sender and recipient; the revocation rules), and must belong to this conversation. Nothing is
//! recorded by the replay rule: reading history twice is not a replay.

use super::inbox::Seen;
use super::{Session, random_id};
use crate::error::{Error, Result};
use crate::events::Received;
use crate::stanzas::archive::{self, Delivered};
use crate::stanzas::{self, Inbound};
use keyward_proto::BareJid;
use tokio_xmpp::IqRequest;

/// The most messages one `history` call asks for.
pub const MAX_HISTORY: usize = 500;

/// One entry of a conversation's history, oldest first.
#[derive(Debug)]
pub enum HistoryItem {
    /// A message that opened and verified: from the contact, or sent by this account
    /// (`message.from` is the account, `message.to` the contact).
    Message {
        /// When the server archived it (RFC 3339), if it said.
        archived_at: Option<String>,
        /// The message.
        message: Received,
    },
    /// An archived message that is not shown, and why (not encrypted, tampered, from a key
    /// that is not the pinned one, not part of this conversation...).
    Unreadable {
        /// When the server archived it (RFC 3339), if it said.
        archived_at: Option<String>,
        /// Who the stanza says sent it.
        from: Option<BareJid>,
        /// Why it is not shown.
        reason: Error,
    },
}

impl Session {
    /// The last `limit` (1 to [`MAX_HISTORY`]) messages with `contact` from the server's archive,
    /// oldest first, each opened and checked like a live message (see the module text).
    pub async fn history(&mut self, contact: &BareJid, limit: usize) -> Result<Vec<HistoryItem>> {
        if contact == &self.me {
            return Err(Error::Invalid { what: "contact", reason: "that is your own account".into() });
        }
        if !(1..=MAX_HISTORY).contains(&limit) {
            return Err(Error::Invalid { what: "limit", reason: format!("must be 1 to {MAX_HISTORY}") });
        }
        let query_id = random_id()?;
        let request = IqRequest::Set(archive::query(&query_id, contact, limit)?);
        self.conn.iq(None, request, "archive").await?;
        let me = self.me.clone();
        let results = self.conn.take_buffered(|message| match archive::classify(message, &me, &query_id) {
            Delivered::Result(archived) => Some(archived),
            Delivered::Foreign | Delivered::NotAResult => None,
        });
        let mut items = Vec::with_capacity(results.len());
        for archived in results {
            if let Some(item) = self.archived_item(contact, archived).await {
                items.push(item);
            }
        }
        Ok(items)
    }

    async fn archived_item(&mut self, contact: &BareJid, archived: archive::Archived) -> Option<HistoryItem> {
        let archived_at = archived.stamp;
        let unreadable = |from: Option<BareJid>, reason: Error| HistoryItem::Unreadable {
            archived_at: archived_at.clone(),
            from,
            reason,
        };
        let (from, sealed) = match stanzas::classify_message(&archived.message, &self.component, &self.me) {
            Inbound::Sealed { from, sealed, .. } => (from, sealed),
            Inbound::Malformed { from, error } => return Some(unreadable(Some(from), error)),
            Inbound::Unencrypted { from } => {
                let reason = Error::Invalid { what: "message", reason: "it was not encrypted with keyward".into() };
                return Some(unreadable(Some(from), reason));
            }
            // Notices, chat states, receipts: not part of a conversation's text.
            _ => return None,
        };
        let elsewhere = || Error::Invalid { what: "message", reason: "it is not part of this conversation".into() };
        if from != *contact && from != self.me {
            return Some(unreadable(Some(from), elsewhere()));
        }
        match self.open_as(&from, &sealed, Seen::Archived).await {
            Ok(message) if message.from == *contact || message.to == *contact => {
                Some(HistoryItem::Message { archived_at, message })
            }
            Ok(_) => Some(unreadable(Some(from), elsewhere())),
            Err(reason) => Some(unreadable(Some(from), reason)),
        }
    }
}
