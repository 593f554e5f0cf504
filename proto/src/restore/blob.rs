//! The version 1 secret blob: the private keys sealed with a random data key, wrapped twice (passphrase + OPRF, and recovery code).
//!
//! ```text
//! data_key   = 32 random bytes
//! plaintext  = "keyward/secret/v1" 0x00 || u16be(len(jid)) || jid || IK_seed(32) || EK_secret(32)
//! ct         = XSalsa20-Poly1305(data_key, nonce, plaintext)
//! pw_key     = HKDF-SHA256(ikm = Argon2id(passphrase, pw_salt, m, t, p) || oprf_output(64),
//!                          salt = pw_salt, info = "keyward/secret/v1/passphrase" 0x00 || jid)
//! rc_key     = HKDF-SHA256(ikm = recovery code's 26 data characters,
//!                          salt = rc_salt, info = "keyward/secret/v1/recovery" 0x00 || jid)
//! slot ct    = XSalsa20-Poly1305(slot key, slot nonce, data_key)      (48 bytes)
//! ```
//!
//! The recovery slot has no Argon2id and no OPRF: its key material is 130 random bits, which
//! no one can search, with or without keydir's help; a slow KDF would only slow its owner.
//! Version 0 blobs ([`SecretBlob`]) are untouched; [`AnySecret`] reads either version.

use crate::codec::{attr, b64, child_text, expect, number, put_lp, unb64, unb64_fixed};
use crate::elements::{NS, XmlElement};
use crate::error::{Error, Result};
use crate::jid::BareJid;
use crate::keys::{FillRandom, KeyPair, os_random};
use crate::limits;
use crate::restore::oprf::OprfOutput;
use crate::restore::recovery::RecoveryCode;
use crate::secret::{KdfParams, KdfPolicy, SecretBlob, derive_key, keys_from_plaintext, keys_plaintext};
use crate::xml::Element;
use core::fmt;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

const DOMAIN: &[u8] = b"keyward/secret/v1\x00";
const PASSPHRASE_INFO: &[u8] = b"keyward/secret/v1/passphrase\x00";
const RECOVERY_INFO: &[u8] = b"keyward/secret/v1/recovery\x00";
/// The KDF names of the two slots, as written in their `kdf` attributes.
const PASSPHRASE_KDF: &str = "argon2id+oprf";
const RECOVERY_KDF: &str = "hkdf-sha256";

/// One wrapping of the data key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    salt: [u8; 16],
    nonce: [u8; 24],
    ct: [u8; 48],
}

/// A version 1 secret blob: safe to store on a server; opening its passphrase slot needs keydir's
/// OPRF answer, so a copy of the database alone allows no guess at the passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretV1 {
    params: KdfParams,
    passphrase: Slot,
    recovery: Slot,
    nonce: [u8; 24],
    ct: Vec<u8>,
}

/// An opened version 1 blob: the keys, and the data key that [`SecretV1::reseal_passphrase`] and
/// [`SecretV1::reseal_recovery`] need. Zeroized on drop; `Debug` prints only the fingerprint.
pub struct OpenedV1 {
    keys: KeyPair,
    data_key: Zeroizing<[u8; 32]>,
}

impl OpenedV1 {
    /// The account's keys.
    pub fn keys(&self) -> &KeyPair {
        &self.keys
    }

    /// The account's keys, dropping the data key.
    pub fn into_keys(self) -> KeyPair {
        self.keys
    }
}

impl fmt::Debug for OpenedV1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedV1").field("keys", &self.keys).finish_non_exhaustive()
    }
}

fn hkdf(ikm: &[u8], salt: &[u8; 16], info: &[u8], jid: &BareJid) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 8160: expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand_multi_info(&[info, jid.as_str().as_bytes()], key.as_mut());
    key
}

