//! The pinned key store: contacts' keys pinned on first use, key changes held back, trust and revocation.

use crate::error::{Error, Result};
use keyward_proto::elements::Revoked;
use keyward_proto::{BareJid, Bundle, Fingerprint, VerifiedBundle, XmlElement};
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

/// A revocation the client learned of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When the account was revoked (RFC 3339).
    pub at: String,
    /// The revoked key's fingerprint (hex), if known.
    pub fp: Option<String>,
    /// The administrator's reason.
    pub reason: String,
}

impl Revocation {
    /// The revocation time.
    pub fn at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.at, &Rfc3339).ok()
    }

    /// Whether a message signed at `ts_ms` (Unix ms) was signed at or after the revocation.
    pub fn covers(&self, ts_ms: u64) -> bool {
        match self.at() {
            Some(at) => i128::from(ts_ms) >= at.unix_timestamp_nanos() / 1_000_000,
            // An unreadable time: treat every message as after it.
            None => true,
        }
    }
}

/// What the client knows about one contact. Bundles are kept as their XML and
/// re-verified whenever they are read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Contact {
    /// The pinned bundle (XML), if any.
    pub pinned: Option<String>,
    /// How far the pinned key is trusted.
    pub trust: Trust,
    /// A different bundle offered after pinning, held back until confirmed.
    pub pending: Option<String>,
    /// Set once the account was revoked: terminal.
    pub revoked: Option<Revocation>,
}

fn load_bundle(xml: &str, jid: &BareJid) -> Result<VerifiedBundle> {
    Bundle::parse(xml.as_bytes())
        .and_then(|b| b.verify_for(jid))
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

/// All contacts, by bare JID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Contacts {
    /// Contacts by their normalised bare JID.
    pub contacts: BTreeMap<String, Contact>,
}

impl Contacts {
    /// The contact, if known.
    pub fn get(&self, jid: &BareJid) -> Option<&Contact> {
        self.contacts.get(jid.as_str())
    }

