//! Sealed messages: signed by the sender, encrypted once, the content key wrapped for each recipient.

use crate::bundle::VerifiedBundle;
use crate::codec::{Cursor, attr, b64, child_text, expect, put_lp, unb64, unb64_fixed};
use crate::elements::{NS, XmlElement};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::jid::BareJid;
use crate::keys::{EncryptionPublic, FillRandom, IdentityPublic, KeyPair, os_random};
use crate::limits;
use crate::replay::ReplayCache;
use crate::transparency::heads::HeadSummary;
use crate::transparency::heads::gossip::GOSSIP_LEN;
use crate::xml::Element;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

const DOMAIN: &[u8] = b"keyward/msg/v0\x00";
const DOMAIN_V1: &[u8] = b"keyward/msg/v1\x00";
const WRAP_INFO: &[u8] = b"keyward/wrap/v0";
const PAD_BLOCK: usize = 64;
/// `N_r || XSalsa20Poly1305(kek, N_r, K)`: 24 + 32 + 16 bytes.
const WRAPPED_LEN: usize = 24 + 32 + 16;

/// What a sealed message says, once opened: who to whom, when, which id, and the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The sender's bare JID, as signed.
    pub from: BareJid,
    /// The recipient's bare JID, as signed.
    pub to: BareJid,
    /// The sender's clock when sealing, in Unix milliseconds.
    pub ts_ms: u64,
    /// A sender-chosen id, unique per sender; the replay cache keys on it.
    pub msg_id: String,
    /// The message text.
    pub body: String,
}

impl core::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The body is the user's plaintext: never in logs.
        f.debug_struct("Envelope")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("ts_ms", &self.ts_ms)
            .field("msg_id", &self.msg_id)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A key a message is sealed to: an account's fingerprint and encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    fp: Fingerprint,
    ek: EncryptionPublic,
}

impl From<&VerifiedBundle> for Recipient {
    fn from(bundle: &VerifiedBundle) -> Self {
        Self { fp: bundle.fingerprint(), ek: *bundle.encryption_key() }
    }
}

impl From<&KeyPair> for Recipient {
    fn from(keys: &KeyPair) -> Self {
        Self { fp: keys.fingerprint(), ek: keys.encryption_public() }
    }
}

/// One recipient's copy of the content key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The recipient account's fingerprint.
    pub fp: Fingerprint,
    /// `N_r || wrapped`, 72 bytes.
    pub wrapped: Vec<u8>,
}

/// The version of a sealed message: 0 (read, never written) or 1 (written: the signed payload
/// ends with the sender's newest verified epoch head summary, protocol section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedVersion {
    /// `v='0'`: `keyward/msg/v0`, no head summary.
    V0,
    /// `v='1'`: `keyward/msg/v1`, `lp(head summary)` (0 or 45 bytes) after the body.
    V1,
}

impl SealedVersion {
    fn domain(self) -> &'static [u8] {
        match self {
            Self::V0 => DOMAIN,
            Self::V1 => DOMAIN_V1,
        }
    }

    fn attr(self) -> &'static str {
        match self {
            Self::V0 => "0",
            Self::V1 => "1",
        }
    }
}

/// A sealed message: `<sealed xmlns='urn:keyward:0' v='1'>` (or `v='0'`, still read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    version: SealedVersion,
    eph: [u8; 32],
    nonce: [u8; 24],
    keys: Vec<WrappedKey>,
    ct: Vec<u8>,
}

/// Pads a body to a multiple of 64 bytes: `u32be(len) || body || zeros`.
/// The length of `body` once padded: its u32 length, itself, and zeros to a whole block.
fn padded_len(body: &[u8]) -> usize {
    (4 + body.len()).div_ceil(PAD_BLOCK) * PAD_BLOCK
}

/// Appends `lp(pad(body))`: written in place, so the plaintext is not copied into a buffer of its own.
fn put_padded(out: &mut Vec<u8>, body: &[u8]) {
    let len = padded_len(body);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + len - 4 - body.len(), 0);
}

fn unpad(padded: &[u8]) -> Result<&[u8]> {
    if !padded.len().is_multiple_of(PAD_BLOCK) {
        return Err(Error::InvalidValue("body padding"));
    }
    let mut cursor = Cursor::new(padded);
    let len = cursor.u32()? as usize;
    let body = cursor.take(len)?;
    let rest = cursor.rest();
    if rest.len() >= PAD_BLOCK || rest.iter().any(|b| *b != 0) {
        return Err(Error::InvalidValue("body padding"));
    }
    Ok(body)
}

