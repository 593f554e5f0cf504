//! The pinned key store: contacts' keys pinned on first use, key changes held back, trust and revocation.

use crate::error::{Error, Result};
use keyward_proto::elements::Revoked;
use keyward_proto::{BareJid, Bundle, Fingerprint, SafetyNumber, VerifiedBundle, VerifyCache, XmlElement};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How much a pinned key is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// Pinned on first use, never compared out of band.
    #[default]
    Tofu,
    /// The user compared the safety number and confirmed it.
    Verified,
}

impl Trust {
    /// `tofu` or `verified`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tofu => "tofu",
            Self::Verified => "verified",
        }
    }
}

/// A revocation the client applied (protocol section 8): final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When the account was revoked (RFC 3339), as the directory said.
    pub at: String,
    /// The revoked key's fingerprint (hex), if the contact had a key.
    pub fp: Option<String>,
    /// The administrator's reason.
    pub reason: String,
}

/// How far a revocation's time may lie in the future of the client's clock, or before the
/// pin time, and still be believed (clock skew between the directory and the client).
pub const REVOCATION_SKEW_MS: i128 = 5 * 60 * 1000;

/// What the client knows about one contact. Bundles are kept as their XML and
/// re-verified whenever they are read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Contact {
    /// The pinned bundle (XML), if any.
    pub pinned: Option<String>,
    /// When the key was pinned (the client's clock, Unix ms); unknown for pins made
    /// before this was recorded.
    #[serde(default)]
    pub pinned_at_ms: Option<u64>,
    /// How far the pinned key is trusted.
    pub trust: Trust,
    /// A different bundle offered after pinning, held back: never used, adopted only by
    /// [`Contacts::confirm`] with its safety number.
    pub pending: Option<String>,
    /// Set once a revocation was applied: final.
    pub revoked: Option<Revocation>,
}

/// The bundles this process verified: a pinned key read at every message is verified once.
static VERIFIED: std::sync::LazyLock<VerifyCache> = std::sync::LazyLock::new(VerifyCache::default);

/// [`Bundle::verify_for`] through the process's [`VerifyCache`].
pub(crate) fn verify_bundle(bundle: &Bundle, jid: &BareJid) -> keyward_proto::Result<VerifiedBundle> {
    VERIFIED.verify_for(bundle, jid)
}

fn load_bundle(xml: &str, jid: &BareJid) -> Result<VerifiedBundle> {
    Bundle::parse(xml.as_bytes())
        .and_then(|b| verify_bundle(&b, jid))
        .map_err(|cause| Error::BadBundle { jid: jid.clone(), cause })
}

impl Contact {
    /// The pinned bundle, verified again for `jid`.
    pub fn pinned_bundle(&self, jid: &BareJid) -> Result<Option<VerifiedBundle>> {
        self.pinned.as_deref().map(|xml| load_bundle(xml, jid)).transpose()
    }

    /// The held-back new bundle, verified again for `jid`.
    pub fn pending_bundle(&self, jid: &BareJid) -> Result<Option<VerifiedBundle>> {
        self.pending.as_deref().map(|xml| load_bundle(xml, jid)).transpose()
    }
}

/// The result of offering a contact's bundle to the pin store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinOutcome {
    /// No key was pinned: this one is now (trust on first use).
    Pinned(Fingerprint),
    /// The same key as pinned.
    Unchanged,
    /// A DIFFERENT key than the pinned one: held back, not pinned. Warn loudly.
    Changed {
        /// The fingerprint pinned so far (still in force).
        pinned: Fingerprint,
        /// The fingerprint offered now.
        offered: Fingerprint,
    },
}

/// What the user typed to confirm a contact's key: the safety number or the fingerprint they compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compared {
    /// The 60 digits of a safety number (white space removed).
    SafetyNumber(String),
    /// The contact's fingerprint (64 hex digits, spaces ignored).
    Fingerprint(Fingerprint),
}

