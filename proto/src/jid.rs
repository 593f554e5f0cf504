//! Bare JIDs (`local@domain`), parsed once and normalised as servers stamp them.

use crate::error::{Error, Result};
use core::fmt;

/// Longest localpart or domainpart in bytes (RFC 7622).
const MAX_PART: usize = 1023;

/// A bare JID: an optional localpart and a domain, without resource.
///
/// Constructing one normalises it (lowercase) and refuses anything that cannot
/// be a JID, so a `BareJid` in hand is always valid and comparable with `==`.
/// Servers stamp `from` in this normal form; keyward compares only these.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BareJid {
    text: String,
    at: Option<usize>,
}

impl BareJid {
    /// Parses a bare JID; a JID with a resource is refused.
    pub fn parse(input: &str) -> Result<Self> {
        if input.contains('/') {
            return Err(Error::InvalidJid { reason: "a bare JID has no resource" });
        }
        Self::parse_bare(input)
    }

    /// Parses a full or bare JID and drops its resource, if any.
    pub fn from_full(input: &str) -> Result<Self> {
        let bare = match input.split_once('/') {
            Some((bare, resource)) => {
                if resource.is_empty() || resource.len() > MAX_PART {
                    return Err(Error::InvalidJid { reason: "bad resource" });
                }
                bare
            }
            None => input,
        };
        Self::parse_bare(bare)
    }

    fn parse_bare(input: &str) -> Result<Self> {
        let (local, domain) = match input.split_once('@') {
            Some((local, domain)) => (Some(local), domain),
            None => (None, input),
        };
        if let Some(local) = local {
            check_part(local, "localpart")?;
            if local.chars().any(|c| "\"&'/:<>@".contains(c)) {
                return Err(Error::InvalidJid { reason: "forbidden character in localpart" });
            }
        }
        check_part(domain, "domainpart")?;
        // One trailing dot (the fully qualified form) is dropped; what remains must not end
        // in another, or the normal form would parse to a different JID.
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if domain.is_empty()
            || domain.contains('@')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(Error::InvalidJid { reason: "bad domainpart" });
        }
        // Lowercasing can lengthen a part (`Ⱥ` is 2 bytes, `ⱥ` 3): check the normal form again,
        // so that every `BareJid` parses back to itself.
        let local = local.map(str::to_lowercase);
        let domain = domain.to_lowercase();
        if let Some(local) = &local {
            check_part(local, "localpart")?;
        }
        check_part(&domain, "domainpart")?;
        let (text, at) = match local {
            Some(local) => (format!("{local}@{domain}"), Some(local.len())),
            None => (domain, None),
        };
        Ok(Self { text, at })
    }

    /// The localpart, if the JID has one.
    pub fn local(&self) -> Option<&str> {
        self.at.map(|at| &self.text[..at])
    }

    /// The domainpart.
    pub fn domain(&self) -> &str {
        match self.at {
            Some(at) => &self.text[at + 1..],
            None => &self.text,
        }
    }

    /// The normalised text form.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn check_part(part: &str, _which: &'static str) -> Result<()> {
    if part.is_empty() {
        return Err(Error::InvalidJid { reason: "empty part" });
    }
    if part.len() > MAX_PART {
        return Err(Error::InvalidJid { reason: "part longer than 1023 bytes" });
    }
    if part.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::InvalidJid { reason: "whitespace or control character" });
    }
    Ok(())
}

impl fmt::Display for BareJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for BareJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BareJid({})", self.text)
    }
}

impl core::str::FromStr for BareJid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_splits() {
        let jid = BareJid::parse("Alice@Example.TEST").expect("valid");
        assert_eq!(jid.as_str(), "alice@example.test");
        assert_eq!(jid.local(), Some("alice"));
        assert_eq!(jid.domain(), "example.test");
        let domain = BareJid::parse("keys.example.test").expect("valid");
        assert_eq!(domain.local(), None);
        assert_eq!(domain.domain(), "keys.example.test");
    }

    #[test]
    fn full_jid_loses_resource_only_through_from_full() {
        assert!(BareJid::parse("alice@example.test/laptop").is_err());
        let jid = BareJid::from_full("alice@example.test/laptop").expect("valid");
        assert_eq!(jid.as_str(), "alice@example.test");
        assert!(BareJid::from_full("alice@example.test/").is_err());
    }

    #[test]
    fn refuses_what_is_not_a_jid() {
        for bad in [
            "",
            "@example.test",
            "alice@",
            "a b@example.test",
            "a@b@c",
            "alice@.test",
            "alice@exa..mple",
            "al<ice@example.test",
            "alice@exa\u{0}mple",
        ] {
            assert!(BareJid::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("{}@example.test", "a".repeat(1024));
        assert!(BareJid::parse(&long).is_err());
    }

    #[test]
    fn two_trailing_dots_are_refused_not_kept() {
        // Found by fuzzing: one dot was dropped and the second kept, so `a@kk..` became
        // `a@kk.`, which parses again as a different JID (`a@kk`).
        for bad in ["a@kk..", "kk..", "a@kk...", "a@kk../x"] {
            assert!(BareJid::from_full(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(BareJid::parse("a@kk.").expect("one trailing dot is fine").as_str(), "a@kk");
    }

    #[test]
    fn the_normal_form_parses_back_to_itself() {
        // Lowercasing lengthens `Ⱥ` (2 bytes) to `ⱥ` (3 bytes): a localpart within the limit
        // before lowercasing must not produce a normal form over it.
        let grows = format!("{}@example.test", "\u{23a}".repeat(511));
        assert!(BareJid::parse(&grows).is_err());
        for text in ["Alice@Example.TEST.", "\u{212a}@K.test", "ÉLODIE@exämple.test", "a@b"] {
            let jid = BareJid::parse(text).expect("valid");
            assert_eq!(BareJid::parse(jid.as_str()).expect("normal form parses"), jid);
        }
    }
}