pub(crate) fn wrap_key(shared: &[u8; 32], eph_pub: &[u8; 32], ek_pub: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(eph_pub);
    salt[32..].copy_from_slice(ek_pub);
    let mut kek = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160 byte output limit.
    let _ = Hkdf::<Sha256>::new(Some(&salt), shared).expand(WRAP_INFO, kek.as_mut());
    kek
}

/// Checks the limits both sides hold an envelope to: the sender before sealing, the reader after opening.
fn check_limits(envelope: &Envelope) -> Result<()> {
    if envelope.body.len() > limits::BODY_BYTES {
        return Err(Error::TooLarge { what: "message body", limit: limits::BODY_BYTES });
    }
    if envelope.msg_id.is_empty() || envelope.msg_id.len() > limits::MSG_ID_BYTES {
        return Err(Error::InvalidValue("msg_id"));
    }
    Ok(())
}

/// Builds `inner || sig` for an envelope, in version 0 (the test vectors and the forwarding test).
#[cfg(test)]
pub(crate) fn signed_payload(sender: &KeyPair, envelope: &Envelope) -> Result<Zeroizing<Vec<u8>>> {
    signed_payload_v1(sender, envelope, SealedVersion::V0, None)
}

/// Builds `inner || sig` for an envelope in `version`, with the head summary (version 1).
pub(crate) fn signed_payload_v1(
    sender: &KeyPair,
    envelope: &Envelope,
    version: SealedVersion,
    head: Option<&HeadSummary>,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut inner = envelope.to_inner_as(version, head)?;
    let sig = sender.sign(&inner);
    inner.extend_from_slice(&sig);
    Ok(inner)
}

impl Envelope {
    /// The signed part of a sealed message's payload (`inner` of `docs/protocol.md`).
    ///
    /// Public for the fuzz targets only.
    #[doc(hidden)]
    pub fn to_inner(&self) -> Result<Zeroizing<Vec<u8>>> {
        self.to_inner_as(SealedVersion::V0, None)
    }

    /// The signed part in `version`; version 1 ends with `lp(head summary)` (empty for none).
    fn to_inner_as(&self, version: SealedVersion, head: Option<&HeadSummary>) -> Result<Zeroizing<Vec<u8>>> {
        check_limits(self)?;
        // Sized once, with room for the signature: a growing vector would leave copies of
        // the plaintext behind in freed memory, which `Zeroizing` does not reach.
        let capacity = DOMAIN.len()
            + 4 * 4
            + self.from.as_str().len()
            + self.to.as_str().len()
            + 8
            + self.msg_id.len()
            + padded_len(self.body.as_bytes())
            + 4
            + GOSSIP_LEN
            + 64;
        let mut inner = Zeroizing::new(Vec::with_capacity(capacity));
        inner.extend_from_slice(version.domain());
        put_lp(&mut inner, self.from.as_str().as_bytes());
        put_lp(&mut inner, self.to.as_str().as_bytes());
        inner.extend_from_slice(&self.ts_ms.to_be_bytes());
        put_lp(&mut inner, self.msg_id.as_bytes());
        put_padded(&mut inner, self.body.as_bytes());
        match (version, head) {
            (SealedVersion::V0, None) => {}
            (SealedVersion::V0, Some(_)) => return Err(Error::InvalidValue("a version 0 message has no head summary")),
            (SealedVersion::V1, head) => {
                put_lp(&mut inner, head.map(HeadSummary::encode).as_ref().map_or(&[][..], |h| &h[..]))
            }
        }
        Ok(inner)
    }

    /// Parses the signed part of a payload, once its signature is checked.
    ///
    /// Public for the fuzz targets only.
    #[doc(hidden)]
    pub fn from_inner(inner: &[u8]) -> Result<Self> {
        parse_inner(inner, SealedVersion::V0).map(|(envelope, _)| envelope)
    }
}

impl Sealed {
    /// Signs and seals `envelope` (version 1, no head summary) for `recipients` and for the
    /// sender's own key (so the sender's other sessions can read it). `envelope.from` must be
    /// the sender's account.
    pub fn seal(sender: &KeyPair, envelope: &Envelope, recipients: &[Recipient]) -> Result<Self> {
        Self::seal_with_head(sender, envelope, None, recipients)
    }

    /// [`Sealed::seal`] carrying `head`, the sender's newest verified epoch head (gossip,
    /// protocol section 15.2.6): signed with the message, so only the sender vouches for it.
    pub fn seal_with_head(
        sender: &KeyPair,
        envelope: &Envelope,
        head: Option<&HeadSummary>,
        recipients: &[Recipient],
    ) -> Result<Self> {
        Self::seal_as(SealedVersion::V1, sender, envelope, head, recipients, &mut os_random)
    }