impl Compared {
    /// Parses a safety number (60 digits) or a fingerprint (64 hex digits), ignoring white space.
    pub fn parse(text: &str) -> Result<Self> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.len() == 60 && compact.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Self::SafetyNumber(compact));
        }
        Fingerprint::from_hex(&compact).map(Self::Fingerprint).map_err(|_| Error::Invalid {
            what: "confirmation",
            reason: "give the 60-digit safety number or the 64-digit fingerprint you compared".into(),
        })
    }

    fn matches(&self, own: &Fingerprint, theirs: &Fingerprint) -> bool {
        match self {
            Self::SafetyNumber(digits) => *digits == SafetyNumber::of(own, theirs).groups().concat(),
            Self::Fingerprint(fp) => fp == theirs,
        }
    }
}

/// All contacts, by bare JID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Contacts {
    /// Contacts by their normalised bare JID.
    pub contacts: BTreeMap<String, Contact>,
}

fn revoked_error(jid: &BareJid, revocation: &Revocation) -> Error {
    Error::Revoked { jid: jid.clone(), reason: Some(revocation.reason.clone()) }
}

impl Contacts {
    /// The contact, if known.
    pub fn get(&self, jid: &BareJid) -> Option<&Contact> {
        self.contacts.get(jid.as_str())
    }

    /// Offers a verified bundle of its own account (the caller checked it is
    /// for the contact it claims to be, and that it is not the reader's own account).
    /// Pins it at `now_ms` if nothing was pinned; never replaces a pinned key. A stored
    /// pin that no longer verifies is an error, and a revoked contact is never pinned.
    pub fn offer(&mut self, bundle: &VerifiedBundle, now_ms: u64) -> Result<PinOutcome> {
        let jid = bundle.jid().clone();
        let contact = self.contacts.entry(jid.as_str().to_owned()).or_default();
        let offered = bundle.fingerprint();
        Ok(match contact.pinned_bundle(&jid)? {
            Some(pinned) if pinned.fingerprint() == offered && pinned.encryption_key() == bundle.encryption_key() => {
                PinOutcome::Unchanged
            }
            Some(pinned) => {
                contact.pending = Some(bundle.to_xml());
                PinOutcome::Changed { pinned: pinned.fingerprint(), offered }
            }
            None => {
                if let Some(revocation) = &contact.revoked {
                    return Err(revoked_error(&jid, revocation));
                }
                contact.pinned = Some(bundle.to_xml());
                contact.pinned_at_ms = Some(now_ms);
                contact.trust = Trust::Tofu;
                contact.pending = None;
                PinOutcome::Pinned(offered)
            }
        })
    }

    /// Pins `bundle` as verified (after an out-of-band check), replacing any pin.
    pub fn pin_verified(&mut self, bundle: &VerifiedBundle, now_ms: u64) {
        let contact = self.contacts.entry(bundle.jid().as_str().to_owned()).or_default();
        contact.pinned = Some(bundle.to_xml());
        contact.pinned_at_ms = Some(now_ms);
        contact.pending = None;
        contact.trust = Trust::Verified;
    }

    /// The user compared `compared` with `jid` out of band: marks the key it designates
    /// verified, refusing on any mismatch. `own` is the reader's own fingerprint. If it
    /// designates the held-back changed key, that key replaces the pin (at `now_ms`); if it
    /// designates the pinned key, the held-back one is dropped. Returns the fingerprint now pinned.
    pub fn confirm(
        &mut self,
        jid: &BareJid,
        compared: &Compared,
        own: &Fingerprint,
        now_ms: u64,
    ) -> Result<Fingerprint> {
        let contact = self.contacts.get_mut(jid.as_str()).ok_or_else(|| Error::UnknownContact(jid.clone()))?;
        if let Some(revocation) = &contact.revoked {
            return Err(revoked_error(jid, revocation));
        }
        let pinned = contact.pinned_bundle(jid)?.ok_or_else(|| Error::NoKey(jid.clone()))?;
        if let Some(pending) = contact.pending_bundle(jid)?
            && compared.matches(own, &pending.fingerprint())
        {
            contact.pinned = Some(pending.to_xml());
            contact.pinned_at_ms = Some(now_ms);
            contact.pending = None;
            contact.trust = Trust::Verified;
            return Ok(pending.fingerprint());
        }
        if compared.matches(own, &pinned.fingerprint()) {
            contact.pending = None;
            contact.trust = Trust::Verified;
            return Ok(pinned.fingerprint());
        }
        Err(Error::ConfirmMismatch(jid.clone()))
    }

