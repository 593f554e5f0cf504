//! The keyward session: own keys set up without user key handling, contacts pinned, messages sealed and opened.

use crate::connection::{ConnectOptions, Connection};
use crate::contacts::{Compared, PinOutcome, Trust};
use crate::error::{Error, Result};
use crate::events::{Incoming, KeyEvent, Received, Warning};
use crate::stanzas::{self, Inbound, Subscription};
use crate::store::{AccountState, Store};
use keyward_proto::elements::{
    FEATURE_ROSTER_KEYS, KeyItem, KeyStatus, KeysQuery, KeysResult, Publish, Relay, Revoked, RosterKeys,
    RosterKeysQuery, SecretQuery,
};
use keyward_proto::{
    BareJid, Bundle, Envelope, Fingerprint, KdfParams, KdfPolicy, KeyPair, Recipient, SafetyNumber, Sealed, SecretBlob,
    VerifiedBundle, XmlElement,
};
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use tokio_xmpp::parsers::presence::Type as PresenceType;
use tokio_xmpp::{IqRequest, Stanza};

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
        Self { connect, passphrase, data_dir, kdf: KdfParams::DEFAULT, progress: None }
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

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn random_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| Error::Protocol(keyward_proto::Error::Rng))?;
    Ok(hex::encode(bytes))
}

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

async fn seal_secret(account: &Account, keys: KeyPair) -> Result<(KeyPair, SecretBlob)> {
    KdfPolicy::STRICT.check(&account.kdf)?;
    let passphrase = account.passphrase.clone();
    let jid = account.connect.jid.clone();
    let params = account.kdf;
    let (keys, blob) = run_kdf(&account.progress, move || {
        let blob = SecretBlob::seal(&keys, &jid, passphrase.expose_secret().as_bytes(), params);
        (keys, blob)
    })
    .await?;
    Ok((keys, blob?))
}

async fn open_secret(account: &Account, blob: SecretBlob, bundle: &VerifiedBundle) -> Result<KeyPair> {
    let passphrase = account.passphrase.clone();
    let jid = account.connect.jid.clone();
    let opened =
        run_kdf(&account.progress, move || blob.open(passphrase.expose_secret().as_bytes(), &jid, &KdfPolicy::STRICT))
            .await?;
    let keys = match opened {
        Ok(keys) => keys,
        Err(keyward_proto::Error::Decrypt) => return Err(Error::WrongPassphrase),
        Err(e) => return Err(e.into()),
    };
    if keys.identity_public() != *bundle.identity_key() || keys.encryption_public() != *bundle.encryption_key() {
        return Err(Error::SecretMismatch(account.connect.jid.clone()));
    }
    Ok(keys)
}

/// An open keyward session: connected, with the account's keys in memory.
pub struct Session {
    conn: Connection,
    me: BareJid,
    component: BareJid,
    keys: KeyPair,
    bundle: VerifiedBundle,
    store: Store,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("me", &self.me).field("component", &self.component).finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a session with no key handling asked of the user: keys cached on this
    /// device, else fetched from the server (new device), else generated and
    /// published (first use).
    pub async fn start(account: &Account) -> Result<(Self, Setup)> {
        let store = Store::open(&account.data_dir, &account.connect.jid)?;
        if store.account()?.is_some() {
            return Ok((Self::resume(account).await?, Setup::ThisDevice));
        }
        match Self::new_device(account).await {
            Ok(session) => Ok((session, Setup::NewDevice)),
            Err(Error::NotInitialized(_)) => Ok((Self::first_use(account).await?, Setup::FirstUse)),
            Err(e) => Err(e),
        }
    }

    /// First use: generates keys, seals them with the passphrase (Argon2id),
    /// publishes bundle and secret to the component, and caches both here.
    pub async fn first_use(account: &Account) -> Result<Self> {
        let store = Store::open(&account.data_dir, &account.connect.jid)?;
        let me = account.connect.jid.clone();
        let mut conn = Connection::connect(&account.connect).await?;
        let component = conn.find_component(account.connect.component.as_ref()).await?;
        match own_status(&mut conn, &component, &me).await? {
            KeyStatus::None => {}
            KeyStatus::Active => return Err(Error::AlreadyInitialized(me)),
            KeyStatus::Revoked { reason, .. } => return Err(Error::Revoked { jid: me, reason: Some(reason) }),
        }
        let keys = KeyPair::generate()?;
        let (keys, secret) = seal_secret(account, keys).await?;
        let bundle = Bundle::sign(&keys, me.clone(), now_ms() / 1000);
        let publish = Publish::signed(&keys, &bundle, secret.clone(), now_ms())?;
        let request = IqRequest::Set(stanzas::to_minidom(&publish.to_element())?);
        match conn.iq(Some(&component), request, "publish").await {
            Ok(_) => {}
            Err(Error::Refused { condition, .. }) if condition == "conflict" => {
                return Err(Error::AlreadyInitialized(me));
            }
            Err(e) => return Err(e),
        }
        store.save_account(&AccountState::new(&bundle, &secret))?;
        Ok(Self { conn, me, component, keys, bundle, store })
    }

