//! The OPRF exchange of a guess-limited restore: RFC 9497, mode OPRF, suite ristretto255-SHA512.
//!
//! The client blinds its passphrase ([`blind`]), keydir evaluates the blinded element with a
//! per-account key ([`evaluate`]) and the client unblinds the answer into a 64 byte output
//! ([`finalize`]) that goes, with Argon2id of the passphrase, into the key of the passphrase slot
//! of a version 1 secret blob (section 6.2 of the protocol). Without keydir's answer no guess at
//! the passphrase can be checked, so keydir counts the guesses; keydir itself learns nothing
//! about the passphrase (the blinded element is a uniformly random group element).
//!
//! **Crate.** `voprf` 0.5 (the same code that `opaque-ke` builds on), without its `serde` and
//! `danger` features: it implements RFC 9497 exactly and is checked against the RFC's vectors.
//! `opaque-ke` was not taken: OPAQUE is an aPAKE with registration and login flows, an envelope
//! and a key exchange, while keyward needs only the OPRF inside it (the XMPP login already
//! authenticates the requester and the secret blob is its own envelope).
//!
//! **Mode.** Plain OPRF, not VOPRF or POPRF. A VOPRF proof lets a client check that the server
//! used one committed key; it protects against a server that answers with another key to tell
//! users apart (anonymous tokens). Here keydir knows who asks (the stanza's `from`), and a wrong
//! answer only makes the open fail, which a server able to withhold the blob can do anyway; the
//! client would also have no trusted channel for the public key it would verify against. POPRF's
//! public input is covered by deriving one key per account, bound to the JID (below).
//!
//! **Keys.** keydir keeps one master seed (at least 32 bytes, outside its database) and derives
//! the account's key with RFC 9497 `DeriveKeyPair(seed, info)`, where
//! `info = "keyward/oprf-key/v1" 0x00 || lp(jid)`: nothing per account is stored, and one
//! account's answers say nothing about another's.

use crate::codec::put_lp;
use crate::error::{Error, Result};
use crate::jid::BareJid;
use crate::keys::{FillRandom, os_random};
use core::fmt;
use voprf::{OprfClient, OprfServer, Ristretto255};
use zeroize::{Zeroize, Zeroizing};

const KEY_INFO: &[u8] = b"keyward/oprf-key/v1\x00";

/// The smallest master seed accepted, in bytes.
pub const MIN_SEED_BYTES: usize = 32;
/// The largest master seed accepted, in bytes.
pub const MAX_SEED_BYTES: usize = 1024;

/// keydir's OPRF master seed: every account's OPRF key is derived from it and the account's JID.
///
/// It must be kept outside keydir's database (a dump of the database without it opens no blob).
/// Zeroized on drop; `Debug` prints nothing of it.
#[derive(Clone)]
pub struct OprfSeed(Zeroizing<Vec<u8>>);

impl OprfSeed {
    /// Takes 32 to 1024 bytes of secret randomness.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if !(MIN_SEED_BYTES..=MAX_SEED_BYTES).contains(&bytes.len()) {
            return Err(Error::Length { field: "oprf seed", expected: MIN_SEED_BYTES, actual: bytes.len() });
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// A fresh 32 byte seed from the operating system's generator (for setting up keydir).
    pub fn generate() -> Result<Self> {
        let mut seed = Zeroizing::new(vec![0u8; MIN_SEED_BYTES]);
        os_random(&mut seed)?;
        Ok(Self(seed))
    }

    /// The seed's bytes, to be stored (outside the database) by whoever generated it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for OprfSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OprfSeed(..)")
    }
}

/// The `info` of the account's key derivation: `"keyward/oprf-key/v1" 0x00 || lp(jid)`.
pub(crate) fn key_info(jid: &BareJid) -> Vec<u8> {
    let jid = jid.as_str().as_bytes();
    let mut info = Vec::with_capacity(KEY_INFO.len() + 4 + jid.len());
    info.extend_from_slice(KEY_INFO);
    put_lp(&mut info, jid);
    info
}

fn server(seed: &[u8], info: &[u8]) -> Result<OprfServer<Ristretto255>> {
    OprfServer::new_from_seed(seed, info).map_err(|_| Error::InvalidValue("oprf key derivation"))
}

macro_rules! element {
    ($(#[$doc:meta])* $name:ident, $inner:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            bytes: [u8; 32],
            value: voprf::$inner<Ristretto255>,
        }

        impl $name {
            /// Parses the 32 byte encoding: refuses a non-canonical encoding, a string that is no
            /// ristretto255 element, and the identity ([`Error::InvalidElement`]).
            pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
                let value = voprf::$inner::deserialize(bytes).map_err(|_| Error::InvalidElement($field))?;
                Ok(Self { bytes: *bytes, value })
            }

            fn from_value(value: voprf::$inner<Ristretto255>) -> Self {
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(&value.serialize());
                Self { bytes, value }
            }

            /// The 32 byte encoding.
            pub fn to_bytes(&self) -> [u8; 32] {
                self.bytes
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.bytes == other.bytes
            }
        }

        impl Eq for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), hex::encode(self.bytes))
            }
        }
    };
}

