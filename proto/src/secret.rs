//! The secret blob: an account's private keys sealed with a passphrase (Argon2id + XSalsa20-Poly1305).

use crate::codec::{Cursor, attr, b64, child_text, expect, number, unb64, unb64_fixed};
use crate::elements::{NS, XmlElement};
use crate::error::{Error, Result};
use crate::jid::BareJid;
use crate::keys::{FillRandom, KeyPair, os_random};
use crate::limits;
use crate::xml::Element;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use zeroize::Zeroizing;

const DOMAIN: &[u8] = b"keyward/secret/v0\x00";

/// Argon2id cost parameters: memory in KiB, passes, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB (`m`).
    pub m_kib: u32,
    /// Number of passes (`t`).
    pub t: u32,
    /// Degree of parallelism (`p`).
    pub p: u32,
}

impl KdfParams {
    /// The default for new blobs: m = 64 MiB, t = 3, p = 1.
    pub const DEFAULT: Self = Self { m_kib: 65_536, t: 3, p: 1 };

    /// Cheap parameters for tests and test vectors ONLY: opening a blob sealed
    /// with them needs [`KdfPolicy::danger_accept_weak_for_tests`].
    pub const INSECURE_TEST_ONLY: Self = Self { m_kib: 64, t: 1, p: 1 };
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The range of KDF parameters a client accepts when opening a blob.
///
/// A hostile server could rewrite the parameters of a stored blob: too weak
/// would make an offline guess cheap, too large would make the client spin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfPolicy {
    min_m_kib: u32,
    max_m_kib: u32,
    min_t: u32,
    max_t: u32,
    max_p: u32,
}

impl KdfPolicy {
    /// The policy every client uses: m in 19456 KiB ..= 1 GiB, t in 2 ..= 16, p in 1 ..= 8.
    pub const STRICT: Self = Self { min_m_kib: 19_456, max_m_kib: 1_048_576, min_t: 2, max_t: 16, max_p: 8 };

    /// Accepts weak parameters (but still refuses absurd ones). For tests only:
    /// never use this on a blob that came from a server.
    pub const fn danger_accept_weak_for_tests() -> Self {
        Self { min_m_kib: 8, min_t: 1, ..Self::STRICT }
    }

    /// Refuses parameters outside this policy.
    pub fn check(&self, params: &KdfParams) -> Result<()> {
        let reason = if params.m_kib < self.min_m_kib {
            "memory cost below the minimum"
        } else if params.m_kib > self.max_m_kib {
            "memory cost above the maximum"
        } else if params.t < self.min_t {
            "too few passes"
        } else if params.t > self.max_t {
            "too many passes"
        } else if params.p == 0 || params.p > self.max_p {
            "parallelism out of range"
        } else if params.m_kib < 8 * params.p {
            "memory cost below 8 KiB per lane"
        } else {
            return Ok(());
        };
        Err(Error::KdfParams { reason })
    }
}

impl Default for KdfPolicy {
    fn default() -> Self {
        Self::STRICT
    }
}

/// A passphrase-sealed copy of an account's private keys, safe to store on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretBlob {
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 24],
    ct: Vec<u8>,
}

/// The sealed plaintext of either blob version: `domain || u16be(len(jid)) || jid || IK_seed || EK_secret`.
pub(crate) fn keys_plaintext(domain: &[u8], jid: &BareJid, keys: &KeyPair) -> Zeroizing<Vec<u8>> {
    let jid = jid.as_str().as_bytes();
    let mut plaintext = Zeroizing::new(Vec::with_capacity(domain.len() + 2 + jid.len() + 64));
    plaintext.extend_from_slice(domain);
    plaintext.extend_from_slice(&(jid.len() as u16).to_be_bytes());
    plaintext.extend_from_slice(jid);
    plaintext.extend_from_slice(keys.secret_bytes().as_ref());
    plaintext
}

