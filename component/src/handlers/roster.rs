//! `roster-keys`: the sender's roster (read through XEP-0356) annotated with keys.

use keyward_proto::elements::{RosterKeys, RosterKeysQuery};
use keyward_proto::limits::ROSTER_ITEMS;
use keyward_proto::xml::Element;
use keyward_proto::{BareJid, XmlElement};

use super::keys::lookup;
use super::{Outcome, refused, sender};
use crate::context::SessionContext;
use crate::stanza::{Condition, Iq, StanzaError};

/// The roster namespace.
pub(crate) const NS_ROSTER: &str = "jabber:iq:roster";

/// Reads the roster only where the sender's server granted roster get.
pub async fn handle(iq: &Iq, payload: &Element, ctx: &SessionContext) -> Outcome {
    let owner = sender(iq)?;
    RosterKeysQuery::from_element(payload).map_err(|e| refused(&e))?;
    if !ctx.privileges(owner.domain()).roster_get {
        return Err(StanzaError::new(Condition::FeatureNotImplemented).text("the server granted no roster access"));
    }
    let answer = ctx.ask_server(&owner, Element::new("query", NS_ROSTER)).await?;
    let contacts = roster_jids(&answer.element)?;
    let items = lookup(ctx, &owner, &contacts).await?;
    Ok(Some(RosterKeys { items, transparency: None }.to_element()))
}

/// The contacts in a roster result (unparseable items are skipped, duplicates removed), sorted.
pub(crate) fn roster_contacts(result: &Element) -> Vec<BareJid> {
    let Some(query) = result.get_child("query", NS_ROSTER) else { return Vec::new() };
    let mut jids: Vec<BareJid> = query
        .children()
        .iter()
        .filter(|item| item.is("item", NS_ROSTER) && item.get_attr("subscription") != Some("remove"))
        .filter_map(|item| item.get_attr("jid").and_then(|jid| BareJid::parse(jid).ok()))
        .collect();
    jids.sort();
    jids.dedup();
    jids
}

/// The contacts in a roster result, refusing rosters over the limit.
fn roster_jids(result: &Element) -> Result<Vec<BareJid>, StanzaError> {
    let jids = roster_contacts(result);
    if jids.len() > ROSTER_ITEMS {
        return Err(StanzaError::new(Condition::PolicyViolation).text("roster too large"));
    }
    Ok(jids)
}
