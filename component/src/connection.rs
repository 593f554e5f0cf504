//! The connection: owns the socket's read half and the decoder, connects and authenticates.
//!
//! It is the only code that awaits reads from the server. The write half goes to
//! the session's single writer ([`crate::writer`]).

use core::time::Duration;

use keyward_proto::BareJid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::config::Secret;
use crate::error::{Error, Result};
use crate::stream::{Decoder, DecoderLimits, Frame, StreamCondition, encode};

const READ_BUFFER: usize = 16 * 1024;

/// An authenticated component stream's read side.
#[derive(Debug)]
pub struct Connection {
    reader: OwnedReadHalf,
    decoder: Decoder,
    buf: Vec<u8>,
}

impl Connection {
    /// Connects to `addr`, opens the stream as `jid` and authenticates with `secret`, within `timeout`.
    ///
    /// Returns the read side (whose decoder may already hold stanzas that arrived
    /// with the handshake) and the write half.
    pub async fn establish(
        addr: &str,
        jid: &BareJid,
        secret: &Secret,
        limits: DecoderLimits,
        timeout: Duration,
    ) -> Result<(Self, OwnedWriteHalf)> {
        tokio::time::timeout(timeout, Self::establish_now(addr, jid, secret, limits))
            .await
            .map_err(|_| Error::Timeout("connecting and authenticating"))?
    }

    async fn establish_now(
        addr: &str,
        jid: &BareJid,
        secret: &Secret,
        limits: DecoderLimits,
    ) -> Result<(Self, OwnedWriteHalf)> {
        let socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        let (reader, mut writer) = socket.into_split();
        let mut connection = Self { reader, decoder: Decoder::new(limits), buf: vec![0; READ_BUFFER] };
        writer.write_all(encode::open_stream(jid.as_str()).as_bytes()).await?;
        let id = match connection.read_frame().await? {
            Frame::Header(header) => header.id.ok_or_else(|| Error::Stream {
                condition: StreamCondition::BadFormat,
                detail: "the stream header has no id".into(),
            })?,
            other => return Err(unexpected(other)),
        };
        writer.write_all(encode::handshake(&id, secret.expose()).as_bytes()).await?;
        match connection.read_frame().await? {
            Frame::Handshake => Ok((connection, writer)),
            other => Err(unexpected(other)),
        }
    }

    /// The next frame. The end of the socket is [`Error::Closed`].
    ///
    /// Cancel safe: a cancelled call loses no bytes.
    pub async fn read_frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(frame);
            }
            let read = self.reader.read(&mut self.buf).await?;
            if read == 0 {
                return Err(Error::Closed);
            }
            self.decoder.feed(&self.buf[..read]);
        }
    }
}

/// The error for a frame that has no place where it arrived.
fn unexpected(frame: Frame) -> Error {
    match frame {
        Frame::StreamError { condition, text } => Error::ServerStreamError { condition, text },
        Frame::Close => Error::Closed,
        other => Error::Stream {
            condition: StreamCondition::BadFormat,
            detail: format!("unexpected {} while authenticating", frame_kind(&other)),
        },
    }
}

/// A short name of a frame, for logs.
pub fn frame_kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Header(_) => "stream header",
        Frame::Handshake => "handshake",
        Frame::Stanza(_) => "stanza",
        Frame::Oversize { .. } => "oversize stanza",
        Frame::StreamError { .. } => "stream error",
        Frame::Close => "stream close",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A stream header with the stream id `id`.
    fn header(id: &str) -> String {
        format!(
            "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns='jabber:component:accept' id='{id}' from='keys.example.test'>"
        )
    }

    /// A scripted server: reads the header, sends ours, reads the handshake, answers `answer`.
    async fn server(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        server_with_id("abc", answer).await
    }

    /// [`server`] with the stream id `id`.
    async fn server_with_id(id: &'static str, answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut seen = String::new();
            read_until(&mut socket, &mut seen, "'>").await;
            socket.write_all(header(id).as_bytes()).await.expect("write");
            read_until(&mut socket, &mut seen, "</handshake>").await;
            // Answer and a stanza in the same write, split oddly.
            for part in answer.as_bytes().chunks(7) {
                socket.write_all(part).await.expect("write");
            }
            seen
        });
        (addr, task)
    }

    async fn read_until(socket: &mut TcpStream, seen: &mut String, pattern: &str) {
        let mut buf = [0u8; 1024];
        while !seen.contains(pattern) {
            let n = socket.read(&mut buf).await.expect("read");
            if n == 0 {
                return;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    fn jid() -> BareJid {
        BareJid::parse("keys.example.test").expect("valid")
    }

    #[tokio::test]
    async fn authenticates_and_keeps_the_stanza_after_the_handshake() {
        let (addr, task) = server("<handshake/><message from='example.test'><x xmlns='urn:y'/></message>").await;
        let (mut connection, _writer) = Connection::establish(
            &addr,
            &jid(),
            &Secret::new("sesame"),
            DecoderLimits::default(),
            Duration::from_secs(5),
        )
        .await
        .expect("authenticated");
        let seen = task.await.expect("server");
        assert!(seen.contains(&format!("<handshake>{}</handshake>", encode::handshake_digest("abc", "sesame"))));
        assert!(seen.contains("to='keys.example.test'"));
        let Frame::Stanza(message) = connection.read_frame().await.expect("frame") else { panic!("no stanza") };
        assert_eq!(message.get_attr("from"), Some("example.test"));
    }

    #[tokio::test]
    async fn any_stream_id_is_hashed_as_sent() {
        // Prosody sends UUIDs, ejabberd long decimal numbers: both are opaque strings here.
        for id in ["4db8b0d6-8d2a-4d3e-9b0b-3f1b1c2d3e4f", "13510290741342526395", "0"] {
            let (addr, task) = server_with_id(id, "<handshake/>").await;
            Connection::establish(&addr, &jid(), &Secret::new("s"), DecoderLimits::default(), Duration::from_secs(5))
                .await
                .expect("authenticated");
            let seen = task.await.expect("server");
            assert!(seen.contains(&format!("<handshake>{}</handshake>", encode::handshake_digest(id, "s"))), "{id}");
        }
    }

    #[tokio::test]
    async fn a_refused_secret_is_the_server_stream_error() {
        let (addr, _task) = server(
            "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
        )
        .await;
        let err = Connection::establish(
            &addr,
            &jid(),
            &Secret::new("wrong"),
            DecoderLimits::default(),
            Duration::from_secs(5),
        )
        .await
        .expect_err("refused");
        assert!(matches!(&err, Error::ServerStreamError { condition, .. } if condition == "not-authorized"), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let _keep = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let err = Connection::establish(
            &addr,
            &jid(),
            &Secret::new("s"),
            DecoderLimits::default(),
            Duration::from_millis(200),
        )
        .await
        .expect_err("timeout");
        assert!(matches!(err, Error::Timeout(_)), "{err}");
    }
}
