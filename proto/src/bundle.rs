//! The bundle: an account's public keys, signed by its identity key and bound to its JID.

use crate::codec::{attr, b64, child_text, expect, number, unb64_fixed};
use crate::elements::{NS, XmlElement};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::jid::BareJid;
use crate::keys::{EncryptionPublic, IdentityPublic, KeyPair};
use crate::limits;
use crate::xml::Element;

const DOMAIN: &[u8] = b"keyward/bundle/v0\x00";

/// A bundle as received: parsed, but its signature not yet checked.
///
/// Nothing should trust a `Bundle`; call [`Bundle::verify`] (or
/// [`Bundle::verify_for`]) to get a [`VerifiedBundle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    jid: BareJid,
    ik: IdentityPublic,
    ek: EncryptionPublic,
    created: u64,
    sig: [u8; 64],
}

/// A bundle whose signature verified against its own identity key and JID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBundle(Bundle);

/// The signed statement `M` of a bundle.
pub(crate) fn statement(jid: &BareJid, ik: &IdentityPublic, ek: &EncryptionPublic, created: u64) -> Vec<u8> {
    let jid = jid.as_str().as_bytes();
    let mut out = Vec::with_capacity(DOMAIN.len() + 2 + jid.len() + 64 + 8);
    out.extend_from_slice(DOMAIN);
    // A BareJid is at most 2047 bytes, so the length always fits.
    out.extend_from_slice(&(jid.len() as u16).to_be_bytes());
    out.extend_from_slice(jid);
    out.extend_from_slice(&ik.to_bytes());
    out.extend_from_slice(&ek.to_bytes());
    out.extend_from_slice(&created.to_be_bytes());
    out
}

impl Bundle {
    /// Signs a new bundle for `jid` with `keys`, created at `created_unix_s`.
    pub fn sign(keys: &KeyPair, jid: BareJid, created_unix_s: u64) -> VerifiedBundle {
        let ik = keys.identity_public();
        let ek = keys.encryption_public();
        let sig = keys.sign(&statement(&jid, &ik, &ek, created_unix_s));
        VerifiedBundle(Self { jid, ik, ek, created: created_unix_s, sig })
    }

    /// Checks the signature with the bundle's own identity key.
    pub fn verify(&self) -> Result<VerifiedBundle> {
        self.ik.verify(&statement(&self.jid, &self.ik, &self.ek, self.created), &self.sig)?;
        Ok(VerifiedBundle(self.clone()))
    }

    /// SHA-256 of everything the signature covers and the signature: equal digests, equal bundles.
    pub(crate) fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(statement(&self.jid, &self.ik, &self.ek, self.created));
        hasher.update(self.sig);
        hasher.finalize().into()
    }

    /// Checks the signature and that the bundle belongs to `expected`.
    pub fn verify_for(&self, expected: &BareJid) -> Result<VerifiedBundle> {
        if &self.jid != expected {
            return Err(Error::JidMismatch);
        }
        self.verify()
    }

    /// The account the bundle claims.
    pub fn jid(&self) -> &BareJid {
        &self.jid
    }

    /// The identity key it carries.
    pub fn identity_key(&self) -> &IdentityPublic {
        &self.ik
    }

    /// The encryption key it carries.
    pub fn encryption_key(&self) -> &EncryptionPublic {
        &self.ek
    }

    /// When it was made (Unix seconds), as signed.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.sig
    }

    /// The fingerprint of the identity key.
    pub fn fingerprint(&self) -> Fingerprint {
        self.ik.fingerprint()
    }
}

impl VerifiedBundle {
    /// A bundle this process verified before ([`crate::VerifyCache`]).
    pub(crate) fn trusted(bundle: Bundle) -> Self {
        Self(bundle)
    }

    /// The verified bundle's contents.
    pub fn bundle(&self) -> &Bundle {
        &self.0
    }

    /// Gives back the plain bundle (for storage or sending).
    pub fn into_bundle(self) -> Bundle {
        self.0
    }
}

impl core::ops::Deref for VerifiedBundle {
    type Target = Bundle;
    fn deref(&self) -> &Bundle {
        &self.0
    }
}

