//! Benchmark of a client's head check: a signed, cosigned head (keydir's signature, one auditor's
//! cosignature, the epoch line's inclusion proof) plus the consistency proof from a head half the
//! log's size, at 1,000 and 1,000,000 epochs; and keydir building that consistency proof.
//! Anchor: one bare Ed25519 verification, measured in the same run.
#![allow(missing_docs)] // criterion's macros generate undocumented functions

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey, Verifier};
use keyward_proto::transparency::heads::cosignature::cosign;
use keyward_proto::transparency::heads::{
    CosignaturePolicy, EpochLeaf, EpochLog, Head, KeyType, NoteSigner, VerifiedHead,
};
use std::hint::black_box;

const ORIGIN: &str = "keyward/bench.example";

fn heads(c: &mut Criterion) {
    let mut group = c.benchmark_group("heads");
    let anchor = SigningKey::from_bytes(&[9; 32]);
    let message = [0u8; 200];
    let signature = anchor.sign(&message);
    group.bench_function("anchor_ed25519_verify", |b| {
        b.iter(|| anchor.verifying_key().verify(black_box(&message), &signature).expect("valid"))
    });

    let keydir = NoteSigner::new(ORIGIN, KeyType::Ed25519, &[1; 32]).expect("signer");
    let auditor = NoteSigner::new("auditor.bench.example", KeyType::Cosignature, &[2; 32]).expect("signer");
    let policy = CosignaturePolicy { auditors: vec![auditor.verifier().clone()], required: 1, max_age_secs: 3600 };
    for size in [1_000u64, 1_000_000] {
        let leaves = (1..=size).map(|e| EpochLeaf { epoch: e, akd_root: [(e % 251) as u8; 32] });
        let log = EpochLog::from_leaf_hashes(leaves.map(|leaf| leaf.hash()));
        let last = EpochLeaf { epoch: size, akd_root: [(size % 251) as u8; 32] };
        let head = Head::new(ORIGIN, size, log.root(size).expect("root"), last).expect("head");
        let mut note = head.sign(&keydir).expect("sign");
        note.add_signature(cosign(&auditor, &note, 1_000).expect("cosign")).expect("room");
        let note = note.encode();
        let last_leaf_proof = log.inclusion_proof(size - 1, size).expect("proof");
        let old_size = size / 2 + 1;
        let old = Head::new(ORIGIN, old_size, log.root(old_size).expect("root"), last).expect("head");
        let consistency = log.consistency_proof(old_size, size).expect("proof");

        group.bench_with_input(BenchmarkId::new("client_verify_head_and_consistency", size), &size, |b, _| {
            b.iter(|| {
                let verified = VerifiedHead::check(
                    black_box(note.as_bytes()),
                    ORIGIN,
                    keydir.verifier(),
                    &last_leaf_proof,
                    &policy,
                    1_100,
                )
                .expect("verified");
                verified.head.check_extends(&old, &consistency).expect("consistent")
            })
        });
        group.bench_with_input(BenchmarkId::new("keydir_consistency_proof", size), &size, |b, _| {
            b.iter(|| log.consistency_proof(black_box(old_size), size).expect("proof"))
        });
    }
    group.finish();
}

criterion_group!(benches, heads);
criterion_main!(benches);