/// The passphrase slot's key: HKDF over Argon2id of the passphrase and the OPRF output.
pub(crate) fn passphrase_key(
    passphrase: &[u8],
    oprf: &OprfOutput,
    salt: &[u8; 16],
    params: &KdfParams,
    jid: &BareJid,
) -> Result<Zeroizing<[u8; 32]>> {
    let stretched = derive_key(passphrase, salt, params)?;
    let mut ikm = Zeroizing::new([0u8; 96]);
    ikm[..32].copy_from_slice(stretched.as_ref());
    ikm[32..].copy_from_slice(oprf.as_bytes());
    Ok(hkdf(ikm.as_ref(), salt, PASSPHRASE_INFO, jid))
}

/// The recovery slot's key: HKDF over the code's data characters (no stretching: 130 random bits).
pub(crate) fn recovery_key(code: &RecoveryCode, salt: &[u8; 16], jid: &BareJid) -> Zeroizing<[u8; 32]> {
    hkdf(code.secret(), salt, RECOVERY_INFO, jid)
}

fn cipher(key: &[u8; 32]) -> XSalsa20Poly1305 {
    XSalsa20Poly1305::new(&(*key).into())
}

/// A new slot: draws its salt (16), derives its key from the salt, draws its nonce (24), wraps `data_key`.
fn new_slot(
    data_key: &[u8; 32],
    random: FillRandom<'_>,
    key: impl FnOnce(&[u8; 16]) -> Result<Zeroizing<[u8; 32]>>,
) -> Result<Slot> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    random(&mut salt)?;
    let key = key(&salt)?;
    random(&mut nonce)?;
    let ct = cipher(&key).encrypt(&nonce.into(), data_key.as_slice()).map_err(|_| Error::Decrypt)?;
    let ct = ct.as_slice().try_into().map_err(|_| Error::Decrypt)?;
    Ok(Slot { salt, nonce, ct })
}

fn unwrap_slot(slot: &Slot, key: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
    let plain =
        Zeroizing::new(cipher(key).decrypt(&slot.nonce.into(), slot.ct.as_slice()).map_err(|_| Error::Decrypt)?);
    let mut data_key = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return Err(Error::Decrypt);
    }
    data_key.copy_from_slice(&plain);
    Ok(data_key)
}

impl SecretV1 {
    /// Seals `keys` of account `jid`: the passphrase slot with `passphrase` and the OPRF output
    /// keydir gave for it (see [`crate::restore::finalize`]), the recovery slot with `recovery`.
    /// Fresh data key, salts and nonces.
    pub fn seal(
        keys: &KeyPair,
        jid: &BareJid,
        passphrase: &[u8],
        oprf: &OprfOutput,
        recovery: &RecoveryCode,
        params: KdfParams,
    ) -> Result<Self> {
        Self::seal_with(keys, jid, passphrase, oprf, recovery, params, &mut os_random)
    }

    /// [`SecretV1::seal`] drawing, in order: data key (32), passphrase salt (16) and nonce (24),
    /// recovery salt (16) and nonce (24), nonce of the keys (24).
    pub(crate) fn seal_with(
        keys: &KeyPair,
        jid: &BareJid,
        passphrase: &[u8],
        oprf: &OprfOutput,
        recovery: &RecoveryCode,
        params: KdfParams,
        random: FillRandom<'_>,
    ) -> Result<Self> {
        let mut data_key = Zeroizing::new([0u8; 32]);
        random(data_key.as_mut())?;
        let pw = new_slot(&data_key, random, |salt| passphrase_key(passphrase, oprf, salt, &params, jid))?;
        let rc = new_slot(&data_key, random, |salt| Ok(recovery_key(recovery, salt, jid)))?;
        let mut nonce = [0u8; 24];
        random(&mut nonce)?;
        let plaintext = keys_plaintext(DOMAIN, jid, keys);
        let ct = cipher(&data_key).encrypt(&nonce.into(), plaintext.as_slice()).map_err(|_| Error::Decrypt)?;
        Ok(Self { params, passphrase: pw, recovery: rc, nonce, ct })
    }

    /// Opens the passphrase slot with `passphrase` and keydir's OPRF output for it, after checking
    /// the KDF parameters against `policy`, and checks that the keys belong to `expected`.
    /// A wrong passphrase, or an OPRF answer made with another key, is [`Error::Decrypt`].
    pub fn open_with_passphrase(
        &self,
        passphrase: &[u8],
        oprf: &OprfOutput,
        expected: &BareJid,
        policy: &KdfPolicy,
    ) -> Result<OpenedV1> {
        policy.check(&self.params)?;
        let key = passphrase_key(passphrase, oprf, &self.passphrase.salt, &self.params, expected)?;
        self.open_data(unwrap_slot(&self.passphrase, &key)?, expected)
    }