    /// A new device: fetches the sealed secret, opens it with the passphrase
    /// (refusing weakened KDF parameters), and checks it matches the published bundle.
    pub async fn new_device(account: &Account) -> Result<Self> {
        let store = Store::open(&account.data_dir, &account.connect.jid)?;
        let me = account.connect.jid.clone();
        let mut conn = Connection::connect(&account.connect).await?;
        let component = conn.find_component(account.connect.component.as_ref()).await?;
        // The directory's view first: it says whether the account is revoked or has no keys.
        let item = fetch_keys(&mut conn, &component, std::slice::from_ref(&me))
            .await?
            .into_iter()
            .find(|i| i.jid == me)
            .ok_or(Error::UnexpectedAnswer("keys"))?;
        let bundle = match (&item.status, &item.bundle) {
            (KeyStatus::Revoked { reason, .. }, _) => {
                return Err(Error::Revoked { jid: me, reason: Some(reason.clone()) });
            }
            (KeyStatus::None, _) => return Err(Error::NotInitialized(me)),
            (KeyStatus::Active, Some(bundle)) => {
                bundle.verify_for(&me).map_err(|cause| Error::BadBundle { jid: me.clone(), cause })?
            }
            (KeyStatus::Active, None) => return Err(Error::UnexpectedAnswer("keys")),
        };
        let request = IqRequest::Get(stanzas::to_minidom(&SecretQuery.to_element())?);
        let secret = match conn.iq(Some(&component), request, "secret").await {
            Ok(Some(answer)) => SecretBlob::from_element(&stanzas::from_minidom(&answer)?)?,
            Ok(None) => return Err(Error::UnexpectedAnswer("secret")),
            Err(Error::Refused { condition, .. }) if condition == "item-not-found" => {
                return Err(Error::SecretMismatch(me));
            }
            Err(e) => return Err(e),
        };
        let keys = open_secret(account, secret.clone(), &bundle).await?;
        store.save_account(&AccountState::new(&bundle, &secret))?;
        Ok(Self { conn, me, component, keys, bundle, store })
    }

    /// Opens the keys cached on this device (or fetches them like a new device).
    pub async fn resume(account: &Account) -> Result<Self> {
        let store = Store::open(&account.data_dir, &account.connect.jid)?;
        let me = account.connect.jid.clone();
        let Some(state) = store.account()? else { return Self::new_device(account).await };
        let bundle = state.bundle(&me)?;
        let keys = open_secret(account, state.secret()?, &bundle).await?;
        let mut conn = Connection::connect(&account.connect).await?;
        let component = component_or_server(&mut conn, account).await?;
        Ok(Self { conn, me, component, keys, bundle, store })
    }

