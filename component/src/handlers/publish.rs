//! `publish`: store the sender's bundle and secret blob.

use keyward_proto::elements::{NS, Publish};
use keyward_proto::limits::{BUNDLE_BYTES, SECRET_BYTES};
use keyward_proto::xml::Element;
use keyward_proto::{Error as ProtoError, XmlElement};

use super::{Outcome, keydir_failed, refused, served_sender};
use crate::context::SessionContext;
use crate::stanza::{Condition, Iq, StanzaError};

/// Checks sizes, parses, verifies the bundle is the sender's, then stores it in keydir.
pub async fn handle(iq: &Iq, payload: &Element, ctx: &SessionContext) -> Outcome {
    let sender = served_sender(iq, ctx)?;
    for (name, limit) in [("bundle", BUNDLE_BYTES), ("secret", SECRET_BYTES)] {
        if payload.get_child(name, NS).is_some_and(|child| child.to_xml().len() > limit) {
            return Err(StanzaError::new(Condition::PolicyViolation).text(format!("{name} larger than {limit} bytes")));
        }
    }
    let publish = Publish::from_element(payload).map_err(|e| refused(&e))?;
    let verified = publish.bundle.verify_for(&sender).map_err(|e| match e {
        ProtoError::JidMismatch => StanzaError::new(Condition::BadRequest).text("the bundle is not yours"),
        other => refused(&other),
    })?;
    ctx.shared
        .keydir
        .publish(&sender, &verified.to_xml(), &publish.secret.to_xml())
        .await
        .map_err(|e| keydir_failed(&e))?;
    Ok(None)
}