    /// Version 0, with fixed randomness: for the test vectors only.
    #[cfg(test)]
    pub(crate) fn seal_with(
        sender: &KeyPair,
        envelope: &Envelope,
        recipients: &[Recipient],
        random: FillRandom<'_>,
    ) -> Result<Self> {
        Self::seal_as(SealedVersion::V0, sender, envelope, None, recipients, random)
    }

    pub(crate) fn seal_as(
        version: SealedVersion,
        sender: &KeyPair,
        envelope: &Envelope,
        head: Option<&HeadSummary>,
        recipients: &[Recipient],
        random: FillRandom<'_>,
    ) -> Result<Self> {
        let payload = signed_payload_v1(sender, envelope, version, head)?;
        let mut all = recipients.to_vec();
        all.push(Recipient::from(sender));
        Self::encrypt_payload(version, &payload, &all, random)
    }

    /// The message's format version.
    pub fn version(&self) -> SealedVersion {
        self.version
    }

    /// Encrypts an already signed payload of `version` to `recipients` (duplicates removed).
    pub(crate) fn encrypt_payload(
        version: SealedVersion,
        payload: &[u8],
        recipients: &[Recipient],
        random: FillRandom<'_>,
    ) -> Result<Self> {
        if recipients.len() > limits::SEALED_KEYS {
            return Err(Error::TooLarge { what: "recipient keys", limit: limits::SEALED_KEYS });
        }
        let mut content_key = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; 24];
        let mut eph_secret = Zeroizing::new([0u8; 32]);
        random(content_key.as_mut())?;
        random(&mut nonce)?;
        random(eph_secret.as_mut())?;
        let ct = XSalsa20Poly1305::new(&(*content_key).into())
            .encrypt(&nonce.into(), payload)
            .map_err(|_| Error::Decrypt)?;
        let eph = x25519_dalek::StaticSecret::from(*eph_secret);
        let eph_pub = x25519_dalek::PublicKey::from(&eph).to_bytes();
        let mut keys: Vec<WrappedKey> = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            if keys.iter().any(|k| k.fp == recipient.fp) {
                continue;
            }
            let shared = eph.diffie_hellman(recipient.ek.inner());
            if !shared.was_contributory() {
                return Err(Error::InvalidKey);
            }
            let kek = wrap_key(shared.as_bytes(), &eph_pub, &recipient.ek.to_bytes());
            let mut wrap_nonce = [0u8; 24];
            random(&mut wrap_nonce)?;
            let wrapped = XSalsa20Poly1305::new(&(*kek).into())
                .encrypt(&wrap_nonce.into(), content_key.as_slice())
                .map_err(|_| Error::Decrypt)?;
            let mut entry = wrap_nonce.to_vec();
            entry.extend_from_slice(&wrapped);
            keys.push(WrappedKey { fp: recipient.fp, wrapped: entry });
        }
        Ok(Self { version, eph: eph_pub, nonce, keys, ct })
    }

    /// The fingerprints this message was sealed to.
    pub fn recipients(&self) -> impl Iterator<Item = &Fingerprint> {
        self.keys.iter().map(|k| &k.fp)
    }

    /// Opens a message that arrived in a stanza from `stanza_from` (the server-stamped
    /// bare JID), checks it against the sender's pinned identity key, and records it
    /// in `replay` (the replay rule). `me` and `my_jid` are the reader's own keys and account;
    /// a message whose stanza is from `my_jid` must be checked with `me`'s own identity key.
    pub fn open(
        &self,
        me: &KeyPair,
        my_jid: &BareJid,
        stanza_from: &BareJid,
        sender_ik: &IdentityPublic,
        replay: &mut dyn ReplayCache,
    ) -> Result<Envelope> {
        self.open_with_head(me, my_jid, stanza_from, sender_ik, replay).map(|(envelope, _)| envelope)
    }

    /// [`Sealed::open`], with the head summary the sender signed into a version 1 message (not
    /// trusted: compared with the reader's own head, protocol section 15.2.6).
    pub fn open_with_head(
        &self,
        me: &KeyPair,
        my_jid: &BareJid,
        stanza_from: &BareJid,
        sender_ik: &IdentityPublic,
        replay: &mut dyn ReplayCache,
    ) -> Result<(Envelope, Option<HeadSummary>)> {
        if stanza_from == my_jid && *sender_ik != me.identity_public() {
            // An account is never its own contact: its messages verify with its own key only.
            return Err(Error::NotOwnKey);
        }
        let my_fp = me.fingerprint();
        let entry = self.keys.iter().find(|k| k.fp == my_fp).ok_or(Error::NotARecipient)?;
        if entry.wrapped.len() != WRAPPED_LEN {
            return Err(Error::Length { field: "key", expected: WRAPPED_LEN, actual: entry.wrapped.len() });
        }
        let shared = me.agree(&EncryptionPublic::from_bytes(&self.eph))?;
        let kek = wrap_key(&shared, &self.eph, &me.encryption_public().to_bytes());
        let mut wrap_nonce = [0u8; 24];
        wrap_nonce.copy_from_slice(&entry.wrapped[..24]);
        let content_key = Zeroizing::new(
            XSalsa20Poly1305::new(&(*kek).into())
                .decrypt(&wrap_nonce.into(), &entry.wrapped[24..])
                .map_err(|_| Error::Decrypt)?,
        );
        let key: [u8; 32] = content_key.as_slice().try_into().map_err(|_| Error::Decrypt)?;
        let key = Zeroizing::new(key);
        let payload = Zeroizing::new(
            XSalsa20Poly1305::new(&(*key).into())
                .decrypt(&self.nonce.into(), self.ct.as_slice())
                .map_err(|_| Error::Decrypt)?,
        );
        let split = payload.len().checked_sub(64).ok_or(Error::InvalidValue("truncated payload"))?;
        let (inner, sig) = payload.split_at(split);
        let sig: [u8; 64] = sig.try_into().map_err(|_| Error::BadSignature)?;
        sender_ik.verify(inner, &sig)?;
        let (envelope, head) = parse_inner(inner, self.version)?;
        if &envelope.from != stanza_from {
            return Err(Error::Binding("sender"));
        }
        if &envelope.to != my_jid && &envelope.from != my_jid {
            return Err(Error::Binding("recipient"));
        }
        replay.admit(&envelope.from, &envelope.msg_id, envelope.ts_ms)?;
        Ok((envelope, head))
    }
}