/// Reads the keys out of [`keys_plaintext`], checking its `domain` and that they are `expected`'s.
pub(crate) fn keys_from_plaintext(domain: &[u8], plaintext: &[u8], expected: &BareJid) -> Result<KeyPair> {
    let mut cursor = Cursor::new(plaintext);
    if cursor.take(domain.len())? != domain {
        return Err(Error::InvalidValue("secret blob domain"));
    }
    let len = cursor.take(2)?;
    let jid = cursor.take(usize::from(u16::from_be_bytes([len[0], len[1]])))?;
    if jid != expected.as_str().as_bytes() {
        return Err(Error::JidMismatch);
    }
    let secrets = cursor.rest();
    if secrets.len() != 64 {
        return Err(Error::Length { field: "secret keys", expected: 64, actual: secrets.len() });
    }
    let mut ik = Zeroizing::new([0u8; 32]);
    let mut ek = Zeroizing::new([0u8; 32]);
    ik.copy_from_slice(&secrets[..32]);
    ek.copy_from_slice(&secrets[32..]);
    Ok(KeyPair::from_secret_bytes(&ik, &ek))
}

pub(crate) fn derive_key(passphrase: &[u8], salt: &[u8; 16], params: &KdfParams) -> Result<Zeroizing<[u8; 32]>> {
    let argon_params = argon2::Params::new(params.m_kib, params.t, params.p, Some(32))
        .map_err(|_| Error::KdfParams { reason: "rejected by Argon2" })?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, argon_params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|_| Error::KdfParams { reason: "rejected by Argon2" })?;
    Ok(key)
}

impl SecretBlob {
    /// Seals `keys` of account `jid` with `passphrase`, using fresh salt and nonce.
    pub fn seal(keys: &KeyPair, jid: &BareJid, passphrase: &[u8], params: KdfParams) -> Result<Self> {
        Self::seal_with(keys, jid, passphrase, params, &mut os_random)
    }

    pub(crate) fn seal_with(
        keys: &KeyPair,
        jid: &BareJid,
        passphrase: &[u8],
        params: KdfParams,
        random: FillRandom<'_>,
    ) -> Result<Self> {
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 24];
        random(&mut salt)?;
        random(&mut nonce)?;
        let key = derive_key(passphrase, &salt, &params)?;
        let plaintext = keys_plaintext(DOMAIN, jid, keys);
        let cipher = XSalsa20Poly1305::new(&(*key).into());
        let ct = cipher.encrypt(&nonce.into(), plaintext.as_slice()).map_err(|_| Error::Decrypt)?;
        Ok(Self { params, salt, nonce, ct })
    }

    /// Opens the blob with `passphrase`, after checking its parameters against
    /// `policy`, and checks that the keys inside belong to `expected`.
    pub fn open(&self, passphrase: &[u8], expected: &BareJid, policy: &KdfPolicy) -> Result<KeyPair> {
        policy.check(&self.params)?;
        let key = derive_key(passphrase, &self.salt, &self.params)?;
        let cipher = XSalsa20Poly1305::new(&(*key).into());
        let plaintext =
            Zeroizing::new(cipher.decrypt(&self.nonce.into(), self.ct.as_slice()).map_err(|_| Error::Decrypt)?);
        keys_from_plaintext(DOMAIN, &plaintext, expected)
    }

    /// The KDF parameters the blob was sealed with.
    pub fn params(&self) -> &KdfParams {
        &self.params
    }

    /// The decoded fields `(params, salt, nonce, ct)`, for the signed secret update.
    pub(crate) fn fields(&self) -> (&KdfParams, &[u8; 16], &[u8; 24], &Vec<u8>) {
        (&self.params, &self.salt, &self.nonce, &self.ct)
    }
}

impl XmlElement for SecretBlob {
    fn from_element(element: &Element) -> Result<Self> {
        expect(element, "secret", NS, "{urn:keyward:0}secret")?;
        if attr(element, "kdf")? != "argon2id" {
            return Err(Error::InvalidValue("kdf"));
        }
        let params = KdfParams { m_kib: number(element, "m")?, t: number(element, "t")?, p: number(element, "p")? };
        let salt = unb64_fixed(child_text(element, "salt")?, "salt")?;
        let nonce = unb64_fixed(child_text(element, "nonce")?, "nonce")?;
        let ct = unb64(child_text(element, "ct")?, "ct", limits::SECRET_BYTES)?;
        let blob = Self { params, salt, nonce, ct };
        if blob.to_xml().len() > limits::SECRET_BYTES {
            return Err(Error::TooLarge { what: "secret blob", limit: limits::SECRET_BYTES });
        }
        Ok(blob)
    }