    /// Opens the recovery slot with `code` (no keydir needed), and checks that the keys belong to `expected`.
    pub fn open_with_recovery(&self, code: &RecoveryCode, expected: &BareJid) -> Result<OpenedV1> {
        let key = recovery_key(code, &self.recovery.salt, expected);
        self.open_data(unwrap_slot(&self.recovery, &key)?, expected)
    }

    /// A copy with a new passphrase slot (new passphrase and its OPRF output, new parameters,
    /// fresh salt and nonce), keeping the recovery slot and the sealed keys. `opened` must come
    /// from this blob (opened with either slot).
    pub fn reseal_passphrase(
        &self,
        opened: &OpenedV1,
        jid: &BareJid,
        passphrase: &[u8],
        oprf: &OprfOutput,
        params: KdfParams,
    ) -> Result<Self> {
        self.reseal_passphrase_with(opened, jid, passphrase, oprf, params, &mut os_random)
    }

    pub(crate) fn reseal_passphrase_with(
        &self,
        opened: &OpenedV1,
        jid: &BareJid,
        passphrase: &[u8],
        oprf: &OprfOutput,
        params: KdfParams,
        random: FillRandom<'_>,
    ) -> Result<Self> {
        self.open_data(opened.data_key.clone(), jid)?;
        let pw = new_slot(&opened.data_key, random, |salt| passphrase_key(passphrase, oprf, salt, &params, jid))?;
        Ok(Self { params, passphrase: pw, ..self.clone() })
    }

    /// A copy with a new recovery slot for `code` (after the old code was used or lost), keeping
    /// the passphrase slot and the sealed keys. `opened` must come from this blob.
    pub fn reseal_recovery(&self, opened: &OpenedV1, jid: &BareJid, code: &RecoveryCode) -> Result<Self> {
        self.open_data(opened.data_key.clone(), jid)?;
        let rc = new_slot(&opened.data_key, &mut os_random, |salt| Ok(recovery_key(code, salt, jid)))?;
        Ok(Self { recovery: rc, ..self.clone() })
    }

    fn open_data(&self, data_key: Zeroizing<[u8; 32]>, expected: &BareJid) -> Result<OpenedV1> {
        let plaintext = Zeroizing::new(
            cipher(&data_key).decrypt(&self.nonce.into(), self.ct.as_slice()).map_err(|_| Error::Decrypt)?,
        );
        Ok(OpenedV1 { keys: keys_from_plaintext(DOMAIN, &plaintext, expected)?, data_key })
    }

    /// Appends the fields a secret update signs (protocol section 6.2), in order:
    /// `u32be(m) || u32be(t) || u32be(p) || pw_salt || pw_nonce || pw_ct || rc_salt || rc_nonce || rc_ct || nonce || lp(ct)`.
    pub(crate) fn put_signed_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.params.m_kib.to_be_bytes());
        out.extend_from_slice(&self.params.t.to_be_bytes());
        out.extend_from_slice(&self.params.p.to_be_bytes());
        for slot in [&self.passphrase, &self.recovery] {
            out.extend_from_slice(&slot.salt);
            out.extend_from_slice(&slot.nonce);
            out.extend_from_slice(&slot.ct);
        }
        out.extend_from_slice(&self.nonce);
        put_lp(out, &self.ct);
    }

    /// The Argon2id parameters of the passphrase slot (check them before the OPRF exchange).
    pub fn params(&self) -> &KdfParams {
        &self.params
    }
}

fn slot_element(kind: &str, slot: &Slot) -> Element {
    Element::new("slot", NS)
        .attr("type", kind)
        .child(Element::new("salt", NS).text(b64(&slot.salt)))
        .child(Element::new("nonce", NS).text(b64(&slot.nonce)))
        .child(Element::new("ct", NS).text(b64(&slot.ct)))
}

