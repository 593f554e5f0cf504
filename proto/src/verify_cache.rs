//! Bundles verified once per process: a bounded set of the bundles whose signature already checked out.

use crate::bundle::{Bundle, VerifiedBundle};
use crate::error::{Error, Result};
use crate::jid::BareJid;
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Remembers which bundles verified, by a SHA-256 digest of everything their signature covers
/// and the signature itself, so that the same bundle read again (a pinned key at every message,
/// a directory answer at every lookup) costs a hash instead of an Ed25519 verification.
///
/// A bundle that differs in any signed byte or in its signature has another digest and is
/// verified afresh; the account check ([`Bundle::verify_for`]'s) is made every time. When full,
/// the set starts over (bounded memory, never a wrong answer).
#[derive(Debug)]
pub struct VerifyCache {
    seen: Mutex<HashSet<[u8; 32]>>,
    capacity: usize,
    checks: AtomicU64,
}

impl VerifyCache {
    /// The default bound: 65 536 bundles (about 2 MiB of digests).
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// An empty cache holding at most `capacity` digests.
    pub fn new(capacity: usize) -> Self {
        Self { seen: Mutex::new(HashSet::new()), capacity: capacity.max(1), checks: AtomicU64::new(0) }
    }

    /// [`Bundle::verify_for`], verifying the signature only the first time this exact bundle is seen.
    pub fn verify_for(&self, bundle: &Bundle, expected: &BareJid) -> Result<VerifiedBundle> {
        if bundle.jid() != expected {
            return Err(Error::JidMismatch);
        }
        let digest = bundle.digest();
        // A poisoned lock only means another thread panicked while holding it; the set is still valid.
        if self.seen.lock().unwrap_or_else(|p| p.into_inner()).contains(&digest) {
            return Ok(VerifiedBundle::trusted(bundle.clone()));
        }
        self.checks.fetch_add(1, Ordering::Relaxed);
        let verified = bundle.verify()?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= self.capacity {
            seen.clear();
        }
        seen.insert(digest);
        Ok(verified)
    }

    /// How many signatures this cache actually verified.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }
}

impl Default for VerifyCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elements::XmlElement;
    use crate::keys::KeyPair;

    fn alice() -> BareJid {
        BareJid::parse("alice@example.test").expect("valid")
    }

    #[test]
    fn the_same_bundle_is_verified_once() {
        let cache = VerifyCache::default();
        let bundle = Bundle::sign(&KeyPair::generate().expect("rng"), alice(), 7).bundle().clone();
        for _ in 0..5 {
            assert_eq!(cache.verify_for(&bundle, &alice()).expect("verifies").bundle(), &bundle);
        }
        assert_eq!(cache.checks(), 1);
    }

    #[test]
    fn a_changed_byte_is_verified_afresh_and_refused() {
        let cache = VerifyCache::default();
        let bundle = Bundle::sign(&KeyPair::generate().expect("rng"), alice(), 7).bundle().clone();
        cache.verify_for(&bundle, &alice()).expect("verifies");
        // The same keys and signature with another creation time: not the bundle that verified.
        let forged = Bundle::parse(bundle.to_xml().replace("created='7'", "created='8'").as_bytes()).expect("parses");
        assert_eq!(cache.verify_for(&forged, &alice()), Err(Error::BadSignature));
        assert_eq!(cache.verify_for(&forged, &alice()), Err(Error::BadSignature), "a failure is never remembered");
        assert_eq!(cache.checks(), 3);
        let bob = BareJid::parse("bob@example.test").expect("valid");
        assert_eq!(cache.verify_for(&bundle, &bob), Err(Error::JidMismatch), "the account is checked every time");
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = VerifyCache::new(2);
        let bundles: Vec<Bundle> =
            (0..3).map(|i| Bundle::sign(&KeyPair::generate().expect("rng"), alice(), i).bundle().clone()).collect();
        for bundle in &bundles {
            cache.verify_for(bundle, &alice()).expect("verifies");
        }
        cache.verify_for(&bundles[2], &alice()).expect("verifies");
        assert_eq!(cache.checks(), 3, "the newest is remembered after the reset");
        cache.verify_for(&bundles[0], &alice()).expect("verifies");
        assert_eq!(cache.checks(), 4, "older ones are verified again");
    }
}