    /// Uses keys that were made elsewhere, without publishing them: they are
    /// sealed with the passphrase and cached on this device only. For setups
    /// where bundles travel out of band (no component), and for tests.
    pub async fn with_local_keys(account: &Account, keys: KeyPair, created_unix_s: u64) -> Result<Self> {
        let store = Store::open(&account.data_dir, &account.connect.jid)?;
        let me = account.connect.jid.clone();
        let (keys, secret) = seal_secret(account, keys).await?;
        let bundle = Bundle::sign(&keys, me.clone(), created_unix_s);
        store.save_account(&AccountState::new(&bundle, &secret))?;
        let mut conn = Connection::connect(&account.connect).await?;
        let component = component_or_server(&mut conn, account).await?;
        Ok(Self { conn, me, component, keys, bundle, store })
    }

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
                        bundle
                            .verify_for(&item.jid)
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
                let verified =
                    bundle.verify_for(&item.jid).map_err(|cause| Error::BadBundle { jid: item.jid.clone(), cause })?;
                self.offer(&verified)
            }
        }
    }

    /// Asks the component for `jid`'s key and applies the answer.
    pub async fn refresh_key(&mut self, jid: &BareJid) -> Result<KeyEvent> {
        let items = fetch_keys(&mut self.conn, &self.component, std::slice::from_ref(jid)).await?;
        let item = items.iter().find(|i| &i.jid == jid).ok_or(Error::UnexpectedAnswer("keys"))?;
        self.learn(item)
    }

    async fn relay_to(&mut self, jid: &BareJid) -> Result<()> {
        let relay = Relay { to: jid.clone() };
        self.conn.iq(Some(&self.component), IqRequest::Set(stanzas::to_minidom(&relay.to_element())?), "relay").await?;
        Ok(())
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
    /// revoked contacts, unconfirmed key changes and contacts without a key.
    pub async fn send(&mut self, to: &BareJid, text: &str) -> Result<Sent> {
        // Ask the directory first (best effort): this catches a revocation or a
        // key change even before its notice was read. A server that blocks the
        // lookup only leaves the pinned key and the notices in force.
        match self.refresh_key(to).await {
            Ok(KeyEvent::NoKey { .. }) | Ok(_) => {}
            Err(e @ Error::BadBundle { .. }) => return Err(e),
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
        let sealed = Sealed::seal(&self.keys, &envelope, &[Recipient::from(&bundle)])?;
        self.conn.send(stanzas::sealed_message(to, &id, &sealed)?).await?;
        Ok(Sent { id, to_fingerprint: bundle.fingerprint() })
    }

    /// Announces availability, so the server delivers messages, stored offline
    /// messages and pending contact requests.
    pub async fn go_online(&mut self) -> Result<()> {
        self.conn.go_available().await
    }

    /// The next event within `wait`, or `None`. Call [`Session::go_online`] first.
    pub async fn next_event(&mut self, wait: Duration) -> Result<Option<Incoming>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(stanza) = self.conn.next_stanza(left).await? else { return Ok(None) };
            let event = match stanza {
                Stanza::Message(message) => self.on_message(stanzas::classify_message(&message, &self.component)).await,
                Stanza::Presence(presence) => match stanzas::classify_presence(&presence) {
                    Some(Subscription::Request(jid)) => Some(self.on_request(jid).await?),
                    Some(Subscription::Accepted(jid)) => Some(Incoming::ContactAccepted(jid)),
                    Some(Subscription::Ended(jid)) => Some(Incoming::ContactEnded(jid)),
                    None => None,
                },
                Stanza::Iq(_) => None,
            };
            if let Some(event) = event {
                return Ok(Some(event));
            }
        }
    }

    /// A contact request: approved at once when we asked for that contact first (it
    /// accepted us and asks back), else left to the user (`accept`). Not every server
    /// supports RFC 6121 pre-approval (ejabberd 23.01 does not), so the client does it.
    async fn on_request(&mut self, jid: BareJid) -> Result<Incoming> {
        let roster = match self.conn.iq(None, IqRequest::Get(stanzas::roster_query()), "roster").await {
            Ok(roster) => roster,
            Err(e) => {
                tracing::warn!(cause = %e, "could not read the roster; leaving the request to the user");
                return Ok(Incoming::ContactRequest(jid));
            }
        };
        if !roster.as_ref().is_some_and(|r| stanzas::roster_we_asked(r, &jid)) {
            return Ok(Incoming::ContactRequest(jid));
        }
        self.conn.send(stanzas::subscription(&jid, PresenceType::Subscribed)?).await?;
        Ok(Incoming::RequestApproved(jid))
    }

    async fn on_message(&mut self, inbound: Inbound) -> Option<Incoming> {
        match inbound {
            Inbound::Sealed { from, sealed, .. } => Some(match self.open(&from, &sealed).await {
                Ok(received) => Incoming::Message(received),
                Err(error) => Incoming::Rejected { from, error },
            }),
            Inbound::KeyRelay(relay) => {
                if relay.from == self.me {
                    return None;
                }
                let event = relay
                    .bundle
                    .verify_for(&relay.from)
                    .map_err(|cause| Error::BadBundle { jid: relay.from.clone(), cause })
                    .and_then(|bundle| self.offer(&bundle));
                Some(match event {
                    Ok(event) => Incoming::Key(event),
                    Err(error) => Incoming::Rejected { from: self.component.clone(), error },
                })
            }
            Inbound::Revoked(notice) => Some(match self.on_revoked(&notice).await {
                Ok(Some(event)) => event,
                Ok(None) => return None,
                Err(error) => Incoming::Rejected { from: self.component.clone(), error },
            }),
            Inbound::Malformed { from, error } => Some(Incoming::Rejected { from, error }),
            Inbound::ForgedNotice { from } => Some(Incoming::Rejected {
                from,
                error: Error::Invalid {
                    what: "notice",
                    reason: "key notices are accepted only from the component".into(),
                },
            }),
            Inbound::Unencrypted { from } => Some(Incoming::Unencrypted { from }),
            Inbound::Bounce { from, condition } => Some(Incoming::Bounce { from, condition }),
            Inbound::Other => None,
        }
    }

    /// A `<revoked/>` notice is a hint (protocol section 8): it counts only when it names the
    /// pinned key and a fresh `keys` answer confirms it. `None` when it changes nothing new.
    async fn on_revoked(&mut self, notice: &Revoked) -> Result<Option<Incoming>> {
        if notice.jid == self.me {
            if notice.fp != self.fingerprint() {
                return Err(Error::RevocationRefused {
                    jid: self.me.clone(),
                    reason: "it is not about this account's key".into(),
                });
            }
            let item = self.lookup_one(&self.me.clone()).await?;
            return match item.status {
                KeyStatus::Revoked { at, reason } => {
                    Ok(Some(Incoming::SelfRevoked { at: at.format(&Rfc3339).unwrap_or_default(), reason }))
                }
                _ => Err(Error::RevocationRefused {
                    jid: self.me.clone(),
                    reason: "the directory does not confirm it".into(),
                }),
            };
        }
        if !self.store.contacts()?.notice_applies(notice)? {
            return Ok(None);
        }
        let item = self.lookup_one(&notice.jid).await?;
        let confirmed = matches!(item.status, KeyStatus::Revoked { .. })
            && item.bundle.as_ref().is_some_and(|b| b.fingerprint() == notice.fp);
        if !confirmed {
            return Err(Error::RevocationRefused {
                jid: notice.jid.clone(),
                reason: "the directory does not confirm it for the pinned key".into(),
            });
        }
        self.learn(&item).map(|event| Some(Incoming::Key(event)))
    }

    async fn lookup_one(&mut self, jid: &BareJid) -> Result<KeyItem> {
        fetch_keys(&mut self.conn, &self.component, std::slice::from_ref(jid))
            .await?
            .into_iter()
            .find(|i| &i.jid == jid)
            .ok_or(Error::UnexpectedAnswer("keys"))
    }

    /// Opens a sealed message from `from` and checks it against the pinned key (the own key
    /// for the own account). A held-back changed key is never used to open.
    async fn open(&mut self, from: &BareJid, sealed: &Sealed) -> Result<Received> {
        if from == &self.me {
            let own = self.keys.identity_public();
            let envelope = self.store.with_replay(|cache| sealed.open(&self.keys, &self.me, from, &own, cache))??;
            return Ok(Received {
                from: envelope.from.clone(),
                id: envelope.msg_id.clone(),
                sent_at_ms: envelope.ts_ms,
                body: envelope.body.clone(),
                verified: true,
                trust: crate::contacts::Trust::Verified,
                warnings: Vec::new(),
            });
        }
        let mut contact = self.store.contacts()?.get(from).cloned();
        if contact.as_ref().is_none_or(|c| c.pinned.is_none()) {
            // Trust on first use through the directory.
            if let Err(e) = self.refresh_key(from).await {
                tracing::warn!(cause = %e, contact = %from, "could not fetch the sender's key");
            }
            contact = self.store.contacts()?.get(from).cloned();
        }
        let contact = contact.ok_or_else(|| Error::NoKey(from.clone()))?;
        let pinned = contact.pinned_bundle(from)?.ok_or_else(|| Error::NoKey(from.clone()))?;
        let pending = contact.pending_bundle(from)?;
        let mut warnings = Vec::new();
        let mut verified = true;
        let opened =
            self.store.with_replay(|cache| sealed.open(&self.keys, &self.me, from, pinned.identity_key(), cache))?;
        let envelope = match (opened, &pending) {
            (Ok(envelope), _) => envelope,
            (Err(keyward_proto::Error::BadSignature), Some(pending)) => {
                // Checked against the changed key only to say why it is refused; never shown,
                // never recorded, and the stanza is kept as evidence.
                let mut scratch = keyward_proto::MemoryReplayCache::default();
                let signed_by_changed =
                    sealed.open(&self.keys, &self.me, from, pending.identity_key(), &mut scratch).is_ok();
                if signed_by_changed {
                    self.store.keep_evidence("signed-by-changed-key", from, &sealed.to_xml())?;
                    return Err(Error::SignedByChangedKey {
                        jid: from.clone(),
                        pinned: pinned.fingerprint().to_string(),
                        offered: pending.fingerprint().to_string(),
                    });
                }
                return Err(keyward_proto::Error::BadSignature.into());
            }
            (Err(e), _) => return Err(e.into()),
        };
        if let Some(pending) = &pending {
            warnings.push(Warning::KeyChanged { pinned: pinned.fingerprint(), offered: pending.fingerprint() });
        }
        if let Some(revoked) = &contact.revoked {
            verified = false;
            warnings.push(Warning::ContactRevoked { at: revoked.at.clone() });
        }
        Ok(Received {
            from: envelope.from.clone(),
            id: envelope.msg_id.clone(),
            sent_at_ms: envelope.ts_ms,
            body: envelope.body.clone(),
            verified,
            trust: contact.trust,
            warnings,
        })
    }

    /// The contacts with their keys: the component's `roster-keys` where it is
    /// privileged, else the roster plus a `keys` lookup. Applies what it learns.
    pub async fn contacts(&mut self) -> Result<Vec<ContactView>> {
        let features = match self
            .conn
            .iq(Some(&self.component), IqRequest::Get(stanzas::disco_info_query()), "disco#info")
            .await
        {
            Ok(Some(answer)) => stanzas::disco_features(&answer),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::warn!(cause = %e, "the component did not answer disco#info");
                Vec::new()
            }
        };
        let items: Vec<KeyItem> = if features.iter().any(|f| f == FEATURE_ROSTER_KEYS) {
            let request = IqRequest::Get(stanzas::to_minidom(&RosterKeysQuery.to_element())?);
            let answer = self.conn.iq(Some(&self.component), request, "roster-keys").await?;
            let answer = answer.ok_or(Error::UnexpectedAnswer("roster-keys"))?;
            RosterKeys::from_element(&stanzas::from_minidom(&answer)?)?.items
        } else {
            let roster = self.conn.iq(None, IqRequest::Get(stanzas::roster_query()), "roster").await?;
            let jids = roster.as_ref().map(stanzas::roster_jids).unwrap_or_default();
            let jids: Vec<BareJid> = jids.into_iter().filter(|j| j != &self.me).collect();
            if jids.is_empty() { Vec::new() } else { fetch_keys(&mut self.conn, &self.component, &jids).await? }
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

async fn fetch_keys(
    conn: &mut crate::connection::Connection,
    component: &BareJid,
    jids: &[BareJid],
) -> Result<Vec<KeyItem>> {
    let mut items = Vec::with_capacity(jids.len());
    for chunk in jids.chunks(keyward_proto::limits::KEYS_ITEMS) {
        let query = KeysQuery::new(chunk.to_vec())?;
        let answer =
            conn.iq(Some(component), IqRequest::Get(stanzas::to_minidom(&query.to_element())?), "keys").await?;
        let answer = answer.ok_or(Error::UnexpectedAnswer("keys"))?;
        let result = KeysResult::from_element(&stanzas::from_minidom(&answer)?)?;
        // Only what was asked for counts.
        items.extend(result.items.into_iter().filter(|i| chunk.contains(&i.jid)));
    }
    Ok(items)
}

/// The checked component ([`Connection::find_component`]) for sessions that can work without
/// one (keys cached here or exchanged out of band): when the server has none, keyward requests
/// go to the account's own server, which refuses them, and notices count only from its domain JID.
async fn component_or_server(conn: &mut Connection, account: &Account) -> Result<BareJid> {
    match conn.find_component(account.connect.component.as_ref()).await {
        Err(Error::NoComponent { domain }) => Ok(BareJid::parse(&domain)?),
        other => other,
    }
}

async fn own_status(conn: &mut Connection, component: &BareJid, me: &BareJid) -> Result<KeyStatus> {
    let items = fetch_keys(conn, component, std::slice::from_ref(me)).await?;
    Ok(items.into_iter().find(|i| &i.jid == me).map(|i| i.status).unwrap_or(KeyStatus::None))
}

/// The duration meaning "wait for ever" in [`Session::next_event`] loops.
pub const FOREVER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
