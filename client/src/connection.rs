//! The c2s connection: every login (reconnects included) with SASL SCRAM only, over STARTTLS, direct TLS or (loopback only) plain TCP; IQs, stanzas, events.

use crate::error::{Error, Result};
use crate::stanzas::{self, NS_ROSTER};
use futures::{SinkExt, StreamExt};
use keyward_proto::BareJid;
use secrecy::{ExposeSecret, SecretString};
use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_xmpp::connect::{DnsConfig, ServerConnector, TcpServerConnector};
use tokio_xmpp::error::AuthError;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::minidom::Element as MElement;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::Message;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::parsers::stream_features::StreamFeatures;
use tokio_xmpp::stanzastream::{
    Connection as StreamConnection, Event as StreamItem, StanzaStage, StanzaState, StanzaStream, StreamEvent,
};
use tokio_xmpp::xmlstream::{FallibleStreamElement, ReadError, StreamHeader, Timeouts, XmppStream, XmppStreamElement};
use tokio_xmpp::{IqRequest, Stanza};

/// Stanzas buffered between the network task and the session, each way.
const QUEUE_DEPTH: usize = 64;

/// How the connection to the server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Plain TCP upgraded with STARTTLS (RFC 6120); the default.
    #[default]
    StartTls,
    /// TLS from the first byte (XEP-0368).
    DirectTls,
    /// Plain TCP with NO encryption: only for loopback tests. SCRAM still
    /// protects the password, but everything else is readable on the wire.
    InsecurePlaintext,
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The account.
    pub jid: BareJid,
    /// The account's XMPP password.
    pub password: SecretString,
    /// `host:port` of the server; by default found through DNS SRV from the JID's domain.
    pub server: Option<String>,
    /// Transport protection.
    pub transport: Transport,
    /// The keyward component's JID; by default discovered on the account's server
    /// (XEP-0030 disco#items). Named or discovered, it is checked through disco#info
    /// before any keyward request goes to it ([`Connection::find_component`]).
    pub component: Option<BareJid>,
    /// How long to wait for any single answer.
    pub timeout: Duration,
}

