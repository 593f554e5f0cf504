//! The steady mixed load of `cargo xtask chaos` and `soak`: real client sessions doing key lookups, publishes, relays and messages, plus admin revocations, with every outcome recorded.
//!
//! A few steady users each run a task owning one `keyward_client::Session`: every tick one
//! request (a lookup of the next user or of a freshly published account, a message to the next
//! user, now and then a relay), then they read their events until the next tick. A publisher
//! registers and publishes a new account every so often, and a revoker revokes, through
//! keydir's admin API, a published account that some steady users looked up (so they hold its
//! key and must get the notice). Everything is bounded in count and time, on loopback only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keyward_client::keyward_proto::{BareJid, KdfParams};
use keyward_client::{Account, ConnectOptions, Incoming, KeyEvent, Session};
use keyward_tests::stack::Stack;
use secrecy::SecretString;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The cheapest KDF parameters the client's strict policy accepts.
const FAST_KDF: KdfParams = KdfParams { m_kib: 19_456, t: 2, p: 1 };

/// Lifts the component's per-sender request bucket: a synthetic load's few users make more
/// requests a minute than `KEYWARD_REQUESTS_PER_MINUTE` allows a person, and measure the
/// service, not the quota (`relay`'s own limit stays).
pub(crate) fn unthrottled(options: &mut keyward_tests::component::ComponentOptions) {
    for (name, value) in [("KEYWARD_REQUESTS_PER_MINUTE", "100000000"), ("KEYWARD_REQUESTS_BURST", "100000")] {
        options.env.push((name.to_owned(), value.to_owned()));
    }
}

/// How hard and how long the load pushes.
#[derive(Debug, Clone)]
pub(crate) struct LoadOptions {
    /// Steady users (each with one session; each writes to the next).
    pub(crate) users: usize,
    /// Each steady user's pace: one request per tick.
    pub(crate) tick: Duration,
    /// How often a new account is registered and published.
    pub(crate) publish_every: Duration,
    /// At most this many published accounts.
    pub(crate) max_published: usize,
    /// How often an account is revoked.
    pub(crate) revoke_every: Duration,
    /// How long one client request may take.
    pub(crate) request_timeout: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            users: 4,
            tick: Duration::from_millis(300),
            publish_every: Duration::from_secs(1),
            max_published: 600,
            revoke_every: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// A kind of request the load makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum OpKind {
    Lookup,
    Message,
    Relay,
    Publish,
    Revoke,
    /// A session's (re)connection after its connection broke.
    Connect,
}

/// One request and its outcome, in time since the load started.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub(crate) kind: OpKind,
    pub(crate) start: Duration,
    pub(crate) ok: bool,
    pub(crate) error: Option<String>,
}

/// A revocation the admin API confirmed, and who held the key when it was asked for.
#[derive(Debug, Clone)]
pub(crate) struct Revoked {
    pub(crate) jid: BareJid,
    pub(crate) holders: BTreeSet<BareJid>,
    /// When the admin API confirmed it.
    pub(crate) at: Duration,
}

/// Everything the load saw.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub(crate) ops: Vec<Op>,
    /// Accounts whose publish was confirmed, with their fingerprints (hex).
    pub(crate) published: Vec<(BareJid, String)>,
    /// Which steady users looked up which published account (successfully).
    holders: BTreeMap<BareJid, BTreeSet<BareJid>>,
    /// Accounts being or already revoked: no longer looked up.
    revoking: BTreeSet<BareJid>,
    pub(crate) revocations: Vec<Revoked>,
    /// Revocation notices received, (holder, revoked account), with when the first came.
    pub(crate) notices: BTreeMap<(BareJid, BareJid), Duration>,
    pub(crate) sent: BTreeSet<String>,
    pub(crate) received: BTreeSet<String>,
    /// Stanzas the client refused or bounces (should be none).
    pub(crate) rejected: Vec<String>,
    /// Revocations a holder learned from its own lookup before the notice came (the notice then
    /// changes nothing at the client, which is right): (holder, revoked account).
    pub(crate) learned_by_lookup: BTreeSet<(BareJid, BareJid)>,
    /// For each notice never received: what the holder's own store says of the revoked account.
    pub(crate) diagnosis: Vec<String>,
}

impl Record {
    /// Notices never received: (holder, revoked account).
    pub(crate) fn missing_notices(&self) -> Vec<(BareJid, BareJid)> {
        let expected = self.revocations.iter().flat_map(|r| r.holders.iter().map(|h| (h.clone(), r.jid.clone())));
        expected.filter(|pair| !self.notices.contains_key(pair)).collect()
    }

