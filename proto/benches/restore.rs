//! Benchmark of the guess-limited restore: opening a version 1 blob (client blind, keydir
//! evaluate, client finalize, Argon2id with the default parameters, HKDF, two unwraps) beside
//! opening a version 0 blob (Argon2id, one unwrap) in the same run, its anchor.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_proto::elements::{OprfQuery, OprfResult};
use keyward_proto::restore::{
    AnySecret, OprfSeed, RecoveryCode, RestoreChallenge, SecretV1, blind, evaluate, finalize,
};
use keyward_proto::{BareJid, KdfParams, KdfPolicy, KeyPair, SecretBlob, XmlElement};
use std::hint::black_box;

const PASSPHRASE: &[u8] = b"correct horse";

fn restore(c: &mut Criterion) {
    let mut group = c.benchmark_group("restore");
    group.sample_size(10);
    let alice = BareJid::parse("alice@example.test").expect("valid");
    let keys = KeyPair::generate().expect("rng");
    let params = KdfParams::DEFAULT;

    let v0 = SecretBlob::seal(&keys, &alice, PASSPHRASE, params).expect("seals").to_xml();
    group.bench_function("v0_open_default_kdf", |b| {
        b.iter(|| {
            SecretBlob::parse(black_box(v0.as_bytes()))
                .expect("parses")
                .open(PASSPHRASE, &alice, &KdfPolicy::STRICT)
                .expect("opens")
        })
    });

    let seed = OprfSeed::generate().expect("rng");
    let (state, blinded) = blind(PASSPHRASE).expect("blinds");
    let output = finalize(state, &evaluate(&seed, &alice, &blinded).expect("evaluates")).expect("finalizes");
    let code = RecoveryCode::generate().expect("rng");
    let v1 = SecretV1::seal(&keys, &alice, PASSPHRASE, &output, &code, params).expect("seals").to_xml();
    group.bench_function("v1_open_default_kdf", |b| {
        b.iter(|| {
            // Client: blind, and the request on the wire.
            let (state, blinded) = blind(PASSPHRASE).expect("blinds");
            let query = OprfQuery { blinded }.to_xml();
            // keydir: parse, evaluate with the account's key, answer with a challenge.
            let query = OprfQuery::parse(black_box(query.as_bytes())).expect("parses");
            let evaluated = evaluate(&seed, &alice, &query.blinded).expect("evaluates");
            let answer =
                OprfResult { challenge: RestoreChallenge::generate().expect("rng"), evaluated, left: None }.to_xml();
            // Client: finalize, then open the blob.
            let answer = OprfResult::parse(black_box(answer.as_bytes())).expect("parses");
            let output = finalize(state, &answer.evaluated).expect("finalizes");
            let AnySecret::V1(blob) = AnySecret::parse(black_box(v1.as_bytes())).expect("parses") else {
                unreachable!("sealed as version 1")
            };
            blob.open_with_passphrase(PASSPHRASE, &output, &alice, &KdfPolicy::STRICT).expect("opens")
        })
    });
    group.finish();
}

criterion_group!(benches, restore);
criterion_main!(benches);
