//! The secret update: a signature by the identity key over a secret blob, without which no blob is stored or replaced.
//!
//! Protocol section 6.1. The signed statement is built from the blob's decoded
//! fields, never from XML text:
//!
//! ```text
//! M = "keyward/secret-update/v0" 0x00 || lp(jid) || u64be(seq)
//!     || u32be(m) || u32be(t) || u32be(p) || salt(16) || nonce(24) || lp(ct)
//! ```
//!
//! and for a version 1 blob (section 6.2), under its own tag:
//!
//! ```text
//! M = "keyward/secret-update/v1" 0x00 || lp(jid) || u64be(seq) || u32be(m) || u32be(t) || u32be(p)
//!     || pw_salt(16) || pw_nonce(24) || pw_ct(48) || rc_salt(16) || rc_nonce(24) || rc_ct(48)
//!     || nonce(24) || lp(ct)
//! ```

use crate::codec::{b64, expect, number, put_lp, unb64_fixed};
use crate::elements::{NS, XmlElement};
use crate::error::{Error, Result};
use crate::jid::BareJid;
use crate::keys::{IdentityPublic, KeyPair};
use crate::restore::{AnySecret, SecretV1};
use crate::secret::SecretBlob;
use crate::xml::Element;

const DOMAIN: &[u8] = b"keyward/secret-update/v0\x00";
const DOMAIN_V1: &[u8] = b"keyward/secret-update/v1\x00";

/// The largest `seq`: 2^63 - 1, so that it fits a signed 64-bit database column.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// The signed statement `M` of a secret update.
pub(crate) fn statement(jid: &BareJid, seq: u64, blob: &SecretBlob) -> Vec<u8> {
    let jid = jid.as_str().as_bytes();
    let (params, salt, nonce, ct) = blob.fields();
    let mut out = Vec::with_capacity(DOMAIN.len() + 4 + jid.len() + 8 + 12 + 16 + 24 + 4 + ct.len());
    out.extend_from_slice(DOMAIN);
    put_lp(&mut out, jid);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&params.m_kib.to_be_bytes());
    out.extend_from_slice(&params.t.to_be_bytes());
    out.extend_from_slice(&params.p.to_be_bytes());
    out.extend_from_slice(salt);
    out.extend_from_slice(nonce);
    put_lp(&mut out, ct);
    out
}

/// The signed statement `M` of a secret update of a version 1 blob.
pub(crate) fn statement_v1(jid: &BareJid, seq: u64, blob: &SecretV1) -> Vec<u8> {
    let jid = jid.as_str().as_bytes();
    let mut out = Vec::with_capacity(DOMAIN_V1.len() + 4 + jid.len() + 8 + 12 + 2 * 88 + 24 + 4 + 256);
    out.extend_from_slice(DOMAIN_V1);
    put_lp(&mut out, jid);
    out.extend_from_slice(&seq.to_be_bytes());
    blob.put_signed_fields(&mut out);
    out
}

/// The statement for a blob of either version.
fn statement_any(jid: &BareJid, seq: u64, blob: &AnySecret) -> Vec<u8> {
    match blob {
        AnySecret::V0(blob) => statement(jid, seq, blob),
        AnySecret::V1(blob) => statement_v1(jid, seq, blob),
    }
}

fn check_seq(seq: u64) -> Result<u64> {
    if seq > MAX_SEQ {
        return Err(Error::InvalidValue("seq"));
    }
    Ok(seq)
}

/// `<secret-sig seq='N'>`: the account's identity key vouches for one secret blob.
///
/// The component and the key directory store a blob only with a `SecretSig` that
/// verifies with the identity key of the account's bundle, and the directory
/// replaces a stored blob only with a greater `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSig {
    seq: u64,
    sig: [u8; 64],
}

impl SecretSig {
    /// Signs `blob` as the secret of `jid` with the identity key of `keys`.
    /// `seq` must be greater than that of every earlier update of the account
    /// (clients use the time in Unix milliseconds) and at most [`MAX_SEQ`].
    pub fn sign(keys: &KeyPair, jid: &BareJid, seq: u64, blob: &SecretBlob) -> Result<Self> {
        let seq = check_seq(seq)?;
        Ok(Self { seq, sig: keys.sign(&statement(jid, seq, blob)) })
    }

    /// Checks that `ik` signed `blob` as the secret of `jid` with this `seq`.
    /// A failure is [`Error::SecretSignature`].
    pub fn verify(&self, ik: &IdentityPublic, jid: &BareJid, blob: &SecretBlob) -> Result<()> {
        ik.verify(&statement(jid, self.seq, blob), &self.sig).map_err(|_| Error::SecretSignature)
    }

    /// [`SecretSig::sign`] for a blob of either version: a version 0 blob gets exactly the
    /// signature of [`SecretSig::sign`], a version 1 blob one under its own statement.
    pub fn sign_any(keys: &KeyPair, jid: &BareJid, seq: u64, blob: &AnySecret) -> Result<Self> {
        let seq = check_seq(seq)?;
        Ok(Self { seq, sig: keys.sign(&statement_any(jid, seq, blob)) })
    }

