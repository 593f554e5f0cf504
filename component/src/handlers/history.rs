//! `history`: the map's whole history of the sender's own account, with the signed head it is for, so that its client can monitor its key.

use keyward_proto::elements::HistoryQuery;
use keyward_proto::xml::Element;

use super::{Outcome, keydir_failed, refused, sender};
use crate::context::SessionContext;
use crate::stanza::{Condition, Iq, StanzaError};

/// Answers only about the sender (as the server stamped it): an account's history tells how
/// often its key changed, which is nobody else's business.
pub async fn handle(iq: &Iq, payload: &Element, ctx: &SessionContext) -> Outcome {
    let me = sender(iq)?;
    let query = HistoryQuery::from_element(payload).map_err(|e| refused(&e))?;
    if ctx.shared.transparency.get(&ctx.shared.keydir).await.is_none() {
        return Err(StanzaError::new(Condition::FeatureNotImplemented).text("keydir publishes no transparency map"));
    }
    let answer =
        crate::transparency::history(&ctx.shared.keydir, &me, query.known_size).await.map_err(|e| keydir_failed(&e))?;
    Ok(Some(answer.to_element()))
}
