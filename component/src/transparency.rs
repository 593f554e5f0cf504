//! Key transparency in the component: keydir's log keys for disco#info, and the proofs and signed head attached to `keys` answers.
//!
//! The component is no more trusted than keydir: it passes on what keydir proves and the
//! client checks it (protocol section 15.3). It only fetches, decodes and forwards.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_contract::transparency::{LogKeyResponse, LookupHead, LookupProofsResponse};
use keyward_proto::BareJid;
use keyward_proto::elements::{Consistency, HeadProofs, HistoryAnswer, KeyItem};
use keyward_proto::transparency::heads::proof::proof_from_bytes;
use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::keydir::KeydirClient;

/// How long after a failed or empty fetch of keydir's log keys the component asks again.
const KEYS_RETRY: Duration = Duration::from_secs(10);
/// How often, and how long apart, a lookup whose epoch keydir has not signed yet is retried.
const UNSIGNED_RETRIES: u32 = 10;
const UNSIGNED_WAIT: Duration = Duration::from_millis(100);

/// keydir's transparency keys, as last fetched.
#[derive(Debug, Default)]
pub struct DirectoryKeys {
    state: RwLock<(Option<LogKeyResponse>, Option<Instant>)>,
}

impl DirectoryKeys {
    /// The keys fetched so far (`None`: keydir signs no heads, or was not reached yet).
    pub fn current(&self) -> Option<LogKeyResponse> {
        self.state.read().ok().and_then(|state| state.0.clone())
    }

    /// The keys, fetched from keydir unless known (asks again at most every 10 s).
    pub async fn get(&self, keydir: &KeydirClient) -> Option<LogKeyResponse> {
        let (known, tried) = self.state.read().map(|s| s.clone()).unwrap_or_default();
        if known.is_some() || tried.is_some_and(|at| at.elapsed() < KEYS_RETRY) {
            return known;
        }
        let fetched = match keydir.transparency_key().await {
            Ok(keys) => keys,
            Err(err) => {
                warn!(cause = %err, "could not read keydir's transparency keys");
                None
            }
        };
        if let Ok(mut state) = self.state.write() {
            *state = (fetched.clone(), Some(Instant::now()));
        }
        fetched
    }
}

/// The proofs of some accounts, in their order, and the signed head they are for.
#[derive(Debug)]
pub struct Proofs {
    proofs: Vec<Option<Vec<u8>>>,
    head: Option<HeadProofs>,
}

impl Proofs {
    /// Puts each proof in its item (the items of the same accounts, in the same order) and
    /// returns the head (`None` when keydir signs no heads, or before the first epoch).
    pub fn attach(self, items: &mut [KeyItem]) -> Option<HeadProofs> {
        for (item, proof) in items.iter_mut().zip(self.proofs) {
            item.proof = proof;
        }
        self.head
    }
}

/// Fetches the proofs of `jids` (at most `KEYS_PROOF_ITEMS`) from keydir.
///
/// Fetched before the accounts' bundles are: an update between the two then shows as a value
/// the map does not hold yet (a bundle trusted on first use, a revocation not applied until
/// proven), never as a contradiction the client would take for the directory's lie.
pub async fn fetch(keydir: &KeydirClient, jids: &[BareJid], known_size: u64) -> Result<Proofs> {
    let answer = until_signed("lookup proofs", || keydir.lookup_proofs(jids, known_size)).await?;
    decode(answer, jids, known_size)
}

/// Calls keydir until it answers other than unavailable, at most `UNSIGNED_RETRIES` more times:
/// keydir signs an epoch's head right after recording it, and a proof that came a moment early
/// is answered 503.
async fn until_signed<T, F: Future<Output = Result<T>>>(what: &str, mut call: impl FnMut() -> F) -> Result<T> {
    let mut attempt = 0;
    loop {
        match call().await {
            Err(Error::KeydirUnavailable(why)) if attempt < UNSIGNED_RETRIES => {
                debug!(why, attempt, what, "unavailable; retrying");
                attempt += 1;
                tokio::time::sleep(UNSIGNED_WAIT).await;
            }
            other => return other,
        }
    }
}

/// The history proof of `jid` (the sender itself) and the signed head it is for.
pub async fn history(keydir: &KeydirClient, jid: &BareJid, known_size: u64) -> Result<HistoryAnswer> {
    let answer = until_signed("history proof", || keydir.history_proof(jid, known_size)).await?;
    let Some(answer) = answer else { return Ok(HistoryAnswer { transparency: None, proof: None }) };
    let transparency = answer.head.map(|head| head_proofs(head, known_size)).transpose()?;
    Ok(HistoryAnswer { transparency, proof: Some(bytes(&answer.proof, "a history proof")?) })
}

fn bytes(text: &str, what: &str) -> Result<Vec<u8>> {
    STANDARD.decode(text).map_err(|_| Error::KeydirProtocol(format!("{what} is not base64")))
}

/// Decodes keydir's proofs (one per JID, in order) and the head.
fn decode(answer: LookupProofsResponse, jids: &[BareJid], known_size: u64) -> Result<Proofs> {
    let mut proofs = Vec::with_capacity(jids.len());
    for (jid, proof) in jids.iter().zip(answer.items) {
        if proof.jid != jid.as_str() {
            return Err(Error::KeydirProtocol("lookup proofs out of order".into()));
        }
        proofs.push(proof.proof.as_deref().map(|p| bytes(p, "a lookup proof")).transpose()?);
    }
    Ok(Proofs { proofs, head: answer.head.map(|head| head_proofs(head, known_size)).transpose()? })
}

/// keydir's signed head and log proofs, decoded.
fn head_proofs(head: LookupHead, known_size: u64) -> Result<HeadProofs> {
    let hashes = |text: &str, what: &str| {
        proof_from_bytes(&bytes(text, what)?).map_err(|e| Error::KeydirProtocol(format!("{what}: {e}")))
    };
    Ok(HeadProofs {
        note: head.note,
        inclusion: hashes(&head.inclusion, "the inclusion proof")?,
        consistency: head
            .consistency
            .as_deref()
            .map(|p| hashes(p, "the consistency proof"))
            .transpose()?
            .map(|proof| Consistency { from: known_size, proof }),
    })
}
