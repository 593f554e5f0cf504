//! `secret`: the sender's own secret blob.

use keyward_proto::XmlElement;
use keyward_proto::elements::SecretQuery;
use keyward_proto::restore::AnySecret;
use keyward_proto::xml::Element;
use tracing::warn;

use super::{Outcome, keydir_failed, refused, served_sender};
use crate::context::SessionContext;
use crate::stanza::{Condition, Iq, StanzaError};

/// Fetches the sender's blob from keydir (only ever the sender's), of either version.
pub async fn handle(iq: &Iq, payload: &Element, ctx: &SessionContext) -> Outcome {
    let sender = served_sender(iq, ctx)?;
    SecretQuery::from_element(payload).map_err(|e| refused(&e))?;
    let xml = ctx.shared.keydir.secret(&sender).await.map_err(|e| keydir_failed(&e))?;
    let blob = AnySecret::parse(xml.as_bytes()).map_err(|e| {
        warn!(cause = %e, "keydir returned an unreadable secret blob");
        StanzaError::new(Condition::InternalServerError)
    })?;
    Ok(Some(blob.to_element()))
}
