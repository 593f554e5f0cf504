//! Notice delivery: drains keydir's outbox and sends each notice as a stored message.
//!
//! A batch is acknowledged only after the server answered a ping sent behind it on the
//! same stream, so delivery is at-least-once: a batch whose stream went down is released
//! (due again when a stream is back), and one whose component died is handed out again by
//! keydir when its lease runs out.
//!
//! Pacing: the next batch is claimed while the server handles the previous one, and written
//! once the server answered the previous batch's ping; acknowledgements go on meanwhile. So the
//! round trips to keydir stay off a large fan-out's path, and the server never holds more than
//! one batch unhandled (Prosody stores 10,000 messages written at once about twice as slowly as
//! the same in batches of 100, each sent once the last was handled: `cargo xtask bench`, P4).
//!
//! A `revoked` notice addressed to the revoked account itself also goes to that account's
//! roster contacts, where its server granted the component roster access (XEP-0356): the
//! roster is read and the same `<revoked/>` is sent to each contact (bounded, skipping those
//! the same batch already notifies as key holders) before the notice is acknowledged.

use core::time::Duration;
use std::collections::HashSet;
use std::sync::Arc;

use keyward_proto::elements::{KeyRelay, Revoked, StoreHint};
use keyward_proto::xml::Element;
use keyward_proto::{BareJid, Bundle, Fingerprint, XmlElement};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::backoff::Backoff;
use crate::context::{SessionContext, Shared};
use crate::error::Result;
use crate::handlers::roster::{NS_ROSTER, roster_contacts};
use crate::keydir::{Notice, NoticeEvent};
use crate::stanza::Condition;
use crate::stream::NS_COMPONENT;

/// Most notices claimed at once.
const CLAIM_MAX: u32 = 100;
/// Most batches handled by the server and waiting for their acknowledgement.
const ACKS_IN_FLIGHT_MAX: usize = 8;
/// Attempts to acknowledge a batch.
const ACK_ATTEMPTS: u32 = 3;
/// Most roster contacts told of one revocation.
const ROSTER_FAN_OUT_MAX: usize = keyward_proto::limits::ROSTER_ITEMS;

