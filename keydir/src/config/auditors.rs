//! `KEYWARD_TRANSPARENCY_AUDITORS`: the auditors' cosignature verifier keys, parsed and checked.

use crate::Error;
use keyward_proto::transparency::heads::note::MAX_SIGNATURES;
use keyward_proto::transparency::heads::{KeyType, VerifierKey};

/// The most auditors: a served head carries keydir's signature and one line per auditor, and a
/// signed note has at most [`MAX_SIGNATURES`] lines.
pub const MAX_AUDITORS: usize = MAX_SIGNATURES - 1;

/// The verifier keys in `text`, separated by commas or white space: each of type `0x04`, no two
/// with one name and key ID, at most [`MAX_AUDITORS`].
pub fn parse(text: &str) -> Result<Vec<VerifierKey>, Error> {
    let mut keys: Vec<VerifierKey> = Vec::new();
    for item in text.split(|c: char| c == ',' || c.is_whitespace()).filter(|item| !item.is_empty()) {
        let key = VerifierKey::parse(item)
            .map_err(|err| Error::Config(format!("KEYWARD_TRANSPARENCY_AUDITORS: {item:?}: {err}")))?;
        if key.kind() != KeyType::Cosignature {
            return Err(Error::Config(format!(
                "KEYWARD_TRANSPARENCY_AUDITORS: {item:?} is not a cosignature key (type 0x04)"
            )));
        }
        if keys.iter().any(|k| k.name() == key.name() && k.id() == key.id()) {
            return Err(Error::Config(format!("KEYWARD_TRANSPARENCY_AUDITORS: {item:?} is given twice")));
        }
        keys.push(key);
    }
    if keys.len() > MAX_AUDITORS {
        return Err(Error::Config(format!("KEYWARD_TRANSPARENCY_AUDITORS: at most {MAX_AUDITORS} auditors")));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_proto::transparency::heads::NoteSigner;

    fn key(name: &str, seed: u8, kind: KeyType) -> String {
        NoteSigner::new(name, kind, &[seed; 32]).expect("signer").verifier().to_string()
    }

    #[test]
    fn keys_are_separated_by_commas_or_white_space_and_must_be_cosignature_keys() {
        let (a, b) = (key("a.example", 1, KeyType::Cosignature), key("b.example", 2, KeyType::Cosignature));
        assert!(parse("").expect("none").is_empty());
        let parsed = parse(&format!(" {a},{b}\n")).expect("two");
        assert_eq!(parsed.iter().map(|k| k.name()).collect::<Vec<_>>(), ["a.example", "b.example"]);
        assert_eq!(parse(&format!("{a} \t{b}")).expect("two").len(), 2);
        assert!(parse(&key("log.example", 3, KeyType::Ed25519)).is_err(), "a type 0x01 key");
        assert!(parse(&format!("{a},{a}")).is_err(), "twice");
        assert!(parse("a.example+00000000+BAAA").is_err(), "malformed");
        let many: Vec<String> =
            (0..16u8).map(|i| key(&format!("a{i}.example"), i + 10, KeyType::Cosignature)).collect();
        assert!(parse(&many.join(",")).is_err(), "16 auditors");
        assert_eq!(parse(&many[..15].join(",")).expect("15").len(), 15);
    }
}