impl ConnectOptions {
    /// Options for `jid` with `password`: STARTTLS, server from DNS, component discovered.
    pub fn new(jid: BareJid, password: SecretString) -> Self {
        Self {
            jid,
            password,
            server: None,
            transport: Transport::default(),
            component: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// Connects to `host:port` instead of looking the server up in DNS.
    #[must_use]
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }

    /// Uses plain TCP without TLS: for loopback test servers only.
    #[must_use]
    pub fn insecure_plaintext(mut self) -> Self {
        self.transport = Transport::InsecurePlaintext;
        self
    }

    /// Names the component instead of discovering it (it is still checked through disco#info).
    #[must_use]
    pub fn component(mut self, component: BareJid) -> Self {
        self.component = Some(component);
        self
    }
}

fn connection_error(err: impl std::fmt::Display) -> Error {
    Error::Connection(err.to_string())
}

/// Where to connect. With [`Transport::InsecurePlaintext`] an explicit `HOST:PORT` is required
/// (no DNS SRV) and every address it resolves to must be loopback, so that neither the
/// password of an in-band registration nor any stanza can cross a network in the clear
/// (protocol section 12.1). The check runs before any connection is made.
async fn dns_config(options: &ConnectOptions) -> Result<DnsConfig> {
    match &options.server {
        Some(server) => {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(server.as_str())
                .await
                .map_err(|e| Error::Invalid { what: "server address", reason: format!("{server}: {e}") })?
                .collect();
            let first = *addrs.first().ok_or_else(|| Error::Invalid {
                what: "server address",
                reason: format!("{server} did not resolve"),
            })?;
            if options.transport == Transport::InsecurePlaintext {
                check_loopback(server, &addrs)?;
            }
            Ok(DnsConfig::addr(&first.to_string()))
        }
        None if options.transport == Transport::InsecurePlaintext => Err(Error::PlaintextNotLoopback {
            target: format!("the server of {} (from DNS SRV; pass a loopback HOST:PORT)", options.jid.domain()),
        }),
        #[cfg(feature = "tls")]
        None => Ok(match options.transport {
            Transport::DirectTls => DnsConfig::srv_xmpps(options.jid.domain()),
            _ => DnsConfig::srv_default_client(options.jid.domain()),
        }),
        #[cfg(not(feature = "tls"))]
        None => Err(Error::Invalid {
            what: "server address",
            reason: "this build has no DNS support: pass HOST:PORT".into(),
        }),
    }
}

/// Refuses unless every address of `server` is loopback (127.0.0.0/8 or ::1).
fn check_loopback(server: &str, addrs: &[SocketAddr]) -> Result<()> {
    match addrs.iter().find(|a| !a.ip().is_loopback()) {
        Some(addr) => Err(Error::PlaintextNotLoopback { target: format!("{server} ({})", addr.ip()) }),
        None => Ok(()),
    }
}

fn xmpp_jid(bare: &BareJid) -> Result<Jid> {
    stanzas::jid(bare)
}

/// One login on a fresh connection, with SCRAM only (protocol section 12.2): a server that
/// offers no SCRAM mechanism gets no password at all ([`Error::NoScram`]), whatever else it
/// offers. Channel binding follows this connection's offer ([`crate::binding::binding_for`]).
/// Returns the stream after the post-authentication restart, with its features.
async fn scram_login<C: ServerConnector>(
    connector: C,
    account: &BareJid,
    password: &SecretString,
    timeouts: Timeouts,
) -> Result<(StreamFeatures, XmppStream<C::Stream>)> {
    let jid = xmpp_jid(account)?;
    let username = account.local().ok_or_else(|| Error::Invalid { what: "JID", reason: "no localpart".into() })?;
    let (pending, binding) = connector.connect(&jid, ns::JABBER_CLIENT, timeouts).await.map_err(connection_error)?;
    let (features, stream) = pending.recv_features::<FallibleStreamElement>().await.map_err(connection_error)?;
    let offered = features.sasl_mechanisms;
    let scram: BTreeSet<String> = offered.iter().filter(|m| m.starts_with("SCRAM-")).cloned().collect();
    if scram.is_empty() {
        return Err(Error::NoScram { offered: offered.into_iter().collect::<Vec<_>>().join(", ") });
    }
    let server_types = features.sasl_cb.map(|cb| cb.types);
    let creds = sasl::common::Credentials::default()
        .with_username(username)
        .with_password(password.expose_secret())
        .with_channel_binding(crate::binding::binding_for(binding, &scram, server_types.as_deref()));
    // tokio-xmpp picks among the mechanisms it is given: only SCRAM ones are.
    let stream = match tokio_xmpp::client_login(stream, scram, creds).await {
        Ok(stream) => stream,
        Err(tokio_xmpp::Error::Auth(AuthError::Fail(condition))) => {
            return Err(Error::AuthFailed { jid: account.clone(), condition: format!("{condition:?}") });
        }
        Err(e) => return Err(connection_error(e)),
    };
    let header = StreamHeader { to: Some(Cow::Borrowed(account.domain())), from: None, id: None };
    let pending = stream.send_header(header).await.map_err(connection_error)?;
    pending.recv_features::<FallibleStreamElement>().await.map_err(connection_error)
}

/// A login that failed for good on a reconnect, with the stream's connection slot, which is
/// kept (never filled) so that the stream waits instead of aborting.
type Fatal = (Error, oneshot::Sender<StreamConnection>);

/// The reconnect policy handed to tokio-xmpp's `StanzaStream` in place of its own, which logs
/// in with whatever the server offers (PLAIN included) on every reconnect. The first call
/// hands over the connection [`Connection::connect`] logged in already; every later one logs
/// in again with [`scram_login`], retrying with back-off, except after a refusal that retrying
/// cannot fix (no SCRAM offered, password refused), which goes to `fatal`.
fn reconnector<C: ServerConnector>(
    connector: C,
    account: BareJid,
    password: SecretString,
    timeouts: Timeouts,
    login_timeout: Duration,
    first: StreamConnection,
    fatal: mpsc::UnboundedSender<Fatal>,
) -> Box<dyn FnMut(Option<String>, oneshot::Sender<StreamConnection>) + Send + 'static> {
    let mut first = Some(first);
    Box::new(move |_location, slot| {
        if let Some(connection) = first.take() {
            let _ = slot.send(connection);
            return;
        }
        let (connector, account, password, fatal) =
            (connector.clone(), account.clone(), password.clone(), fatal.clone());
        tokio::spawn(async move {
            const MAX_DELAY: Duration = Duration::from_secs(30);
            let mut delay = Duration::from_secs(1);
            loop {
                let attempt =
                    with_timeout(login_timeout, "login", scram_login(connector.clone(), &account, &password, timeouts));
                match attempt.await {
                    Ok((features, stream)) => {
                        let identity = match xmpp_jid(&account) {
                            Ok(jid) => jid,
                            Err(e) => {
                                let _ = fatal.send((e, slot));
                                return;
                            }
                        };
                        let _ = slot.send(StreamConnection { stream: stream.box_stream(), features, identity });
                        return;
                    }
                    Err(e @ (Error::NoScram { .. } | Error::AuthFailed { .. })) => {
                        tracing::error!(cause = %e, "reconnect refused: not logging in");
                        let _ = fatal.send((e, slot));
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(cause = %e, retry_in = ?delay, "reconnect failed");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_DELAY);
                    }
                }
            }
        });
    })
}

