//! Service discovery (XEP-0030 disco#info); XEP-0199 ping is answered in the router.

use keyward_proto::elements::{FEATURE_ROSTER_KEYS, FEATURE_TRANSPARENCY, NS};
use keyward_proto::xml::Element;

use super::Outcome;
use crate::context::SessionContext;
use crate::stanza::{Condition, Iq, StanzaError};

pub use crate::route::{NS_DISCO_INFO, NS_PING};

/// Identity and features; `roster-keys` only where the asker's server granted roster access.
pub fn info(iq: &Iq, query: &Element, ctx: &SessionContext) -> Outcome {
    if query.get_attr("node").is_some() {
        return Err(StanzaError::new(Condition::ItemNotFound));
    }
    let privileged = iq
        .from
        .as_deref()
        .and_then(|from| keyward_proto::BareJid::from_full(from).ok())
        .is_some_and(|jid| ctx.privileges(jid.domain()).roster_get);
    let mut features = vec![NS_DISCO_INFO, NS_PING, NS];
    if privileged {
        features.push(FEATURE_ROSTER_KEYS);
    }
    let keys = ctx.shared.transparency.current();
    if keys.is_some() {
        features.push(FEATURE_TRANSPARENCY);
    }
    let answer = features.into_iter().fold(
        Element::new("query", NS_DISCO_INFO).child(
            Element::new("identity", NS_DISCO_INFO)
                .attr("category", "component")
                .attr("type", "generic")
                .attr("name", "keyward key directory"),
        ),
        |query, feature| query.child(Element::new("feature", NS_DISCO_INFO).attr("var", feature)),
    );
    Ok(Some(match keys {
        Some(keys) => answer.child(transparency_form(&keys)),
        None => answer,
    }))
}

/// XEP-0128 extended information: keydir's log keys, which a client pins (protocol section 15.3).
fn transparency_form(keys: &keyward_contract::transparency::LogKeyResponse) -> Element {
    let field = |var: &str, value: &str| {
        Element::new("field", NS_DATA_FORMS).attr("var", var).child(Element::new("value", NS_DATA_FORMS).text(value))
    };
    Element::new("x", NS_DATA_FORMS)
        .attr("type", "result")
        .child(
            Element::new("field", NS_DATA_FORMS)
                .attr("var", "FORM_TYPE")
                .attr("type", "hidden")
                .child(Element::new("value", NS_DATA_FORMS).text(FEATURE_TRANSPARENCY)),
        )
        .child(field("origin", &keys.origin))
        .child(field("log-key", &keys.log_key))
        .child(field("vrf-key", &keys.vrf_public_key))
}

/// XEP-0004 data forms.
const NS_DATA_FORMS: &str = "jabber:x:data";