    /// Applies a revocation of `jid` the directory confirmed (protocol section 8, rules 1
    /// and 3: `fp` is the pinned key's, `at` is plausible). A contact with no pin is recorded
    /// as revoked and never pinned. Returns `true` if it is new; revocation is final.
    pub fn revoke(
        &mut self,
        jid: &BareJid,
        fp: Option<Fingerprint>,
        at: OffsetDateTime,
        reason: &str,
        now_ms: u64,
    ) -> Result<bool> {
        let refuse = |why: &str| Error::RevocationRefused { jid: jid.clone(), reason: why.to_owned() };
        let contact = self.contacts.entry(jid.as_str().to_owned()).or_default();
        if contact.revoked.is_some() {
            return Ok(false);
        }
        let at_ms = at.unix_timestamp_nanos() / 1_000_000;
        if at_ms > i128::from(now_ms) + REVOCATION_SKEW_MS {
            return Err(refuse("its time is in the future"));
        }
        if let Some(pinned) = contact.pinned_bundle(jid)? {
            if fp != Some(pinned.fingerprint()) {
                return Err(refuse("it is not about the pinned key"));
            }
            if contact.pinned_at_ms.is_some_and(|pinned_at| at_ms + REVOCATION_SKEW_MS < i128::from(pinned_at)) {
                return Err(refuse("its time is before the key was pinned, when the directory said it was active"));
            }
        }
        let at = at.format(&Rfc3339).map_err(|_| refuse("its time cannot be written"))?;
        contact.revoked = Some(Revocation { at, fp: fp.map(|f| f.to_hex()), reason: reason.to_owned() });
        Ok(true)
    }

    /// Checks a `<revoked/>` notice against the pin before asking the directory (rule 1):
    /// `Ok(true)` when it is about the pinned key, `Ok(false)` when the contact is already revoked.
    pub fn notice_applies(&self, notice: &Revoked) -> Result<bool> {
        let refuse = |why: &str| Error::RevocationRefused { jid: notice.jid.clone(), reason: why.to_owned() };
        let Some(contact) = self.get(&notice.jid) else { return Err(refuse("no key of this contact is pinned")) };
        if contact.revoked.is_some() {
            return Ok(false);
        }
        match contact.pinned_bundle(&notice.jid)? {
            Some(pinned) if pinned.fingerprint() == notice.fp => Ok(true),
            Some(_) => Err(refuse("it is not about the pinned key")),
            None => Err(refuse("no key of this contact is pinned")),
        }
    }

