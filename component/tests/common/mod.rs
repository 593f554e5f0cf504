//! Shared helpers of the component's integration tests: a real XMPP client (tokio-xmpp over
//! plain TCP on loopback) and the stack (a real XMPP server, the component binary, keydir) they run.
//!
//! The client drives tokio-xmpp's `StanzaStream` whole, from one task, with its own IQ id map:
//! tokio-xmpp's `Client` splits the stream, and its worker's `try_lock` on the receiving half returns
//! `Pending` without a waker while a send holds the lock, so a stanza arriving then (a stored message
//! right after the initial presence) could wait for ever: a test failed that way while the server's
//! log showed the message written to the client's stream.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use keyward_proto::{BareJid, Bundle, KdfParams, KeyPair, SecretBlob, SecretSig, XmlElement};
use keyward_tests::component::Component;
use keyward_tests::stack::{KeydirChoice, Stack, StackOptions};
use keyward_tests::xmpp::{ServerOptions, XmppServer};
use tokio::sync::{mpsc, oneshot};
use tokio_xmpp::connect::{DnsConfig, TcpServerConnector};
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::Message;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::stanzastream::{Event as StreamItem, StanzaStage, StanzaState, StanzaStream, StreamEvent};
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{IqRequest, IqResponse, Stanza};

/// The answer to one IQ, when it comes ([`finish_iq`]).
pub type IqResponseToken = oneshot::Receiver<IqResponse>;

pub use keyward_tests::xmpp::ServerKind;

/// The longest a login or an IQ answer may take: generous, because a loaded 2-core machine
/// running the whole suite is slow, and only a failure ever waits this long.
pub const WAIT: Duration = Duration::from_secs(30);

/// The password of every test user.
pub const PASSWORD: &str = "correct-horse";

/// The component token when keydir is not the stack's own.
pub const TOKEN: &str = "component-token";

/// A keydir URL where nothing listens: every keydir call fails fast (connection refused).
///
/// Port 1 (tcpmux, privileged): a free ephemeral port would do only until a test running in
/// parallel binds it (its keydir, say), and then the component would reach that server, with
/// another token, and get answers no dead keydir gives. Nothing in a test run listens on port 1.
pub fn dead_keydir() -> KeydirChoice {
    KeydirChoice::External { url: "http://127.0.0.1:1".into(), token: TOKEN.into() }
}

/// The options of a stack with the server of the given privilege and `keydir`.
pub fn options(privilege: bool, keydir: KeydirChoice) -> StackOptions {
    StackOptions {
        server: ServerOptions { privilege, ..ServerOptions::default() },
        log_filter: "info".into(),
        keydir,
        ..StackOptions::default()
    }
}

/// Starts a stack: a server of `kind` (with or without the roster privilege), the component
/// binary attached to it, and `keydir`; waits until the component's stream is up.
pub async fn stack(kind: ServerKind, privilege: bool, keydir: KeydirChoice) -> Stack {
    Stack::start(kind, options(privilege, keydir)).await.expect("stack")
}

/// An IQ answer as the client saw it.
#[derive(Debug)]
pub enum Answer {
    /// `type='result'` with its payload.
    Result(Option<Element>),
    /// `type='error'`: the condition's element name, the error type, the text.
    Error { condition: String, kind: String, text: Option<String> },
}

impl Answer {
    /// The payload of a result; fails on an error.
    pub fn payload(self) -> anyhow::Result<Option<Element>> {
        match self {
            Self::Result(payload) => Ok(payload),
            Self::Error { condition, text, .. } => bail!("error {condition}: {text:?}"),
        }
    }

    /// The condition of an error; fails on a result.
    pub fn condition(&self) -> Option<&str> {
        match self {
            Self::Error { condition, .. } => Some(condition),
            Self::Result(_) => None,
        }
    }
}

