//! XEP-0356 privilege advertisements (`urn:xmpp:privilege:2` and `:1`): what each server domain grants.

use keyward_proto::xml::Element;

/// The privileged-entity namespaces the component understands, newest first.
pub const NAMESPACES: [&str; 2] = ["urn:xmpp:privilege:2", "urn:xmpp:privilege:1"];

/// What a server domain granted the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Privileges {
    /// The component may read the rosters of the domain's users.
    pub roster_get: bool,
    /// The component may send messages on behalf of the domain's users.
    pub message_outgoing: bool,
    /// Which privilege namespace the server used.
    pub version: u8,
}

/// Reads a `<message/>` carrying a privilege advertisement; `None` if it carries none.
pub fn parse_advertisement(message: &Element) -> Option<Privileges> {
    let (version, privilege) = NAMESPACES
        .iter()
        .zip([2u8, 1])
        .find_map(|(ns, version)| message.get_child("privilege", ns).map(|p| (version, p)))?;
    let mut granted = Privileges { version, ..Privileges::default() };
    for perm in privilege.children().iter().filter(|c| c.name() == "perm" && c.ns() == privilege.ns()) {
        match (perm.get_attr("access"), perm.get_attr("type")) {
            (Some("roster"), Some("get" | "both")) => granted.roster_get = true,
            (Some("message"), Some("outgoing")) => granted.message_outgoing = true,
            _ => {}
        }
    }
    Some(granted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_proto::xml::ParseLimits;

    fn parse(xml: &str) -> Option<Privileges> {
        parse_advertisement(&Element::parse(xml.as_bytes(), &ParseLimits::STANZA).expect("xml"))
    }

    #[test]
    fn reads_both_versions_and_every_roster_type() {
        let cases = [
            ("urn:xmpp:privilege:2", "both", true, 2),
            ("urn:xmpp:privilege:2", "get", true, 2),
            ("urn:xmpp:privilege:2", "set", false, 2),
            ("urn:xmpp:privilege:1", "both", true, 1),
            ("urn:xmpp:privilege:1", "none", false, 1),
        ];
        for (ns, kind, roster_get, version) in cases {
            let xml = format!(
                "<message xmlns='jabber:component:accept' from='example.test'><privilege xmlns='{ns}'>\
                 <perm access='roster' type='{kind}'/><perm access='message' type='outgoing'/>\
                 <perm access='iq'><namespace ns='urn:x' type='get'/></perm></privilege></message>"
            );
            let granted = parse(&xml).expect("advertisement");
            assert_eq!(granted, Privileges { roster_get, message_outgoing: true, version }, "{ns} {kind}");
        }
    }

    #[test]
    fn other_messages_carry_none() {
        assert_eq!(parse("<message xmlns='jabber:component:accept'><body>hi</body></message>"), None);
        assert_eq!(
            parse("<message xmlns='jabber:component:accept'><privilege xmlns='urn:xmpp:privilege:2'/></message>"),
            Some(Privileges { version: 2, ..Privileges::default() })
        );
    }
}