fn parse_slot(element: &Element) -> Result<Slot> {
    Ok(Slot {
        salt: unb64_fixed(child_text(element, "salt")?, "salt")?,
        nonce: unb64_fixed(child_text(element, "nonce")?, "nonce")?,
        ct: unb64_fixed(child_text(element, "ct")?, "slot ct")?,
    })
}

/// The one `<slot type='kind'/>` child; refuses a missing or repeated one.
fn one_slot<'e>(element: &'e Element, kind: &'static str) -> Result<&'e Element> {
    let mut slots = element.children().iter().filter(|c| c.is("slot", NS) && c.get_attr("type") == Some(kind));
    let slot = slots.next().ok_or(Error::Missing(kind))?;
    if slots.next().is_some() {
        return Err(Error::InvalidValue("repeated slot"));
    }
    Ok(slot)
}

impl XmlElement for SecretV1 {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "secret", NS, "{urn:keyward:0}secret")?;
        if attr(element, "v")? != "1" {
            return Err(Error::InvalidValue("v"));
        }
        if element.children().iter().filter(|c| c.is("slot", NS)).count() != 2 {
            return Err(Error::InvalidValue("slot"));
        }
        let pw = one_slot(element, "passphrase")?;
        if attr(pw, "kdf")? != PASSPHRASE_KDF {
            return Err(Error::InvalidValue("kdf"));
        }
        let params = KdfParams { m_kib: number(pw, "m")?, t: number(pw, "t")?, p: number(pw, "p")? };
        let rc = one_slot(element, "recovery")?;
        if attr(rc, "kdf")? != RECOVERY_KDF {
            return Err(Error::InvalidValue("kdf"));
        }
        let blob = Self {
            params,
            passphrase: parse_slot(pw)?,
            recovery: parse_slot(rc)?,
            nonce: unb64_fixed(child_text(element, "nonce")?, "nonce")?,
            ct: unb64(child_text(element, "ct")?, "ct", limits::SECRET_BYTES)?,
        };
        if blob.to_xml().len() > limits::SECRET_BYTES {
            return Err(Error::TooLarge { what: "secret blob", limit: limits::SECRET_BYTES });
        }
        Ok(blob)
    }

    fn to_element(&self) -> Element {
        let pw = slot_element("passphrase", &self.passphrase)
            .attr("kdf", PASSPHRASE_KDF)
            .attr("m", self.params.m_kib.to_string())
            .attr("t", self.params.t.to_string())
            .attr("p", self.params.p.to_string());
        Element::new("secret", NS)
            .attr("v", "1")
            .child(pw)
            .child(slot_element("recovery", &self.recovery).attr("kdf", RECOVERY_KDF))
            .child(Element::new("nonce", NS).text(b64(&self.nonce)))
            .child(Element::new("ct", NS).text(b64(&self.ct)))
    }
}

/// A stored `<secret/>` of either version: without a `v` attribute version 0, with `v='1'`
/// version 1 (any other `v` is refused). Clients read stored blobs through this, and reseal a
/// version 0 blob as version 1 after its first successful open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnySecret {
    /// Version 0: Argon2id of the passphrase alone (protocol section 6).
    V0(SecretBlob),
    /// Version 1: guess-limited by keydir's OPRF, with a recovery slot (protocol section 6.2).
    V1(SecretV1),
}

impl XmlElement for AnySecret {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "secret", NS, "{urn:keyward:0}secret")?;
        match element.get_attr("v") {
            None => SecretBlob::from_element(element).map(Self::V0),
            Some(_) => SecretV1::from_element(element).map(Self::V1),
        }
    }

    fn to_element(&self) -> Element {
        match self {
            Self::V0(blob) => blob.to_element(),
            Self::V1(blob) => blob.to_element(),
        }
    }
}

impl From<SecretBlob> for AnySecret {
    fn from(blob: SecretBlob) -> Self {
        Self::V0(blob)
    }
}

impl From<SecretV1> for AnySecret {
    fn from(blob: SecretV1) -> Self {
        Self::V1(blob)
    }
}

#[cfg(test)]
mod tests;
