//! A client's checks of a `<keys>` answer with proofs: the head first (protocol section 15.2.5), then what the map proves about each item (15.3).

use super::heads::{CosignaturePolicy, Head, VerifiedHead, VerifierKey};
use super::lookup::{ProvenValue, verify_lookup};
use super::value::{MapValue, Revocation};
use crate::elements::{HeadProofs, KeyItem, KeyStatus, XmlElement};
use crate::error::{Error, Result};

/// What a client pins of a directory: the log's origin and keydir's verifier key for its heads,
/// and the map's VRF public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryKeys {
    /// The epoch log's origin.
    pub origin: String,
    /// keydir's head verifier key (C2SP, type `0x01`).
    pub log_key: VerifierKey,
    /// akd's VRF public key.
    pub vrf_key: [u8; 32],
}

/// Steps 1 to 6 of section 15.2.5: the answer's head is signed by the pinned key, its epoch line
/// is the log's last leaf, the cosignature policy holds at `now`, and it extends `stored` (the
/// head verified before, if any) by the served consistency proof. [`Error::Rollback`] and
/// [`Error::Fork`] are the directory caught showing two histories.
pub fn check_head(
    keys: &DirectoryKeys,
    stored: Option<&Head>,
    proofs: &HeadProofs,
    policy: &CosignaturePolicy,
    now: u64,
) -> Result<VerifiedHead> {
    let verified =
        VerifiedHead::check(proofs.note.as_bytes(), &keys.origin, &keys.log_key, &proofs.inclusion, policy, now)?;
    if let Some(stored) = stored {
        if verified.head.size() < stored.size() {
            return Err(Error::Rollback);
        }
        let proof = match &proofs.consistency {
            Some(c) if c.from == stored.size() => c.proof.as_slice(),
            // Equal sizes need no proof (the roots are compared); a larger head needs one from ours.
            _ if verified.head.size() == stored.size() => &[],
            _ => return Err(Error::LogProof("no consistency proof from the stored head")),
        };
        verified.head.check_extends(stored, proof)?;
    }
    Ok(verified)
}

/// What the map proves about one item of an answer whose head was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemVerdict {
    /// The item's active bundle is the account's value in the map.
    Proven,
    /// The item is revoked and the map holds the revocation of its bundle's key.
    ProvenRevoked(Revocation),
    /// The answer says revoked but the map still commits to the bundle: the revocation is not
    /// published yet (the next epoch), or is the server's invention. Not applied.
    RevocationUnproven,
    /// The account is not in the map (not yet published, or absent: akd 0.13 cannot prove
    /// absence). Trust on first use applies, as without transparency.
    NotInMap,
}