element!(
    /// The client's blinded passphrase, sent to keydir (`<oprf/>`).
    BlindedElement,
    BlindedElement,
    "oprf"
);
element!(
    /// keydir's evaluation of a [`BlindedElement`] with the account's key (`<oprf-result/>`).
    EvaluatedElement,
    EvaluationElement,
    "oprf-result"
);

/// What the client keeps between [`blind`] and [`finalize`]: the blinding scalar and the passphrase.
///
/// Zeroized on drop; `Debug` prints nothing of it. It is single use: [`finalize`] consumes it.
pub struct BlindState {
    client: OprfClient<Ristretto255>,
    input: Zeroizing<Vec<u8>>,
}

impl BlindState {
    /// The blinding scalar, for the test vectors.
    #[cfg(test)]
    pub(crate) fn blind_scalar(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.client.serialize());
        out
    }
}

impl fmt::Debug for BlindState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindState(..)")
    }
}

/// The OPRF's 64 byte output for one passphrase and account. Zeroized on drop; `Debug` prints nothing of it.
#[derive(Clone)]
pub struct OprfOutput(Zeroizing<[u8; 64]>);

impl OprfOutput {
    /// The 64 bytes (secret: they stand in for keydir's key in every guess at the passphrase).
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for OprfOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OprfOutput(..)")
    }
}

/// Adapts a [`FillRandom`] to the RNG traits `voprf` draws its blind through, remembering a failure
/// (the traits' infallible `fill_bytes` cannot return it).
struct Rng<'a> {
    random: FillRandom<'a>,
    failed: bool,
}

impl rand_core::RngCore for Rng<'_> {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if (self.random)(dest).is_err() {
            self.failed = true;
            // Non-zero, so that voprf's loop for a non-zero scalar ends; the result is thrown away.
            dest.fill(1);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> core::result::Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Rng<'_> {}

/// Client, step 1: blinds `passphrase` (1 to 65535 bytes) with a fresh random scalar.
/// Send the [`BlindedElement`] to keydir, keep the [`BlindState`] for [`finalize`].
pub fn blind(passphrase: &[u8]) -> Result<(BlindState, BlindedElement)> {
    blind_with(passphrase, &mut os_random)
}

/// [`blind`] with the scalar drawn from `random` (64 bytes, reduced modulo the group order).
pub(crate) fn blind_with(passphrase: &[u8], random: FillRandom<'_>) -> Result<(BlindState, BlindedElement)> {
    if passphrase.is_empty() || passphrase.len() > usize::from(u16::MAX) {
        return Err(Error::InvalidValue("passphrase"));
    }
    let mut rng = Rng { random, failed: false };
    let result = OprfClient::<Ristretto255>::blind(passphrase, &mut rng);
    if rng.failed {
        return Err(Error::Rng);
    }
    let result = result.map_err(|_| Error::InvalidValue("passphrase"))?;
    let state = BlindState { client: result.state, input: Zeroizing::new(passphrase.to_vec()) };
    Ok((state, BlindedElement::from_value(result.message)))
}

/// Client, step 3: unblinds keydir's answer into the OPRF output for the passphrase given to [`blind`].
///
/// A wrong answer (another key, another account, a hostile server) is not detected here: it
/// gives another output, and the blob then does not open ([`Error::Decrypt`]).
pub fn finalize(state: BlindState, evaluated: &EvaluatedElement) -> Result<OprfOutput> {
    let mut output =
        state.client.finalize(&state.input, &evaluated.value).map_err(|_| Error::InvalidValue("passphrase"))?;
    let mut out = Zeroizing::new([0u8; 64]);
    out.copy_from_slice(&output);
    output.as_mut_slice().zeroize();
    Ok(OprfOutput(out))
}

