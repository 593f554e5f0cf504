//! Tests of the version 1 secret blob: sealing and opening with the passphrase and OPRF output or the recovery code, resealing, and refusals.

use super::*;
use crate::restore::oprf::{OprfSeed, blind, evaluate, finalize};

const WEAK: KdfPolicy = KdfPolicy::danger_accept_weak_for_tests();
const PARAMS: KdfParams = KdfParams::INSECURE_TEST_ONLY;

fn alice() -> BareJid {
    BareJid::parse("alice@example.test").expect("valid")
}

fn bob() -> BareJid {
    BareJid::parse("bob@example.test").expect("valid")
}

/// The whole OPRF exchange, as client and keydir run it.
fn oprf(seed: &OprfSeed, jid: &BareJid, passphrase: &[u8]) -> OprfOutput {
    let (state, blinded) = blind(passphrase).expect("blinds");
    finalize(state, &evaluate(seed, jid, &blinded).expect("evaluates")).expect("finalizes")
}

struct Fixture {
    seed: OprfSeed,
    keys: KeyPair,
    code: RecoveryCode,
    blob: SecretV1,
}

fn sealed() -> Fixture {
    let seed = OprfSeed::generate().expect("rng");
    let keys = KeyPair::generate().expect("rng");
    let code = RecoveryCode::generate().expect("rng");
    let out = oprf(&seed, &alice(), b"correct horse");
    let blob = SecretV1::seal(&keys, &alice(), b"correct horse", &out, &code, PARAMS).expect("seals");
    Fixture { seed, keys, code, blob }
}

fn same_keys(a: &KeyPair, b: &KeyPair) {
    assert_eq!(a.identity_public(), b.identity_public());
    assert_eq!(a.encryption_public(), b.encryption_public());
}

#[test]
fn round_trip_through_xml_with_the_passphrase_and_with_the_recovery_code() {
    let f = sealed();
    let xml = f.blob.to_xml();
    assert!(xml.len() < limits::SECRET_BYTES);
    let parsed = SecretV1::parse(xml.as_bytes()).expect("parses");
    assert_eq!(parsed, f.blob);
    let out = oprf(&f.seed, &alice(), b"correct horse");
    let opened = parsed.open_with_passphrase(b"correct horse", &out, &alice(), &WEAK).expect("opens");
    same_keys(opened.keys(), &f.keys);
    let typed = RecoveryCode::parse(&f.code.to_grouped().to_lowercase()).expect("parses");
    same_keys(parsed.open_with_recovery(&typed, &alice()).expect("opens").keys(), &f.keys);
}

#[test]
fn a_wrong_passphrase_fails() {
    let f = sealed();
    let out = oprf(&f.seed, &alice(), b"wrong horse");
    assert_eq!(f.blob.open_with_passphrase(b"wrong horse", &out, &alice(), &WEAK).err(), Some(Error::Decrypt));
    // The right OPRF output with the wrong passphrase (and the reverse) fails too: both count.
    let right = oprf(&f.seed, &alice(), b"correct horse");
    assert_eq!(f.blob.open_with_passphrase(b"wrong horse", &right, &alice(), &WEAK).err(), Some(Error::Decrypt));
    assert_eq!(f.blob.open_with_passphrase(b"correct horse", &out, &alice(), &WEAK).err(), Some(Error::Decrypt));
}

#[test]
fn the_right_passphrase_without_keydirs_key_fails() {
    let f = sealed();
    // A database dump without the seed: the attacker must invent a seed.
    let guessed_seed = OprfSeed::generate().expect("rng");
    let out = oprf(&guessed_seed, &alice(), b"correct horse");
    assert_eq!(f.blob.open_with_passphrase(b"correct horse", &out, &alice(), &WEAK).err(), Some(Error::Decrypt));
    // The right seed but another account's key (a keydir evaluating for the wrong JID).
    let out = oprf(&f.seed, &bob(), b"correct horse");
    assert_eq!(f.blob.open_with_passphrase(b"correct horse", &out, &alice(), &WEAK).err(), Some(Error::Decrypt));
}

#[test]
fn a_wrong_recovery_code_or_account_fails() {
    let f = sealed();
    let other = RecoveryCode::generate().expect("rng");
    assert_eq!(f.blob.open_with_recovery(&other, &alice()).err(), Some(Error::Decrypt));
    // The slot keys are bound to the JID: bob cannot be handed alice's blob.
    assert_eq!(f.blob.open_with_recovery(&f.code, &bob()).err(), Some(Error::Decrypt));
    let out = oprf(&f.seed, &bob(), b"correct horse");
    assert_eq!(f.blob.open_with_passphrase(b"correct horse", &out, &bob(), &WEAK).err(), Some(Error::Decrypt));
}

