//! `relay`: hand the sender's bundle to someone (keydir queues the key-relay notice).

use keyward_proto::XmlElement;
use keyward_proto::elements::Relay;
use keyward_proto::xml::Element;

use super::{Outcome, keydir_failed, refused, sender};
use crate::context::SessionContext;
use crate::stanza::{Condition, ErrorType, Iq, StanzaError};

/// Rate-limits per sender, then asks keydir to record the holder and queue the notice.
pub async fn handle(iq: &Iq, payload: &Element, ctx: &SessionContext) -> Outcome {
    let from = sender(iq)?;
    let relay = Relay::from_element(payload).map_err(|e| refused(&e))?;
    if !ctx.shared.relay_limit.allow(&from) {
        ctx.shared.metrics.quota_refused.with_label_values(&["relay-rate-limit"]).inc();
        let limit = ctx.shared.config.relay_per_minute;
        return Err(StanzaError::new(Condition::PolicyViolation)
            .kind(ErrorType::Wait)
            .text(format!("at most {limit} relays a minute; retry later")));
    }
    ctx.shared.keydir.relay(&from, &relay.to).await.map_err(|e| keydir_failed(&e))?;
    Ok(None)
}
