//! `publish`: store the sender's bundle and secret blob, the blob signed by the bundle's identity key.

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
    // The bundle must be the sender's, and the secret blob signed by that bundle's
    // identity key (protocol section 6.1): the XMPP password alone replaces no blob.
    let verified = publish.verify_for(&sender).map_err(|e| match e {
        ProtoError::JidMismatch => StanzaError::new(Condition::BadRequest).text("the bundle is not yours"),
        ProtoError::SecretSignature => {
            StanzaError::new(Condition::BadRequest).text("the secret blob is not signed by the account's identity key")
        }
        other => refused(&other),
    })?;
    // keydir checks the signature again against the bundle it stores, and the seq.
    ctx.shared
        .keydir
        .publish(&sender, &verified.to_xml(), &publish.secret.to_xml(), &publish.secret_sig.to_xml())
        .await
        .map_err(|e| keydir_failed(&e))?;
    Ok(None)
}