    fn to_element(&self) -> Element {
        Element::new("secret", NS)
            .attr("kdf", "argon2id")
            .attr("m", self.params.m_kib.to_string())
            .attr("t", self.params.t.to_string())
            .attr("p", self.params.p.to_string())
            .child(Element::new("salt", NS).text(b64(&self.salt)))
            .child(Element::new("nonce", NS).text(b64(&self.nonce)))
            .child(Element::new("ct", NS).text(b64(&self.ct)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEAK: KdfPolicy = KdfPolicy::danger_accept_weak_for_tests();

    fn alice() -> BareJid {
        BareJid::parse("alice@example.test").expect("valid")
    }

    fn sealed() -> (KeyPair, SecretBlob) {
        let keys = KeyPair::generate().expect("rng");
        let blob = SecretBlob::seal(&keys, &alice(), b"correct horse", KdfParams::INSECURE_TEST_ONLY).expect("seals");
        (keys, blob)
    }

    #[test]
    fn round_trip_through_xml() {
        let (keys, blob) = sealed();
        let parsed = SecretBlob::parse(blob.to_xml().as_bytes()).expect("parses");
        let opened = parsed.open(b"correct horse", &alice(), &WEAK).expect("opens");
        assert_eq!(opened.identity_public(), keys.identity_public());
        assert_eq!(opened.encryption_public(), keys.encryption_public());
    }

    #[test]
    fn wrong_passphrase_or_tamper_fails() {
        let (_, blob) = sealed();
        assert_eq!(blob.open(b"wrong", &alice(), &WEAK).err(), Some(Error::Decrypt));
        let mut tampered = blob.clone();
        tampered.ct[3] ^= 1;
        assert_eq!(tampered.open(b"correct horse", &alice(), &WEAK).err(), Some(Error::Decrypt));
        let mut salted = blob.clone();
        salted.salt[0] ^= 1;
        assert_eq!(salted.open(b"correct horse", &alice(), &WEAK).err(), Some(Error::Decrypt));
    }

    #[test]
    fn another_accounts_blob_is_refused() {
        let (_, blob) = sealed();
        let bob = BareJid::parse("bob@example.test").expect("valid");
        assert_eq!(blob.open(b"correct horse", &bob, &WEAK).err(), Some(Error::JidMismatch));
    }

    #[test]
    fn weakened_or_absurd_parameters_are_refused_before_any_work() {
        let (_, blob) = sealed();
        // Sealed with test parameters: the strict policy refuses it.
        assert!(matches!(blob.open(b"correct horse", &alice(), &KdfPolicy::STRICT), Err(Error::KdfParams { .. })));
        let strict = KdfPolicy::STRICT;
        for (m_kib, t, p) in
            [(19_455, 3, 1), (65_536, 1, 1), (1_048_577, 3, 1), (65_536, 17, 1), (65_536, 3, 0), (65_536, 3, 9)]
        {
            assert!(strict.check(&KdfParams { m_kib, t, p }).is_err(), "accepted m={m_kib} t={t} p={p}");
        }
        strict.check(&KdfParams::DEFAULT).expect("default is acceptable");
        strict.check(&KdfParams { m_kib: 19_456, t: 2, p: 1 }).expect("the minimum is acceptable");
        // A server rewriting m/t in the XML is refused by the strict policy.
        let weakened = blob.to_xml().replace("m='64'", "m='8'");
        let parsed = SecretBlob::parse(weakened.as_bytes()).expect("well-formed");
        assert!(matches!(parsed.open(b"x", &alice(), &strict), Err(Error::KdfParams { .. })));
    }

    #[test]
    fn malformed_blobs_are_typed_errors() {
        let (_, blob) = sealed();
        let xml = blob.to_xml();
        assert!(matches!(
            SecretBlob::parse(xml.replace("argon2id", "scrypt").as_bytes()),
            Err(Error::InvalidValue("kdf"))
        ));
        assert!(matches!(
            SecretBlob::parse(xml.replace("m='64'", "m='lots'").as_bytes()),
            Err(Error::InvalidValue("m"))
        ));
        let huge = format!(
            "<secret xmlns='urn:keyward:0' kdf='argon2id' m='64' t='1' p='1'><salt>AAAAAAAAAAAAAAAAAAAAAA==</salt><nonce>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA</nonce><ct>{}</ct></secret>",
            "A".repeat(8000)
        );
        assert!(matches!(SecretBlob::parse(huge.as_bytes()), Err(Error::Length { field: "ct", .. })));
    }
}
