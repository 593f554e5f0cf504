//! Benchmarks of sealing, opening, bundle verification and secret opening, each
//! beside the raw primitives it is built from, so the protocol's overhead is visible.
//!
//! "n rcpt" means n recipient keys besides the sender's own copy, which every
//! message also carries: the raw baselines do the same number of agreements.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use ed25519_dalek::{Signer, SigningKey};
use keyward_proto::{
    BareJid, Bundle, Envelope, KdfParams, KdfPolicy, KeyPair, MemoryReplayCache, Recipient, Sealed, SecretBlob,
    VerifiedBundle, XmlElement,
};
use std::hint::black_box;

struct World {
    alice: BareJid,
    bob: BareJid,
    alice_keys: KeyPair,
    bob_keys: KeyPair,
    alice_bundle: VerifiedBundle,
    recipients: Vec<Recipient>,
}

fn world(recipients: usize) -> World {
    let alice = BareJid::parse("alice@example.test").expect("valid");
    let bob = BareJid::parse("bob@example.test").expect("valid");
    let alice_keys = KeyPair::generate().expect("rng");
    let bob_keys = KeyPair::generate().expect("rng");
    let alice_bundle = Bundle::sign(&alice_keys, alice.clone(), 1);
    let mut list = vec![Recipient::from(&Bundle::sign(&bob_keys, bob.clone(), 1))];
    for _ in 1..recipients {
        list.push(Recipient::from(&KeyPair::generate().expect("rng")));
    }
    World { alice, bob, alice_keys, bob_keys, alice_bundle, recipients: list }
}

/// The primitives one message costs: 1 signature, 1 AEAD over the payload, 1 X25519 key
/// pair (the ephemeral key), and per recipient 1 X25519 agreement + 1 HKDF + 1 AEAD of 32
/// bytes (not base64/XML).
fn raw_seal(signing: &SigningKey, body: &[u8], recipient_keys: &[x25519_dalek::PublicKey]) -> usize {
    let sig = signing.sign(body);
    let key = [7u8; 32];
    let ct = XSalsa20Poly1305::new(&key.into()).encrypt(&[1u8; 24].into(), body).expect("encrypts");
    let eph = x25519_dalek::StaticSecret::from(black_box([9u8; 32]));
    let eph_pub = x25519_dalek::PublicKey::from(&eph);
    let mut total = ct.len() + sig.to_bytes().len() + eph_pub.as_bytes().len();
    for pk in recipient_keys {
        let shared = eph.diffie_hellman(pk);
        let mut kek = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, shared.as_bytes()).expand(b"w", &mut kek).expect("length");
        total += XSalsa20Poly1305::new(&kek.into()).encrypt(&[2u8; 24].into(), &key[..]).expect("encrypts").len();
    }
    total
}

fn seal_and_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("message");
    for recipients in [1usize, 2, 10] {
        for body_len in [100usize, 10 * 1024] {
            let w = world(recipients);
            let body = "x".repeat(body_len);
            let envelope =
                Envelope { from: w.alice.clone(), to: w.bob.clone(), ts_ms: 1, msg_id: "m".into(), body: body.clone() };
            let label = format!("{recipients}rcpt/{body_len}B");
            group.throughput(Throughput::Bytes(body_len as u64));
            let others = &w.recipients;
            group.bench_with_input(BenchmarkId::new("seal", &label), &envelope, |b, env| {
                b.iter(|| Sealed::seal(&w.alice_keys, black_box(env), others).expect("seals").to_xml())
            });
            let raw_keys: Vec<x25519_dalek::PublicKey> =
                (0..=recipients).map(|i| x25519_dalek::PublicKey::from([i as u8 + 3; 32])).collect();
            let signing = SigningKey::from_bytes(&[5u8; 32]);
            group.bench_with_input(BenchmarkId::new("raw_seal", &label), body.as_bytes(), |b, body| {
                b.iter(|| raw_seal(&signing, black_box(body), &raw_keys))
            });
            let xml = Sealed::seal(&w.alice_keys, &envelope, others).expect("seals").to_xml();
            group.bench_with_input(BenchmarkId::new("open", &label), &xml, |b, xml| {
                b.iter(|| {
                    let sealed = Sealed::parse(black_box(xml.as_bytes())).expect("parses");
                    sealed
                        .open(
                            &w.bob_keys,
                            &w.bob,
                            &w.alice,
                            w.alice_bundle.identity_key(),
                            &mut MemoryReplayCache::default(),
                        )
                        .expect("opens")
                })
            });
            let verifying = signing.verifying_key();
            let sig = signing.sign(body.as_bytes());
            let ct = XSalsa20Poly1305::new(&[7u8; 32].into()).encrypt(&[1u8; 24].into(), body.as_bytes()).expect("ok");
            let eph_pub = x25519_dalek::PublicKey::from([3u8; 32]);
            let bob_secret = x25519_dalek::StaticSecret::from([4u8; 32]);
            let wrapped =
                XSalsa20Poly1305::new(&[8u8; 32].into()).encrypt(&[2u8; 24].into(), &[7u8; 32][..]).expect("ok");
            group.bench_with_input(BenchmarkId::new("raw_open", &label), &ct, |b, ct| {
                b.iter(|| {
                    let shared = bob_secret.diffie_hellman(&eph_pub);
                    let mut kek = [0u8; 32];
                    hkdf::Hkdf::<sha2::Sha256>::new(None, shared.as_bytes()).expand(b"w", &mut kek).expect("length");
                    // The key unwrap (with a fixed key-encryption key: the one from HKDF would not open it).
                    let key =
                        XSalsa20Poly1305::new(&[8u8; 32].into()).decrypt(&[2u8; 24].into(), &wrapped[..]).expect("ok");
                    black_box((&kek, &key));
                    let pt = XSalsa20Poly1305::new(&[7u8; 32].into()).decrypt(&[1u8; 24].into(), &ct[..]).expect("ok");
                    verifying.verify_strict(&pt, &sig).expect("verifies")
                })
            });
        }
    }
    group.finish();
}

fn bundle_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("bundle");
    let w = world(1);
    let xml = w.alice_bundle.to_xml();
    group.bench_function("parse_and_verify", |b| {
        b.iter(|| Bundle::parse(black_box(xml.as_bytes())).expect("parses").verify_for(&w.alice).expect("verifies"))
    });
    let signing = SigningKey::from_bytes(&[5u8; 32]);
    let message = [0u8; 100];
    let sig = signing.sign(&message);
    let verifying = signing.verifying_key();
    group.bench_function("raw_ed25519_verify", |b| b.iter(|| verifying.verify_strict(black_box(&message), &sig)));
    group.finish();
}

fn secret_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("secret");
    group.sample_size(10);
    let w = world(1);
    let params = KdfParams::DEFAULT;
    let blob = SecretBlob::seal(&w.alice_keys, &w.alice, b"correct horse", params).expect("seals");
    let xml = blob.to_xml();
    group.bench_function("open_default_kdf", |b| {
        b.iter(|| {
            SecretBlob::parse(black_box(xml.as_bytes()))
                .expect("parses")
                .open(b"correct horse", &w.alice, &KdfPolicy::STRICT)
                .expect("opens")
        })
    });
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(params.m_kib, params.t, params.p, Some(32)).expect("valid"),
    );
    group.bench_function("raw_argon2id_default", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            argon.hash_password_into(b"correct horse", &[0u8; 16], &mut out).expect("hashes");
            out
        })
    });
    group.finish();
}

criterion_group!(benches, seal_and_open, bundle_verify, secret_open);
criterion_main!(benches);