    /// The slowest notice owed to a holder: from the revocation's confirmation to its arrival.
    pub(crate) fn slowest_notice(&self) -> Option<Duration> {
        let delays = self.revocations.iter().flat_map(|r| {
            r.holders
                .iter()
                .filter_map(|h| self.notices.get(&(h.clone(), r.jid.clone())).map(|at| at.saturating_sub(r.at)))
        });
        delays.max()
    }
}

/// What the load talks to.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    c2s: String,
    domain: String,
    component: BareJid,
    keydir_url: String,
    admin_token: String,
}

impl Target {
    pub(crate) fn of(stack: &Stack) -> Result<Self> {
        Ok(Self {
            c2s: stack.c2s_addr().to_string(),
            domain: stack.domain().to_owned(),
            component: BareJid::parse(stack.component_jid())?,
            keydir_url: stack.keydir_url(),
            admin_token: stack.admin_token().to_owned(),
        })
    }

    /// The account `local` with its state under `dir`, requests timing out after `timeout`.
    pub(crate) fn account(&self, local: &str, dir: &Path, timeout: Duration) -> Result<Account> {
        let jid = BareJid::parse(&format!("{local}@{}", self.domain))?;
        let mut connect = ConnectOptions::new(jid, SecretString::from(format!("password of {local}")))
            .server(self.c2s.clone())
            .insecure_plaintext()
            .component(self.component.clone());
        connect.timeout = timeout;
        let mut account = Account::new(connect, SecretString::from(format!("passphrase of {local}")), dir.into());
        account.kdf = FAST_KDF;
        account.passphrase_policy = keyward_client::PassphrasePolicy::AllowWeakForTests;
        Ok(account)
    }
}

/// Registers the account in-band and publishes its keys; returns the open session.
pub(crate) async fn create(account: &Account) -> Result<Session> {
    keyward_client::register(&account.connect).await.context("registering")?;
    Session::first_use(account).await.context("publishing")
}

/// Opens a session with the keys cached on this device and goes online.
pub(crate) async fn connect(account: &Account) -> Result<Session> {
    let mut session = Session::resume(account).await?;
    session.go_online().await?;
    Ok(session)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// No new requests; sessions keep reading events (late notices).
    Draining,
    Done,
}

struct Shared {
    t0: Instant,
    options: LoadOptions,
    target: Target,
    record: Mutex<Record>,
}

impl Shared {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn op<T, E: std::fmt::Display>(&self, kind: OpKind, start: Instant, result: &Result<T, E>) {
        let op = Op {
            kind,
            start: start - self.t0,
            ok: result.is_ok(),
            error: result.as_ref().err().map(|e| e.to_string()),
        };
        self.record().ops.push(op);
    }

    fn event(&self, me: &BareJid, event: Incoming) {
        let mut record = self.record();
        match event {
            Incoming::Message(received) => {
                record.received.insert(received.id);
            }
            Incoming::Key(KeyEvent::Revoked { jid, .. }) => {
                record.notices.entry((me.clone(), jid)).or_insert(self.t0.elapsed());
            }
            Incoming::Rejected { from, error } => record.rejected.push(format!("{me} refused from {from}: {error}")),
            Incoming::Bounce { from, condition } => {
                record.rejected.push(format!("{me} got a bounce {condition} from {from}"))
            }
            _ => {}
        }
    }
}

/// A running load. Stop it with [`Load::drain`] and [`Load::finish`].
pub(crate) struct Load {
    shared: Arc<Shared>,
    phase: watch::Sender<Phase>,
    tasks: JoinSet<()>,
    dir: tempfile::TempDir,
}

