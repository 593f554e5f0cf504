//! One round of the auditor: the served head checked against the pinned keys and the last verified head, the log's proofs, akd's append-only audit of every new epoch; then the head is cosigned and posted.
//!
//! The order (`docs/protocol.md` section 15.2.11): keydir's keys as pinned; keydir's signature
//! on the head and its origin; the head against the last verified one (smaller: rollback; same
//! size, other root: fork; otherwise the consistency proof); the epoch line is the log's last
//! leaf (inclusion proof); akd's append-only proof of every epoch since the last verified one
//! (chunks of at most 1000), whose roots must be the leaves of the signed log (the log's root
//! recomputed from the last verified compact range and the audited roots must be the head's).
//! Only then the state is saved and the head cosigned.

use crate::audit::{MAX_CHUNK, verify_chunk};
use crate::cosigner::Cosigner;
use crate::error::{AuditorError, Result};
use crate::frontier::Frontier;
use crate::keydir::{Keydir, base64};
use crate::state::{self, Alarm, State, VERSION, Verified};
use keyward_proto::Error as ProtoError;
use keyward_proto::transparency::heads::{EpochLeaf, Head, KeyType, SignedNote, VerifierKey};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What a round ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// keydir has signed no head yet.
    NoHeadYet,
    /// The head of `size` is verified; `cosigned` says whether keydir took this auditor's
    /// cosignature (false when the auditor has no key).
    Verified {
        /// The verified head's size.
        size: u64,
        /// Whether it was cosigned and posted.
        cosigned: bool,
    },
}

/// The keys the auditor pinned, parsed.
#[derive(Debug, Clone)]
struct Pins {
    origin: String,
    log_key: VerifierKey,
    vrf_public_key: Vec<u8>,
}

/// An auditor following one keydir, with its state directory.
#[derive(Debug)]
pub struct Auditor {
    keydir: Keydir,
    dir: PathBuf,
    state: State,
    pins: Pins,
    cosigner: Option<Cosigner>,
    /// Most epochs asked for per audit request.
    chunk: u64,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn parse_pins(log_key: &str, vrf_public_key: &str) -> Result<Pins> {
    let key = VerifierKey::parse(log_key).map_err(|err| AuditorError::Usage(format!("the log key: {err}")))?;
    if key.kind() != KeyType::Ed25519 {
        return Err(AuditorError::Usage("the log key must be a type 0x01 (Ed25519) note key".into()));
    }
    let vrf = base64(vrf_public_key, "the VRF public key")
        .ok()
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| AuditorError::Usage("the VRF public key must be base64 of 32 bytes".into()))?;
    // keydir names its key after the log's origin.
    Ok(Pins { origin: key.name().to_owned(), log_key: key, vrf_public_key: vrf })
}

impl Auditor {
    /// The auditor of `keydir` with the state in `dir`. The log key and VRF key are those given,
    /// else those pinned in the state, else fetched once from `GET /v0/transparency/key` and
    /// pinned (trust on first use). Given keys that differ from pinned ones are refused.
    pub async fn open(
        keydir: Keydir,
        dir: &Path,
        log_key: Option<&str>,
        vrf_public_key: Option<&str>,
        cosigner: Option<Cosigner>,
    ) -> Result<Self> {
        let state = match state::load(dir)? {
            Some(state) => {
                for (given, pinned, what) in
                    [(log_key, &state.log_key, "log key"), (vrf_public_key, &state.vrf_public_key, "VRF key")]
                {
                    if given.is_some_and(|given| given != pinned.as_str()) {
                        return Err(AuditorError::Usage(format!(
                            "the {what} given is not the one pinned in {}",
                            dir.display()
                        )));
                    }
                }
                state
            }
            None => {
                let (log_key, vrf) = match (log_key, vrf_public_key) {
                    (Some(log_key), Some(vrf)) => (log_key.to_owned(), vrf.to_owned()),
                    (log_key, vrf) => {
                        let served = keydir.key().await?;
                        tracing::warn!(log_key = %served.log_key, "pinning keydir's keys as served (trust on first use)");
                        (
                            log_key.map_or(served.log_key, str::to_owned),
                            vrf.map_or(served.vrf_public_key, str::to_owned),
                        )
                    }
                };
                let pins = parse_pins(&log_key, &vrf)?;
                let state = State {
                    version: VERSION,
                    origin: pins.origin,
                    log_key,
                    vrf_public_key: vrf,
                    verified: None,
                    alarm: None,
                };
                state::save(dir, &state)?;
                state
            }
        };
        let pins = parse_pins(&state.log_key, &state.vrf_public_key)?;
        if pins.origin != state.origin {
            return Err(AuditorError::State {
                path: dir.join(state::FILE),
                detail: "origin is not the key's name".into(),
            });
        }
        Ok(Self { keydir, dir: dir.to_path_buf(), state, pins, cosigner, chunk: MAX_CHUNK })
    }