fn parse_inner(inner: &[u8], version: SealedVersion) -> Result<(Envelope, Option<HeadSummary>)> {
    let mut cursor = Cursor::new(inner);
    let domain = version.domain();
    if cursor.take(domain.len())? != domain {
        return Err(Error::InvalidValue("message domain"));
    }
    let text =
        |bytes: &[u8], field| core::str::from_utf8(bytes).map(str::to_owned).map_err(|_| Error::InvalidValue(field));
    let from = BareJid::parse(&text(cursor.lp()?, "from")?)?;
    let to = BareJid::parse(&text(cursor.lp()?, "to")?)?;
    let ts_ms = cursor.u64()?;
    let msg_id = text(cursor.lp()?, "msg_id")?;
    let body = text(unpad(cursor.lp()?)?, "body")?;
    let head = match version {
        SealedVersion::V0 => None,
        SealedVersion::V1 => match cursor.lp()? {
            [] => None,
            summary => Some(HeadSummary::parse(summary)?),
        },
    };
    if !cursor.rest().is_empty() {
        return Err(Error::InvalidValue("trailing bytes in message"));
    }
    let envelope = Envelope { from, to, ts_ms, msg_id, body };
    check_limits(&envelope)?;
    Ok((envelope, head))
}

impl XmlElement for Sealed {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "sealed", NS, "{urn:keyward:0}sealed")?;
        let version = match attr(element, "v")? {
            "0" => SealedVersion::V0,
            "1" => SealedVersion::V1,
            _ => return Err(Error::InvalidValue("v")),
        };
        let eph = unb64_fixed(child_text(element, "eph")?, "eph")?;
        let nonce = unb64_fixed(child_text(element, "nonce")?, "nonce")?;
        let ct = unb64(child_text(element, "ct")?, "ct", limits::STANZA_BYTES)?;
        let mut keys = Vec::new();
        for key in element.children().iter().filter(|c| c.is("key", NS)) {
            if keys.len() == limits::SEALED_KEYS {
                return Err(Error::TooLarge { what: "recipient keys", limit: limits::SEALED_KEYS });
            }
            let fp = Fingerprint::from_hex(attr(key, "fp")?)?;
            let wrapped = unb64(key.get_text(), "key", WRAPPED_LEN)?;
            if wrapped.len() != WRAPPED_LEN {
                return Err(Error::Length { field: "key", expected: WRAPPED_LEN, actual: wrapped.len() });
            }
            keys.push(WrappedKey { fp, wrapped });
        }
        if keys.is_empty() {
            return Err(Error::Missing("key"));
        }
        Ok(Self { version, eph, nonce, keys, ct })
    }

    fn to_element(&self) -> Element {
        let mut element = Element::new("sealed", NS)
            .attr("v", self.version.attr())
            .child(Element::new("eph", NS).text(b64(&self.eph)))
            .child(Element::new("nonce", NS).text(b64(&self.nonce)));
        for key in &self.keys {
            element.push_child(Element::new("key", NS).attr("fp", key.fp.to_hex()).text(b64(&key.wrapped)));
        }
        element.child(Element::new("ct", NS).text(b64(&self.ct)))
    }
}

#[cfg(test)]
mod tests;