impl Load {
    /// Registers and sets up the steady users (each pins the next one's key), then starts the load.
    pub(crate) async fn start(target: Target, options: LoadOptions) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("keyward-load-").tempdir()?;
        let users = options.users.max(2);
        let mut accounts = Vec::new();
        for i in 0..users {
            let account = target.account(&format!("steady{i}"), dir.path(), options.request_timeout)?;
            create(&account).await.with_context(|| format!("setting up steady user {i}"))?.close().await?;
            accounts.push(account);
        }
        let mut sessions = Vec::new();
        for (i, account) in accounts.iter().enumerate() {
            let peer = accounts[(i + 1) % users].connect.jid.clone();
            let mut session = connect(account).await?;
            session.refresh_key(&peer).await.context("pinning the next user's key")?;
            sessions.push((account.clone(), session, peer));
        }
        // Times count from here, when the load begins.
        let shared = Arc::new(Shared { t0: Instant::now(), options, target, record: Mutex::default() });
        let (phase, _) = watch::channel(Phase::Running);
        let mut tasks = JoinSet::new();
        for (account, session, peer) in sessions {
            tasks.spawn(steady(shared.clone(), account, session, peer, phase.subscribe()));
        }
        tasks.spawn(publisher(shared.clone(), dir.path().to_path_buf(), phase.subscribe()));
        tasks.spawn(revoker(shared.clone(), phase.subscribe()));
        Ok(Self { shared, phase, tasks, dir })
    }

    /// When the load started (op times count from here).
    pub(crate) fn t0(&self) -> Instant {
        self.shared.t0
    }

    /// The account `local` with its state in the load's folder (for probes and audits).
    pub(crate) fn account(&self, local: &str, timeout: Duration) -> Result<Account> {
        self.shared.target.account(local, self.dir.path(), timeout)
    }

    /// The accounts published so far, with their fingerprints (hex).
    pub(crate) fn published(&self) -> Vec<(BareJid, String)> {
        self.shared.record().published.clone()
    }

    /// A steady user (to probe lookups of).
    pub(crate) fn steady_jid(&self) -> Result<BareJid> {
        Ok(BareJid::parse(&format!("steady0@{}", self.shared.target.domain))?)
    }

    /// Stops making requests, and waits (at most `timeout`) until every holder of a revoked
    /// key has the notice; sessions keep reading events meanwhile. Returns how long it took.
    pub(crate) async fn drain(&mut self, timeout: Duration) -> Duration {
        let started = Instant::now();
        let _ = self.phase.send(Phase::Draining);
        while !self.shared.record().missing_notices().is_empty() && started.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        started.elapsed()
    }

    /// Ends every task and returns the record.
    pub(crate) async fn finish(mut self) -> Record {
        let _ = self.phase.send(Phase::Done);
        // Every task ends at its next tick; one stuck on a dead connection is not waited for.
        let joined =
            tokio::time::timeout(Duration::from_secs(30), async { while self.tasks.join_next().await.is_some() {} })
                .await;
        if joined.is_err() {
            eprintln!("load: tasks still running 30 s after the end; aborting them");
            self.tasks.abort_all();
        }
        let mut record = std::mem::take(&mut *self.shared.record());
        record.diagnosis = record
            .missing_notices()
            .iter()
            .map(|(holder, revoked)| format!("{holder}'s store: {}", self.holder_state(holder, revoked)))
            .collect();
        record
    }

    /// What `holder`'s own store (closed by now) says of `revoked`: whether the client knows the
    /// revocation (the event was missed) or not (the notice was lost on the way).
    fn holder_state(&self, holder: &BareJid, revoked: &BareJid) -> String {
        let contacts = keyward_client::Store::open(self.dir.path(), holder).and_then(|store| store.contacts());
        match contacts {
            Err(err) => format!("unreadable ({err})"),
            Ok(contacts) => match contacts.get(revoked) {
                None => "no contact".to_owned(),
                Some(contact) if contact.revoked.is_some() => "knows it is revoked".to_owned(),
                Some(contact) if contact.pinned.is_some() => "key pinned, not known revoked".to_owned(),
                Some(_) => "contact without a pinned key".to_owned(),
            },
        }
    }
}

/// Waits until `until`, returning early when the phase changes to `Done`.
async fn pace(phase: &mut watch::Receiver<Phase>, until: Instant) {
    let _ = tokio::time::timeout_at(until.into(), phase.wait_for(|p| *p == Phase::Done)).await;
}

