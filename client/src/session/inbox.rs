//! The inbox: each stanza the server delivers becomes one typed event, after every check of protocol sections 7, 8 and 10.

use super::{Session, directory};
use crate::connection::Link;
use crate::error::{Error, Result};
use crate::events::{Incoming, Received, Warning};
use crate::stanzas::{self, Inbound, Subscription};
use crate::transparency;
use keyward_proto::elements::{KeyStatus, Revoked};
use keyward_proto::transparency::heads::{Comparison, HeadSummary};
use keyward_proto::{BareJid, Sealed, XmlElement};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use tokio_xmpp::parsers::presence::Type as PresenceType;
use tokio_xmpp::{IqRequest, Stanza};

/// How often a long-running session (`keyward chat`, `keyward recv`) monitors its own key in the
/// directory's map besides going online and reconnecting.
const OWN_KEY_MONITOR_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// How a message reached this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Delivered now: the replay rule records it.
    Live,
    /// Fetched from the archive: shown as history, never recorded as seen.
    Archived,
}

impl Session {
    /// Announces availability, so the server delivers messages, stored offline
    /// messages and pending contact requests.
    ///
    /// Then it catches up: one `keys` lookup (100 JIDs per request) of every pinned contact not
    /// known revoked, so that a revocation whose notice this device never read (sent while no
    /// session of it was there, or lost with a connection that broke: XMPP without stream
    /// management delivers at most once to a session) is learned now, under the same checks as a
    /// lookup's (protocol section 8). Such revocations come first from [`Session::next_event`];
    /// nothing else of the answer is applied (a lookup of one contact does that).
    ///
    /// It also monitors the account's own key: the directory (proven by its map where the
    /// device pinned the directory's transparency keys) must show the key this device holds;
    /// any other is [`Error::DirectoryCaught`] with [`keyward_proto::Error::ForeignKey`].
    pub async fn go_online(&mut self) -> Result<()> {
        self.conn.go_available().await?;
        self.enable_carbons().await;
        self.monitor_own_key().await?;
        self.catch_up().await
    }

    /// Monitors the own key: where the directory's transparency keys are pinned, checks the
    /// map's whole history of the account (every value the own bundle or its revocation), then
    /// looks the own account up; a bundle other than the own one is the directory caught
    /// showing others a key this account never published ([`Error::DirectoryCaught`] with
    /// [`keyward_proto::Error::ForeignKey`]). Done by [`Session::go_online`], after every
    /// reconnect and once a day by [`Session::next_event`] (an alarm then comes as
    /// [`Incoming::Rejected`]); a client may call it at any time.
    pub async fn monitor_own_key(&mut self) -> Result<()> {
        self.own_key_checked = Some(tokio::time::Instant::now());
        if self.component.local().is_none() && self.component.domain() == self.me.domain() {
            return Ok(());
        }
        if let Some(keys) = transparency::directory_keys(&mut self.conn, &self.component, &self.store).await? {
            let own = self.bundle.clone();
            transparency::check_own_history(&mut self.conn, &self.component, &self.store, &keys, &own).await?;
        }
        let item = directory::lookup_one(&mut self.conn, &self.component, &self.store, &self.me).await?;
        let shown = item.bundle.as_ref().map(keyward_proto::Bundle::fingerprint);
        if matches!(item.status, KeyStatus::Active) && shown != Some(self.fingerprint()) {
            tracing::error!(
                alarm = "transparency-foreign-key",
                "the directory shows a key this account never published"
            );
            return Err(Error::DirectoryCaught { jid: Some(self.me.clone()), cause: keyward_proto::Error::ForeignKey });
        }
        Ok(())
    }

    /// Asks the server for carbons (XEP-0280), so that this device also sees the messages the
    /// account's other devices send and receive. A server without them only means it does not.
    async fn enable_carbons(&mut self) {
        let request = IqRequest::Set(stanzas::carbons::enable());
        if let Err(e) = self.conn.iq(None, request, "carbons").await {
            tracing::warn!(cause = %e, "the server did not enable carbons: messages of other devices are not copied here");
        }
    }

