//! XEP-0313 message archive: the query for one contact's last messages, and a result unwrapped only when the own server sent it for this query. Pure, no I/O.

use keyward_proto::BareJid;
use tokio_xmpp::minidom::Element as MElement;
use tokio_xmpp::parsers::mam::Result_ as MamResult;
use tokio_xmpp::parsers::message::Message;

/// The XEP-0313 namespace (version 2).
pub const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_DATA: &str = "jabber:x:data";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";

/// `<query/>` for the last `max` messages exchanged with `with` (an empty `<before/>` asks for
/// the last page), tagged `query_id` (hex) so that its results can be told from any other stanza.
pub fn query(query_id: &str, with: &BareJid, max: usize) -> crate::error::Result<MElement> {
    let with = escape(with.as_str());
    let query_id = escape(query_id);
    format!(
        "<query xmlns='{NS_MAM}' queryid='{query_id}'><x xmlns='{NS_DATA}' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>{NS_MAM}</value></field>\
         <field var='with'><value>{with}</value></field></x>\
         <set xmlns='{NS_RSM}'><max>{max}</max><before/></set></query>"
    )
    .parse::<MElement>()
    .map_err(|e| crate::error::Error::Protocol(keyward_proto::Error::Xml(e.to_string())))
}

/// Escapes text for an attribute or element content.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&apos;").replace('"', "&quot;")
}

/// One archived message: the server's id for it, when the server stored it, and the message.
#[derive(Debug)]
pub struct Archived {
    /// The archive's id of the message.
    pub archive_id: String,
    /// When the server archived it (RFC 3339, from its `<delay/>`), if it said.
    pub stamp: Option<String>,
    /// The archived message, as it was sent.
    pub message: Box<Message>,
}

/// What a stanza delivered during an archive query is.
#[derive(Debug)]
pub enum Delivered {
    /// A result of the query `query_id`, from the own account.
    Result(Archived),
    /// A result-shaped stanza from someone else, or for another query: not a result of ours.
    Foreign,
    /// Not an archive result at all.
    NotAResult,
}

/// Classifies `message` against the query `query_id` of account `me`: results count only from
/// the own bare JID (the server stamps it; an absent `from` is the own account too).
pub fn classify(message: &Message, me: &BareJid, query_id: &str) -> Delivered {
    let Some(result) = message.payloads.iter().find(|p| p.is("result", NS_MAM)) else { return Delivered::NotAResult };
    let from_me = message.from.as_ref().is_none_or(|from| super::is_bare(from, me));
    if !from_me || result.attr("queryid") != Some(query_id) {
        return Delivered::Foreign;
    }
    match MamResult::try_from(result.clone()) {
        Ok(result) => Delivered::Result(Archived {
            archive_id: result.id,
            stamp: result.forwarded.delay.map(|d| d.stamp.0.to_rfc3339()),
            message: Box::new(result.forwarded.message),
        }),
        Err(_) => Delivered::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(from: &str, query_id: &str) -> Message {
        let xml = format!(
            "<message xmlns='jabber:client' from='{from}' to='bob@example.test/phone'>\
             <result xmlns='urn:xmpp:mam:2' queryid='{query_id}' id='a1'>\
             <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-12-06T10:00:00Z'/>\
             <message xmlns='jabber:client' from='alice@example.test/x' to='bob@example.test' type='chat'><body>hi</body></message>\
             </forwarded></result></message>"
        );
        Message::try_from(xml.parse::<MElement>().expect("well-formed")).expect("a message")
    }

    #[test]
    fn results_count_only_from_the_own_account_for_the_own_query() {
        let me = BareJid::parse("bob@example.test").expect("valid");
        match classify(&result("bob@example.test", "q1"), &me, "q1") {
            Delivered::Result(archived) => {
                assert_eq!(archived.archive_id, "a1");
                assert!(archived.stamp.as_deref().is_some_and(|s| s.starts_with("2026-12-06T10:00:00")));
                assert_eq!(archived.message.bodies.values().next().map(String::as_str), Some("hi"));
            }
            other => panic!("unexpected {other:?}"),
        }
        for (from, query_id) in
            [("alice@example.test", "q1"), ("bob@example.test/laptop", "q1"), ("bob@example.test", "q2")]
        {
            assert!(matches!(classify(&result(from, query_id), &me, "q1"), Delivered::Foreign), "{from} {query_id}");
        }
        let chat = Message::try_from(
            "<message xmlns='jabber:client' from='alice@example.test/x'><body>x</body></message>"
                .parse::<MElement>()
                .expect("well-formed"),
        )
        .expect("a message");
        assert!(matches!(classify(&chat, &me, "q1"), Delivered::NotAResult));
    }

    #[test]
    fn the_query_names_the_contact_and_asks_for_the_last_page() {
        let with = BareJid::parse("alice@example.test").expect("valid");
        let xml = String::from(&query("0a1b", &with, 20).expect("builds"));
        for needle in ["urn:xmpp:mam:2", "queryid='0a1b'", "alice@example.test", "<max>20</max>", "<before"] {
            assert!(xml.contains(needle), "{needle} missing in {xml}");
        }
    }
}
