//! Fuzz target: keyward's peer-data value parsers besides elements, with their
//! normalisation properties: bare JIDs (normal form parses back to itself), fingerprints
//! (hex and display forms), and the signed envelope inside a sealed message (re-encodes
//! to what parses back the same; the replay cache refuses it a second time).
#![no_main]

use keyward_proto::{BareJid, Envelope, Fingerprint, IdentityPublic, MemoryReplayCache, ReplayCache};
use libfuzzer_sys::fuzz_target;

fn jids(text: &str) {
    let parsed = BareJid::parse(text);
    if let Ok(jid) = &parsed {
        let again = BareJid::parse(jid.as_str()).expect("a normal form parses");
        assert_eq!(&again, jid, "the normal form of {text:?} is not stable");
        let joined = match jid.local() {
            Some(local) => format!("{local}@{}", jid.domain()),
            None => jid.domain().to_owned(),
        };
        assert_eq!(joined, jid.as_str());
        assert!(!jid.domain().is_empty() && !jid.domain().ends_with('.'));
    }
    if let Ok(full) = BareJid::from_full(text) {
        assert_eq!(BareJid::parse(full.as_str()).as_ref(), Ok(&full), "from_full gave an unstable form");
        if let Ok(jid) = &parsed {
            assert_eq!(jid, &full, "parse and from_full disagree on a bare JID");
        }
    } else {
        assert!(parsed.is_err(), "from_full refuses {text:?}, which parse accepts");
    }
}

fn fingerprints(text: &str) {
    if let Ok(fp) = Fingerprint::from_hex(text) {
        assert_eq!(Fingerprint::from_hex(&fp.to_hex()).ok(), Some(fp));
        assert_eq!(Fingerprint::from_hex(&fp.to_string()).ok(), Some(fp));
    }
}

fn envelope(data: &[u8]) {
    let Ok(envelope) = Envelope::from_inner(data) else { return };
    let inner = envelope.to_inner().expect("a parsed envelope re-encodes");
    assert_eq!(Envelope::from_inner(&inner).ok().as_ref(), Some(&envelope));
    let mut cache = MemoryReplayCache::default();
    assert_eq!(cache.admit(&envelope.from, &envelope.msg_id, envelope.ts_ms), Ok(()));
    assert!(cache.admit(&envelope.from, &envelope.msg_id, envelope.ts_ms).is_err(), "a replay was accepted");
}

fn keys(data: &[u8]) {
    let Some((key, rest)) = data.split_first_chunk::<32>() else { return };
    let Ok(ik) = IdentityPublic::from_bytes(key) else { return };
    if let Some((sig, message)) = rest.split_first_chunk::<64>() {
        let _ = ik.verify(message, sig);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        jids(text);
        fingerprints(text);
    }
    envelope(data);
    keys(data);
});