    /// Offers a verified bundle of its own account (the caller checked it is
    /// for the contact it claims to be). Pins it if nothing was pinned; never
    /// replaces a pinned key. A stored pin that no longer verifies is an error.
    pub fn offer(&mut self, bundle: &VerifiedBundle) -> Result<PinOutcome> {
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
                contact.pinned = Some(bundle.to_xml());
                contact.trust = Trust::Tofu;
                contact.pending = None;
                PinOutcome::Pinned(offered)
            }
        })
    }

    /// Pins `bundle` as verified (after an out-of-band check), replacing any pin.
    pub fn pin_verified(&mut self, bundle: &VerifiedBundle) {
        let contact = self.contacts.entry(bundle.jid().as_str().to_owned()).or_default();
        contact.pinned = Some(bundle.to_xml());
        contact.pending = None;
        contact.trust = Trust::Verified;
    }

    /// The user compared the safety number of `jid`'s key: marks it verified.
    /// If a changed key was held back, that key is the one the user saw and it
    /// replaces the old pin. Returns the fingerprint now pinned.
    pub fn confirm(&mut self, jid: &BareJid) -> Result<Fingerprint> {
        let contact = self.contacts.get_mut(jid.as_str()).ok_or_else(|| Error::UnknownContact(jid.clone()))?;
        let bundle = match contact.pending_bundle(jid)? {
            Some(pending) => pending,
            None => contact.pinned_bundle(jid)?.ok_or_else(|| Error::NoKey(jid.clone()))?,
        };
        contact.pinned = Some(bundle.to_xml());
        contact.pending = None;
        contact.trust = Trust::Verified;
        Ok(bundle.fingerprint())
    }

    /// Records a revocation of `jid` (terminal). Returns `true` if it is new.
    pub fn revoke(&mut self, jid: &BareJid, revocation: Revocation) -> bool {
        let contact = self.contacts.entry(jid.as_str().to_owned()).or_default();
        if contact.revoked.is_some() {
            return false;
        }
        contact.revoked = Some(revocation);
        true
    }

    /// Records a `<revoked/>` notice.
    pub fn apply_notice(&mut self, notice: &Revoked) -> bool {
        let at = notice.at.format(&Rfc3339).unwrap_or_default();
        self.revoke(&notice.jid, Revocation { at, fp: Some(notice.fp.to_hex()), reason: notice.reason.clone() })
    }

    /// The bundle to encrypt to `jid`, refusing revoked contacts, unconfirmed key changes and unknown keys.
    pub fn sendable(&self, jid: &BareJid) -> Result<VerifiedBundle> {
        let contact = self.get(jid).ok_or_else(|| Error::NoKey(jid.clone()))?;
        if let Some(revoked) = &contact.revoked {
            return Err(Error::Revoked { jid: jid.clone(), reason: Some(revoked.reason.clone()) });
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

    fn bob() -> BareJid {
        BareJid::parse("bob@example.test").expect("valid")
    }

    fn bundle_for(jid: &BareJid) -> VerifiedBundle {
        Bundle::sign(&KeyPair::generate().expect("rng"), jid.clone(), 1)
    }

    #[test]
    fn first_key_is_pinned_and_a_different_one_is_held_back() {
        let mut contacts = Contacts::default();
        let first = bundle_for(&bob());
        assert_eq!(contacts.offer(&first).expect("ok"), PinOutcome::Pinned(first.fingerprint()));
        assert_eq!(contacts.offer(&first).expect("ok"), PinOutcome::Unchanged);
        let second = bundle_for(&bob());
        assert_eq!(
            contacts.offer(&second).expect("ok"),
            PinOutcome::Changed { pinned: first.fingerprint(), offered: second.fingerprint() }
        );
        // Still pinned to the first key, and sending is refused until confirmed.
        let contact = contacts.get(&bob()).expect("known");
        assert_eq!(contact.pinned_bundle(&bob()).expect("ok").expect("pinned"), first);
        assert!(matches!(contacts.sendable(&bob()), Err(Error::KeyChanged { .. })));
        // Confirming adopts the new key as verified.
        assert_eq!(contacts.confirm(&bob()).expect("confirms"), second.fingerprint());
        assert_eq!(contacts.sendable(&bob()).expect("sendable"), second);
        assert_eq!(contacts.get(&bob()).expect("known").trust, Trust::Verified);
    }

    #[test]
    fn confirm_without_change_marks_verified() {
        let mut contacts = Contacts::default();
        assert!(matches!(contacts.confirm(&bob()), Err(Error::UnknownContact(_))));
        let first = bundle_for(&bob());
        contacts.offer(&first).expect("ok");
        assert_eq!(contacts.get(&bob()).expect("known").trust, Trust::Tofu);
        contacts.confirm(&bob()).expect("confirms");
        assert_eq!(contacts.get(&bob()).expect("known").trust, Trust::Verified);
        assert_eq!(contacts.sendable(&bob()).expect("sendable"), first);
    }

    #[test]
    fn revocation_is_terminal_and_refuses_sending() {
        let mut contacts = Contacts::default();
        assert!(matches!(contacts.sendable(&bob()), Err(Error::NoKey(_))));
        let first = bundle_for(&bob());
        contacts.offer(&first).expect("ok");
        let notice = Revoked {
            jid: bob(),
            fp: first.fingerprint(),
            at: OffsetDateTime::from_unix_timestamp(1_000).expect("valid"),
            reason: "stolen laptop".into(),
        };
        assert!(contacts.apply_notice(&notice));
        assert!(!contacts.apply_notice(&notice), "a repeated notice is not new");
        assert!(matches!(contacts.sendable(&bob()), Err(Error::Revoked { .. })));
        let revocation = contacts.get(&bob()).and_then(|c| c.revoked.clone()).expect("revoked");
        assert!(!revocation.covers(999_999));
        assert!(revocation.covers(1_000_000));
        assert!(revocation.covers(2_000_000));
    }

    #[test]
    fn tampered_stored_pin_is_not_trusted() {
        let mut contacts = Contacts::default();
        let first = bundle_for(&bob());
        contacts.offer(&first).expect("ok");
        let contact = contacts.contacts.get_mut("bob@example.test").expect("known");
        contact.pinned = contact.pinned.as_ref().map(|x| x.replace("created='1'", "created='2'"));
        assert!(matches!(contacts.sendable(&bob()), Err(Error::BadBundle { .. })));
        assert!(
            matches!(contacts.offer(&bundle_for(&bob())), Err(Error::BadBundle { .. })),
            "never re-pinned silently"
        );
    }
}