#[test]
fn tampering_with_any_field_fails() {
    let f = sealed();
    let out = oprf(&f.seed, &alice(), b"correct horse");
    let open = |blob: &SecretV1| blob.open_with_passphrase(b"correct horse", &out, &alice(), &WEAK).err();
    let mut b = f.blob.clone();
    b.ct[5] ^= 1;
    assert_eq!(open(&b), Some(Error::Decrypt));
    let mut b = f.blob.clone();
    b.nonce[0] ^= 1;
    assert_eq!(open(&b), Some(Error::Decrypt));
    let mut b = f.blob.clone();
    b.passphrase.ct[20] ^= 1;
    assert_eq!(open(&b), Some(Error::Decrypt));
    let mut b = f.blob.clone();
    b.passphrase.salt[0] ^= 1;
    assert_eq!(open(&b), Some(Error::Decrypt));
    let mut b = f.blob.clone();
    b.recovery.ct[0] ^= 1;
    assert_eq!(b.open_with_recovery(&f.code, &alice()).err(), Some(Error::Decrypt));
    // Swapping the slots does not open either.
    let mut b = f.blob.clone();
    core::mem::swap(&mut b.passphrase, &mut b.recovery);
    assert_eq!(open(&b), Some(Error::Decrypt));
    assert_eq!(b.open_with_recovery(&f.code, &alice()).err(), Some(Error::Decrypt));
}

#[test]
fn weakened_parameters_are_refused_before_any_work() {
    let f = sealed();
    let out = oprf(&f.seed, &alice(), b"correct horse");
    assert!(matches!(
        f.blob.open_with_passphrase(b"correct horse", &out, &alice(), &KdfPolicy::STRICT),
        Err(Error::KdfParams { .. })
    ));
    assert_eq!(f.blob.params(), &PARAMS);
}

#[test]
fn reseal_changes_the_passphrase_and_keeps_the_recovery_code() {
    let f = sealed();
    let old = oprf(&f.seed, &alice(), b"correct horse");
    let opened = f.blob.open_with_passphrase(b"correct horse", &old, &alice(), &WEAK).expect("opens");
    let new = oprf(&f.seed, &alice(), b"battery staple");
    let resealed = f.blob.reseal_passphrase(&opened, &alice(), b"battery staple", &new, PARAMS).expect("reseals");
    let resealed = SecretV1::parse(resealed.to_xml().as_bytes()).expect("parses");
    assert_eq!(resealed.recovery, f.blob.recovery, "the recovery slot is kept as it was");
    assert_ne!(resealed.passphrase.salt, f.blob.passphrase.salt, "a fresh salt");
    same_keys(resealed.open_with_passphrase(b"battery staple", &new, &alice(), &WEAK).expect("opens").keys(), &f.keys);
    same_keys(resealed.open_with_recovery(&f.code, &alice()).expect("opens").keys(), &f.keys);
    assert_eq!(
        resealed.open_with_passphrase(b"correct horse", &old, &alice(), &WEAK).err(),
        Some(Error::Decrypt),
        "the old passphrase no longer opens it"
    );
    // Forgotten passphrase: open with the recovery code, then set a new passphrase.
    let recovered = resealed.open_with_recovery(&f.code, &alice()).expect("opens");
    let third = oprf(&f.seed, &alice(), b"third");
    let again = resealed.reseal_passphrase(&recovered, &alice(), b"third", &third, PARAMS).expect("reseals");
    same_keys(again.open_with_passphrase(b"third", &third, &alice(), &WEAK).expect("opens").keys(), &f.keys);
}

#[test]
fn reseal_refuses_a_data_key_of_another_blob() {
    let f = sealed();
    let g = sealed();
    let out = oprf(&g.seed, &alice(), b"correct horse");
    let other = g.blob.open_with_passphrase(b"correct horse", &out, &alice(), &WEAK).expect("opens");
    assert_eq!(f.blob.reseal_passphrase(&other, &alice(), b"x", &out, PARAMS).err(), Some(Error::Decrypt));
    assert_eq!(f.blob.reseal_recovery(&other, &alice(), &f.code).err(), Some(Error::Decrypt));
}

#[test]
fn reseal_recovery_replaces_the_code() {
    let f = sealed();
    let opened = f.blob.open_with_recovery(&f.code, &alice()).expect("opens");
    let code = RecoveryCode::generate().expect("rng");
    let resealed = f.blob.reseal_recovery(&opened, &alice(), &code).expect("reseals");
    same_keys(resealed.open_with_recovery(&code, &alice()).expect("opens").keys(), &f.keys);
    assert_eq!(resealed.open_with_recovery(&f.code, &alice()).err(), Some(Error::Decrypt));
    assert_eq!(resealed.passphrase, f.blob.passphrase);
}