    /// Back on a new server session after the link broke: carbons are asked for again (they
    /// belong to the server session), and revocations whose notices went to the broken
    /// connection are caught up on; failing that, the next start catches up.
    async fn restored(&mut self) {
        self.enable_carbons().await;
        match self.monitor_own_key().await {
            Err(error @ Error::DirectoryCaught { .. }) => {
                self.caught_up.push_back(Incoming::Rejected { from: self.component.clone(), error })
            }
            Err(e) => tracing::warn!(cause = %e, "could not check the own key after reconnecting"),
            Ok(()) => {}
        }
        if let Err(e) = self.catch_up().await {
            tracing::warn!(cause = %e, "could not ask the directory for missed revocations after reconnecting");
        }
    }

    async fn catch_up(&mut self) -> Result<()> {
        let pinned: Vec<BareJid> = self
            .store
            .contacts()?
            .contacts
            .iter()
            .filter(|(_, contact)| contact.pinned.is_some() && contact.revoked.is_none())
            .filter_map(|(jid, _)| BareJid::parse(jid).ok())
            .collect();
        // Without a component (keys exchanged out of band) the server's own domain stands in:
        // there is no directory to ask, and no notices to have missed.
        if pinned.is_empty() || (self.component.local().is_none() && self.component.domain() == self.me.domain()) {
            return Ok(());
        }
        for item in directory::fetch_keys(&mut self.conn, &self.component, &self.store, &pinned).await? {
            if !matches!(item.status, KeyStatus::Revoked { .. }) {
                continue;
            }
            let event = match self.learn(&item) {
                Ok(event) => Incoming::Key(event),
                Err(error) => Incoming::Rejected { from: self.component.clone(), error },
            };
            self.caught_up.push_back(event);
        }
        Ok(())
    }

    /// The next event within `wait`, or `None`. Call [`Session::go_online`] first.
    pub async fn next_event(&mut self, wait: Duration) -> Result<Option<Incoming>> {
        if self.own_key_checked.is_some_and(|at| at.elapsed() >= OWN_KEY_MONITOR_INTERVAL) {
            self.own_key_checked = Some(tokio::time::Instant::now());
            match self.monitor_own_key().await {
                Err(error @ Error::DirectoryCaught { .. }) => {
                    self.caught_up.push_back(Incoming::Rejected { from: self.component.clone(), error })
                }
                Err(e) => tracing::warn!(cause = %e, "could not check the own key in the directory's map"),
                Ok(()) => {}
            }
        }
        if let Some(event) = self.caught_up.pop_front() {
            return Ok(Some(event));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(link) = self.conn.take_link() {
                if link == Link::Restored {
                    self.restored().await;
                }
                return Ok(Some(Incoming::Link(link)));
            }
            let now = tokio::time::Instant::now();
            if let Some((notice, tries)) = self.retries.take_due(now) {
                match self.revoked_notice(notice, tries).await {
                    Some(event) => return Ok(Some(event)),
                    None => continue,
                }
            }
            // Wake for the next notice due for another try, if it comes before the deadline.
            let until = self.retries.next_due().map_or(deadline, |due| due.min(deadline));
            let Some(stanza) = self.conn.next_stanza(until.saturating_duration_since(now)).await? else {
                if tokio::time::Instant::now() >= deadline {
                    return Ok(None);
                }
                continue;
            };
            let event = match stanza {
                Stanza::Message(message) => {
                    self.on_message(stanzas::classify_message(&message, &self.component, &self.me)).await
                }
                Stanza::Presence(presence) => match stanzas::classify_presence(&presence) {
                    Some(Subscription::Request(jid)) => Some(self.on_request(jid).await?),
                    Some(Subscription::Accepted(jid)) => Some(Incoming::ContactAccepted(jid)),
                    Some(Subscription::Ended(jid)) => Some(Incoming::ContactEnded(jid)),
                    None => None,
                },
                Stanza::Iq(_) => None,
            };
            if let Some(event) = event {
                return Ok(Some(event));
            }
        }
    }

