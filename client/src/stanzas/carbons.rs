//! XEP-0280 message carbons: the request that turns them on, and a carbon unwrapped only when the own account sent it. Pure, no I/O.
//!
//! A carbon is a message from the account's own bare JID wrapping, in `<sent/>` or
//! `<received/>`, a copy of a message another of its resources sent or received. Anyone can send
//! a message with such a wrapper; XEP-0280 section 11 says a client accepts it only from its own
//! bare JID, which the server stamps. A wrapper from anyone else is [`Carbon::Forged`].

use keyward_proto::BareJid;
use tokio_xmpp::minidom::Element as MElement;
use tokio_xmpp::parsers::carbons::{Enable, Received, Sent};
use tokio_xmpp::parsers::message::Message;

/// The XEP-0280 namespace.
pub const NS_CARBONS: &str = "urn:xmpp:carbons:2";

/// `<enable xmlns='urn:xmpp:carbons:2'/>`, sent to the own server in an IQ set.
pub fn enable() -> MElement {
    Enable.into()
}

/// What a carbon wrapper holds.
#[derive(Debug)]
pub enum Carbon {
    /// A copy of a message another resource of the account sent.
    Sent(Box<Message>),
    /// A copy of a message another resource of the account received.
    Received(Box<Message>),
    /// A wrapper from someone other than the account's own bare JID: refused unopened.
    Forged,
    /// A wrapper that does not parse.
    Malformed,
}

/// The carbon inside `message`, if it has a carbon wrapper; `me` is the account.
pub fn unwrap(message: &Message, me: &BareJid) -> Option<Carbon> {
    let wrapper = message.payloads.iter().find(|p| p.is("sent", NS_CARBONS) || p.is("received", NS_CARBONS))?;
    // The server stamps `from`: only the own bare JID, without a resource, sends carbons.
    if !message.from.as_ref().is_some_and(|from| super::is_bare(from, me)) {
        return Some(Carbon::Forged);
    }
    Some(if wrapper.name() == "sent" {
        Sent::try_from(wrapper.clone()).map_or(Carbon::Malformed, |sent| Carbon::Sent(Box::new(sent.forwarded.message)))
    } else {
        Received::try_from(wrapper.clone())
            .map_or(Carbon::Malformed, |received| Carbon::Received(Box::new(received.forwarded.message)))
    })
}