    /// The bundle to encrypt to `jid`, refusing revoked contacts, unconfirmed key changes and unknown keys.
    pub fn sendable(&self, jid: &BareJid) -> Result<VerifiedBundle> {
        let contact = self.get(jid).ok_or_else(|| Error::NoKey(jid.clone()))?;
        if let Some(revoked) = &contact.revoked {
            return Err(revoked_error(jid, revoked));
        }
        let pinned = contact.pinned_bundle(jid)?.ok_or_else(|| Error::NoKey(jid.clone()))?;
        if let Some(pending) = contact.pending_bundle(jid)? {
            return Err(Error::KeyChanged {
                jid: jid.clone(),
                pinned: pinned.fingerprint().to_string(),
                offered: pending.fingerprint().to_string(),
            });
        }
        Ok(pinned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_proto::KeyPair;

    const NOW: u64 = 1_800_000_000_000;

    fn bob() -> BareJid {
        BareJid::parse("bob@example.test").expect("valid")
    }

    fn bundle_for(jid: &BareJid) -> VerifiedBundle {
        Bundle::sign(&KeyPair::generate().expect("rng"), jid.clone(), 1)
    }

    fn own() -> Fingerprint {
        bundle_for(&BareJid::parse("alice@example.test").expect("valid")).fingerprint()
    }

    fn at_ms(ms: u64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("valid")
    }

    #[test]
    fn first_key_is_pinned_and_a_different_one_is_held_back() {
        let mut contacts = Contacts::default();
        let first = bundle_for(&bob());
        assert_eq!(contacts.offer(&first, NOW).expect("ok"), PinOutcome::Pinned(first.fingerprint()));
        assert_eq!(contacts.get(&bob()).and_then(|c| c.pinned_at_ms), Some(NOW));
        assert_eq!(contacts.offer(&first, NOW + 1).expect("ok"), PinOutcome::Unchanged);
        let second = bundle_for(&bob());
        assert_eq!(
            contacts.offer(&second, NOW).expect("ok"),
            PinOutcome::Changed { pinned: first.fingerprint(), offered: second.fingerprint() }
        );
        // Still pinned to the first key, and sending is refused until confirmed.
        let contact = contacts.get(&bob()).expect("known");
        assert_eq!(contact.pinned_bundle(&bob()).expect("ok").expect("pinned"), first);
        assert!(matches!(contacts.sendable(&bob()), Err(Error::KeyChanged { .. })));
    }

    #[test]
    fn confirming_needs_the_number_or_fingerprint_that_was_compared() {
        let mut contacts = Contacts::default();
        let own = own();
        let first = bundle_for(&bob());
        let wrong =
            Compared::parse(&SafetyNumber::of(&own, &bundle_for(&bob()).fingerprint()).to_string()).expect("ok");
        assert!(matches!(contacts.confirm(&bob(), &wrong, &own, NOW), Err(Error::UnknownContact(_))));
        contacts.offer(&first, NOW).expect("ok");
        let second = bundle_for(&bob());
        contacts.offer(&second, NOW).expect("ok");
        // A number of some other key: refused, nothing changes.
        assert!(matches!(contacts.confirm(&bob(), &wrong, &own, NOW), Err(Error::ConfirmMismatch(_))));
        assert_eq!(contacts.get(&bob()).expect("known").trust, Trust::Tofu);
        assert!(contacts.get(&bob()).expect("known").pending.is_some());
        // The number of the held-back key adopts it as verified.
        let number = SafetyNumber::of(&own, &second.fingerprint()).to_string();
        let compared = Compared::parse(&number).expect("parses");
        assert_eq!(contacts.confirm(&bob(), &compared, &own, NOW + 5).expect("confirms"), second.fingerprint());
        assert_eq!(contacts.sendable(&bob()).expect("sendable"), second);
        let contact = contacts.get(&bob()).expect("known");
        assert_eq!((contact.trust, contact.pinned_at_ms), (Trust::Verified, Some(NOW + 5)));
    }

    #[test]
    fn confirming_the_pinned_key_drops_a_held_back_one() {
        let mut contacts = Contacts::default();
        let own = own();
        let first = bundle_for(&bob());
        contacts.offer(&first, NOW).expect("ok");
        contacts.offer(&bundle_for(&bob()), NOW).expect("ok");
        let by_fingerprint = Compared::parse(&first.fingerprint().to_string()).expect("parses");
        assert_eq!(contacts.confirm(&bob(), &by_fingerprint, &own, NOW).expect("confirms"), first.fingerprint());
        assert_eq!(contacts.sendable(&bob()).expect("sendable"), first);
        assert!(Compared::parse("12345").is_err());
        assert!(Compared::parse(&"1".repeat(59)).is_err());
    }

    #[test]
    fn a_revocation_must_name_the_pinned_key_and_a_plausible_time() {
        let mut contacts = Contacts::default();
        let first = bundle_for(&bob());
        contacts.offer(&first, NOW).expect("ok");
        let other = bundle_for(&bob()).fingerprint();
        let refused = |r: Result<bool>| matches!(r, Err(Error::RevocationRefused { .. }));
        assert!(refused(contacts.revoke(&bob(), Some(other), at_ms(NOW), "x", NOW)), "another key");
        assert!(refused(contacts.revoke(&bob(), None, at_ms(NOW), "x", NOW)), "no key named");
        assert!(refused(contacts.revoke(&bob(), Some(first.fingerprint()), at_ms(NOW + 3_600_000), "x", NOW)));
        let years_back = at_ms(NOW - 3 * 365 * 24 * 3_600_000);
        assert!(refused(contacts.revoke(&bob(), Some(first.fingerprint()), years_back, "x", NOW)), "before the pin");
        assert!(contacts.get(&bob()).expect("known").revoked.is_none());
        assert!(contacts.sendable(&bob()).is_ok(), "refused revocations change nothing");
        // A revocation of the pinned key, a minute after pinning (and a little clock skew): final.
        let fp = Some(first.fingerprint());
        assert!(contacts.revoke(&bob(), fp, at_ms(NOW - 60_000), "stolen laptop", NOW + 60_000).expect("applies"));
        assert!(!contacts.revoke(&bob(), fp, at_ms(NOW), "again", NOW + 60_000).expect("ok"), "not new");
        assert!(matches!(contacts.sendable(&bob()), Err(Error::Revoked { .. })));
        let own = own();
        let compared = Compared::parse(&first.fingerprint().to_hex()).expect("parses");
        assert!(matches!(contacts.confirm(&bob(), &compared, &own, NOW), Err(Error::Revoked { .. })));
    }

    #[test]
    fn a_notice_counts_only_for_the_pinned_key() {
        let mut contacts = Contacts::default();
        let first = bundle_for(&bob());
        let notice = |fp: Fingerprint| Revoked { jid: bob(), fp, at: at_ms(NOW), reason: "r".into() };
        assert!(matches!(contacts.notice_applies(&notice(first.fingerprint())), Err(Error::RevocationRefused { .. })));
        contacts.offer(&first, NOW).expect("ok");
        assert!(contacts.notice_applies(&notice(first.fingerprint())).expect("applies"));
        let other = bundle_for(&bob()).fingerprint();
        assert!(matches!(contacts.notice_applies(&notice(other)), Err(Error::RevocationRefused { .. })));
    }

    #[test]
    fn a_revoked_contact_without_a_pin_is_never_pinned() {
        let mut contacts = Contacts::default();
        assert!(contacts.revoke(&bob(), None, at_ms(NOW), "gone", NOW).expect("applies"));
        assert!(matches!(contacts.offer(&bundle_for(&bob()), NOW), Err(Error::Revoked { .. })));
        assert!(matches!(contacts.sendable(&bob()), Err(Error::Revoked { .. })));
    }

    #[test]
    fn tampered_stored_pin_is_not_trusted() {
        let mut contacts = Contacts::default();
        let first = bundle_for(&bob());
        contacts.offer(&first, NOW).expect("ok");
        let contact = contacts.contacts.get_mut("bob@example.test").expect("known");
        contact.pinned = contact.pinned.as_ref().map(|x| x.replace("created='1'", "created='2'"));
        assert!(matches!(contacts.sendable(&bob()), Err(Error::BadBundle { .. })));
        assert!(
            matches!(contacts.offer(&bundle_for(&bob()), NOW), Err(Error::BadBundle { .. })),
            "never re-pinned silently"
        );
    }
}
