//! C2SP tlog-cosignature/v1 (<https://c2sp.org/tlog-cosignature>): an auditor's signature over
//! a checkpoint with the time it checked it, and the client's rule of k fresh cosignatures.
//!
//! The key type is `0x04`. The signed message is `cosignature/v1\ntime <t>\n` followed by the
//! checkpoint's note text, `<t>` the decimal seconds since the Unix epoch; the signature bytes
//! after the key ID are the timestamp as a big-endian u64 and the 64 byte Ed25519 signature.
//! Proto reads no clock: the auditor passes the time it signs at, the client the time it checks at.

use super::note::{KeyType, NoteSignature, NoteSigner, SignedNote, VerifierKey};
use crate::error::{Error, Result};

/// How far in the future a cosignature's time may be before it is not counted (clock skew).
pub const MAX_FUTURE_SECS: u64 = 300;

/// The largest timestamp the specification allows (2^63 - 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// The message a cosignature signs: the header line, the time line, then the whole note text
/// (extension lines included).
pub fn message(timestamp: u64, checkpoint_text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_text}").into_bytes()
}

/// Cosigns a note's text at `timestamp` with a type `0x04` key: the signature line to add with
/// [`SignedNote::add_signature`]. The auditor calls it only on a head it has verified.
pub fn cosign(signer: &NoteSigner, note: &SignedNote, timestamp: u64) -> Result<NoteSignature> {
    if signer.verifier().kind() != KeyType::Cosignature {
        return Err(Error::Note("cosignatures need a type 0x04 key"));
    }
    if timestamp > MAX_TIMESTAMP {
        return Err(Error::Note("a cosignature time is at most 2^63 - 1"));
    }
    let signature = signer.sign_raw(&message(timestamp, note.text()));
    let mut bytes = timestamp.to_be_bytes().to_vec();
    bytes.extend_from_slice(&signature);
    Ok(signer.signature_line(bytes))
}

/// Checks a cosignature's bytes (timestamp and signature) over `text`; its timestamp if valid.
pub(crate) fn check(key: &VerifierKey, text: &str, bytes: &[u8]) -> Option<u64> {
    let (time, signature) = bytes.split_first_chunk::<8>()?;
    let signature: &[u8; 64] = signature.try_into().ok()?;
    let timestamp = u64::from_be_bytes(*time);
    if timestamp > MAX_TIMESTAMP {
        return None;
    }
    key.check(&message(timestamp, text), signature).then_some(timestamp)
}

/// What a client requires of auditors: `required` valid cosignatures from distinct `auditors`
/// (type `0x04` keys), each made at most `max_age_secs` before the time of the check. The
/// default requires none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CosignaturePolicy {
    /// The auditors' verifier keys.
    pub auditors: Vec<VerifierKey>,
    /// How many fresh cosignatures are needed (0: none, and then no age is known).
    pub required: usize,
    /// The oldest a counted cosignature may be, in seconds.
    pub max_age_secs: u64,
}

