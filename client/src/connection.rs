//! The c2s connection: connect with SASL SCRAM over STARTTLS, direct TLS or (loopback only) plain TCP; IQs, stanzas, events.

use crate::binding::BindingAsOffered;
use crate::error::{Error, Result};
use crate::stanzas::{self, NS_ROSTER};
use futures::{SinkExt, StreamExt};
use keyward_proto::BareJid;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;
use tokio_xmpp::connect::{DnsConfig, ServerConnector, TcpServerConnector};
use tokio_xmpp::error::AuthError;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::minidom::Element as MElement;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::sasl_cb::Type as CbType;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::stanzastream::{Event as StreamItem, StanzaStage, StanzaState, StanzaStream, StreamEvent};
use tokio_xmpp::xmlstream::{FallibleStreamElement, ReadError, Timeouts, XmppStreamElement};
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
    /// The keyward component's JID; by default `keys.<domain>`.
    pub component: Option<BareJid>,
    /// How long to wait for any single answer.
    pub timeout: Duration,
}

impl ConnectOptions {
    /// Options for `jid` with `password`: STARTTLS, server from DNS, component `keys.<domain>`.
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

    /// Uses another component JID than `keys.<domain>`.
    #[must_use]
    pub fn component(mut self, component: BareJid) -> Self {
        self.component = Some(component);
        self
    }

    /// The component JID in effect.
    pub fn component_jid(&self) -> Result<BareJid> {
        match &self.component {
            Some(c) => Ok(c.clone()),
            None => BareJid::parse(&format!("keys.{}", self.jid.domain()))
                .map_err(|e| Error::Invalid { what: "component JID", reason: e.to_string() }),
        }
    }
}

fn connection_error(err: impl std::fmt::Display) -> Error {
    Error::Connection(err.to_string())
}

async fn dns_config(options: &ConnectOptions) -> Result<DnsConfig> {
    match &options.server {
        Some(server) => {
            let addr = tokio::net::lookup_host(server.as_str())
                .await
                .map_err(|e| Error::Invalid { what: "server address", reason: format!("{server}: {e}") })?
                .next()
                .ok_or_else(|| Error::Invalid {
                    what: "server address",
                    reason: format!("{server} did not resolve"),
                })?;
            Ok(DnsConfig::addr(&addr.to_string()))
        }
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

fn xmpp_jid(bare: &BareJid) -> Result<Jid> {
    stanzas::jid(bare)
}

/// Logs in once with SCRAM only, so a wrong password or a server without SCRAM
/// is a clear error instead of the library's endless reconnect loop. Returns the
/// mechanisms and channel-binding types the server offered, for [`BindingAsOffered`].
async fn check_login<C: ServerConnector>(
    connector: &C,
    options: &ConnectOptions,
    timeouts: Timeouts,
) -> Result<(BTreeSet<String>, Option<Vec<CbType>>)> {
    let jid = xmpp_jid(&options.jid)?;
    let (pending, binding) = connector.connect(&jid, ns::JABBER_CLIENT, timeouts).await.map_err(connection_error)?;
    let (features, stream) = pending.recv_features::<FallibleStreamElement>().await.map_err(connection_error)?;
    let offered = features.sasl_mechanisms;
    let server_types = features.sasl_cb.map(|cb| cb.types);
    let scram: BTreeSet<String> = offered.iter().filter(|m| m.starts_with("SCRAM-")).cloned().collect();
    if scram.is_empty() {
        return Err(Error::NoScram { offered: offered.into_iter().collect::<Vec<_>>().join(", ") });
    }
    let username = options.jid.local().ok_or_else(|| Error::Invalid { what: "JID", reason: "no localpart".into() })?;
    let creds = sasl::common::Credentials::default()
        .with_username(username)
        .with_password(options.password.expose_secret())
        .with_channel_binding(crate::binding::binding_for(binding, &scram, server_types.as_deref()));
    match tokio_xmpp::client_login(stream, scram.clone(), creds).await {
        Ok(_) => Ok((scram, server_types)),
        Err(tokio_xmpp::Error::Auth(AuthError::Fail(condition))) => {
            Err(Error::AuthFailed { jid: options.jid.clone(), condition: format!("{condition:?}") })
        }
        Err(e) => Err(connection_error(e)),
    }
}

/// Checks the login once with SCRAM, then hands the connector to the library's stream
/// (which reconnects by itself), with the channel binding the server can do.
async fn login<C: ServerConnector>(
    connector: C,
    jid: Jid,
    options: &ConnectOptions,
    timeouts: Timeouts,
) -> Result<StanzaStream> {
    let (offered_mechanisms, server_types) =
        with_timeout(options.timeout, "login", check_login(&connector, options, timeouts)).await?;
    let connector = BindingAsOffered { inner: connector, offered_mechanisms, server_types };
    let password = options.password.expose_secret().to_owned();
    Ok(StanzaStream::new_c2s(connector, jid, password, timeouts, QUEUE_DEPTH))
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
}

impl Connection {
    /// Connects, authenticates (SCRAM) and binds a resource.
    pub async fn connect(options: &ConnectOptions) -> Result<Self> {
        let timeouts = Timeouts {
            read_timeout: options.timeout.max(Duration::from_secs(10)) * 4,
            response_timeout: options.timeout,
        };
        let dns = dns_config(options).await?;
        let jid = xmpp_jid(&options.jid)?;
        let stream = match options.transport {
            Transport::InsecurePlaintext => login(TcpServerConnector::from(dns), jid, options, timeouts).await?,
            #[cfg(feature = "tls")]
            Transport::StartTls => {
                login(tokio_xmpp::connect::StartTlsServerConnector::from(dns), jid, options, timeouts).await?
            }
            #[cfg(feature = "tls")]
            Transport::DirectTls => {
                login(tokio_xmpp::connect::DirectTlsServerConnector::from(dns), jid, options, timeouts).await?
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
        let mut token = self.stream.send(Box::new(stanza)).await;
        match token.wait_for(StanzaStage::Sent).await {
            Some(StanzaState::Sent { .. } | StanzaState::Acked { .. }) => Ok(()),
            Some(StanzaState::Failed { error }) => Err(connection_error(format!("sending failed: {error:?}"))),
            _ => Err(connection_error("the stream closed before the stanza was sent")),
        }
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

    /// The next message or presence, or `None` after `wait` without one.
    pub async fn next_stanza(&mut self, wait: Duration) -> Result<Option<Stanza>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(stanza) = self.buffered.pop_front() {
                return Ok(Some(stanza));
            }
            tokio::select! {
                event = self.stream.next() => self.absorb(event).await?,
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
                if self.available {
                    self.send(Presence::available()).await?;
                }
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