/// Logs in (SCRAM only, see [`scram_login`]) and starts the library's stream on that
/// connection, with [`reconnector`] for every later one.
async fn login<C: ServerConnector>(
    connector: C,
    options: &ConnectOptions,
    timeouts: Timeouts,
) -> Result<(StanzaStream, mpsc::UnboundedReceiver<Fatal>)> {
    let (features, stream) = with_timeout(
        options.timeout,
        "login",
        scram_login(connector.clone(), &options.jid, &options.password, timeouts),
    )
    .await?;
    let first = StreamConnection { stream: stream.box_stream(), features, identity: xmpp_jid(&options.jid)? };
    let (fatal_tx, fatal_rx) = mpsc::unbounded_channel();
    let reconnect = reconnector(
        connector,
        options.jid.clone(),
        options.password.clone(),
        timeouts,
        options.timeout,
        first,
        fatal_tx,
    );
    Ok((StanzaStream::new(reconnect, QUEUE_DEPTH), fatal_rx))
}

/// An authenticated, bound c2s session.
///
/// It drives tokio-xmpp's `StanzaStream` directly from one task rather than
/// through `Client`: `Client`'s split receiver polls with `try_lock` and can
/// return `Pending` without a waker while a send holds the lock, which loses
/// wake-ups (events then stall until some other event arrives).
#[derive(Debug)]
pub struct Connection {
    stream: StanzaStream,
    me: BareJid,
    bound: Jid,
    timeout: Duration,
    buffered: VecDeque<Stanza>,
    available: bool,
    next_id: u64,
    /// Reconnects that failed for good ([`reconnector`]).
    fatal: mpsc::UnboundedReceiver<Fatal>,
    /// Set once a reconnect failed for good: every later call fails with it.
    broken: Option<String>,
    /// The slot of the failed reconnect, kept so that the stream waits instead of aborting.
    held: HeldSlot,
    /// Losses and returns of the link to the server not yet taken ([`Connection::take_link`]).
    links: VecDeque<Link>,
}

/// A change of the link to the server, for a long-lived session to show and act on. The
/// connection reconnects by itself (with back-off, SCRAM only); these only report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Link {
    /// The connection to the server broke; reconnecting. Messages sent meanwhile wait in the
    /// stream's queue; requests fail with their timeout.
    Lost,
    /// Connected again, with a new server session (presence is announced again by itself;
    /// what else a session had, carbons say, must be asked for again).
    Restored,
}

/// The connection slot of a reconnect that failed for good ([`Fatal`]).
#[derive(Default)]
struct HeldSlot(Option<oneshot::Sender<StreamConnection>>);

impl std::fmt::Debug for HeldSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "HeldSlot(held)" } else { "HeldSlot(none)" })
    }
}