impl XmlElement for Bundle {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "bundle", NS, "{urn:keyward:0}bundle")?;
        let jid = BareJid::parse(attr(element, "jid")?)?;
        let created = number(element, "created")?;
        let ik = IdentityPublic::from_bytes(&unb64_fixed(child_text(element, "ik")?, "ik")?)?;
        let ek = EncryptionPublic::from_bytes(&unb64_fixed(child_text(element, "ek")?, "ek")?);
        let sig = unb64_fixed(child_text(element, "sig")?, "sig")?;
        let bundle = Self { jid, ik, ek, created, sig };
        if bundle.to_xml().len() > limits::BUNDLE_BYTES {
            return Err(Error::TooLarge { what: "bundle", limit: limits::BUNDLE_BYTES });
        }
        Ok(bundle)
    }

    fn to_element(&self) -> Element {
        Element::new("bundle", NS)
            .attr("jid", self.jid.as_str())
            .attr("created", self.created.to_string())
            .child(Element::new("ik", NS).text(b64(&self.ik.to_bytes())))
            .child(Element::new("ek", NS).text(b64(&self.ek.to_bytes())))
            .child(Element::new("sig", NS).text(b64(&self.sig)))
    }
}

impl XmlElement for VerifiedBundle {
    /// Parses and verifies in one step.
    fn from_element(element: &Element) -> Result<Self> {
        Bundle::from_element(element)?.verify()
    }

    fn to_element(&self) -> Element {
        self.0.to_element()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> BareJid {
        BareJid::parse("alice@example.test").expect("valid")
    }

    #[test]
    fn signed_bundle_round_trips_and_verifies() {
        let keys = KeyPair::generate().expect("rng");
        let bundle = Bundle::sign(&keys, alice(), 1_764_150_000);
        let parsed = Bundle::parse(bundle.to_xml().as_bytes()).expect("parses");
        let verified = parsed.verify_for(&alice()).expect("verifies");
        assert_eq!(verified, bundle);
        assert_eq!(verified.fingerprint(), keys.fingerprint());
    }

    #[test]
    fn jid_other_than_signer_is_refused() {
        let keys = KeyPair::generate().expect("rng");
        let bundle = Bundle::sign(&keys, alice(), 1);
        let mallory = BareJid::parse("mallory@example.test").expect("valid");
        assert_eq!(bundle.verify_for(&mallory), Err(Error::JidMismatch));
        // Rewriting the jid inside the element breaks the signature.
        let forged = bundle.to_xml().replace("alice@", "mallory@");
        let parsed = Bundle::parse(forged.as_bytes()).expect("still well-formed");
        assert_eq!(parsed.verify(), Err(Error::BadSignature));
    }

    #[test]
    fn tampered_fields_fail() {
        let keys = KeyPair::generate().expect("rng");
        let bundle = Bundle::sign(&keys, alice(), 5);
        let later = bundle.to_xml().replace("created='5'", "created='6'");
        assert_eq!(Bundle::parse(later.as_bytes()).and_then(|b| b.verify()).err(), Some(Error::BadSignature));
        let other = KeyPair::generate().expect("rng");
        let swapped = bundle
            .to_xml()
            .replace(&b64(&keys.encryption_public().to_bytes()), &b64(&other.encryption_public().to_bytes()));
        assert_eq!(Bundle::parse(swapped.as_bytes()).and_then(|b| b.verify()).err(), Some(Error::BadSignature));
    }

    #[test]
    fn malformed_fields_are_typed_errors() {
        let keys = KeyPair::generate().expect("rng");
        let xml = Bundle::sign(&keys, alice(), 5).to_xml();
        let ik = b64(&keys.identity_public().to_bytes());
        let cases: Vec<(String, crate::error::ErrorCheck)> = vec![
            (xml.replace(&ik, "!!notbase64!!"), |e| matches!(e, Error::Base64 { field: "ik" })),
            (xml.replace(&ik, "AAAA"), |e| matches!(e, Error::Length { field: "ik", .. })),
            (xml.replace("created='5'", "created='-5'"), |e| matches!(e, Error::InvalidValue("created"))),
            (xml.replace(" jid='alice@example.test'", ""), |e| matches!(e, Error::Missing("jid"))),
            (xml.replace("urn:keyward:0", "urn:other"), |e| matches!(e, Error::UnexpectedElement { .. })),
        ];
        for (case, check) in cases {
            let err = Bundle::parse(case.as_bytes()).expect_err(&case);
            assert!(check(&err), "{case}: {err:?}");
        }
    }
}
