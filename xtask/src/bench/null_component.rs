//! The null XEP-0114 component: it answers every IQ at once with a fixed result (empty, or a canned payload), the anchor for lookups through the component.

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha1::{Digest, Sha1};

use super::framing::attr;
use super::wire::Wire;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The XEP-0114 handshake: hex SHA-1 of the stream id and the shared secret.
pub(crate) fn handshake_digest(stream_id: &str, secret: &str) -> String {
    hex::encode(Sha1::digest(format!("{stream_id}{secret}").as_bytes()))
}

/// The answer to one IQ start tag, carrying `payload` (empty: an empty result), or `None`
/// for anything but a get or set.
pub(crate) fn answer(tag: &str, payload: &str) -> Option<String> {
    let kind = attr(tag, "type")?;
    if kind != "get" && kind != "set" {
        return None;
    }
    let mut out = String::from("<iq type='result'");
    for (key, name) in [("id", "id"), ("to", "from"), ("from", "to")] {
        if let Some(value) = attr(tag, name) {
            let _ = write!(out, " {key}='{value}'");
        }
    }
    if payload.is_empty() {
        out.push_str("/>");
    } else {
        let _ = write!(out, ">{payload}</iq>");
    }
    Some(out)
}

/// A running null component; stops when dropped.
pub(crate) struct NullComponent {
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Drop for NullComponent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NullComponent {
    /// Connects to the server's component port as `jid`, handshakes, and answers every IQ
    /// with `payload` from then on.
    pub(crate) async fn start(addr: SocketAddr, jid: &str, secret: &str, payload: String) -> Result<Self> {
        let wire = connect(addr, jid, secret).await?;
        let task = tokio::spawn(serve(wire, payload));
        Ok(Self { task })
    }
}

/// A component stream to the server at `addr`, as `jid`, after the handshake.
pub(crate) async fn connect(addr: SocketAddr, jid: &str, secret: &str) -> Result<Wire> {
    let mut wire = Wire::connect(addr).await?;
    wire.send(&format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{jid}'>"
    ))
    .await?;
    let id = loop {
        let frame = wire.frame(HANDSHAKE_TIMEOUT).await?;
        if frame.name.is_none() && frame.tag.starts_with("stream:stream") {
            break attr(&frame.tag, "id").context("the component stream header has no id")?.to_owned();
        }
    };
    wire.send(&format!("<handshake>{}</handshake>", handshake_digest(&id, secret))).await?;
    let reply = wire.frame(HANDSHAKE_TIMEOUT).await?;
    if reply.name.as_deref() != Some("handshake") {
        bail!("the server refused the handshake of {jid}: {}", reply.text);
    }
    Ok(wire)
}

async fn serve(mut wire: Wire, payload: String) -> Result<()> {
    let mut out = String::new();
    loop {
        wire.fill(Duration::from_secs(3600)).await?;
        wire.drain(|name, tag| {
            if name == "iq"
                && let Some(reply) = answer(tag, &payload)
            {
                out.push_str(&reply);
            }
        })?;
        if !out.is_empty() {
            wire.send(&out).await?;
            out.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_is_hex_sha1_of_id_and_secret() {
        // `printf '3BF96D32secret' | sha1sum`
        assert_eq!(handshake_digest("3BF96D32", "secret"), "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136");
        assert_eq!(handshake_digest("", ""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn answers_gets_and_sets_with_an_empty_result() {
        assert_eq!(
            answer("iq type='get' id='5' from='a@b/c' to='null.b'", "").as_deref(),
            Some("<iq type='result' id='5' to='a@b/c' from='null.b'/>")
        );
        assert_eq!(
            answer("iq type='get' id='5' from='a@b/c' to='null.b'", "<keys/>").as_deref(),
            Some("<iq type='result' id='5' to='a@b/c' from='null.b'><keys/></iq>")
        );
        assert_eq!(answer("iq type='set' id='x'", "").as_deref(), Some("<iq type='result' id='x'/>"));
        assert_eq!(answer("iq type='result' id='5'", ""), None);
        assert_eq!(answer("iq type='error' id='5'", ""), None);
        assert_eq!(answer("iq id='5'", ""), None);
    }
}
