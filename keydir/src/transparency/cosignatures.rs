//! Auditors' cosignatures: checking one an auditor posts against the stored head it cosigns, and appending the newest ones to the head keydir serves.
//!
//! A cosignature counts only if its key (name and key ID) is a configured auditor's and its
//! C2SP tlog-cosignature/v1 signature verifies over the stored head's text. Stored lines are
//! checked again before they are served: the database is not trusted to hold only good ones.

use keyward_proto::transparency::heads::cosignature::MAX_FUTURE_SECS;
use keyward_proto::transparency::heads::note::NoteSignature;
use keyward_proto::transparency::heads::{SignedNote, VerifierKey};

/// Why a cosignature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not one signature line.
    #[error("not a signature line: {0}")]
    Malformed(String),
    /// Its key is not a configured auditor's.
    #[error("{0}")]
    UnknownAuditor(String),
    /// It does not verify over the head, or is dated too far ahead.
    #[error("{0}")]
    Invalid(String),
}

/// A posted line, parsed, with the configured auditor key that made it.
pub struct Identified<'a> {
    /// The parsed line.
    pub signature: NoteSignature,
    /// The auditor's key.
    pub key: &'a VerifierKey,
    /// The line without a newline.
    pub line: String,
}

/// Parses a posted signature line (a final newline is allowed) and finds its auditor.
pub fn identify<'a>(auditors: &'a [VerifierKey], line: &str) -> Result<Identified<'a>, Refused> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    if line.contains('\n') {
        return Err(Refused::Malformed("one line only".into()));
    }
    let signature = NoteSignature::parse(line).map_err(|err| Refused::Malformed(err.to_string()))?;
    let key =
        auditors.iter().find(|key| key.name() == signature.name && key.id() == signature.key_id).ok_or_else(|| {
            Refused::UnknownAuditor(format!("{} with this key ID is not a configured auditor", signature.name))
        })?;
    Ok(Identified { signature, key, line: line.to_owned() })
}

/// Checks `identified` over the stored head `head_note` at time `now` (seconds since the Unix
/// epoch): its timestamp if it verifies and is at most [`MAX_FUTURE_SECS`] ahead.
pub fn verify(identified: &Identified<'_>, head_note: &str, now: u64) -> Result<u64, Refused> {
    let invalid = || Refused::Invalid("the cosignature does not verify over the head of this size".into());
    let mut note = SignedNote::parse(head_note.as_bytes()).map_err(|_| invalid())?;
    note.add_signature(identified.signature.clone()).map_err(|_| invalid())?;
    let verified = note.verify(core::slice::from_ref(identified.key)).map_err(|_| invalid())?;
    let timestamp = verified.first().and_then(|v| v.timestamp).ok_or_else(invalid)?;
    if timestamp > now.saturating_add(MAX_FUTURE_SECS) {
        return Err(Refused::Invalid(format!("the cosignature is dated more than {MAX_FUTURE_SECS} s ahead")));
    }
    Ok(timestamp)
}

/// The head's note with the stored cosignature `lines` appended that still verify with a
/// configured auditor's key (at most one per key: the first given), up to the note's limit.
pub fn cosigned(auditors: &[VerifierKey], head_note: &str, lines: &[String]) -> String {
    let Ok(mut note) = SignedNote::parse(head_note.as_bytes()) else { return head_note.to_owned() };
    let mut used: Vec<&VerifierKey> = Vec::new();
    for line in lines {
        let Ok(identified) = identify(auditors, line) else { continue };
        if used.iter().any(|key| std::ptr::eq(*key, identified.key))
            || verify(&identified, head_note, u64::MAX).is_err()
        {
            continue;
        }
        if note.add_signature(identified.signature).is_err() {
            break;
        }
        used.push(identified.key);
    }
    note.encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_proto::transparency::heads::cosignature::cosign;
    use keyward_proto::transparency::heads::{CosignaturePolicy, KeyType, NoteSigner};

    fn head() -> (NoteSigner, SignedNote) {
        let log = NoteSigner::new("keyward/example.org", KeyType::Ed25519, &[1; 32]).expect("signer");
        let text = "keyward/example.org\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let note = SignedNote::sign(text, &log).expect("sign");
        (log, note)
    }

    fn auditor(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, KeyType::Cosignature, &[seed; 32]).expect("signer")
    }

    #[test]
    fn a_configured_auditors_cosignature_is_accepted_and_served() {
        let (_, note) = head();
        let (a, b) = (auditor("a.example", 2), auditor("b.example", 3));
        let auditors = [a.verifier().clone()];
        let line = cosign(&a, &note, 1_000).expect("cosign").encode();
        let identified = identify(&auditors, &line).expect("identified");
        assert_eq!(verify(&identified, &note.encode(), 1_000), Ok(1_000));
        // Another auditor's, a wrong head, a time too far ahead, a mangled line.
        let other = cosign(&b, &note, 1_000).expect("cosign").encode();
        assert!(matches!(identify(&auditors, &other), Err(Refused::UnknownAuditor(_))));
        let (log, _) = head();
        let wrong = SignedNote::sign("keyward/example.org\n2\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", &log)
            .expect("sign")
            .encode();
        assert!(matches!(verify(&identified, &wrong, 1_000), Err(Refused::Invalid(_))));
        assert!(matches!(verify(&identified, &note.encode(), 1_000 - MAX_FUTURE_SECS - 1), Err(Refused::Invalid(_))));
        assert!(matches!(identify(&auditors, "not a line"), Err(Refused::Malformed(_))));
        assert!(matches!(identify(&auditors, &format!("{line}{line}")), Err(Refused::Malformed(_))));
        // Served: the good line once, a forged one dropped; a client's policy counts it.
        let mut forged = cosign(&a, &note, 2_000).expect("cosign");
        forged.signature[20] ^= 1;
        let served = cosigned(&auditors, &note.encode(), &[forged.encode(), line.clone(), line, other]);
        let served = SignedNote::parse(served.as_bytes()).expect("parses");
        assert_eq!(served.signatures().len(), 2);
        let policy = CosignaturePolicy { auditors: auditors.to_vec(), required: 1, max_age_secs: 60 };
        assert_eq!(policy.check(&served, 1_010).expect("cosigned"), [("a.example".to_owned(), 1_000)]);
    }
}