/// Checks `item` against `head`: its proof (if any) verifies with the VRF key against the epoch
/// line's akd root, and the proven value agrees with the item. A disagreement is the directory
/// caught: [`Error::KeyNotInMap`] (a bundle the map does not commit to), [`Error::RevocationWithheld`]
/// (served active, revoked in the map) or [`Error::KeyWithheld`] (served as no key, in the map).
pub fn check_item(keys: &DirectoryKeys, head: &Head, item: &KeyItem) -> Result<ItemVerdict> {
    let Some(proof) = &item.proof else {
        return Ok(ItemVerdict::NotInMap);
    };
    let leaf = head.last_leaf();
    let ProvenValue { value, .. } = verify_lookup(&keys.vrf_key, &leaf.akd_root, leaf.epoch, &item.jid, proof)?;
    let bundle_bytes = item.bundle.as_ref().map(|b| b.to_xml());
    match (&item.status, value) {
        (KeyStatus::Active, MapValue::Bundle(commitment)) => {
            match bundle_bytes.is_some_and(|bytes| commitment.commits_to(bytes.as_bytes())) {
                true => Ok(ItemVerdict::Proven),
                false => Err(Error::KeyNotInMap),
            }
        }
        (KeyStatus::Active, MapValue::Revoked(_)) => Err(Error::RevocationWithheld),
        (KeyStatus::None, _) => Err(Error::KeyWithheld),
        (KeyStatus::Revoked { .. }, MapValue::Revoked(revocation)) => {
            let fingerprint = item.bundle.as_ref().map(|b| b.fingerprint());
            match fingerprint.is_some_and(|fp| fp.as_bytes() == revocation.fingerprint().as_bytes()) {
                true => Ok(ItemVerdict::ProvenRevoked(revocation)),
                false => Err(Error::KeyNotInMap),
            }
        }
        (KeyStatus::Revoked { .. }, MapValue::Bundle(commitment)) => {
            match bundle_bytes.is_some_and(|bytes| commitment.commits_to(bytes.as_bytes())) {
                true => Ok(ItemVerdict::RevocationUnproven),
                false => Err(Error::KeyNotInMap),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elements::Consistency;
    use crate::transparency::heads::{EpochLeaf, EpochLog, KeyType, NoteSigner};

    const ORIGIN: &str = "keyward/test";

    struct Directory {
        signer: NoteSigner,
        log: EpochLog,
        leaves: Vec<EpochLeaf>,
    }

    impl Directory {
        fn new(epochs: u64, fork_at: Option<u64>) -> Self {
            let signer = NoteSigner::new(ORIGIN, KeyType::Ed25519, &[7; 32]).expect("signer");
            let mut directory = Self { signer, log: EpochLog::new(), leaves: Vec::new() };
            for epoch in 1..=epochs {
                let forked = fork_at.is_some_and(|at| epoch >= at);
                let leaf =
                    EpochLeaf { epoch, akd_root: [u8::try_from(epoch).expect("small") + 100 * u8::from(forked); 32] };
                directory.log.push(leaf.hash());
                directory.leaves.push(leaf);
            }
            directory
        }

        fn keys(&self) -> DirectoryKeys {
            DirectoryKeys { origin: ORIGIN.into(), log_key: self.signer.verifier().clone(), vrf_key: [0; 32] }
        }

        /// The answer's proofs at `size`, for a client that knows `known`.
        fn proofs(&self, size: u64, known: Option<u64>) -> HeadProofs {
            let root = self.log.root(size).expect("root");
            let head =
                Head::new(ORIGIN, size, root, self.leaves[usize::try_from(size - 1).expect("small")]).expect("head");
            HeadProofs {
                note: head.sign(&self.signer).expect("signs").encode(),
                inclusion: self.log.inclusion_proof(size - 1, size).expect("inclusion"),
                consistency: known.map(|from| Consistency {
                    from,
                    proof: self.log.consistency_proof(from, size).expect("consistency"),
                }),
            }
        }
    }

    fn none() -> CosignaturePolicy {
        CosignaturePolicy { auditors: Vec::new(), required: 0, max_age_secs: 0 }
    }

    #[test]
    fn a_head_that_extends_the_stored_one_is_accepted_and_one_that_does_not_is_the_directory_caught() {
        let honest = Directory::new(8, None);
        let keys = honest.keys();
        let first = check_head(&keys, None, &honest.proofs(5, None), &none(), 0).expect("first head");
        let later = check_head(&keys, Some(&first.head), &honest.proofs(8, Some(5)), &none(), 0).expect("extends");
        assert_eq!(later.head.size(), 8);
        check_head(&keys, Some(&later.head), &honest.proofs(8, Some(8)), &none(), 0).expect("the same head again");

        // An older head than the stored one: rolled back.
        assert_eq!(check_head(&keys, Some(&later.head), &honest.proofs(5, None), &none(), 0), Err(Error::Rollback));
        // A head of the stored size with another history: a fork.
        let forked = Directory::new(8, Some(6));
        assert_eq!(check_head(&keys, Some(&later.head), &forked.proofs(8, Some(8)), &none(), 0), Err(Error::Fork));
        // A larger head of another history: its consistency proof cannot lead from ours.
        let forked_longer = Directory::new(9, Some(6));
        assert!(check_head(&keys, Some(&later.head), &forked_longer.proofs(9, Some(8)), &none(), 0).is_err());
        // A larger head without a proof from the stored size is refused.
        assert!(matches!(
            check_head(&keys, Some(&first.head), &honest.proofs(8, None), &none(), 0),
            Err(Error::LogProof(_))
        ));
        // A head signed by another key is refused before anything else.
        let stranger = Directory {
            signer: NoteSigner::new(ORIGIN, KeyType::Ed25519, &[8; 32]).expect("signer"),
            ..Directory::new(8, None)
        };
        assert!(check_head(&keys, None, &stranger.proofs(8, None), &none(), 0).is_err());
    }
}
