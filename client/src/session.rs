//! The keyward session: one connection with the account's keys in memory; contacts pinned, messages sealed.
//!
//! Its parts: `setup` (first use, new device, this device or a recovery, decided on one
//! connection), `restore` (the guess-limited restore: keydir's OPRF through the component, version
//! 1 blobs, the restore proof), `directory` (the requests to the component), `inbox` (each
//! delivered stanza to one typed event, after every check of the protocol), and here the thin
//! [`Session`] that sends.

mod directory;
mod history;
mod inbox;
mod restore;
mod retry;
mod setup;

pub use history::{HistoryItem, MAX_HISTORY};

use crate::connection::{ConnectOptions, Connection};
use crate::contacts::{Compared, PinOutcome, Trust};
use crate::error::{Error, Result};
use crate::events::KeyEvent;
use crate::passphrase::PassphrasePolicy;
use crate::stanzas;
use crate::store::Store;
use keyward_proto::elements::{KeyItem, KeyStatus};
use keyward_proto::restore::RecoveryCode;
use keyward_proto::{
    BareJid, Bundle, Envelope, Fingerprint, KdfParams, KeyPair, Recipient, SafetyNumber, Sealed, VerifiedBundle,
};
use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use tokio_xmpp::IqRequest;
use tokio_xmpp::parsers::presence::Type as PresenceType;

/// Called when the passphrase KDF starts (`true`) and ends (`false`), e.g. to show a spinner.
pub type KdfProgress = Arc<dyn Fn(bool) + Send + Sync>;

/// Everything needed to open a session of an account on this device.
#[derive(Clone)]
pub struct Account {
    /// How to reach the server and the component.
    pub connect: ConnectOptions,
    /// The passphrase that seals the private keys (never leaves this device).
    pub passphrase: SecretString,
    /// The folder the user named for local state: the account's state lives in
    /// `keyward/<jid>/` inside it (see [`Store::open`]).
    pub data_dir: PathBuf,
    /// KDF parameters for first use; they must satisfy [`KdfPolicy::STRICT`].
    pub kdf: KdfParams,
    /// Progress callback for the KDF.
    pub progress: Option<KdfProgress>,
    /// How a new passphrase is checked at first use ([`PassphrasePolicy::Strict`] unless a test says otherwise).
    pub passphrase_policy: PassphrasePolicy,
    /// The auditors whose fresh cosignatures every head of the key directory must carry
    /// (protocol section 15.2.5, step 5); by default none: keydir's signature and the log's
    /// consistency alone.
    pub cosignatures: keyward_proto::transparency::heads::CosignaturePolicy,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("jid", &self.connect.jid)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Account {
    /// An account with default KDF parameters and no progress callback.
    pub fn new(connect: ConnectOptions, passphrase: SecretString, data_dir: PathBuf) -> Self {
        Self {
            connect,
            passphrase,
            data_dir,
            kdf: KdfParams::DEFAULT,
            progress: None,
            passphrase_policy: PassphrasePolicy::Strict,
            cosignatures: Default::default(),
        }
    }

    /// The account's state store, under its cosignature policy.
    fn open_store(&self) -> Result<Store> {
        let store = Store::open(&self.data_dir, &self.connect.jid)?;
        store.set_cosignature_policy(self.cosignatures.clone());
        Ok(store)
    }
}

/// How a session got its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Keys were generated and published (first use of the account).
    FirstUse,
    /// Keys were fetched from the server and opened with the passphrase (new device).
    NewDevice,
    /// Keys were opened from this device's cache.
    ThisDevice,
}

/// What `verify` shows: both fingerprints and the safety number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyReport {
    /// The contact.
    pub jid: BareJid,
    /// Own fingerprint.
    pub mine: Fingerprint,
    /// The contact's fingerprint: the held-back new key if one is pending, else the pinned one.
    pub theirs: Fingerprint,
    /// The safety number of the two.
    pub number: SafetyNumber,
    /// Trust of the pinned key.
    pub trust: Trust,
    /// Whether `theirs` is a CHANGED key not yet confirmed.
    pub changed: bool,
}

/// One contact as `contacts` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactView {
    /// The contact.
    pub jid: BareJid,
    /// `active`, `revoked`, `none` (per the key directory) or `unknown`.
    pub status: &'static str,
    /// The pinned fingerprint.
    pub fingerprint: Option<Fingerprint>,
    /// Trust of the pinned key.
    pub trust: Option<Trust>,
    /// A different key was offered and is held back.
    pub key_changed: bool,
}