impl CosignaturePolicy {
    /// Checks the cosignatures on `note` at time `now` (seconds since the Unix epoch): a
    /// configured auditor's bad signature refuses the note; unknown signers are ignored;
    /// cosignatures older than the maximum age, or more than [`MAX_FUTURE_SECS`] ahead, do not
    /// count. Returns the counted auditors' names and times, newest first.
    pub fn check(&self, note: &SignedNote, now: u64) -> Result<Vec<(String, u64)>> {
        if self.auditors.iter().any(|key| key.kind() != KeyType::Cosignature) {
            return Err(Error::Note("auditor keys must be cosignature keys"));
        }
        let mut fresh: Vec<(String, u64)> = note
            .verify(&self.auditors)?
            .into_iter()
            .filter_map(|v| {
                let time = v.timestamp?;
                let fresh =
                    time <= now.saturating_add(MAX_FUTURE_SECS) && now.saturating_sub(time) <= self.max_age_secs;
                let key = self.auditors.get(v.key)?;
                fresh.then(|| (key.name().to_owned(), time))
            })
            .collect();
        fresh.sort_by_key(|counted| core::cmp::Reverse(counted.1));
        // Two keys under one name count once.
        let mut seen: Vec<String> = Vec::new();
        fresh.retain(|(name, _)| {
            let first = !seen.contains(name);
            seen.push(name.clone());
            first
        });
        if fresh.len() < self.required {
            return Err(Error::Cosignatures { valid: fresh.len(), required: self.required });
        }
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    // A real checkpoint of the arche2025h1 staging CT log with witness cosignatures, published
    // in a public repository's tests; remora.n621.de's line is a tlog-cosignature/v1 (type 0x04)
    // and the log's `ui8G...` line an Ed25519 (type 0x01) note signature.
    const ARCHE: &str = "arche2025h1.staging.ct.transparency.dev\n1432088532\nU7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n\n\
\u{2014} arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=\n\
\u{2014} arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=\n\
\u{2014} transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==\n\
\u{2014} witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==\n\
\u{2014} remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==\n\
\u{2014} witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==\n";
    const ARCHE_LOG_KEY: &str =
        "arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f";
    const REMORA_KEY: &str = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2";
    /// remora.n621.de's timestamp in that line: 0x6a122120.
    const REMORA_TIME: u64 = 0x6a12_2120;

    fn remora_policy(required: usize, max_age_secs: u64) -> CosignaturePolicy {
        CosignaturePolicy { auditors: vec![VerifierKey::parse(REMORA_KEY).expect("key")], required, max_age_secs }
    }

    #[test]
    fn published_cosignature_verifies() {
        let note = SignedNote::parse(ARCHE.as_bytes()).expect("parses");
        note.verify_by(&VerifierKey::parse(ARCHE_LOG_KEY).expect("key")).expect("the log signed");
        let counted = remora_policy(1, 3600).check(&note, REMORA_TIME + 60).expect("cosigned");
        assert_eq!(counted, [("remora.n621.de".to_owned(), REMORA_TIME)]);
    }

    #[test]
    fn published_cosignature_fails_on_other_text() {
        let other = ARCHE.replace("1432088532", "1432088533");
        let note = SignedNote::parse(other.as_bytes()).expect("parses");
        assert!(matches!(remora_policy(1, 3600).check(&note, REMORA_TIME), Err(Error::NoteSignature { .. })));
    }

    #[test]
    fn stale_or_future_cosignatures_do_not_count() {
        let note = SignedNote::parse(ARCHE.as_bytes()).expect("parses");
        let policy = remora_policy(1, 3600);
        assert!(policy.check(&note, REMORA_TIME + 3600).is_ok());
        assert_eq!(policy.check(&note, REMORA_TIME + 3601), Err(Error::Cosignatures { valid: 0, required: 1 }));
        assert!(policy.check(&note, REMORA_TIME - MAX_FUTURE_SECS).is_ok());
        assert_eq!(
            policy.check(&note, REMORA_TIME - MAX_FUTURE_SECS - 1),
            Err(Error::Cosignatures { valid: 0, required: 1 })
        );
        assert_eq!(remora_policy(0, 0).check(&note, u64::MAX).expect("none required"), Vec::new());
    }

    #[test]
    fn round_trip_needs_k_distinct_auditors() {
        let log = NoteSigner::new("keyward/example.org", KeyType::Ed25519, &[1; 32]).expect("signer");
        let auditors: Vec<NoteSigner> = (0..3u8)
            .map(|i| {
                NoteSigner::new(&format!("auditor{i}.example"), KeyType::Cosignature, &[10 + i; 32]).expect("signer")
            })
            .collect();
        let mut note = SignedNote::sign("keyward/example.org\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", &log)
            .expect("sign");
        for (i, auditor) in auditors.iter().take(2).enumerate() {
            note.add_signature(cosign(auditor, &note, 1_000 + i as u64).expect("cosign")).expect("room");
        }
        let policy = |required| CosignaturePolicy {
            auditors: auditors.iter().map(|a| a.verifier().clone()).collect(),
            required,
            max_age_secs: 100,
        };
        let reparsed = SignedNote::parse(note.encode().as_bytes()).expect("parses");
        assert_eq!(
            policy(2).check(&reparsed, 1_050).expect("two"),
            [("auditor1.example".to_owned(), 1_001), ("auditor0.example".to_owned(), 1_000)]
        );
        assert_eq!(policy(3).check(&reparsed, 1_050), Err(Error::Cosignatures { valid: 2, required: 3 }));
        // A cosignature key cannot sign as the log, nor a log key cosign.
        assert!(cosign(&log, &note, 1).is_err());
        assert!(cosign(&auditors[2], &note, MAX_TIMESTAMP + 1).is_err());
        let as_log = CosignaturePolicy { auditors: vec![log.verifier().clone()], required: 0, max_age_secs: 1 };
        assert!(as_log.check(&reparsed, 1).is_err());
        // A tampered timestamp breaks the signature.
        let mut forged = reparsed.clone();
        let mut line = cosign(&auditors[2], &note, 5_000).expect("cosign");
        line.signature[7] ^= 1;
        forged.add_signature(line).expect("room");
        assert!(matches!(policy(1).check(&forged, 5_000), Err(Error::NoteSignature { .. })));
    }

    #[test]
    fn hand_checked_message_and_timestamp_layout() {
        assert_eq!(message(1_727_964_367, "o\n1\nr\n"), b"cosignature/v1\ntime 1727964367\no\n1\nr\n");
        // transparency-dev/formats note_cosigv1_test.go: this signature's time is 1727964367.
        let bytes = STANDARD
            .decode("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==")
            .expect("base64");
        assert_eq!(u64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes")), 1_727_964_367);
        assert_eq!(bytes.len(), 4 + 8 + 64);
    }
}