/// Delivers notices while a stream is up, until `stop` (finishing the batches in hand).
pub async fn run(
    shared: Arc<Shared>,
    mut streams: watch::Receiver<Option<Arc<SessionContext>>>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut confirming = JoinSet::new();
    // Answered once the server handled the last batch written (or the stream went down).
    let mut handled: Option<oneshot::Receiver<()>> = None;
    'claiming: loop {
        while confirming.try_join_next().is_some() {}
        let session = loop {
            if let Some(session) = streams.borrow_and_update().clone() {
                break session;
            }
            tokio::select! {
                () = stop.cancelled() => break 'claiming,
                changed = streams.changed() => if changed.is_err() { break 'claiming },
            }
        };
        if confirming.len() >= ACKS_IN_FLIGHT_MAX {
            confirming.join_next().await;
            continue;
        }
        let config = &shared.config;
        let claimed = tokio::select! {
            () = stop.cancelled() => break,
            claimed = shared.keydir.claim(CLAIM_MAX, config.claim_wait, config.claim_lease) => claimed,
        };
        match claimed {
            Ok(notices) if notices.is_empty() => backoff.reset(),
            Ok(notices) => {
                backoff.reset();
                if let Some(previous) = handled.take() {
                    // An error only means the confirmation ended without a word: it is done either way.
                    let _ = previous.await;
                }
                let batch = send(&session, notices).await;
                let (done, wait) = oneshot::channel();
                handled = Some(wait);
                confirming.spawn(confirm(session, batch, done));
            }
            Err(err) => {
                warn!(cause = %err, "claiming notices failed");
                shared.metrics.errors.with_label_values(&["notice-claim-failed"]).inc();
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
    while confirming.join_next().await.is_some() {}
}

/// A batch written to the stream, waiting for its confirmation.
struct Batch {
    notices: Vec<Notice>,
    /// Ids written in full (with their roster fan-out), in order.
    sent: Vec<i64>,
    /// Ids that cannot be rendered: acknowledged, never sent.
    unreadable: Vec<i64>,
    /// Whether every readable notice was written (the stream stayed up).
    finished: bool,
    /// The domain of the last recipient written: its server is the one pinged.
    last_domain: Option<String>,
}

/// Sends a batch in order, stopping at the first write that fails.
async fn send(session: &SessionContext, notices: Vec<Notice>) -> Batch {
    let shared = &session.shared;
    let holders = revoked_recipients(&notices);
    let mut batch = Batch {
        sent: Vec::with_capacity(notices.len()),
        unreadable: Vec::new(),
        finished: true,
        last_domain: None,
        notices: Vec::new(),
    };
    for (n, notice) in notices.iter().enumerate() {
        match message_for(notice, &shared.config.component_jid) {
            Ok(message) => {
                // Queued together, the writer sends them in few writes; the last one is awaited,
                // so that a stream gone down shows before the ping (which alone confirms them).
                let queued = if n + 1 == notices.len() {
                    session.outbox.send_written(&message).await.is_ok()
                } else {
                    session.outbox.send(&message).await
                };
                if !queued {
                    batch.finished = false;
                    break;
                }
                shared.metrics.notices_sent.with_label_values(&[notice.event.kind().as_str()]).inc();
                if let Some(owner) = revoked_owner(notice)
                    && tell_roster(session, notice.id, &owner, &message, &holders).await.is_err()
                {
                    batch.finished = false;
                    break;
                }
                batch.sent.push(notice.id);
                batch.last_domain = BareJid::parse(&notice.to).ok().map(|to| to.domain().to_owned());
            }
            Err(err) => {
                // A notice that cannot be rendered (a bundle or fingerprint that does not parse:
                // keydir stores only checked ones) would come back forever: log it and acknowledge it.
                warn!(id = notice.id, cause = %err, "dropping an unreadable notice");
                shared.metrics.errors.with_label_values(&["bad-notice"]).inc();
                batch.unreadable.push(notice.id);
            }
        }
    }
    batch.notices = notices;
    batch
}

/// Acknowledges a sent batch once the server has handled it, or releases what was not; says
/// on `handled` when the server is done with it (the next batch may be written).
///
/// Written is not delivered: a server killed with the messages in its socket buffer loses
/// them. So the batch is acknowledged only after a ping through the same stream was answered
/// ([`SessionContext::server_caught_up`]). When the stream goes down first, the unacknowledged
/// notices are released in keydir, due again as soon as a stream is back.
async fn confirm(session: Arc<SessionContext>, batch: Batch, handled: oneshot::Sender<()>) {
    let shared = &session.shared;
    let mut finished = batch.finished;
    if finished && !batch.sent.is_empty() {
        finished = session.server_caught_up(batch.last_domain.as_deref().unwrap_or_default()).await;
    }
    // Nobody waiting is fine: the delivery loop stopped.
    let _ = handled.send(());
    let mut done = batch.unreadable;
    if finished {
        done.extend(&batch.sent);
    } else {
        debug!("the stream went down mid-batch: releasing the batch for the next stream");
        let undelivered: Vec<i64> = batch.notices.iter().map(|n| n.id).filter(|id| !done.contains(id)).collect();
        match shared.keydir.release(&undelivered).await {
            Ok(_) => shared.metrics.notices_released.inc_by(undelivered.len() as u64),
            // Not lost: the notices come back when their lease runs out.
            Err(err) => warn!(cause = %err, "releasing undelivered notices failed"),
        }
    }
    if done.is_empty() {
        return;
    }
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    for attempt in 1..=ACK_ATTEMPTS {
        match shared.keydir.ack(&done).await {
            Ok(_) => return,
            Err(err) => {
                warn!(attempt, cause = %err, "acknowledging notices failed");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
    shared.metrics.errors.with_label_values(&["notice-ack-failed"]).inc();
}

/// `(revoked account, recipient)` of every `revoked` notice in a batch.
fn revoked_recipients(notices: &[Notice]) -> HashSet<(BareJid, BareJid)> {
    notices
        .iter()
        .filter(|n| matches!(n.event, NoticeEvent::Revoked { .. }))
        .filter_map(|n| Some((BareJid::parse(&n.subject).ok()?, BareJid::parse(&n.to).ok()?)))
        .collect()
}

/// The revoked account, when `notice` is a `revoked` notice addressed to that account itself.
fn revoked_owner(notice: &Notice) -> Option<BareJid> {
    if !matches!(notice.event, NoticeEvent::Revoked { .. }) {
        return None;
    }
    let to = BareJid::parse(&notice.to).ok()?;
    (BareJid::parse(&notice.subject).ok()? == to).then_some(to)
}

/// The fan-out could not finish now (the stream went down or the server did not answer in
/// time): the notice must not be acknowledged.
#[derive(Debug)]
struct Unfinished;

/// Sends `message` (the `revoked` notice sent to `owner`) to each of `owner`'s roster contacts,
/// where `owner`'s server granted roster access. Contacts in `holders` (notified by the same
/// batch) are skipped. A refused roster read is final (logged); a timeout is [`Unfinished`].
async fn tell_roster(
    session: &SessionContext,
    notice_id: i64,
    owner: &BareJid,
    message: &Element,
    holders: &HashSet<(BareJid, BareJid)>,
) -> Result<(), Unfinished> {
    let shared = &session.shared;
    if !shared.config.serves(owner.domain()) || !session.settled_privileges(owner.domain()).await.roster_get {
        return Ok(());
    }
    let roster = match session.ask_server(owner, Element::new("query", NS_ROSTER)).await {
        Ok(answer) => answer,
        Err(error) if matches!(error.condition, Condition::FeatureNotImplemented) => {
            warn!(domain = owner.domain(), "the server refused to read a revoked account's roster");
            shared.metrics.errors.with_label_values(&["roster-read-refused"]).inc();
            return Ok(());
        }
        Err(_) => return Err(Unfinished),
    };
    let mut contacts = roster_contacts(&roster.element);
    contacts.retain(|c| c != owner && !holders.contains(&(owner.clone(), c.clone())));
    if contacts.len() > ROSTER_FAN_OUT_MAX {
        warn!(contacts = contacts.len(), max = ROSTER_FAN_OUT_MAX, "roster too large: telling the first contacts only");
        contacts.truncate(ROSTER_FAN_OUT_MAX);
    }
    for (n, contact) in contacts.iter().enumerate() {
        let mut copy = message.clone();
        copy.set_attr("to", contact.as_str());
        copy.set_attr("id", format!("kw-notice-{notice_id}-r{n}"));
        if session.outbox.send_written(&copy).await.is_err() {
            return Err(Unfinished);
        }
        shared.metrics.notices_sent.with_label_values(&["revoked-roster"]).inc();
    }
    debug!(contacts = contacts.len(), "revocation sent to roster contacts");
    Ok(())
}

/// The protocol element a notice tells (`<key-relay/>` or `<revoked/>`), rendered once here
/// from keydir's structured notice.
fn payload(notice: &Notice) -> Result<Element> {
    let subject = BareJid::parse(&notice.subject)?;
    Ok(match &notice.event {
        NoticeEvent::KeyRelay { bundle } => {
            KeyRelay { from: subject, bundle: Bundle::parse(bundle.as_bytes())? }.to_element()
        }
        NoticeEvent::Revoked { reason, .. } if reason.len() > keyward_proto::limits::REASON_BYTES => {
            return Err(
                keyward_proto::Error::TooLarge { what: "reason", limit: keyward_proto::limits::REASON_BYTES }.into()
            );
        }
        NoticeEvent::Revoked { fingerprint, revoked_at, reason } => {
            Revoked { jid: subject, fp: Fingerprint::from_hex(fingerprint)?, at: *revoked_at, reason: reason.clone() }
                .to_element()
        }
    })
}

/// The `<message type='normal'>` carrying a notice, with a store hint.
pub fn message_for(notice: &Notice, component: &BareJid) -> Result<Element> {
    let to = BareJid::parse(&notice.to)?;
    Ok(Element::new("message", NS_COMPONENT)
        .attr("type", "normal")
        .attr("from", component.as_str())
        .attr("to", to.as_str())
        .attr("id", format!("kw-notice-{}", notice.id))
        .child(payload(notice)?)
        .child(StoreHint.to_element()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::encode;
    use time::macros::datetime;

    const FP: &str = "00000000000000000000000000000000000000000000000000000000000000ff";

    fn revoked(to: &str, fingerprint: &str, reason: &str) -> Notice {
        Notice {
            id: 7,
            to: to.into(),
            subject: "alice@example.test".into(),
            event: NoticeEvent::Revoked {
                fingerprint: fingerprint.into(),
                revoked_at: datetime!(2025-11-26 10:00:00.25 UTC),
                reason: reason.into(),
            },
        }
    }

    #[test]
    fn a_revoked_notice_becomes_a_stored_normal_message_the_client_parses() {
        let component = BareJid::parse("keys.example.test").expect("valid");
        let message = message_for(&revoked("bob@example.test", FP, "lost <it> & 'more'"), &component).expect("valid");
        let text = encode::stanza(&message);
        assert!(text.starts_with(
            "<message type='normal' from='keys.example.test' to='bob@example.test' id='kw-notice-7'><revoked"
        ));
        assert!(text.ends_with("<store xmlns='urn:xmpp:hints'/></message>"), "{text}");
        let element = message.children().first().expect("a payload");
        let parsed = Revoked::from_element(element).expect("the client's parser reads it");
        assert_eq!(parsed.jid.as_str(), "alice@example.test");
        assert_eq!(parsed.fp.to_hex(), FP);
        assert_eq!(parsed.at, datetime!(2025-11-26 10:00:00.25 UTC));
        assert_eq!(parsed.reason, "lost <it> & 'more'");
    }

    #[test]
    fn a_notice_that_cannot_be_rendered_is_refused() {
        let component = BareJid::parse("keys.example.test").expect("valid");
        let relay = |bundle: &str| Notice {
            id: 1,
            to: "bob@example.test".into(),
            subject: "alice@example.test".into(),
            event: NoticeEvent::KeyRelay { bundle: bundle.into() },
        };
        let cases = [
            revoked("bob@example.test", "not hex", "lost"),
            revoked("not a jid@@", FP, "lost"),
            revoked("bob@example.test", FP, &"x".repeat(keyward_proto::limits::REASON_BYTES + 1)),
            relay("<script xmlns='urn:evil'/>"),
            relay("not xml"),
        ];
        for notice in cases {
            assert!(message_for(&notice, &component).is_err(), "{notice:?}");
        }
    }

    #[test]
    fn the_owner_of_a_revocation_is_its_subject_addressed_to_itself() {
        assert_eq!(
            revoked_owner(&revoked("alice@example.test", FP, "x")).map(|j| j.to_string()).as_deref(),
            Some("alice@example.test")
        );
        assert!(revoked_owner(&revoked("bob@example.test", FP, "x")).is_none());
        let holders = revoked_recipients(&[revoked("bob@example.test", FP, "x")]);
        assert!(holders.contains(&(
            BareJid::parse("alice@example.test").expect("ok"),
            BareJid::parse("bob@example.test").expect("ok")
        )));
    }
}