/// A message that was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message id.
    pub id: String,
    /// The fingerprint it was sealed to.
    pub to_fingerprint: Fingerprint,
}

/// Runs the passphrase KDF (Argon2id) off the async threads, with the progress callback around it.
async fn run_kdf<T: Send + 'static>(
    progress: &Option<KdfProgress>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    if let Some(p) = progress {
        p(true);
    }
    let out = tokio::task::spawn_blocking(work).await;
    if let Some(p) = progress {
        p(false);
    }
    out.map_err(|e| Error::Connection(format!("KDF task failed: {e}")))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn random_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| Error::Protocol(keyward_proto::Error::Rng))?;
    Ok(hex::encode(bytes))
}

/// An open keyward session: connected, with the account's keys in memory.
pub struct Session {
    conn: Connection,
    me: BareJid,
    component: BareJid,
    /// Shared with the KDF thread while a passphrase change seals them again.
    keys: Arc<KeyPair>,
    bundle: VerifiedBundle,
    store: Store,
    /// Revocations learned when going online, handed out first by `next_event`.
    caught_up: std::collections::VecDeque<crate::events::Incoming>,
    /// Revocation notices whose confirmation must be tried again.
    retries: retry::Retries,
    /// A recovery code made by this session's set-up, not yet shown to the user.
    recovery_code: Option<RecoveryCode>,
    /// When the own key was last monitored ([`Session::monitor_own_key`]); again once a day.
    own_key_checked: Option<tokio::time::Instant>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("me", &self.me).field("component", &self.component).finish_non_exhaustive()
    }
}

impl Session {
    /// The account.
    pub fn me(&self) -> &BareJid {
        &self.me
    }

    /// The account's published bundle.
    pub fn bundle(&self) -> &VerifiedBundle {
        &self.bundle
    }