/// `ServiceUnavailable` -> `service-unavailable`.
fn kebab(debug: &str) -> String {
    let name = debug.split(['(', ' ', '{']).next().unwrap_or_default();
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// What the test asks of the task that drives a client.
enum Command {
    Iq { to: tokio_xmpp::jid::Jid, request: IqRequest, token: oneshot::Sender<IqResponseToken> },
    Stanza { stanza: Box<Stanza>, sent: oneshot::Sender<anyhow::Result<()>> },
    End { done: oneshot::Sender<()> },
}

/// A logged-in user with a real client, driven by its own task so that incoming
/// stanzas are always consumed (messages are kept for the test).
pub struct User {
    pub jid: BareJid,
    commands: mpsc::Sender<Command>,
    messages: mpsc::UnboundedReceiver<Message>,
}

/// Runs the client: executes commands, hands IQ answers to their waiters and keeps every
/// incoming message. One task owns the whole stream, so no wake-up is lost.
async fn drive(
    mut stream: StanzaStream,
    mut commands: mpsc::Receiver<Command>,
    messages: mpsc::UnboundedSender<Message>,
) {
    let mut waiting: HashMap<String, oneshot::Sender<IqResponse>> = HashMap::new();
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Iq { to, request, token }) => {
                    next_id += 1;
                    let id = format!("test-iq-{next_id}");
                    let iq = match request {
                        IqRequest::Get(payload) => Iq::Get { from: None, to: Some(to), id: id.clone(), payload },
                        IqRequest::Set(payload) => Iq::Set { from: None, to: Some(to), id: id.clone(), payload },
                    };
                    let (answer, receiver) = oneshot::channel();
                    waiting.insert(id, answer);
                    let _ = stream.send(Box::new(iq.into())).await;
                    let _ = token.send(receiver);
                }
                Some(Command::Stanza { stanza, sent }) => {
                    let mut token = stream.send(stanza).await;
                    let outcome = match token.wait_for(StanzaStage::Sent).await {
                        Some(StanzaState::Sent { .. } | StanzaState::Acked { .. }) => Ok(()),
                        other => Err(anyhow::anyhow!("not sent: {other:?}")),
                    };
                    let _ = sent.send(outcome);
                }
                Some(Command::End { done }) => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), stream.close()).await;
                    let _ = done.send(());
                    return;
                }
                None => return,
            },
            event = stream.next() => match event {
                Some(StreamItem::Stanza(Stanza::Message(message))) => {
                    let _ = messages.send(message);
                }
                Some(StreamItem::Stanza(Stanza::Iq(Iq::Result { id, payload, .. }))) => {
                    if let Some(answer) = waiting.remove(&id) {
                        let _ = answer.send(IqResponse::Result(payload));
                    }
                }
                Some(StreamItem::Stanza(Stanza::Iq(Iq::Error { id, error, .. }))) => {
                    if let Some(answer) = waiting.remove(&id) {
                        let _ = answer.send(IqResponse::Error(error));
                    }
                }
                Some(_) => {}
                None => return,
            },
        }
    }
}

impl User {
    /// Registers `name` on the server, logs in over plain TCP and sends initial presence.
    pub async fn login(server: &XmppServer, name: &str) -> anyhow::Result<Self> {
        let jid = server.register(name, PASSWORD).await?;
        Self::connect(server, &jid).await
    }

    /// Logs in an already registered account.
    pub async fn connect(server: &XmppServer, jid: &str) -> anyhow::Result<Self> {
        let xmpp_jid: tokio_xmpp::jid::Jid = jid.parse().context("jid")?;
        let connector = TcpServerConnector::from(DnsConfig::Addr { addr: server.c2s_addr().to_string() });
        let mut client = StanzaStream::new_c2s(connector, xmpp_jid, PASSWORD.to_owned(), Timeouts::tight(), 64);
        tokio::time::timeout(WAIT, async {
            loop {
                match client.next().await {
                    Some(StreamItem::Stream(StreamEvent::Reset { .. })) => return Ok(()),
                    Some(_) => {}
                    None => bail!("client ended"),
                }
            }
        })
        .await
        .context("login timed out")??;
        let (commands, commands_rx) = mpsc::channel(16);
        let (messages_tx, messages) = mpsc::unbounded_channel();
        tokio::spawn(drive(client, commands_rx, messages_tx));
        let user = Self { jid: BareJid::parse(jid)?, commands, messages };
        user.send(Presence::available().into()).await.context("initial presence")?;
        Ok(user)
    }

    /// Sends an IQ (`set` or `get`) with the payload `xml` to `to` and waits for the answer.
    pub async fn iq(&mut self, to: &str, set: bool, xml: &str) -> anyhow::Result<Answer> {
        let token = self.start_iq(to, set, xml).await?;
        finish_iq(token).await
    }

    /// Sends an IQ and returns the token to await its answer with [`finish_iq`].
    pub async fn start_iq(&mut self, to: &str, set: bool, xml: &str) -> anyhow::Result<IqResponseToken> {
        let payload: Element = xml.parse().with_context(|| format!("test payload {xml}"))?;
        let request = if set { IqRequest::Set(payload) } else { IqRequest::Get(payload) };
        let to = to.parse().context("to")?;
        let (token, receiver) = oneshot::channel();
        self.commands.send(Command::Iq { to, request, token }).await.context("client task gone")?;
        receiver.await.context("client task gone")
    }

    /// An IQ get.
    pub async fn get(&mut self, to: &str, xml: &str) -> anyhow::Result<Answer> {
        self.iq(to, false, xml).await
    }

    /// An IQ set.
    pub async fn set(&mut self, to: &str, xml: &str) -> anyhow::Result<Answer> {
        self.iq(to, true, xml).await
    }