/// One steady user: a request per tick, events read in between, reconnecting when the connection breaks.
async fn steady(
    shared: Arc<Shared>,
    account: Account,
    session: Session,
    peer: BareJid,
    mut phase: watch::Receiver<Phase>,
) {
    let me = account.connect.jid.clone();
    let mut session = Some(session);
    for tick in 0u64.. {
        let now = *phase.borrow();
        let next = Instant::now() + shared.options.tick;
        if now == Phase::Done {
            break;
        }
        let Some(live) = session.as_mut() else {
            let started = Instant::now();
            let result = connect(&account).await;
            shared.op(OpKind::Connect, started, &result);
            session = result.ok();
            pace(&mut phase, next).await;
            continue;
        };
        let mut broken = false;
        if now == Phase::Running {
            let started = Instant::now();
            let (kind, result) = match tick % 10 {
                1 | 5 | 8 => {
                    let sent = live.send(&peer, &format!("tick {tick} from {me}")).await;
                    if let Ok(sent) = &sent {
                        shared.record().sent.insert(sent.id.clone());
                    }
                    (OpKind::Message, sent.map(drop))
                }
                9 => (OpKind::Relay, live.add(&peer).await.map(drop)),
                2 | 3 | 6 | 7 => {
                    let victim = newest_unrevoked(&shared).unwrap_or_else(|| peer.clone());
                    let looked = live.refresh_key(&victim).await;
                    match &looked {
                        // The lookup raced the revocation and saw it: the holder knows, and the
                        // notice, when it comes, changes nothing at the client.
                        Ok(KeyEvent::Revoked { jid, .. }) => {
                            let mut record = shared.record();
                            record.notices.entry((me.clone(), jid.clone())).or_insert(shared.t0.elapsed());
                            record.learned_by_lookup.insert((me.clone(), jid.clone()));
                        }
                        Ok(_) if victim != peer => {
                            shared.record().holders.entry(victim).or_default().insert(me.clone());
                        }
                        _ => {}
                    }
                    (OpKind::Lookup, looked.map(drop))
                }
                _ => (OpKind::Lookup, live.refresh_key(&peer).await.map(drop)),
            };
            broken = matches!(result, Err(keyward_client::Error::Connection(_) | keyward_client::Error::Timeout(_)));
            shared.op(kind, started, &result);
        }
        while !broken {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match live.next_event(left).await {
                Ok(Some(event)) => shared.event(&me, event),
                Ok(None) => break,
                Err(_) => broken = true,
            }
        }
        if broken {
            // Stanzas that arrived while a request waited are buffered in the session: read
            // them before dropping it, or a notice the server did deliver would count as lost.
            if let Some(mut dead) = session.take() {
                for _ in 0..1000 {
                    match dead.next_event(Duration::ZERO).await {
                        Ok(Some(event)) => shared.event(&me, event),
                        _ => break,
                    }
                }
            }
            pace(&mut phase, next).await;
        }
    }
    if let Some(session) = session {
        let _ = session.close().await;
    }
}

/// The newest published account not being revoked.
fn newest_unrevoked(shared: &Shared) -> Option<BareJid> {
    let record = shared.record();
    record.published.iter().rev().map(|(jid, _)| jid).find(|jid| !record.revoking.contains(*jid)).cloned()
}

/// Registers and publishes a new account every `publish_every`.
async fn publisher(shared: Arc<Shared>, dir: std::path::PathBuf, mut phase: watch::Receiver<Phase>) {
    for n in 0..shared.options.max_published {
        if *phase.borrow() != Phase::Running {
            break;
        }
        let next = Instant::now() + shared.options.publish_every;
        let started = Instant::now();
        let result = match shared.target.account(&format!("pub{n}"), &dir, shared.options.request_timeout) {
            Ok(account) => create(&account).await,
            Err(err) => Err(err),
        };
        shared.op(OpKind::Publish, started, &result.as_ref().map_err(|e| format!("{e:#}")));
        if let Ok(session) = result {
            let published = (session.me().clone(), session.fingerprint().to_hex());
            shared.record().published.push(published);
            let _ = session.close().await;
        }
        pace(&mut phase, next).await;
    }
}

/// Every `revoke_every`, revokes the oldest published account that some steady user holds.
async fn revoker(shared: Arc<Shared>, mut phase: watch::Receiver<Phase>) {
    let http = reqwest::Client::new();
    let mut retry: Option<Revoked> = None;
    while *phase.borrow() == Phase::Running {
        let next = Instant::now() + shared.options.revoke_every;
        let chosen = retry.take().or_else(|| {
            let mut record = shared.record();
            let jid = record
                .published
                .iter()
                .map(|(jid, _)| jid)
                .find(|jid| !record.revoking.contains(*jid) && record.holders.contains_key(*jid))
                .cloned()?;
            record.revoking.insert(jid.clone());
            let holders = record.holders.get(&jid).cloned().unwrap_or_default();
            Some(Revoked { jid, holders, at: Duration::ZERO })
        });
        if let Some(revoked) = chosen {
            let started = Instant::now();
            let result = revoke(&http, &shared.target, &revoked.jid).await;
            shared.op(OpKind::Revoke, started, &result.as_ref().map_err(|e| format!("{e:#}")));
            match result {
                Ok(()) => shared.record().revocations.push(Revoked { at: shared.t0.elapsed(), ..revoked }),
                Err(_) => retry = Some(revoked),
            }
        }
        pace(&mut phase, next).await;
    }
}

/// `POST /v0/admin/accounts/{jid}/revoke` (repeating a revocation is harmless).
async fn revoke(http: &reqwest::Client, target: &Target, jid: &BareJid) -> Result<()> {
    let response = http
        .post(format!("{}/v0/admin/accounts/{jid}/revoke", target.keydir_url))
        .bearer_auth(&target.admin_token)
        .header("content-type", "application/json")
        .body(r#"{"reason":"chaos load"}"#)
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        bail!("revoke answered {status}: {}", response.text().await.unwrap_or_default());
    }
    Ok(())
}