impl Connection {
    /// Connects, authenticates (SCRAM) and binds a resource.
    pub async fn connect(options: &ConnectOptions) -> Result<Self> {
        let timeouts = Timeouts {
            read_timeout: options.timeout.max(Duration::from_secs(10)) * 4,
            response_timeout: options.timeout,
        };
        let dns = dns_config(options).await?;
        let (stream, fatal) = match options.transport {
            Transport::InsecurePlaintext => login(TcpServerConnector::from(dns), options, timeouts).await?,
            #[cfg(feature = "tls")]
            Transport::StartTls => {
                login(tokio_xmpp::connect::StartTlsServerConnector::from(dns), options, timeouts).await?
            }
            #[cfg(feature = "tls")]
            Transport::DirectTls => {
                login(tokio_xmpp::connect::DirectTlsServerConnector::from(dns), options, timeouts).await?
            }
            #[cfg(not(feature = "tls"))]
            _ => {
                return Err(Error::Invalid {
                    what: "transport",
                    reason: "this build has no TLS support (cargo feature `tls`)".into(),
                });
            }
        };
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).map_err(|_| Error::Protocol(keyward_proto::Error::Rng))?;
        let mut connection = Self {
            stream,
            me: options.jid.clone(),
            bound: Jid::new(options.jid.as_str()).map_err(connection_error)?,
            timeout: options.timeout,
            buffered: VecDeque::new(),
            available: false,
            next_id: u64::from(u32::from_be_bytes(random)) << 16,
            fatal,
            broken: None,
            held: HeldSlot::default(),
            links: VecDeque::new(),
        };
        let bound = with_timeout(options.timeout, "the session to start", async {
            loop {
                match connection.stream.next().await {
                    Some(StreamItem::Stream(StreamEvent::Reset { bound_jid, .. })) => return Ok(bound_jid),
                    Some(StreamItem::Stanza(stanza)) => connection.buffered.push_back(stanza),
                    Some(StreamItem::Stream(_)) => {}
                    None => return Err(connection_error("the stream ended")),
                }
            }
        })
        .await?;
        connection.bound = bound;
        Ok(connection)
    }

    /// The account.
    pub fn me(&self) -> &BareJid {
        &self.me
    }

    /// The full JID the server bound.
    pub fn bound_jid(&self) -> &Jid {
        &self.bound
    }

    fn new_id(&mut self) -> String {
        self.next_id = self.next_id.wrapping_add(1);
        format!("kw-{:x}", self.next_id)
    }

    /// Sends one stanza (an id is added if it has none) and waits until it is written.
    pub async fn send(&mut self, stanza: impl Into<Stanza>) -> Result<()> {
        let mut stanza = stanza.into();
        match &mut stanza {
            Stanza::Message(m) if m.id.is_none() => {
                m.id = Some(tokio_xmpp::parsers::message::Id(self.new_id()));
            }
            Stanza::Presence(p) if p.id.is_none() => p.id = Some(self.new_id()),
            _ => {}
        }
        self.check_broken()?;
        let mut token = self.stream.send(Box::new(stanza)).await;
        let state = tokio::select! {
            state = token.wait_for(StanzaStage::Sent) => Ok(state),
            fatal = next_fatal(&mut self.fatal) => Err(fatal),
        };
        match state.map_err(|fatal| self.record(fatal))? {
            Some(StanzaState::Sent { .. } | StanzaState::Acked { .. }) => Ok(()),
            Some(StanzaState::Failed { error }) => Err(connection_error(format!("sending failed: {error:?}"))),
            _ => Err(connection_error("the stream closed before the stanza was sent")),
        }
    }

    /// Fails once a reconnect failed for good (the stream then never comes back).
    fn check_broken(&self) -> Result<()> {
        match &self.broken {
            Some(cause) => Err(Error::Connection(format!("the session ended: {cause}"))),
            None => Ok(()),
        }
    }

    /// Records a reconnect that failed for good and returns its error.
    fn record(&mut self, (error, slot): Fatal) -> Error {
        self.broken = Some(error.to_string());
        self.held = HeldSlot(Some(slot));
        error
    }

    /// The keyward component to use (protocol section 12.4): `named` if given, else the first
    /// item of the account's server's disco#items (XEP-0030) whose disco#info lists the
    /// feature `urn:keyward:0`. Either way nothing but disco#info has been sent to it when
    /// this returns: [`Error::NotKeywardComponent`] when `named` does not answer as keyward,
    /// [`Error::NoComponent`] when no item does.
    pub async fn find_component(&mut self, named: Option<&BareJid>) -> Result<BareJid> {
        if let Some(jid) = named {
            return match self.component_check(jid).await? {
                Ok(()) => Ok(jid.clone()),
                Err(cause) => Err(Error::NotKeywardComponent { jid: jid.clone(), cause }),
            };
        }
        let domain = BareJid::parse(self.me.domain())?;
        let answer = match self.iq(Some(&domain), IqRequest::Get(stanzas::disco_items_query()), "disco#items").await {
            Ok(answer) => answer,
            Err(Error::Refused { .. } | Error::Timeout(_)) => None,
            Err(e) => return Err(e),
        };
        for item in answer.as_ref().map(stanzas::disco_item_jids).unwrap_or_default() {
            match self.component_check(&item).await? {
                Ok(()) => return Ok(item),
                Err(cause) => tracing::debug!(%item, %cause, "not a keyward component"),
            }
        }
        Err(Error::NoComponent { domain: domain.to_string() })
    }

    /// Asks `jid` for its disco#info: `Ok(Err(why))` when it does not answer as keyward.
    async fn component_check(&mut self, jid: &BareJid) -> Result<std::result::Result<(), String>> {
        Ok(match self.iq(Some(jid), IqRequest::Get(stanzas::disco_info_query()), "disco#info").await {
            Ok(Some(answer)) if stanzas::is_keyward_component(&answer) => Ok(()),
            Ok(_) => Err("its disco#info does not list urn:keyward:0".to_owned()),
            Err(Error::Refused { condition, .. }) => Err(format!("disco#info refused: {condition}")),
            Err(Error::Timeout(_)) => Err("no answer to disco#info".to_owned()),
            Err(e) => return Err(e),
        })
    }

    /// Sends initial presence: the server then delivers messages, stored
    /// offline messages and pending subscription requests.
    pub async fn go_available(&mut self) -> Result<()> {
        self.available = true;
        self.send(Presence::available()).await
    }

    /// Sends an IQ to `to` (the own account when `None`) and waits for its answer.
    /// An error answer is [`Error::Refused`] naming `request`.
    pub async fn iq(
        &mut self,
        to: Option<&BareJid>,
        request: IqRequest,
        what: &'static str,
    ) -> Result<Option<MElement>> {
        let to_jid = to.map(xmpp_jid).transpose()?;
        let id = self.new_id();
        let iq = match request {
            IqRequest::Get(payload) => Iq::Get { from: None, to: to_jid, id: id.clone(), payload },
            IqRequest::Set(payload) => Iq::Set { from: None, to: to_jid, id: id.clone(), payload },
        };
        self.send(iq).await?;
        let expected_from = to.cloned().unwrap_or_else(|| self.me.clone());
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let event = tokio::select! {
                event = self.stream.next() => event,
                fatal = next_fatal(&mut self.fatal) => return Err(self.record(fatal)),
                () = tokio::time::sleep_until(deadline) => return Err(Error::Timeout(what)),
            };
            if let Some(StreamItem::Stanza(Stanza::Iq(iq))) = &event {
                let (got_id, from) = match iq {
                    Iq::Result { id, from, .. } | Iq::Error { id, from, .. } => (id, from),
                    _ => (&String::new(), &None),
                };
                // An answer counts only with our id and from whom we asked (the server stamps it).
                let from_ok = match from {
                    None => to.is_none(),
                    Some(from) => stanzas::bare_from(Some(from)).as_ref() == Some(&expected_from),
                };
                if *got_id == id && from_ok {
                    let Some(StreamItem::Stanza(Stanza::Iq(iq))) = event else { continue };
                    return match iq {
                        Iq::Result { payload, .. } => Ok(payload),
                        Iq::Error { error, .. } => Err(Error::Refused {
                            to: expected_from.to_string(),
                            request: what,
                            condition: stanzas::condition_name(&error),
                            text: stanzas::error_text(&error),
                        }),
                        _ => continue,
                    };
                }
            }
            self.absorb(event).await?;
        }
    }

    /// Takes out of the buffer the messages `pick` turns into something (e.g. the results of an
    /// archive query, which arrive before its answer), leaving every other stanza in order.
    pub fn take_buffered<T>(&mut self, mut pick: impl FnMut(&Message) -> Option<T>) -> Vec<T> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.buffered.len());
        for stanza in self.buffered.drain(..) {
            match stanza {
                Stanza::Message(message) => match pick(&message) {
                    Some(value) => taken.push(value),
                    None => kept.push_back(Stanza::Message(message)),
                },
                other => kept.push_back(other),
            }
        }
        self.buffered = kept;
        taken
    }

    /// The oldest change of the link to the server not taken yet.
    pub fn take_link(&mut self) -> Option<Link> {
        self.links.pop_front()
    }

    /// The next message or presence, or `None` after `wait` without one, or as soon as the
    /// link to the server changed ([`Connection::take_link`] tells how).
    pub async fn next_stanza(&mut self, wait: Duration) -> Result<Option<Stanza>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(stanza) = self.buffered.pop_front() {
                return Ok(Some(stanza));
            }
            if !self.links.is_empty() {
                return Ok(None);
            }
            self.check_broken()?;
            tokio::select! {
                event = self.stream.next() => self.absorb(event).await?,
                fatal = next_fatal(&mut self.fatal) => return Err(self.record(fatal)),
                () = tokio::time::sleep_until(deadline) => return Ok(None),
            }
        }
    }

    /// Handles one event: answers IQ requests, buffers messages and presences.
    async fn absorb(&mut self, event: Option<StreamItem>) -> Result<()> {
        match event {
            Some(StreamItem::Stanza(Stanza::Iq(iq))) => self.answer_iq(iq).await,
            Some(StreamItem::Stanza(stanza)) => {
                self.buffered.push_back(stanza);
                Ok(())
            }
            Some(StreamItem::Stream(StreamEvent::Reset { bound_jid, .. })) => {
                // Reconnected with a new session: announce ourselves again if we were available.
                tracing::info!(me = %self.me, "reconnected");
                self.bound = bound_jid;
                self.links.push_back(Link::Restored);
                if self.available {
                    self.send(Presence::available()).await?;
                }
                Ok(())
            }
            Some(StreamItem::Stream(StreamEvent::Suspended)) => {
                tracing::warn!(me = %self.me, "the connection to the server broke; reconnecting");
                self.links.push_back(Link::Lost);
                Ok(())
            }
            Some(StreamItem::Stream(event)) => {
                tracing::debug!(?event, "stream state");
                Ok(())
            }
            None => Err(connection_error("the stream ended")),
        }
    }

    /// Answers requests addressed to us: roster pushes from our own account are
    /// acknowledged, pings answered, everything else refused (RFC 6120 8.2.3).
    async fn answer_iq(&mut self, iq: Iq) -> Result<()> {
        let (from, id, payload) = match iq {
            Iq::Get { from, id, payload, .. } | Iq::Set { from, id, payload, .. } => (from, id, payload),
            // Late answers to requests we stopped waiting for.
            Iq::Result { .. } | Iq::Error { .. } => return Ok(()),
        };
        let from_self = from.as_ref().is_none_or(|f| stanzas::bare_from(Some(f)).as_ref() == Some(&self.me));
        let ok = (payload.is("query", NS_ROSTER) && from_self) || payload.is("ping", ns::PING);
        let reply = if ok {
            Iq::Result { from: None, to: from, id, payload: None }
        } else {
            Iq::Error {
                from: None,
                to: from,
                id,
                error: StanzaError::new(ErrorType::Cancel, DefinedCondition::ServiceUnavailable, "en", "not supported"),
                payload: None,
            }
        };
        self.send(reply).await
    }

    /// Ends the session cleanly, waiting at most the request timeout for the server: a
    /// server that went away (or a stream still reconnecting) never answers the closing tag.
    pub async fn close(self) -> Result<()> {
        let _ = tokio::time::timeout(self.timeout, self.stream.close()).await;
        Ok(())
    }
}

