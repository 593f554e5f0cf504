//! Property tests of the guess-limited restore: version 1 blobs round-trip and open for any
//! account and passphrase, mutations never open to other keys, and arbitrary input never panics.

use keyward_proto::elements::{OprfQuery, OprfResult, RestoreProof};
use keyward_proto::restore::{
    AnySecret, BlindedElement, EvaluatedElement, OprfOutput, OprfSeed, RecoveryCode, SecretV1, blind, evaluate,
    finalize,
};
use keyward_proto::{BareJid, KdfParams, KdfPolicy, KeyPair, XmlElement};
use proptest::prelude::*;
use std::sync::LazyLock;

const WEAK: KdfPolicy = KdfPolicy::danger_accept_weak_for_tests();

static SEED: LazyLock<OprfSeed> = LazyLock::new(|| OprfSeed::generate().expect("rng"));

fn jid_strategy() -> impl Strategy<Value = BareJid> {
    ("[a-z0-9._-]{1,20}", "[a-z0-9-]{1,12}(\\.[a-z]{2,6}){1,2}")
        .prop_map(|(local, domain)| BareJid::parse(&format!("{local}@{domain}")).expect("strategy yields valid JIDs"))
}

fn oprf(jid: &BareJid, passphrase: &[u8]) -> OprfOutput {
    let (state, blinded) = blind(passphrase).expect("blinds");
    finalize(state, &evaluate(&SEED, jid, &blinded).expect("evaluates")).expect("finalizes")
}

/// A version 1 blob of fresh keys for `jid`, as XML, with its keys and recovery code.
fn sealed(jid: &BareJid, passphrase: &[u8]) -> (KeyPair, RecoveryCode, String) {
    let keys = KeyPair::generate().expect("rng");
    let code = RecoveryCode::generate().expect("rng");
    let out = oprf(jid, passphrase);
    let blob = SecretV1::seal(&keys, jid, passphrase, &out, &code, KdfParams::INSECURE_TEST_ONLY).expect("seals");
    (keys, code, blob.to_xml())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn v1_blobs_round_trip_and_open_both_ways(jid in jid_strategy(), passphrase in "\\PC{1,64}") {
        let (keys, code, xml) = sealed(&jid, passphrase.as_bytes());
        let AnySecret::V1(blob) = AnySecret::parse(xml.as_bytes()).expect("parses") else {
            panic!("sealed as version 1");
        };
        let out = oprf(&jid, passphrase.as_bytes());
        let opened = blob.open_with_passphrase(passphrase.as_bytes(), &out, &jid, &WEAK).expect("opens");
        prop_assert_eq!(opened.keys().fingerprint(), keys.fingerprint());
        let typed = RecoveryCode::parse(&code.to_grouped().to_lowercase().replace('-', " ")).expect("parses");
        prop_assert_eq!(blob.open_with_recovery(&typed, &jid).expect("opens").keys().fingerprint(), keys.fingerprint());
    }

    #[test]
    fn mutated_v1_blobs_never_open_to_other_keys(position in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let jid = BareJid::parse("alice@example.test").expect("valid");
        let (keys, code, xml) = sealed(&jid, b"correct horse");
        let mut bytes = xml.into_bytes();
        let at = position.index(bytes.len());
        bytes[at] ^= flip;
        if let Ok(AnySecret::V1(mutated)) = AnySecret::parse(&bytes) {
            let out = oprf(&jid, b"correct horse");
            let opened = [
                mutated.open_with_passphrase(b"correct horse", &out, &jid, &WEAK),
                mutated.open_with_recovery(&code, &jid),
            ];
            // Base64 has a little slack, so a mutation may leave the bytes intact: anything
            // that opens must be exactly the original keys.
            for opened in opened.into_iter().flatten() {
                prop_assert_eq!(opened.keys().fingerprint(), keys.fingerprint());
            }
        }
    }

    #[test]
    fn recovery_codes_survive_sloppy_typing(separators in proptest::collection::vec("[ -]{0,2}", 28), lower in any::<u32>()) {
        let code = RecoveryCode::generate().expect("rng");
        let chars: Vec<char> = code.to_grouped().chars().filter(|c| *c != '-').collect();
        let typed: String = chars
            .iter()
            .zip(&separators)
            .enumerate()
            .map(|(i, (c, sep))| {
                let c = if lower & (1 << (i % 32)) != 0 { c.to_ascii_lowercase() } else { *c };
                format!("{c}{sep}")
            })
            .collect();
        prop_assert_eq!(RecoveryCode::parse(&typed).expect("parses"), code);
    }

    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), text in "\\PC{0,64}",
                                    point in any::<[u8; 32]>()) {
        let _ = AnySecret::parse(&bytes);
        let _ = SecretV1::parse(&bytes);
        let _ = OprfQuery::parse(&bytes);
        let _ = OprfResult::parse(&bytes);
        let _ = RestoreProof::parse(&bytes);
        let _ = RecoveryCode::parse(&text);
        let _ = RecoveryCode::parse(&String::from_utf8_lossy(&bytes));
        if let Ok(blinded) = BlindedElement::from_bytes(&point) {
            prop_assert_eq!(blinded.to_bytes(), point);
            let jid = BareJid::parse("alice@example.test").expect("valid");
            let _ = evaluate(&SEED, &jid, &blinded).expect("any valid element evaluates");
        }
        let _ = EvaluatedElement::from_bytes(&point);
    }
}