    /// The account's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.bundle.fingerprint()
    }

    /// The recovery code this session made (first use, the migration of a version 0 blob, or
    /// [`Session::recover`]), once: show it to the user then, as nothing keeps it. It opens
    /// the account's keys without the passphrase (`keyward recover`).
    pub fn take_recovery_code(&mut self) -> Option<RecoveryCode> {
        self.recovery_code.take()
    }

    /// The local state.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The underlying connection (to send other stanzas).
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Pins a contact's bundle received out of band (trust on first use; a
    /// different key than the pinned one is held back).
    pub fn pin_out_of_band(&self, bundle: &Bundle) -> Result<KeyEvent> {
        let verified = bundle.verify().map_err(|cause| Error::BadBundle { jid: bundle.jid().clone(), cause })?;
        self.offer(&verified)
    }

    fn offer(&self, bundle: &VerifiedBundle) -> Result<KeyEvent> {
        let jid = bundle.jid().clone();
        // An account is never its own contact: it knows its own keys.
        self.check_not_me(&jid)?;
        let outcome = self.store.update_contacts(|c| c.offer(bundle, now_ms()))??;
        Ok(match outcome {
            PinOutcome::Pinned(fingerprint) => KeyEvent::Pinned { jid, fingerprint },
            PinOutcome::Unchanged => KeyEvent::Unchanged { jid },
            PinOutcome::Changed { pinned, offered } => {
                tracing::warn!(contact = %jid, %pinned, %offered, "a contact's key CHANGED; not adopted");
                KeyEvent::Changed { jid, pinned, offered }
            }
        })
    }

    /// Applies one `<keys/>` answer item: pins (TOFU), flags changes, applies revocations
    /// under the rules of protocol section 8.
    fn learn(&self, item: &KeyItem) -> Result<KeyEvent> {
        self.check_not_me(&item.jid)?;
        match &item.status {
            KeyStatus::Revoked { at, reason } => {
                let fp = match &item.bundle {
                    Some(bundle) => Some(
                        crate::contacts::verify_bundle(bundle, &item.jid)
                            .map_err(|cause| Error::BadBundle { jid: item.jid.clone(), cause })?
                            .fingerprint(),
                    ),
                    None => None,
                };
                self.store.update_contacts(|c| c.revoke(&item.jid, fp, *at, reason, now_ms()))??;
                Ok(KeyEvent::Revoked {
                    jid: item.jid.clone(),
                    at: at.format(&Rfc3339).unwrap_or_default(),
                    reason: reason.clone(),
                })
            }
            KeyStatus::None => Ok(KeyEvent::NoKey { jid: item.jid.clone() }),
            KeyStatus::Active => {
                let bundle = item.bundle.as_ref().ok_or(Error::NoKey(item.jid.clone()))?;
                let verified = crate::contacts::verify_bundle(bundle, &item.jid)
                    .map_err(|cause| Error::BadBundle { jid: item.jid.clone(), cause })?;
                self.offer(&verified)
            }
        }
    }

    /// Asks the component for `jid`'s key and applies the answer.
    pub async fn refresh_key(&mut self, jid: &BareJid) -> Result<KeyEvent> {
        let item = directory::lookup_one(&mut self.conn, &self.component, &self.store, jid).await?;
        self.learn(&item)
    }

    async fn relay_to(&mut self, jid: &BareJid) -> Result<()> {
        directory::relay(&mut self.conn, &self.component, jid).await
    }

    /// Adds a contact: subscribes to its presence, has the component relay our
    /// key to it, and pins its key if it has one. When the contact accepts and
    /// asks back, [`Session::next_event`] approves that request by itself.
    pub async fn add(&mut self, jid: &BareJid) -> Result<KeyEvent> {
        self.check_not_me(jid)?;
        self.conn.send(stanzas::subscription(jid, PresenceType::Subscribe)?).await?;
        self.relay_to(jid).await?;
        self.refresh_key(jid).await
    }

    /// Accepts a contact request: approves it, subscribes back, relays our key, pins theirs.
    pub async fn accept(&mut self, jid: &BareJid) -> Result<KeyEvent> {
        self.check_not_me(jid)?;
        self.conn.send(stanzas::subscription(jid, PresenceType::Subscribed)?).await?;
        self.conn.send(stanzas::subscription(jid, PresenceType::Subscribe)?).await?;
        self.relay_to(jid).await?;
        self.refresh_key(jid).await
    }

    fn check_not_me(&self, jid: &BareJid) -> Result<()> {
        if jid == &self.me {
            return Err(Error::Invalid { what: "contact", reason: "that is your own account".into() });
        }
        Ok(())
    }

    /// Encrypts `text` to `to` (and to our own key) and sends it. Refuses
    /// revoked contacts, unconfirmed key changes and contacts without a key, and
    /// stops at a directory caught contradicting its map ([`Error::DirectoryCaught`]).
    pub async fn send(&mut self, to: &BareJid, text: &str) -> Result<Sent> {
        // Ask the directory first (best effort): this catches a revocation or a
        // key change even before its notice was read. A server that blocks the
        // lookup only leaves the pinned key and the notices in force.
        match self.refresh_key(to).await {
            Ok(KeyEvent::NoKey { .. }) | Ok(_) => {}
            Err(e @ (Error::BadBundle { .. } | Error::DirectoryCaught { .. })) => return Err(e),
            Err(e) => {
                tracing::warn!(cause = %e, contact = %to, "could not refresh the contact's key; using the pinned one")
            }
        }
        let bundle = self.store.contacts()?.sendable(to)?;
        let id = random_id()?;
        let envelope = Envelope {
            from: self.me.clone(),
            to: to.clone(),
            ts_ms: now_ms(),
            msg_id: id.clone(),
            body: text.to_owned(),
        };
        // The newest verified head of the directory goes along (gossip, protocol section 15.2.6).
        let head = crate::transparency::own_summary(&self.store)?;
        let sealed = Sealed::seal_with_head(&self.keys, &envelope, head.as_ref(), &[Recipient::from(&bundle)])?;
        self.conn.send(stanzas::sealed_message(to, &id, &sealed)?).await?;
        Ok(Sent { id, to_fingerprint: bundle.fingerprint() })
    }

    /// The contacts with their keys: the component's `roster-keys` where it is
    /// privileged, else the roster plus a `keys` lookup. Applies what it learns.
    pub async fn contacts(&mut self) -> Result<Vec<ContactView>> {
        let items = match directory::roster_keys(&mut self.conn, &self.component).await? {
            // Where the directory proves its keys, `roster-keys` (which carries no proofs) only
            // names the contacts: their keys come from lookups with proofs.
            Some(items) if self.store.transparency_pinned()? => {
                let jids: Vec<BareJid> = items.into_iter().map(|i| i.jid).filter(|j| j != &self.me).collect();
                if jids.is_empty() {
                    Vec::new()
                } else {
                    directory::fetch_keys(&mut self.conn, &self.component, &self.store, &jids).await?
                }
            }
            Some(items) => items,
            None => {
                let roster = self.conn.iq(None, IqRequest::Get(stanzas::roster_query()), "roster").await?;
                let jids = roster.as_ref().map(stanzas::roster_jids).unwrap_or_default();
                let jids: Vec<BareJid> = jids.into_iter().filter(|j| j != &self.me).collect();
                if jids.is_empty() {
                    Vec::new()
                } else {
                    directory::fetch_keys(&mut self.conn, &self.component, &self.store, &jids).await?
                }
            }
        };
        let mut views = Vec::new();
        for item in &items {
            if item.jid == self.me {
                continue;
            }
            if let Err(e) = self.learn(item) {
                tracing::warn!(cause = %e, contact = %item.jid, "refused a key from the directory");
            }
            let status = match item.status {
                KeyStatus::Active => "active",
                KeyStatus::Revoked { .. } => "revoked",
                KeyStatus::None => "none",
            };
            views.push(self.view(&item.jid, status)?);
        }
        let known = self.store.contacts()?;
        for jid in known.contacts.keys() {
            let Ok(jid) = BareJid::parse(jid) else { continue };
            if !views.iter().any(|v| v.jid == jid) {
                let status = if known.get(&jid).is_some_and(|c| c.revoked.is_some()) { "revoked" } else { "unknown" };
                views.push(self.view(&jid, status)?);
            }
        }
        Ok(views)
    }

    fn view(&self, jid: &BareJid, status: &'static str) -> Result<ContactView> {
        let contacts = self.store.contacts()?;
        let contact = contacts.get(jid);
        let pinned = contact.map(|c| c.pinned_bundle(jid)).transpose()?.flatten();
        let status = if contact.is_some_and(|c| c.revoked.is_some()) { "revoked" } else { status };
        Ok(ContactView {
            jid: jid.clone(),
            status,
            fingerprint: pinned.as_ref().map(|b| b.fingerprint()),
            trust: pinned.as_ref().and(contact.map(|c| c.trust)),
            key_changed: contact.is_some_and(|c| c.pending.is_some()),
        })
    }

    /// The safety number with `jid` (fetching its key first if none is pinned).
    pub async fn safety_number(&mut self, jid: &BareJid) -> Result<SafetyReport> {
        self.check_not_me(jid)?;
        if self.store.contacts()?.get(jid).is_none_or(|c| c.pinned.is_none()) {
            self.refresh_key(jid).await?;
        }
        safety_report(&self.store, &self.bundle, jid)
    }

    /// Marks `jid`'s key verified after the user compared `compared` (the safety number or the
    /// fingerprint) with the contact; refuses on any mismatch (protocol section 8).
    pub fn confirm(&self, jid: &BareJid, compared: &Compared) -> Result<Fingerprint> {
        self.check_not_me(jid)?;
        let own = self.fingerprint();
        self.store.update_contacts(|c| c.confirm(jid, compared, &own, now_ms()))?
    }

    /// Ends the session cleanly.
    pub async fn close(self) -> Result<()> {
        self.conn.close().await
    }
}

/// The safety number with `jid` from local state only (no connection).
pub fn safety_report(store: &Store, own: &VerifiedBundle, jid: &BareJid) -> Result<SafetyReport> {
    let contacts = store.contacts()?;
    let contact = contacts.get(jid).ok_or_else(|| Error::UnknownContact(jid.clone()))?;
    let pinned = contact.pinned_bundle(jid)?.ok_or_else(|| Error::NoKey(jid.clone()))?;
    let pending = contact.pending_bundle(jid)?;
    let theirs = pending.as_ref().unwrap_or(&pinned).fingerprint();
    Ok(SafetyReport {
        jid: jid.clone(),
        mine: own.fingerprint(),
        theirs,
        number: SafetyNumber::of(&own.fingerprint(), &theirs),
        trust: contact.trust,
        changed: pending.is_some(),
    })
}

/// The duration meaning "wait for ever" in [`Session::next_event`] loops.
pub const FOREVER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