    /// A contact request: approved at once when we asked for that contact first (it
    /// accepted us and asks back), else left to the user (`accept`). Not every server
    /// supports RFC 6121 pre-approval (ejabberd 23.01 does not), so the client does it.
    async fn on_request(&mut self, jid: BareJid) -> Result<Incoming> {
        let roster = match self.conn.iq(None, IqRequest::Get(stanzas::roster_query()), "roster").await {
            Ok(roster) => roster,
            Err(e) => {
                tracing::warn!(cause = %e, "could not read the roster; leaving the request to the user");
                return Ok(Incoming::ContactRequest(jid));
            }
        };
        if !roster.as_ref().is_some_and(|r| stanzas::roster_we_asked(r, &jid)) {
            return Ok(Incoming::ContactRequest(jid));
        }
        self.conn.send(stanzas::subscription(&jid, PresenceType::Subscribed)?).await?;
        Ok(Incoming::RequestApproved(jid))
    }

    async fn on_message(&mut self, inbound: Inbound) -> Option<Incoming> {
        match inbound {
            Inbound::Sealed { from, sealed, .. } => Some(match self.open(&from, &sealed).await {
                Ok(received) => Incoming::Message(received),
                Err(error) => Incoming::Rejected { from, error },
            }),
            Inbound::KeyRelay(relay) => {
                if relay.from == self.me {
                    return None;
                }
                let event = crate::contacts::verify_bundle(&relay.bundle, &relay.from)
                    .map_err(|cause| Error::BadBundle { jid: relay.from.clone(), cause })
                    .and_then(|bundle| self.offer(&bundle));
                Some(match event {
                    Ok(event) => Incoming::Key(event),
                    Err(error) => Incoming::Rejected { from: self.component.clone(), error },
                })
            }
            Inbound::Revoked(notice) => self.revoked_notice(*notice, 0).await,
            Inbound::Malformed { from, error } => Some(Incoming::Rejected { from, error }),
            Inbound::ForgedNotice { from } => Some(Incoming::Rejected {
                from,
                error: Error::Invalid {
                    what: "notice",
                    reason: "key notices are accepted only from the component".into(),
                },
            }),
            Inbound::Carbon { sent, inner } => self.on_carbon(sent, *inner).await,
            Inbound::ForgedCarbon { from } => {
                Some(Incoming::Rejected { error: Error::ForgedCarbon(from.clone()), from })
            }
            Inbound::Unencrypted { from } => Some(Incoming::Unencrypted { from }),
            Inbound::Bounce { from, condition } => Some(Incoming::Bounce { from, condition }),
            Inbound::Other => None,
        }
    }

    /// A carbon from the own account (XEP-0280): a copy of a sealed message another device sent
    /// (opened with the own key: the sender always seals to itself too) or received (opened like
    /// any message to this account). A copy this device already has (the server also delivered
    /// the original here) is dropped without a word.
    async fn on_carbon(&mut self, sent: bool, inner: Inbound) -> Option<Incoming> {
        let (from, sealed) = match inner {
            Inbound::Sealed { from, sealed, .. } => (from, sealed),
            Inbound::Malformed { from, error } => return Some(Incoming::Rejected { from, error }),
            _ => return None,
        };
        if sent != (from == self.me) {
            let reason =
                if sent { "a sent carbon of someone else's message" } else { "a received carbon of an own message" };
            return Some(Incoming::Rejected { from, error: Error::Invalid { what: "carbon", reason: reason.into() } });
        }
        match self.open(&from, &sealed).await {
            Ok(received) if sent => Some(Incoming::Sent(received)),
            Ok(received) => Some(Incoming::Message(received)),
            Err(Error::Protocol(keyward_proto::Error::Replay)) => None,
            Err(error) => Some(Incoming::Rejected { from, error }),
        }
    }

    /// A `<revoked/>` notice that failed its confirmation `tries` times so far: applied when the
    /// directory confirms it, kept for a later try when the directory cannot be asked now
    /// ([`super::retry`]), refused otherwise.
    async fn revoked_notice(&mut self, notice: Revoked, tries: u32) -> Option<Incoming> {
        match self.on_revoked(&notice).await {
            Ok(event) => event,
            Err(error) if passing(&error) => {
                let (jid, tries) = (notice.jid.clone(), tries + 1);
                if self.retries.keep(notice, tries, tokio::time::Instant::now()) {
                    tracing::warn!(cause = %error, contact = %jid, tries, "could not confirm a revocation notice yet; trying again later");
                    None
                } else {
                    Some(Incoming::Rejected { from: self.component.clone(), error })
                }
            }
            Err(error) => Some(Incoming::Rejected { from: self.component.clone(), error }),
        }
    }