    /// Sends a raw stanza.
    pub async fn send(&self, stanza: Stanza) -> anyhow::Result<()> {
        let (sent, receiver) = oneshot::channel();
        self.commands.send(Command::Stanza { stanza: Box::new(stanza), sent }).await.context("client task gone")?;
        receiver.await.context("client task gone")?.context("send")?;
        Ok(())
    }

    /// The next message whose payloads include an element in `ns`, within `timeout`.
    pub async fn message_with(&mut self, ns: &str, timeout: Duration) -> anyhow::Result<Message> {
        tokio::time::timeout(timeout, async {
            loop {
                match self.messages.recv().await {
                    Some(message) if message.payloads.iter().any(|p| p.ns() == ns) => return Ok(message),
                    Some(_) => {}
                    None => bail!("client ended"),
                }
            }
        })
        .await
        .with_context(|| format!("no message with {ns} within {timeout:?}"))?
    }

    /// Collects messages with an element in `ns` until `quiet` passes without one.
    pub async fn messages_with(&mut self, ns: &str, quiet: Duration) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Ok(message) = self.message_with(ns, quiet).await {
            messages.push(message);
        }
        messages
    }

    /// Adds `contact` to this user's roster.
    pub async fn add_contact(&mut self, contact: &str) -> anyhow::Result<()> {
        let xml = format!("<query xmlns='jabber:iq:roster'><item jid='{contact}'/></query>");
        let own = self.jid.as_str().to_owned();
        self.set(&own, &xml).await?.payload()?;
        Ok(())
    }

    /// Logs out.
    pub async fn logout(self) {
        let (done, receiver) = oneshot::channel();
        if self.commands.send(Command::End { done }).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), receiver).await;
        }
    }
}

/// A fresh identity for `jid`: keys, signed bundle, and a secret blob sealed with cheap test parameters.
pub struct Identity {
    pub keys: KeyPair,
    pub bundle: Bundle,
    pub secret: SecretBlob,
}

impl Identity {
    pub fn new(jid: &BareJid) -> Self {
        let keys = KeyPair::generate().expect("rng");
        let bundle = Bundle::sign(&keys, jid.clone(), 1_764_150_000).into_bundle();
        let secret = SecretBlob::seal(&keys, jid, b"passphrase", KdfParams::INSECURE_TEST_ONLY).expect("seal");
        Self { keys, bundle, secret }
    }

    /// `<publish>` with this bundle and secret, the secret update signed under seq 1.
    pub fn publish_xml(&self) -> String {
        self.publish_xml_with(&self.keys, &self.secret, 1)
    }

    /// `<publish>` with this bundle and `secret`, its secret update signed by `signer` under `seq`.
    pub fn publish_xml_with(&self, signer: &KeyPair, secret: &SecretBlob, seq: u64) -> String {
        let update = SecretSig::sign(signer, self.bundle.jid(), seq, secret).expect("signs");
        format!(
            "<publish xmlns='urn:keyward:0'>{}{}{}</publish>",
            self.bundle.to_xml(),
            secret.to_xml(),
            update.to_xml()
        )
    }

    /// This account's keys sealed again (a passphrase change).
    pub fn resealed(&self, passphrase: &[u8]) -> SecretBlob {
        SecretBlob::seal(&self.keys, self.bundle.jid(), passphrase, KdfParams::INSECURE_TEST_ONLY).expect("seal")
    }
}

/// The `status` of each `<item/>` in a keys or roster-keys answer, by jid.
pub fn statuses(answer: &Element) -> Vec<(String, String, bool)> {
    answer
        .children()
        .filter(|c| c.name() == "item")
        .map(|c| {
            (
                c.attr("jid").unwrap_or_default().to_owned(),
                c.attr("status").unwrap_or_default().to_owned(),
                c.get_child("bundle", "urn:keyward:0").is_some(),
            )
        })
        .collect()
}

/// Waits until the component's `/metrics` page has the line `line` exactly, e.g.
/// `keyward_component_requests_queued 2`; returns that page.
pub async fn wait_for_metric(component: &Component, line: &str) -> String {
    component.wait_for_metrics(line, |l| l == line).await.expect("metrics")
}

/// Waits for the answer to an IQ sent with [`User::start_iq`].
pub async fn finish_iq(token: IqResponseToken) -> anyhow::Result<Answer> {
    let response = tokio::time::timeout(WAIT, token)
        .await
        .with_context(|| format!("no answer within {WAIT:?}"))?
        .map_err(|_| anyhow::anyhow!("iq failed: the client's stream ended"))?;
    Ok(match response {
        IqResponse::Result(payload) => Answer::Result(payload),
        IqResponse::Error(error) => Answer::Error {
            condition: kebab(&format!("{:?}", error.defined_condition)),
            kind: kebab(&format!("{:?}", error.type_)),
            text: error.texts.values().next().cloned(),
        },
    })
}
