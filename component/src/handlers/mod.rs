//! Request handling: routes each IQ to its handler and turns every outcome into a reply.
//!
//! The sender of a request is always the `from` the server stamped on the stanza,
//! never a JID claimed inside it.

pub(crate) mod disco;
mod history;
mod keys;
mod publish;
mod relay;
mod restore;
pub(crate) mod roster;
mod secret;

use std::sync::Arc;
use std::time::Instant;

use keyward_proto::BareJid;
use keyward_proto::xml::Element;
use tracing::{debug, warn};

use crate::context::SessionContext;
use crate::error::Error;
use crate::route::{Request, bad_request};
use crate::stanza::{Condition, ErrorType, Iq, StanzaError};

/// The outcome of a handler: an optional payload for the result, or an error.
type Outcome = Result<Option<Element>, StanzaError>;

/// Handles one IQ get or set and sends the reply through the session's writer.
pub async fn handle(iq: Iq, ctx: Arc<SessionContext>) {
    let started = Instant::now();
    let (request, outcome) = route(&iq, &ctx).await;
    let metrics = &ctx.shared.metrics;
    metrics.request_seconds.with_label_values(&[request]).observe(started.elapsed().as_secs_f64());
    let reply = match outcome {
        Ok(payload) => iq.result(payload),
        Err(error) => {
            metrics.errors.with_label_values(&[error.condition.name()]).inc();
            if is_holding_limit(&error) {
                metrics.quota_refused.with_label_values(&["holding-limit"]).inc();
            }
            debug!(request, condition = %error.condition, "request refused");
            error.reply_to(&iq.element)
        }
    };
    if !ctx.outbox.send(&reply).await {
        debug!(request, "stream went down before the reply");
    }
}

/// Picks the handler; returns the request's name (a metrics label) and the outcome.
async fn route(iq: &Iq, ctx: &SessionContext) -> (&'static str, Outcome) {
    let request = match crate::route::route(iq, &ctx.shared.config.component_jid) {
        Ok(request) => request,
        Err((label, error)) => return (label, Err(error)),
    };
    // `route` found exactly one payload.
    let Some(payload) = iq.payload() else {
        return ("malformed", Err(bad_request("an IQ get or set carries exactly one element")));
    };
    let outcome = match request {
        Request::Publish => publish::handle(iq, payload, ctx).await,
        Request::Secret => secret::handle(iq, payload, ctx).await,
        Request::Keys => keys::handle(iq, payload, ctx).await,
        Request::RosterKeys => roster::handle(iq, payload, ctx).await,
        Request::History => history::handle(iq, payload, ctx).await,
        Request::Relay => relay::handle(iq, payload, ctx).await,
        Request::Oprf => restore::oprf(iq, payload, ctx).await,
        Request::RestoreProof => restore::proof(iq, payload, ctx).await,
        Request::DiscoInfo => disco::info(iq, payload, ctx),
        Request::Ping => Ok(None),
    };
    (request.name(), outcome)
}

/// The sender's bare JID: an account (with a localpart), as the server stamped it.
fn sender(iq: &Iq) -> Result<BareJid, StanzaError> {
    let from = iq.from.as_deref().ok_or_else(|| bad_request("no sender"))?;
    let jid = BareJid::from_full(from).map_err(|_| bad_request("invalid sender"))?;
    if jid.local().is_none() {
        return Err(StanzaError::new(Condition::NotAllowed).text("only accounts may use keyward"));
    }
    Ok(jid)
}

/// A sender whose account is on a domain this component serves (for publish and secret).
fn served_sender(iq: &Iq, ctx: &SessionContext) -> Result<BareJid, StanzaError> {
    let jid = sender(iq)?;
    if !ctx.shared.config.serves(jid.domain()) {
        return Err(StanzaError::new(Condition::NotAllowed).text("this service does not store keys of your domain"));
    }
    Ok(jid)
}

/// A request element that failed to parse: too large is `policy-violation`, anything else `bad-request`.
fn refused(err: &keyward_proto::Error) -> StanzaError {
    match err {
        keyward_proto::Error::TooLarge { .. } => StanzaError::new(Condition::PolicyViolation).text(err.to_string()),
        _ => bad_request(&err.to_string()),
    }
}

/// Whether `error` is keydir's `holding-limit` as [`keydir_failed`] answers it.
fn is_holding_limit(error: &StanzaError) -> bool {
    error.condition == Condition::PolicyViolation
        && error.text.as_deref() == Some(keyward_contract::ProblemType::HoldingLimit.name())
}

/// A keydir failure as the user sees it.
fn keydir_failed(err: &Error) -> StanzaError {
    match err {
        Error::KeydirUnavailable(_) => {
            warn!(cause = %err, "keydir unavailable");
            StanzaError::new(Condition::ServiceUnavailable)
                .kind(ErrorType::Wait)
                .text("the key directory is unavailable")
        }
        Error::KeydirProblem { status, problem } => {
            use keyward_contract::ProblemType as P;
            let condition = match problem {
                Some(P::BadRequest | P::BadBundle | P::BadSecret | P::BadSecretSignature) => Condition::BadRequest,
                // A replayed or out-of-order secret update (protocol section 6.1).
                Some(P::StaleSecret) => Condition::UnexpectedRequest,
                Some(P::Revoked) => Condition::NotAllowed,
                // Too many restore guesses without a proof (protocol section 6.2).
                Some(P::RestoreLocked) => Condition::NotAllowed,
                Some(P::BadRestoreProof) => Condition::BadRequest,
                // keydir has no OPRF seed: version 1 blobs can be neither sealed nor opened.
                Some(P::RestoreUnavailable) => Condition::ServiceUnavailable,
                // The lookup would give the requester new keys past keydir's cap
                // (KEYWARD_MAX_HOLDINGS); a lookup of keys it holds still works.
                Some(P::HoldingLimit) => Condition::PolicyViolation,
                Some(P::NotFound) => Condition::ItemNotFound,
                Some(P::Conflict) => Condition::Conflict,
                Some(P::TooLarge) => Condition::PolicyViolation,
                None if *status == 413 => Condition::PolicyViolation,
                _ => Condition::InternalServerError,
            };
            let name = problem.map_or("unknown", |p| p.name());
            if condition == Condition::InternalServerError {
                // unauthorized / forbidden: the component token is wrong; an operator must act.
                warn!(status, problem = name, "keydir refused the component");
                return StanzaError::new(condition);
            }
            StanzaError::new(condition).text(problem.map_or("too-large", |p| p.name()))
        }
        _ => {
            warn!(cause = %err, "keydir failure");
            StanzaError::new(Condition::InternalServerError)
        }
    }
}
