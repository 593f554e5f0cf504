//! One TCP stream of the bench's own XMPP code: it owns the socket and its buffer, and hands out frames.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::framing::{self, Frame};

/// A frame copied out of the buffer.
#[derive(Debug)]
pub(crate) struct Owned {
    /// `None` for the stream header.
    pub(crate) name: Option<String>,
    pub(crate) tag: String,
    pub(crate) text: String,
}

/// A socket and what was read from it but not handled yet.
pub(crate) struct Wire {
    socket: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    pub(crate) async fn connect(addr: std::net::SocketAddr) -> Result<Self> {
        let socket = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        socket.set_nodelay(true)?;
        Ok(Self { socket, buf: Vec::with_capacity(64 * 1024) })
    }

    pub(crate) async fn send(&mut self, text: &str) -> Result<()> {
        self.socket.write_all(text.as_bytes()).await.context("writing to the stream")
    }

    /// Reads what is there (waiting at most `timeout`); an error when the peer closed.
    pub(crate) async fn fill(&mut self, timeout: Duration) -> Result<()> {
        if !self.fill_by(Instant::now() + timeout).await? {
            bail!("nothing read for {timeout:?}");
        }
        Ok(())
    }

    /// Reads what is there; `false` when nothing came by `deadline`, an error when the peer closed.
    pub(crate) async fn fill_by(&mut self, deadline: Instant) -> Result<bool> {
        if self.buf.len() > framing::MAX_BUFFER {
            bail!("more than {} bytes buffered without a complete stanza", framing::MAX_BUFFER);
        }
        let mut chunk = [0u8; 32 * 1024];
        let Ok(read) = tokio::time::timeout_at(deadline, self.socket.read(&mut chunk)).await else {
            return Ok(false);
        };
        let n = read.context("reading the stream")?;
        if n == 0 {
            bail!("the peer closed the connection");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(true)
    }

    /// The next frame, waiting at most `timeout` between reads; the stream's end is an error.
    pub(crate) async fn frame(&mut self, timeout: Duration) -> Result<Owned> {
        loop {
            let owned = match framing::next(&self.buf)? {
                Some(Frame::End) => bail!("the server closed the stream"),
                Some(Frame::Header { tag, len }) => (Owned { name: None, tag: tag.into(), text: String::new() }, len),
                Some(Frame::Element { name, tag, len }) => {
                    let text = String::from_utf8_lossy(&self.buf[..len]).trim_start().to_owned();
                    (Owned { name: Some(name.into()), tag: tag.into(), text }, len)
                }
                None => {
                    self.fill(timeout).await?;
                    continue;
                }
            };
            self.buf.drain(..owned.1);
            return Ok(owned.0);
        }
    }

    /// Hands every complete element in the buffer to `each` (name, start tag), and consumes them.
    pub(crate) fn drain(&mut self, mut each: impl FnMut(&str, &str)) -> Result<()> {
        let mut at = 0;
        while let Some(frame) = framing::next(&self.buf[at..])? {
            match frame {
                Frame::End => bail!("the server closed the stream"),
                Frame::Header { len, .. } => at += len,
                Frame::Element { name, tag, len } => {
                    each(name, tag);
                    at += len;
                }
            }
        }
        self.buf.drain(..at);
        Ok(())
    }
}
