//! One connected stream: reads frames, dispatches requests (bounded, queued), and shuts down gracefully.

use std::sync::Arc;

use keyward_proto::BareJid;
use keyward_proto::xml::Element;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::backlog::Backlog;
use crate::connection::{Connection, frame_kind};
use crate::context::{SessionContext, Shared};
use crate::error::{Error, Result};
use crate::handlers;
use crate::metrics::Metrics;
use crate::privilege;
use crate::stanza::{Condition, ErrorType, Iq, IqType, StanzaError};
use crate::stream::{Frame, StreamCondition};
use crate::writer;

/// Queue length between handlers and the writer.
const WRITER_QUEUE: usize = 256;

/// Runs an authenticated stream until it breaks or `stop` is cancelled.
///
/// `on_up` receives the session's context once it is ready (for notice delivery).
/// Requests beyond `max_in_flight` wait in a FIFO queue of `max_queued` (holding no slot,
/// while the stream keeps being read); beyond that they get `resource-constraint`.
/// On `stop`, the session stops taking new requests, answers the queued ones
/// `service-unavailable` (wait) at once, keeps reading so that in-flight requests can finish
/// (within the configured grace), then closes the stream. When the stream breaks, queued
/// requests go with it: no answer can reach their senders any more.
pub async fn run(
    mut connection: Connection,
    socket: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    stop: CancellationToken,
    on_up: impl FnOnce(Arc<SessionContext>),
) -> Result<()> {
    let (outbox, queue) = writer::channel(WRITER_QUEUE);
    let mut writer: JoinHandle<Result<()>> = tokio::spawn(writer::run(socket, queue, shared.config.keepalive));
    let ctx = Arc::new(SessionContext::new(shared.clone(), outbox.clone()));
    let tracker = TaskTracker::new();
    let mut backlog = Backlog::new(shared.config.max_in_flight, shared.config.max_queued);
    on_up(ctx.clone());
    let mut draining: Option<tokio::time::Instant> = None;
    let mut writer_done = false;
    let result = loop {
        let deadline = draining.unwrap_or_else(|| tokio::time::Instant::now() + shared.config.shutdown_grace);
        tokio::select! {
            () = stop.cancelled(), if draining.is_none() => {
                info!(queued = backlog.queued(), "shutting down: finishing in-flight requests, refusing queued ones");
                tracker.close();
                draining = Some(tokio::time::Instant::now() + shared.config.shutdown_grace);
                let queued: Vec<Iq> = backlog.drain().collect();
                shared.metrics.queued.set(0);
                for iq in &queued {
                    refuse(iq, &ctx, shutting_down()).await;
                }
            }
            ready = backlog.ready(), if backlog.has_waiting() && draining.is_none() => {
                if let Some((iq, slot)) = ready {
                    start(iq, slot, &ctx, &tracker);
                }
                start_ready(&mut backlog, &ctx, &tracker);
            }
            () = tracker.wait(), if draining.is_some() => break Ok(()),
            () = tokio::time::sleep_until(deadline), if draining.is_some() => {
                warn!("shutdown grace elapsed with requests in flight");
                break Ok(());
            }
            joined = &mut writer => {
                writer_done = true;
                break match joined {
                    Ok(Ok(())) => Err(Error::Closed),
                    Ok(Err(err)) => Err(err),
                    Err(_) => Err(Error::Closed),
                };
            }
            frame = connection.read_frame() => match frame {
                Ok(Frame::Stanza(stanza)) => dispatch(stanza, &ctx, &tracker, &mut backlog, draining.is_some()).await,
                Ok(Frame::Oversize { head }) => oversize(head, &ctx).await,
                Ok(Frame::StreamError { condition, text }) => break Err(Error::ServerStreamError { condition, text }),
                Ok(Frame::Close) => break Err(Error::Closed),
                Ok(other) => {
                    let detail = format!("unexpected {}", frame_kind(&other));
                    break Err(Error::Stream { condition: StreamCondition::BadFormat, detail });
                }
                Err(err) => break Err(err),
            },
        }
    };
    let stream_error = match &result {
        Err(Error::Stream { condition, .. }) => Some(*condition),
        _ => None,
    };
    tracker.close();
    shared.metrics.queued.set(0);
    ctx.stream_ended();
    if !writer_done {
        outbox.close(stream_error).await;
        drop(outbox);
        drop(ctx);
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut writer).await.is_err() {
            writer.abort();
        }
    }
    result
}