/// keydir, step 2: evaluates `blinded` with the OPRF key of account `jid`, derived from `seed`.
///
/// Pure and deterministic. keydir must count each call as one guess at the account's passphrase
/// (protocol section 6.2); `jid` must be the requester (the stanza's `from`), never a JID taken
/// from a payload.
pub fn evaluate(seed: &OprfSeed, jid: &BareJid, blinded: &BlindedElement) -> Result<EvaluatedElement> {
    let server = server(&seed.0, &key_info(jid))?;
    Ok(EvaluatedElement::from_value(server.blind_evaluate(&blinded.value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> BareJid {
        BareJid::parse("alice@example.test").expect("valid")
    }

    fn unhex<const N: usize>(text: &str) -> [u8; N] {
        let mut out = [0u8; N];
        hex::decode_to_slice(text, &mut out).expect("hex");
        out
    }

    /// A "random" source that yields `scalar || 0^32`: reduced modulo the order, exactly `scalar`.
    fn fixed_scalar(scalar: [u8; 32]) -> impl FnMut(&mut [u8]) -> Result<()> {
        move |buf: &mut [u8]| {
            buf.fill(0);
            buf[..32].copy_from_slice(&scalar);
            Ok(())
        }
    }

    #[test]
    fn rfc9497_vectors_ristretto255_sha512_oprf() {
        // RFC 9497 appendix A.1.1: seed a3 * 32, KeyInfo "test key".
        let server = server(&[0xa3; 32], b"test key").expect("derives");
        let blind_scalar = unhex::<32>("64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706");
        for (input, blinded, evaluated, output) in [
            (
                &[0x00][..],
                "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
                "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
                "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6",
            ),
            (
                &[0x5a; 17][..],
                "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
                "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
                "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73",
            ),
        ] {
            let (state, element) = blind_with(input, &mut fixed_scalar(blind_scalar)).expect("blinds");
            assert_eq!(hex::encode(element.to_bytes()), blinded);
            let answer = EvaluatedElement::from_value(server.blind_evaluate(&element.value));
            assert_eq!(hex::encode(answer.to_bytes()), evaluated);
            assert_eq!(hex::encode(finalize(state, &answer).expect("finalizes").as_bytes()), output);
        }
    }

    #[test]
    fn round_trip_gives_the_same_output_for_the_same_passphrase_and_account() {
        let seed = OprfSeed::generate().expect("rng");
        let run = |passphrase: &[u8], jid: &BareJid, seed: &OprfSeed| {
            let (state, blinded) = blind(passphrase).expect("blinds");
            let blinded = BlindedElement::from_bytes(&blinded.to_bytes()).expect("parses");
            let evaluated = evaluate(seed, jid, &blinded).expect("evaluates");
            let evaluated = EvaluatedElement::from_bytes(&evaluated.to_bytes()).expect("parses");
            finalize(state, &evaluated).expect("finalizes")
        };
        let first = run(b"correct horse", &alice(), &seed);
        assert_eq!(first.as_bytes(), run(b"correct horse", &alice(), &seed).as_bytes(), "blinding is invisible");
        assert_ne!(first.as_bytes(), run(b"correct hors", &alice(), &seed).as_bytes());
        let bob = BareJid::parse("bob@example.test").expect("valid");
        assert_ne!(first.as_bytes(), run(b"correct horse", &bob, &seed).as_bytes(), "per-account keys");
        let other_seed = OprfSeed::generate().expect("rng");
        assert_ne!(first.as_bytes(), run(b"correct horse", &alice(), &other_seed).as_bytes());
    }

    #[test]
    fn blinded_elements_are_fresh_each_time() {
        let (_, a) = blind(b"correct horse").expect("blinds");
        let (_, b) = blind(b"correct horse").expect("blinds");
        assert_ne!(a, b);
    }

    #[test]
    fn invalid_encodings_and_the_identity_are_refused() {
        let identity = [0u8; 32];
        let not_canonical = [0xffu8; 32];
        // 1 as a field element is no valid ristretto255 encoding (it must be even, and this
        // one is not the encoding of any point).
        let mut odd = [0u8; 32];
        odd[0] = 1;
        for bytes in [identity, not_canonical, odd] {
            assert_eq!(BlindedElement::from_bytes(&bytes).err(), Some(Error::InvalidElement("oprf")));
            assert_eq!(EvaluatedElement::from_bytes(&bytes).err(), Some(Error::InvalidElement("oprf-result")));
        }
    }

    #[test]
    fn bad_passphrases_seeds_and_randomness_are_typed_errors() {
        assert!(matches!(blind(b""), Err(Error::InvalidValue("passphrase"))));
        assert!(matches!(blind(&vec![b'a'; 65_536]), Err(Error::InvalidValue("passphrase"))));
        assert!(matches!(OprfSeed::from_bytes(&[7; 31]), Err(Error::Length { field: "oprf seed", .. })));
        assert!(matches!(OprfSeed::from_bytes(&[7; 1025]), Err(Error::Length { field: "oprf seed", .. })));
        OprfSeed::from_bytes(&[7; 32]).expect("32 bytes are enough");
        let mut failing = |_: &mut [u8]| Err(Error::Rng);
        assert!(matches!(blind_with(b"correct horse", &mut failing), Err(Error::Rng)));
    }

    #[test]
    fn debug_never_prints_secrets() {
        let seed = OprfSeed::from_bytes(&[0x5e; 32]).expect("valid");
        let (state, blinded) = blind(b"correct horse").expect("blinds");
        let evaluated = evaluate(&seed, &alice(), &blinded).expect("evaluates");
        let state_shown = format!("{state:?}");
        let output = finalize(state, &evaluated).expect("finalizes");
        for shown in [format!("{seed:?}"), state_shown, format!("{output:?}")] {
            assert!(!shown.contains("5e5e5e"), "{shown}");
            assert!(!shown.contains(&hex::encode(&output.as_bytes()[..8])), "{shown}");
            assert!(!shown.contains("correct horse"), "{shown}");
        }
    }
}