    /// A `<revoked/>` notice is a hint (protocol section 8): it counts only when it names the
    /// pinned key and a fresh `keys` answer confirms it. `None` when it changes nothing new.
    async fn on_revoked(&mut self, notice: &Revoked) -> Result<Option<Incoming>> {
        if notice.jid == self.me {
            if notice.fp != self.fingerprint() {
                return Err(Error::RevocationRefused {
                    jid: self.me.clone(),
                    reason: "it is not about this account's key".into(),
                });
            }
            let item = directory::lookup_one(&mut self.conn, &self.component, &self.store, &self.me).await?;
            return match item.status {
                KeyStatus::Revoked { at, reason } => {
                    Ok(Some(Incoming::SelfRevoked { at: at.format(&Rfc3339).unwrap_or_default(), reason }))
                }
                _ => Err(Error::RevocationRefused {
                    jid: self.me.clone(),
                    reason: "the directory does not confirm it".into(),
                }),
            };
        }
        if !self.store.contacts()?.notice_applies(notice)? {
            return Ok(None);
        }
        let item = directory::lookup_one(&mut self.conn, &self.component, &self.store, &notice.jid).await?;
        let confirmed = matches!(item.status, KeyStatus::Revoked { .. })
            && item.bundle.as_ref().is_some_and(|b| b.fingerprint() == notice.fp);
        if !confirmed {
            return Err(Error::RevocationRefused {
                jid: notice.jid.clone(),
                reason: "the directory does not confirm it for the pinned key".into(),
            });
        }
        self.learn(&item).map(|event| Some(Incoming::Key(event)))
    }

    /// Opens a sealed message from `from` and checks it against the pinned key (the own key
    /// for the own account). A held-back changed key is never used to open.
    async fn open(&mut self, from: &BareJid, sealed: &Sealed) -> Result<Received> {
        self.open_as(from, sealed, Seen::Live).await
    }

    /// Opens `sealed` from `from` with the sender key `ik`; a live message is recorded by the
    /// replay rule in the same transaction, an archived one against a throw-away cache.
    fn open_sealed(
        &self,
        sealed: &Sealed,
        from: &BareJid,
        ik: &keyward_proto::IdentityPublic,
        seen: Seen,
    ) -> Result<keyward_proto::Result<(keyward_proto::Envelope, Option<HeadSummary>)>> {
        let open =
            |cache: &mut dyn keyward_proto::ReplayCache| sealed.open_with_head(&self.keys, &self.me, from, ik, cache);
        match seen {
            Seen::Live => self.store.with_replay(open),
            Seen::Archived => Ok(open(&mut keyward_proto::MemoryReplayCache::default())),
        }
    }

    /// Compares the head summary a contact signed into a live message with the own newest
    /// head (protocol section 15.2.6): when the contact's is newer, the own head is brought up
    /// to date first (a lookup with proofs, which checks consistency); a head of the same size
    /// with another root is the directory showing two logs: a warning on the message, the
    /// summary kept as evidence with the own signed head.
    async fn gossip(&mut self, from: &BareJid, theirs: &HeadSummary) -> Result<Option<Warning>> {
        if transparency::compare(&self.store, theirs)? == Some(Comparison::MineOlder)
            && let Err(e) = self.monitor_own_key().await
        {
            tracing::warn!(cause = %e, "could not bring the directory's head up to date");
        }
        if transparency::compare(&self.store, theirs)? != Some(Comparison::Fork) {
            return Ok(None);
        }
        let mine = self.store.transparency()?.and_then(|p| p.head).unwrap_or_default();
        let evidence = format!("{mine}\n--\n{from}: {}", hex::encode(theirs.encode()));
        self.store.keep_evidence("transparency-gossip-fork", from, &evidence)?;
        tracing::error!(alarm = "transparency-gossip-fork", contact = %from, size = theirs.size, "a contact saw another log of the same size");
        Ok(Some(Warning::DirectoryForked { size: theirs.size }))
    }