    /// Asks for at most `epochs` epochs per audit request (1 to [`MAX_CHUNK`], the default).
    pub fn with_audit_chunk(mut self, epochs: u64) -> Self {
        self.chunk = epochs.clamp(1, MAX_CHUNK);
        self
    }

    /// The state as saved.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// One round: keydir's keys as pinned, then the served head ([`Auditor::check_served`]).
    pub async fn round(&mut self) -> Result<Outcome> {
        self.refuse_after_alarm()?;
        let key = self.keydir.key().await?;
        let vrf = base64(&key.vrf_public_key, "the VRF public key")?;
        if key.log_key != self.state.log_key {
            return Err(self.raise(AuditorError::KeyChanged("log key"), None));
        }
        if vrf != self.pins.vrf_public_key {
            return Err(self.raise(AuditorError::KeyChanged("VRF key"), None));
        }
        let Some(head) = self.keydir.head().await? else {
            // No head at all after one was verified: the log was rolled back to nothing.
            return match self.state.verified.as_ref().map(|v| v.size) {
                Some(verified) => Err(self.raise(AuditorError::Rollback { verified, served: 0 }, None)),
                None => Ok(Outcome::NoHeadYet),
            };
        };
        self.check_served(&head.note).await
    }

    /// Verifies a served signed head `note` (as `GET /v0/transparency/head` answered it, or given
    /// by a caller) with keydir's proofs; if it passes, saves it as the last verified head, then
    /// cosigns it and posts the cosignature. An alarm keeps both notes as evidence in the state
    /// directory, is recorded in the state, and every later round refuses to cosign.
    pub async fn check_served(&mut self, note: &str) -> Result<Outcome> {
        self.refuse_after_alarm()?;
        let (verified, signed) = match self.verify(note).await {
            Ok(done) => done,
            Err(err) => return Err(self.raise(err, Some(note))),
        };
        let size = verified.size;
        self.state.verified = Some(verified);
        state::save(&self.dir, &self.state)?;
        tracing::info!(size, "verified the head");
        let Some(cosigner) = &self.cosigner else { return Ok(Outcome::Verified { size, cosigned: false }) };
        let line = cosigner.cosign(&signed, now())?;
        self.keydir.submit(size, &line).await?;
        tracing::info!(size, "cosigned the head");
        Ok(Outcome::Verified { size, cosigned: true })
    }

    fn refuse_after_alarm(&self) -> Result<()> {
        match &self.state.alarm {
            Some(alarm) => {
                Err(AuditorError::AlarmRecorded { kind: alarm.kind.clone(), evidence: alarm.evidence.clone() })
            }
            None => Ok(()),
        }
    }

    /// Logs an alarm, keeps its evidence and records it in the state; other errors pass.
    fn raise(&mut self, err: AuditorError, served: Option<&str>) -> AuditorError {
        let Some(kind) = err.alarm() else { return err };
        if matches!(err, AuditorError::AlarmRecorded { .. }) {
            return err;
        }
        let at = now();
        let detail = err.to_string();
        let verified = self.state.verified.as_ref().map(|v| v.note.as_str());
        let evidence = match state::keep_evidence(&self.dir, kind, at, verified, served, &detail) {
            Ok(evidence) => evidence,
            Err(keep) => {
                tracing::error!(alarm = kind, cause = %keep, "the alarm's evidence could not be kept");
                String::new()
            }
        };
        tracing::error!(alarm = kind, evidence = %evidence, "{detail}");
        self.state.alarm = Some(Alarm { kind: kind.to_owned(), detail, evidence, at });
        if let Err(save) = state::save(&self.dir, &self.state) {
            tracing::error!(alarm = kind, cause = %save, "the alarm could not be recorded in the state");
        }
        err
    }