/// The next reconnect that failed for good; never, once the reconnector is gone.
async fn next_fatal(fatal: &mut mpsc::UnboundedReceiver<Fatal>) -> Fatal {
    match fatal.recv().await {
        Some(fatal) => fatal,
        None => std::future::pending().await,
    }
}

async fn with_timeout<T>(wait: Duration, what: &'static str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(wait, fut).await.map_err(|_| Error::Timeout(what))?
}

/// Creates an account with XEP-0077 in-band registration (before any login).
pub async fn register(options: &ConnectOptions) -> Result<()> {
    let timeouts = Timeouts { read_timeout: options.timeout * 4, response_timeout: options.timeout };
    let dns = dns_config(options).await?;
    match options.transport {
        Transport::InsecurePlaintext => register_with(&TcpServerConnector::from(dns), options, timeouts).await,
        #[cfg(feature = "tls")]
        Transport::StartTls => {
            register_with(&tokio_xmpp::connect::StartTlsServerConnector::from(dns), options, timeouts).await
        }
        #[cfg(feature = "tls")]
        Transport::DirectTls => {
            register_with(&tokio_xmpp::connect::DirectTlsServerConnector::from(dns), options, timeouts).await
        }
        #[cfg(not(feature = "tls"))]
        _ => Err(Error::Invalid {
            what: "transport",
            reason: "this build has no TLS support (cargo feature `tls`)".into(),
        }),
    }
}