#[test]
fn a_v0_blob_still_opens_through_the_unified_entry_point() {
    let keys = KeyPair::generate().expect("rng");
    let v0 = SecretBlob::seal(&keys, &alice(), b"correct horse", PARAMS).expect("seals");
    let xml = v0.to_xml();
    let AnySecret::V0(parsed) = AnySecret::parse(xml.as_bytes()).expect("parses") else {
        panic!("a blob without v is version 0");
    };
    assert_eq!(parsed, v0);
    same_keys(&parsed.open(b"correct horse", &alice(), &WEAK).expect("opens"), &keys);
    assert_eq!(AnySecret::V0(parsed).to_xml(), xml, "written back unchanged");

    // ... and migrates to version 1 with the keys it held.
    let seed = OprfSeed::generate().expect("rng");
    let out = oprf(&seed, &alice(), b"correct horse");
    let code = RecoveryCode::generate().expect("rng");
    let v1 = SecretV1::seal(&keys, &alice(), b"correct horse", &out, &code, PARAMS).expect("seals");
    let AnySecret::V1(parsed) = AnySecret::parse(AnySecret::from(v1.clone()).to_xml().as_bytes()).expect("parses")
    else {
        panic!("v='1' is version 1");
    };
    assert_eq!(parsed, v1);
}

#[test]
fn versions_do_not_mix() {
    let f = sealed();
    let xml = f.blob.to_xml();
    // The version 0 reader refuses a version 1 blob cleanly (it has no kdf on <secret/>).
    assert_eq!(SecretBlob::parse(xml.as_bytes()).err(), Some(Error::Missing("kdf")));
    assert_eq!(AnySecret::parse(xml.replace("v='1'", "v='2'").as_bytes()).err(), Some(Error::InvalidValue("v")));
    assert_eq!(AnySecret::parse(xml.replace("v='1'", "v='0'").as_bytes()).err(), Some(Error::InvalidValue("v")));
    // A version 0 blob's ciphertext under a version 1 data key is refused by its domain.
    let keys = KeyPair::generate().expect("rng");
    let mut random = |b: &mut [u8]| {
        b.fill(7);
        Ok(())
    };
    let out = oprf(&f.seed, &alice(), b"correct horse");
    let v1 = SecretV1::seal_with(&keys, &alice(), b"correct horse", &out, &f.code, PARAMS, &mut random).expect("seals");
    let data_key = Zeroizing::new([7u8; 32]);
    let v0_plain = [b"keyward/secret/v0\x00\x00\x12alice@example.test".as_slice(), &[0u8; 64]].concat();
    let ct = cipher(&data_key).encrypt(&v1.nonce.into(), v0_plain.as_slice()).expect("encrypts");
    let mixed = SecretV1 { ct, ..v1 };
    assert_eq!(mixed.open_with_recovery(&f.code, &alice()).err(), Some(Error::InvalidValue("secret blob domain")));
}

#[test]
fn malformed_blobs_are_typed_errors() {
    let f = sealed();
    let xml = f.blob.to_xml();
    for (bad, check) in [
        (xml.replace("argon2id+oprf", "argon2id"), (|e| *e == Error::InvalidValue("kdf")) as crate::error::ErrorCheck),
        (xml.replace("hkdf-sha256", "none"), |e| *e == Error::InvalidValue("kdf")),
        (xml.replace("type='recovery'", "type='passphrase'"), |e| *e == Error::InvalidValue("repeated slot")),
        (xml.replace("type='recovery'", "type='other'"), |e| *e == Error::Missing("recovery")),
        (xml.replace(" m='64'", ""), |e| *e == Error::Missing("m")),
        (xml.replace("m='64'", "m='-1'"), |e| *e == Error::InvalidValue("m")),
        (xml.replacen("==</salt>", "=!</salt>", 1), |e| *e == Error::Base64 { field: "salt" }),
        (xml.replacen("<ct>", "<ct>AAAA", 1), |e| matches!(e, Error::Length { field: "slot ct", .. })),
    ] {
        let err = SecretV1::parse(bad.as_bytes()).expect_err("refused");
        assert!(check(&err), "{bad}: {err:?}");
    }
    let at = xml.rfind("<nonce>").expect("the keys' nonce");
    let three = format!("{}<slot type='extra' kdf='x'/>{}", &xml[..at], &xml[at..]);
    assert_eq!(SecretV1::parse(three.as_bytes()).err(), Some(Error::InvalidValue("slot")));
    // A keys ciphertext under the byte limit whose element is over the 4 KiB limit.
    let at = xml.rfind("<ct>").expect("the keys' ct") + "<ct>".len();
    let huge = format!("{}{}{}", &xml[..at], "A".repeat(4000), &xml[at..]);
    assert_eq!(
        SecretV1::parse(huge.as_bytes()).err(),
        Some(Error::TooLarge { what: "secret blob", limit: limits::SECRET_BYTES })
    );
}

#[test]
fn debug_never_prints_secrets() {
    let f = sealed();
    let opened = f.blob.open_with_recovery(&f.code, &alice()).expect("opens");
    let shown = format!("{opened:?}");
    assert!(shown.contains(&f.keys.fingerprint().to_hex()));
    assert!(!shown.contains(&hex::encode(opened.data_key.as_ref())));
}