/// Sorts one stanza: requests go to a handler task, answers to the waiting request, advertisements are recorded.
async fn dispatch(
    stanza: Element,
    ctx: &Arc<SessionContext>,
    tracker: &TaskTracker,
    backlog: &mut Backlog<Iq>,
    draining: bool,
) {
    let metrics = &ctx.shared.metrics;
    metrics.stanzas.with_label_values(&[stanza.name()]).inc();
    tracing::trace!(kind = stanza.name(), r#type = stanza.get_attr("type"), id = stanza.get_attr("id"), "stanza");
    match stanza.name() {
        "iq" => {
            let Some(iq) = Iq::from_element(stanza) else {
                metrics.errors.with_label_values(&["malformed-iq"]).inc();
                return;
            };
            match iq.kind {
                IqType::Result | IqType::Error => {
                    if !ctx.resolve(iq) {
                        debug!("answer to no pending request");
                    }
                }
                IqType::Get | IqType::Set if draining => refuse(&iq, ctx, shutting_down()).await,
                IqType::Get | IqType::Set => {
                    // Before the queue: one sender's flood takes no queue slot from the others.
                    if let Err(exceeded) = ctx.shared.quotas.check(&iq, &ctx.shared.config) {
                        metrics.quota_refused.with_label_values(&[exceeded.reason()]).inc();
                        debug!(reason = exceeded.reason(), "request over quota");
                        refuse(&iq, ctx, exceeded.error()).await;
                        return;
                    }
                    offer(iq, ctx, tracker, backlog).await;
                }
            }
        }
        "message" => {
            let Some(granted) = privilege::parse_advertisement(&stanza) else { return };
            let from = stanza.get_attr("from").and_then(|f| BareJid::parse(f).ok());
            match from {
                Some(domain) if domain.local().is_none() && ctx.shared.config.serves(domain.as_str()) => {
                    info!(domain = %domain, roster_get = granted.roster_get, version = granted.version, "privileges granted");
                    ctx.grant(domain.as_str(), granted);
                }
                _ => warn!("privilege advertisement from an address that is not a served domain, ignored"),
            }
        }
        _ => {}
    }
}

/// Queues a request (starting it at once when a slot is free), or refuses it with
/// `resource-constraint` when every slot is busy and the queue full.
async fn offer(iq: Iq, ctx: &Arc<SessionContext>, tracker: &TaskTracker, backlog: &mut Backlog<Iq>) {
    match backlog.offer(iq) {
        Ok(()) => start_ready(backlog, ctx, tracker),
        Err(iq) => {
            ctx.shared.metrics.refused.inc();
            refuse(&iq, ctx, StanzaError::new(Condition::ResourceConstraint)).await;
        }
    }
}

/// The answer to a request the session will not handle because it is shutting down.
fn shutting_down() -> StanzaError {
    StanzaError::new(Condition::ServiceUnavailable).kind(ErrorType::Wait).text("the component is shutting down")
}

/// Starts every queued request that has a free slot, oldest first, and updates the queue gauge.
fn start_ready(backlog: &mut Backlog<Iq>, ctx: &Arc<SessionContext>, tracker: &TaskTracker) {
    while let Some((iq, slot)) = backlog.next_ready() {
        start(iq, slot, ctx, tracker);
    }
    ctx.shared.metrics.queued.set(i64::try_from(backlog.queued()).unwrap_or(i64::MAX));
}

/// Handles `iq` in a task of its own, holding `slot` until it is answered.
fn start(iq: Iq, slot: OwnedSemaphorePermit, ctx: &Arc<SessionContext>, tracker: &TaskTracker) {
    let in_flight = InFlight::new(slot, ctx.shared.metrics.clone());
    let ctx = ctx.clone();
    tracker.spawn(async move {
        handlers::handle(iq, ctx).await;
        drop(in_flight);
    });
}

/// A request's slot, counted in `requests_in_flight` until dropped (also if its handler panics).
struct InFlight {
    _slot: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl InFlight {
    fn new(slot: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.in_flight.inc();
        Self { _slot: slot, metrics }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

async fn refuse(iq: &Iq, ctx: &SessionContext, error: StanzaError) {
    ctx.shared.metrics.errors.with_label_values(&[error.condition.name()]).inc();
    let _ = ctx.outbox.send(&error.reply_to(&iq.element)).await;
}

/// An oversize stanza: a request gets `policy-violation`, anything else is dropped.
async fn oversize(head: Option<Element>, ctx: &SessionContext) {
    let metrics = &ctx.shared.metrics;
    metrics.stanzas.with_label_values(&["oversize"]).inc();
    let Some(iq) = head.and_then(Iq::from_element) else {
        metrics.errors.with_label_values(&["oversize-dropped"]).inc();
        return;
    };
    if matches!(iq.kind, IqType::Get | IqType::Set) {
        let limit = keyward_proto::limits::STANZA_BYTES;
        refuse(
            &iq,
            ctx,
            StanzaError::new(Condition::PolicyViolation).text(format!("stanza larger than {limit} bytes")),
        )
        .await;
    }
}
