//! The worked example of `docs/protocol.md` section 15.2.7, regenerated and compared byte for byte.
//!
//! keydir's note key has the seed `01 01 .. 01`, the auditor's `02 02 .. 02`; the log
//! `keyward/example.org` holds epochs 1, 2, 3 with akd roots `11..11`, `22..22`, `33..33`.

use super::cosignature::cosign;
use super::gossip::HeadSummary;
use super::log::{EpochLeaf, EpochLog};
use super::note::{KeyType, NoteSigner};
use super::{CosignaturePolicy, Head, VerifiedHead, VerifierKey};
use crate::codec::b64;

const ORIGIN: &str = "keyward/example.org";

struct Example {
    log_key: String,
    auditor_key: String,
    leaf_hashes: Vec<String>,
    roots: Vec<String>,
    consistency_1_3: Vec<String>,
    inclusion_2_3: Vec<String>,
    signed: String,
    gossip: String,
}

fn example() -> Example {
    let log_signer = NoteSigner::new(ORIGIN, KeyType::Ed25519, &[1; 32]).expect("signer");
    let auditor = NoteSigner::new("auditor.example.org", KeyType::Cosignature, &[2; 32]).expect("signer");
    let leaves: Vec<EpochLeaf> = (1..=3u8).map(|e| EpochLeaf { epoch: e.into(), akd_root: [e * 0x11; 32] }).collect();
    let log = EpochLog::from_leaf_hashes(leaves.iter().map(EpochLeaf::hash));
    let head = Head::new(ORIGIN, 3, log.root(3).expect("root"), leaves[2]).expect("head");
    let mut note = head.sign(&log_signer).expect("sign");
    note.add_signature(cosign(&auditor, &note, 1_700_000_000).expect("cosign")).expect("room");
    let hexes = |hashes: &[[u8; 32]]| hashes.iter().map(hex::encode).collect::<Vec<_>>();
    Example {
        log_key: log_signer.verifier().to_string(),
        auditor_key: auditor.verifier().to_string(),
        leaf_hashes: hexes(&leaves.iter().map(EpochLeaf::hash).collect::<Vec<_>>()),
        roots: (1..=3).map(|n| b64(&log.root(n).expect("root"))).collect(),
        consistency_1_3: hexes(&log.consistency_proof(1, 3).expect("proof")),
        inclusion_2_3: hexes(&log.inclusion_proof(2, 3).expect("proof")),
        signed: note.encode(),
        gossip: hex::encode(HeadSummary::of(&head).encode()),
    }
}

const LOG_KEY: &str = "keyward/example.org+4faf8460+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";
const AUDITOR_KEY: &str = "auditor.example.org+83544c8d+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU";
const LEAF_HASHES: [&str; 3] = [
    "f6928cf39fcfdbe3a5ca28c57bff813b31cc48bcf32b8766193aaa4bb2d00c78",
    "20ee624ce47212b5ed478206567a905dfbf99f97a5535f97e68060eda9444267",
    "481ebe058c3174f5765e5c23214feb7dc3cb2f3eb709a9f4f87c551915c7bc77",
];
const ROOTS: [&str; 3] = [
    "9pKM85/P2+OlyijFe/+BOzHMSLzzK4dmGTqqS7LQDHg=",
    "EhIdkygoWDZ7Nq2L+ViLeoKqsyv02Z16d/cygles0RA=",
    "5n5m3gbvoiGSPBjto+D0ODXAvzc1vkyABM2MF/+1uug=",
];
const CONSISTENCY_1_3: [&str; 2] = [
    "20ee624ce47212b5ed478206567a905dfbf99f97a5535f97e68060eda9444267",
    "481ebe058c3174f5765e5c23214feb7dc3cb2f3eb709a9f4f87c551915c7bc77",
];
const INCLUSION_2_3: [&str; 1] = ["12121d93282858367b36ad8bf9588b7a82aab32bf4d99d7a77f7328257acd110"];
const SIGNED: &str = "keyward/example.org
3
5n5m3gbvoiGSPBjto+D0ODXAvzc1vkyABM2MF/+1uug=
keyward-epoch 3 MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM=

\u{2014} keyward/example.org T6+EYI/MTSPjSvGMDl3Q4TU8xED0CEbg4FwFU7W2R1EIBg+tNm71U03tL+mEtKr/A3WosyKgv9luEWkLIevgnxY3uAo=
\u{2014} auditor.example.org g1RMjQAAAABlU/EAfTXifTkmxzdHyY4RE7D0cCb8An3QrqPBILxbkmMnRDAAtQfg0sg/ciT3PwrdOh87iG5aubdH0SX6mK6d6K7JBg==
";
const GOSSIP: &str = "016b3222c00000000000000003e67e66de06efa221923c18eda3e0f43835c0bf3735be4c8004cd8c17ffb5bae8";

#[test]
fn the_spec_example_is_what_the_code_makes() {
    let e = example();
    assert_eq!(e.log_key, LOG_KEY);
    assert_eq!(e.auditor_key, AUDITOR_KEY);
    assert_eq!(e.leaf_hashes, LEAF_HASHES);
    assert_eq!(e.roots, ROOTS);
    assert_eq!(e.consistency_1_3, CONSISTENCY_1_3);
    assert_eq!(e.inclusion_2_3, INCLUSION_2_3);
    assert_eq!(e.signed, SIGNED);
    assert_eq!(e.gossip, GOSSIP);
}

#[test]
fn the_spec_example_verifies_as_a_client_would() {
    let log_key = VerifierKey::parse(LOG_KEY).expect("key");
    let policy = CosignaturePolicy {
        auditors: vec![VerifierKey::parse(AUDITOR_KEY).expect("key")],
        required: 1,
        max_age_secs: 3600,
    };
    let hashes = |hexes: &[&str]| -> Vec<[u8; 32]> {
        hexes.iter().map(|h| hex::decode(h).expect("hex").try_into().expect("32 bytes")).collect()
    };
    let verified =
        VerifiedHead::check(SIGNED.as_bytes(), ORIGIN, &log_key, &hashes(&INCLUSION_2_3), &policy, 1_700_000_100)
            .expect("verified");
    assert_eq!(verified.head.last_leaf().epoch, 3);
    // A client that stored the head of size 1 moves to size 3.
    let old =
        Head::from_text(&format!("{ORIGIN}\n1\n{}\nkeyward-epoch 1 {}\n", ROOTS[0], b64(&[0x11; 32]))).expect("head");
    verified.head.check_extends(&old, &hashes(&CONSISTENCY_1_3)).expect("consistent");
    assert_eq!(hex::encode(HeadSummary::of(&verified.head).encode()), GOSSIP);
}

#[test]
fn the_spec_writes_out_the_same_example() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md");
    let spec = std::fs::read_to_string(&path).expect("docs/protocol.md is readable");
    let start = spec.find("#### 15.2.7 Test vectors").expect("section 15.2.7");
    let section = &spec[start..];
    // The gossip summary is written out in its fields: version, origin tag, size, root.
    let gossip = [&GOSSIP[..2], &GOSSIP[2..10], &GOSSIP[10..26], &GOSSIP[26..]].join(" ");
    let mut values: Vec<&str> = vec![LOG_KEY, AUDITOR_KEY, &gossip];
    values.extend(LEAF_HASHES.iter().chain(&ROOTS).chain(&CONSISTENCY_1_3).chain(&INCLUSION_2_3));
    values.extend(SIGNED.lines().filter(|line| !line.is_empty()));
    for value in values {
        assert!(section.contains(value), "docs/protocol.md section 15.2.7 does not show {value:?}");
    }
}