    /// Every check of a served head, in order; the new state's `verified` and the parsed note.
    async fn verify(&self, note: &str) -> Result<(Verified, SignedNote)> {
        let (head, signed) = open(note, &self.pins)?;
        let size = head.size();
        // The last verified head, its compact range and its newest akd root.
        let (mut frontier, mut known_root) = match &self.state.verified {
            Some(old) => {
                let corrupt =
                    |detail: &str| AuditorError::State { path: self.dir.join(state::FILE), detail: detail.into() };
                let (old_head, _) =
                    open(&old.note, &self.pins).map_err(|_| corrupt("the verified note does not open"))?;
                let frontier = Frontier::from_strings(old.size, &old.frontier)
                    .filter(|f| old_head.size() == old.size && f.root().as_ref() == Some(old_head.root()))
                    .ok_or_else(|| corrupt("the verified head's compact range is not its log"))?;
                if size < old.size {
                    return Err(AuditorError::Rollback { verified: old.size, served: size });
                }
                if size == old.size && head.root() != old_head.root() {
                    return Err(AuditorError::Fork { size });
                }
                let proof = if size == old.size { Vec::new() } else { self.keydir.consistency(old.size, size).await? };
                head.check_extends(&old_head, &proof).map_err(|err| match err {
                    ProtoError::Rollback => AuditorError::Rollback { verified: old.size, served: size },
                    ProtoError::Fork => AuditorError::Fork { size },
                    _ => AuditorError::Inconsistent { verified: old.size, served: size },
                })?;
                (frontier, Some(old_head.last_leaf().akd_root))
            }
            None => (Frontier::default(), None),
        };
        let proof = self.keydir.inclusion(size - 1, size).await?;
        head.check_last_leaf(&proof).map_err(|_| AuditorError::HeadMismatch)?;
        if frontier.size() == 0 && size == 1 {
            frontier.push(EpochLeaf { epoch: 1, akd_root: head.last_leaf().akd_root }.hash());
        }
        // Leaf i is epoch i + 1: audit from the last verified epoch (or the first) to the head's.
        let mut start = frontier.size().max(1);
        while start < size {
            let end = size.min(start + self.chunk);
            let answer = self.keydir.audit(start, end).await?;
            let (reached, roots) = verify_chunk(&answer, start, end).await?;
            let (first, rest) = roots.split_first().ok_or_else(|| AuditorError::Malformed("no roots".into()))?;
            match known_root {
                Some(known) if known != *first => {
                    return Err(AuditorError::RootsMismatch(format!(
                        "epoch {start}'s audited root is not the one verified before"
                    )));
                }
                Some(_) => {}
                None => frontier.push(EpochLeaf { epoch: start, akd_root: *first }.hash()),
            }
            for (epoch, root) in (start + 1..).zip(rest) {
                frontier.push(EpochLeaf { epoch, akd_root: *root }.hash());
            }
            known_root = rest.last().copied();
            start = reached;
        }
        if frontier.size() != size || frontier.root().as_ref() != Some(head.root()) {
            return Err(AuditorError::RootsMismatch(format!(
                "the log of the audited roots is not the signed log of size {size}"
            )));
        }
        Ok((Verified { size, note: note.to_owned(), frontier: frontier.to_strings() }, signed))
    }
}

/// Opens a signed head with the pinned key and origin.
fn open(note: &str, pins: &Pins) -> Result<(Head, SignedNote)> {
    Head::open(note.as_bytes(), &pins.origin, &pins.log_key).map_err(|err| match err {
        ProtoError::Unsigned { .. } | ProtoError::NoteSignature { .. } | ProtoError::Origin => {
            AuditorError::SignatureInvalid(err.to_string())
        }
        other => AuditorError::Malformed(format!("the head: {other}")),
    })
}