async fn register_with<C: ServerConnector>(connector: &C, options: &ConnectOptions, timeouts: Timeouts) -> Result<()> {
    with_timeout(options.timeout, "registration", async {
        let domain = BareJid::parse(options.jid.domain())?;
        let username =
            options.jid.local().ok_or_else(|| Error::Invalid { what: "JID", reason: "no localpart".into() })?;
        let (pending, _) =
            connector.connect(&xmpp_jid(&domain)?, ns::JABBER_CLIENT, timeouts).await.map_err(connection_error)?;
        let (_, mut stream) = pending.recv_features::<FallibleStreamElement>().await.map_err(connection_error)?;
        let id = "keyward-register".to_owned();
        let request = Iq::Set {
            from: None,
            to: Some(xmpp_jid(&domain)?),
            id: id.clone(),
            payload: stanzas::register_query(username, options.password.expose_secret()),
        };
        stream.send(&XmppStreamElement::Stanza(Stanza::Iq(request))).await.map_err(connection_error)?;
        let outcome = loop {
            match stream.next().await {
                Some(Ok(element)) => match element.into_read_error() {
                    Ok(XmppStreamElement::Stanza(Stanza::Iq(Iq::Result { id: got, .. }))) if got == id => break Ok(()),
                    Ok(XmppStreamElement::Stanza(Stanza::Iq(Iq::Error { id: got, error, .. }))) if got == id => {
                        break Err(if matches!(error.defined_condition, DefinedCondition::Conflict) {
                            Error::AccountExists(options.jid.clone())
                        } else {
                            Error::Refused {
                                to: domain.to_string(),
                                request: "registration",
                                condition: stanzas::condition_name(&error),
                                text: stanzas::error_text(&error),
                            }
                        });
                    }
                    Ok(_) | Err(ReadError::SoftTimeout) => {}
                    Err(e) => break Err(connection_error(e)),
                },
                Some(Err(e)) => break Err(connection_error(e)),
                None => break Err(connection_error("the server closed the stream")),
            }
        };
        let _ = <_ as SinkExt<&XmppStreamElement>>::close(&mut stream).await;
        outcome
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_goes_only_to_loopback_addresses() {
        let addr = |a: &str| a.parse::<SocketAddr>().expect("address");
        assert!(check_loopback("localhost:5222", &[addr("127.0.0.1:5222"), addr("[::1]:5222")]).is_ok());
        assert!(check_loopback("x:1", &[addr("127.8.9.10:1")]).is_ok());
        for bad in ["192.0.2.2:5222", "[fd00::2]:5222", "0.0.0.0:5222", "[::ffff:127.0.0.1]:5222", "10.0.0.1:5222"] {
            match check_loopback("host:5222", &[addr("127.0.0.1:5222"), addr(bad)]) {
                Err(Error::PlaintextNotLoopback { target }) => assert!(target.contains(&addr(bad).ip().to_string())),
                other => panic!("{bad}: expected PlaintextNotLoopback, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn plaintext_without_an_explicit_address_is_refused_before_any_lookup() {
        let jid = BareJid::parse("alice@example.test").expect("valid");
        let options = ConnectOptions::new(jid, SecretString::from("pw".to_owned())).insecure_plaintext();
        assert!(matches!(dns_config(&options).await, Err(Error::PlaintextNotLoopback { .. })));
        assert!(matches!(register(&options).await, Err(Error::PlaintextNotLoopback { .. })));
        assert!(matches!(Connection::connect(&options).await, Err(Error::PlaintextNotLoopback { .. })));
    }
}