    /// [`SecretSig::verify`] for a blob of either version. A failure is [`Error::SecretSignature`].
    pub fn verify_any(&self, ik: &IdentityPublic, jid: &BareJid, blob: &AnySecret) -> Result<()> {
        ik.verify(&statement_any(jid, self.seq, blob), &self.sig).map_err(|_| Error::SecretSignature)
    }

    /// The sequence number, as signed.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.sig
    }
}

impl XmlElement for SecretSig {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "secret-sig", NS, "{urn:keyward:0}secret-sig")?;
        let seq = check_seq(number(element, "seq")?)?;
        if !element.children().is_empty() {
            return Err(Error::InvalidValue("secret-sig has children"));
        }
        let sig = unb64_fixed(element.get_text(), "secret-sig")?;
        Ok(Self { seq, sig })
    }

    fn to_element(&self) -> Element {
        Element::new("secret-sig", NS).attr("seq", self.seq.to_string()).text(b64(&self.sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::KdfParams;

    fn alice() -> BareJid {
        BareJid::parse("alice@example.test").expect("valid")
    }

    fn blob(keys: &KeyPair) -> SecretBlob {
        SecretBlob::seal(keys, &alice(), b"correct horse", KdfParams::INSECURE_TEST_ONLY).expect("seals")
    }

    #[test]
    fn signed_update_round_trips_and_verifies() {
        let keys = KeyPair::generate().expect("rng");
        let blob = blob(&keys);
        let update = SecretSig::sign(&keys, &alice(), 1_764_150_000_123, &blob).expect("signs");
        let parsed = SecretSig::parse(update.to_xml().as_bytes()).expect("parses");
        assert_eq!(parsed, update);
        assert_eq!(parsed.seq(), 1_764_150_000_123);
        parsed.verify(&keys.identity_public(), &alice(), &blob).expect("verifies");
    }

    #[test]
    fn every_field_of_the_blob_is_signed() {
        let keys = KeyPair::generate().expect("rng");
        let original = blob(&keys);
        let update = SecretSig::sign(&keys, &alice(), 7, &original).expect("signs");
        let xml = original.to_xml();
        let (_, salt, nonce, ct) = original.fields();
        let (salt, nonce, ct) = (b64(salt), b64(nonce), b64(ct));
        let mut flipped_ct = original.fields().3.to_vec();
        flipped_ct[0] ^= 1;
        let tampered = [
            xml.replace("m='64'", "m='65'"),
            xml.replace("t='1'", "t='2'"),
            xml.replace("p='1'", "p='2'"),
            xml.replace(&salt, &b64(&[0u8; 16])),
            xml.replace(&nonce, &b64(&[0u8; 24])),
            xml.replace(&ct, &b64(&flipped_ct)),
            xml.replace(&ct, &b64(&original.fields().3[..original.fields().3.len() - 1])),
        ];
        for case in tampered {
            assert_ne!(case, xml, "the replacement changed nothing");
            let changed = SecretBlob::parse(case.as_bytes()).expect("still well-formed");
            assert_eq!(
                update.verify(&keys.identity_public(), &alice(), &changed),
                Err(Error::SecretSignature),
                "{case}"
            );
        }
        // Another account, another seq: refused too.
        let bob = BareJid::parse("bob@example.test").expect("valid");
        assert_eq!(update.verify(&keys.identity_public(), &bob, &original), Err(Error::SecretSignature));
        let later = SecretSig::parse(update.to_xml().replace("seq='7'", "seq='8'").as_bytes()).expect("parses");
        assert_eq!(later.verify(&keys.identity_public(), &alice(), &original), Err(Error::SecretSignature));
    }

    #[test]
    fn another_key_is_refused() {
        let keys = KeyPair::generate().expect("rng");
        let mallory = KeyPair::generate().expect("rng");
        let blob = blob(&keys);
        let forged = SecretSig::sign(&mallory, &alice(), 9, &blob).expect("signs");
        assert_eq!(forged.verify(&keys.identity_public(), &alice(), &blob), Err(Error::SecretSignature));
        forged.verify(&mallory.identity_public(), &alice(), &blob).expect("verifies with the signer's key only");
    }

    #[test]
    fn seq_is_a_big_endian_u64_after_the_jid() {
        let keys = KeyPair::generate().expect("rng");
        let blob = blob(&keys);
        let m = statement(&alice(), 0x0102_0304_0506_0708, &blob);
        let jid = b"alice@example.test";
        assert_eq!(&m[..DOMAIN.len()], b"keyward/secret-update/v0\0");
        let rest = &m[DOMAIN.len()..];
        assert_eq!(&rest[..4], &(jid.len() as u32).to_be_bytes());
        assert_eq!(&rest[4..4 + jid.len()], jid);
        let rest = &rest[4 + jid.len()..];
        assert_eq!(&rest[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&rest[8..20], &[0, 0, 0, 64, 0, 0, 0, 1, 0, 0, 0, 1]);
        let (_, salt, nonce, ct) = blob.fields();
        assert_eq!(&rest[20..36], salt);
        assert_eq!(&rest[36..60], nonce);
        assert_eq!(&rest[60..64], &(ct.len() as u32).to_be_bytes());
        assert_eq!(&rest[64..], ct.as_slice());
    }

    #[test]
    fn either_version_is_signed_under_its_own_statement() {
        use crate::restore::{OprfSeed, RecoveryCode, blind, evaluate, finalize};
        let keys = KeyPair::generate().expect("rng");
        let v0 = blob(&keys);
        let plain = SecretSig::sign(&keys, &alice(), 5, &v0).expect("signs");
        let any = SecretSig::sign_any(&keys, &alice(), 5, &AnySecret::V0(v0.clone())).expect("signs");
        assert_eq!(any, plain, "version 0 signs exactly as before");
        any.verify_any(&keys.identity_public(), &alice(), &AnySecret::V0(v0)).expect("verifies");

        let seed = OprfSeed::generate().expect("rng");
        let (state, blinded) = blind(b"correct horse").expect("blinds");
        let out = finalize(state, &evaluate(&seed, &alice(), &blinded).expect("evaluates")).expect("finalizes");
        let code = RecoveryCode::generate().expect("rng");
        let seal = || SecretV1::seal(&keys, &alice(), b"correct horse", &out, &code, KdfParams::INSECURE_TEST_ONLY);
        let v1 = AnySecret::V1(seal().expect("seals"));
        let update = SecretSig::sign_any(&keys, &alice(), 6, &v1).expect("signs");
        let parsed = SecretSig::parse(update.to_xml().as_bytes()).expect("parses");
        parsed.verify_any(&keys.identity_public(), &alice(), &v1).expect("verifies");
        let bob = BareJid::parse("bob@example.test").expect("valid");
        assert_eq!(parsed.verify_any(&keys.identity_public(), &bob, &v1), Err(Error::SecretSignature));
        let other = AnySecret::V1(seal().expect("seals"));
        assert_eq!(parsed.verify_any(&keys.identity_public(), &alice(), &other), Err(Error::SecretSignature));

        // Every field of the version 1 blob is signed.
        let xml = v1.to_xml();
        for (from, to) in [("m='64'", "m='65'"), ("t='1'", "t='2'"), ("p='1'", "p='2'")] {
            let changed = AnySecret::parse(xml.replace(from, to).as_bytes()).expect("well-formed");
            assert_eq!(parsed.verify_any(&keys.identity_public(), &alice(), &changed), Err(Error::SecretSignature));
        }
        let mut texts = Vec::new();
        let mut rest = xml.as_str();
        while let Some(start) = rest.find('>') {
            rest = &rest[start + 1..];
            let end = rest.find('<').unwrap_or(rest.len());
            if end > 0 {
                texts.push(rest[..end].to_owned());
            }
            rest = &rest[end..];
        }
        assert_eq!(texts.len(), 8, "3 fields per slot, the nonce and the ct");
        for text in texts {
            let bytes = crate::codec::unb64(&text, "field", 4096).expect("base64");
            let mut flipped = bytes.clone();
            flipped[0] ^= 1;
            let changed = AnySecret::parse(xml.replacen(&text, &b64(&flipped), 1).as_bytes()).expect("well-formed");
            assert_eq!(parsed.verify_any(&keys.identity_public(), &alice(), &changed), Err(Error::SecretSignature));
        }
    }

    #[test]
    fn seq_range_and_syntax_are_checked() {
        let keys = KeyPair::generate().expect("rng");
        let blob = blob(&keys);
        assert!(SecretSig::sign(&keys, &alice(), MAX_SEQ, &blob).is_ok());
        assert_eq!(SecretSig::sign(&keys, &alice(), MAX_SEQ + 1, &blob), Err(Error::InvalidValue("seq")));
        let xml = SecretSig::sign(&keys, &alice(), 5, &blob).expect("signs").to_xml();
        for (bad, check) in [
            (xml.replace("seq='5'", "seq='9223372036854775808'"), Error::InvalidValue("seq")),
            (xml.replace("seq='5'", "seq='-5'"), Error::InvalidValue("seq")),
            (xml.replace("seq='5'", "seq='+5'"), Error::InvalidValue("seq")),
            (xml.replace("seq='5'", "seq=''"), Error::InvalidValue("seq")),
            (xml.replace(" seq='5'", ""), Error::Missing("seq")),
        ] {
            assert_eq!(SecretSig::parse(bad.as_bytes()), Err(check), "{bad}");
        }
        let short = "<secret-sig xmlns='urn:keyward:0' seq='5'>AAAA</secret-sig>";
        assert!(matches!(SecretSig::parse(short.as_bytes()), Err(Error::Length { field: "secret-sig", .. })));
        let junk = "<secret-sig xmlns='urn:keyward:0' seq='5'>!!</secret-sig>";
        assert!(matches!(SecretSig::parse(junk.as_bytes()), Err(Error::Base64 { field: "secret-sig" })));
    }
}
