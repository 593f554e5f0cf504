//! Notice delivery: drains keydir's outbox and sends each notice as a stored message.
//!
//! A notice is acknowledged only after its message was written to the stream, so
//! delivery is at-least-once: a notice claimed but not acknowledged (the stream or
//! the component went down) is handed out again by keydir when its lease expires.

use core::time::Duration;
use std::sync::Arc;

use keyward_proto::elements::{KeyRelay, NS, Revoked, StoreHint};
use keyward_proto::xml::{Element, ParseLimits};
use keyward_proto::{BareJid, XmlElement};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::backoff::Backoff;
use crate::context::Shared;
use crate::error::{Error, Result};
use crate::keydir::Notice;
use crate::stream::NS_COMPONENT;
use crate::writer::Outbox;

/// Most notices claimed at once.
const CLAIM_MAX: u32 = 100;
/// Attempts to acknowledge a batch.
const ACK_ATTEMPTS: u32 = 3;

/// Delivers notices while a stream is up, until `stop` (finishing the batch in hand).
pub async fn run(shared: Arc<Shared>, mut streams: watch::Receiver<Option<Outbox>>, stop: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let outbox = loop {
            if let Some(outbox) = streams.borrow_and_update().clone() {
                break outbox;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                changed = streams.changed() => if changed.is_err() { return },
            }
        };
        let config = &shared.config;
        let claimed = tokio::select! {
            () = stop.cancelled() => return,
            claimed = shared.keydir.claim(CLAIM_MAX, config.claim_wait, config.claim_lease) => claimed,
        };
        match claimed {
            Ok(notices) => {
                backoff.reset();
                deliver(&shared, &outbox, notices).await;
            }
            Err(err) => {
                warn!(cause = %err, "claiming notices failed");
                shared.metrics.errors.with_label_values(&["notice-claim-failed"]).inc();
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}

/// Sends a batch in order and acknowledges what was written.
async fn deliver(shared: &Shared, outbox: &Outbox, notices: Vec<Notice>) {
    let mut done = Vec::with_capacity(notices.len());
    for notice in notices {
        match message_for(&notice, &shared.config.component_jid) {
            Ok(message) => {
                if outbox.send_written(&message).await.is_err() {
                    debug!("stream went down; the rest of the batch is delivered after its lease");
                    break;
                }
                shared.metrics.notices_sent.with_label_values(&[notice.kind.as_str()]).inc();
                done.push(notice.id);
            }
            Err(err) => {
                // A notice keyward cannot read would come back forever: log it and acknowledge it.
                warn!(id = notice.id, cause = %err, "dropping an unreadable notice");
                shared.metrics.errors.with_label_values(&["bad-notice"]).inc();
                done.push(notice.id);
            }
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

/// The `<message type='normal'>` carrying a notice, with a store hint.
pub fn message_for(notice: &Notice, component: &BareJid) -> Result<Element> {
    let to = BareJid::parse(&notice.to)?;
    let payload = Element::parse(notice.payload.as_bytes(), &ParseLimits::STANZA)?;
    match (payload.ns(), payload.name(), notice.kind.as_str()) {
        (NS, "key-relay", "key-relay") => {
            KeyRelay::from_element(&payload)?;
        }
        (NS, "revoked", "revoked") => {
            Revoked::from_element(&payload)?;
        }
        _ => return Err(Error::KeydirProtocol(format!("notice of kind {:?} holds <{}>", notice.kind, payload.name()))),
    }
    Ok(Element::new("message", NS_COMPONENT)
        .attr("type", "normal")
        .attr("from", component.as_str())
        .attr("to", to.as_str())
        .attr("id", format!("kw-notice-{}", notice.id))
        .child(payload)
        .child(StoreHint.to_element()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::encode;

    #[test]
    fn revoked_notice_becomes_a_stored_normal_message() {
        let payload = "<revoked xmlns='urn:keyward:0' jid='alice@example.test' \
                       fp='0000000000000000000000000000000000000000000000000000000000000000' \
                       at='2025-11-26T10:00:00Z' reason='lost'/>";
        let notice = Notice { id: 7, to: "bob@example.test".into(), kind: "revoked".into(), payload: payload.into() };
        let component = BareJid::parse("keys.example.test").expect("valid");
        let message = encode::stanza(&message_for(&notice, &component).expect("valid"));
        assert!(message.starts_with(
            "<message type='normal' from='keys.example.test' to='bob@example.test' id='kw-notice-7'><revoked"
        ));
        assert!(message.ends_with("<store xmlns='urn:xmpp:hints'/></message>"), "{message}");
    }

    #[test]
    fn unreadable_notices_are_refused() {
        let component = BareJid::parse("keys.example.test").expect("valid");
        let cases = [
            ("revoked", "<revoked xmlns='urn:keyward:0'/>"),
            ("key-relay", "<revoked xmlns='urn:keyward:0' jid='a@b'/>"),
            ("revoked", "<script xmlns='urn:evil'/>"),
            ("revoked", "not xml"),
        ];
        for (kind, payload) in cases {
            let notice = Notice { id: 1, to: "bob@example.test".into(), kind: kind.into(), payload: payload.into() };
            assert!(message_for(&notice, &component).is_err(), "{payload}");
        }
    }
}