    /// [`Session::open`], for a live message (recorded by the replay rule) or an archived one
    /// (every other check the same, but history is not a replay: nothing is recorded).
    pub(super) async fn open_as(&mut self, from: &BareJid, sealed: &Sealed, seen: Seen) -> Result<Received> {
        if from == &self.me {
            let own = self.keys.identity_public();
            let (envelope, _) = self.open_sealed(sealed, from, &own, seen)??;
            return Ok(Received {
                from: envelope.from.clone(),
                to: envelope.to.clone(),
                id: envelope.msg_id.clone(),
                sent_at_ms: envelope.ts_ms,
                body: envelope.body.clone(),
                verified: true,
                trust: crate::contacts::Trust::Verified,
                warnings: Vec::new(),
            });
        }
        let mut contact = self.store.contacts()?.get(from).cloned();
        if contact.as_ref().is_none_or(|c| c.pinned.is_none()) {
            // Trust on first use through the directory.
            if let Err(e) = self.refresh_key(from).await {
                tracing::warn!(cause = %e, contact = %from, "could not fetch the sender's key");
            }
            contact = self.store.contacts()?.get(from).cloned();
        }
        let contact = contact.ok_or_else(|| Error::NoKey(from.clone()))?;
        let pinned = contact.pinned_bundle(from)?.ok_or_else(|| Error::NoKey(from.clone()))?;
        let pending = contact.pending_bundle(from)?;
        let mut warnings = Vec::new();
        let mut verified = true;
        let opened = self.open_sealed(sealed, from, pinned.identity_key(), seen)?;
        let (envelope, head) = match (opened, &pending) {
            (Ok(opened), _) => opened,
            (Err(keyward_proto::Error::BadSignature), Some(pending)) => {
                // Checked against the changed key only to say why it is refused; never shown,
                // never recorded, and the stanza is kept as evidence.
                let mut scratch = keyward_proto::MemoryReplayCache::default();
                let signed_by_changed =
                    sealed.open(&self.keys, &self.me, from, pending.identity_key(), &mut scratch).is_ok();
                if signed_by_changed {
                    self.store.keep_evidence("signed-by-changed-key", from, &sealed.to_xml())?;
                    return Err(Error::SignedByChangedKey {
                        jid: from.clone(),
                        pinned: pinned.fingerprint().to_string(),
                        offered: pending.fingerprint().to_string(),
                    });
                }
                return Err(keyward_proto::Error::BadSignature.into());
            }
            (Err(e), _) => return Err(e.into()),
        };
        if let Some(pending) = &pending {
            warnings.push(Warning::KeyChanged { pinned: pinned.fingerprint(), offered: pending.fingerprint() });
        }
        if let Some(revoked) = &contact.revoked {
            verified = false;
            warnings.push(Warning::ContactRevoked { at: revoked.at.clone() });
        }
        if let (Some(theirs), Seen::Live) = (head, seen)
            && let Some(fork) = self.gossip(from, &theirs).await?
        {
            warnings.push(fork);
        }
        Ok(Received {
            from: envelope.from.clone(),
            to: envelope.to.clone(),
            id: envelope.msg_id.clone(),
            sent_at_ms: envelope.ts_ms,
            body: envelope.body.clone(),
            verified,
            trust: contact.trust,
            warnings,
        })
    }
}

/// Whether a failed confirmation lookup is worth trying again later: the directory, the
/// component or the server could not answer now (not a refusal of the notice itself).
fn passing(error: &Error) -> bool {
    match error {
        Error::Timeout(_) => true,
        Error::Refused { condition, .. } => matches!(
            condition.as_str(),
            "service-unavailable"
                | "remote-server-timeout"
                | "remote-server-not-found"
                | "internal-server-error"
                | "resource-constraint"
                | "policy-violation"
                | "recipient-unavailable"
        ),
        _ => false,
    }
}
