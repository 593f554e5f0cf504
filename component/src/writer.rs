//! The one writer of a session: every outgoing stanza goes through it, plus whitespace keepalives.

use core::time::Duration;

use keyward_proto::xml::Element;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::stream::{StreamCondition, encode};

/// Longest time one write may block before the stream is considered dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the writer is asked to do.
#[derive(Debug)]
enum Outgoing {
    Stanza { xml: String, written: Option<oneshot::Sender<()>> },
    Close(Option<StreamCondition>),
}

/// A handle to the session's writer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox(mpsc::Sender<Outgoing>);

/// The outbox of a session and the receiver its writer drains.
pub fn channel(capacity: usize) -> (Outbox, WriterQueue) {
    let (tx, rx) = mpsc::channel(capacity);
    (Outbox(tx), WriterQueue(rx))
}

/// The receiving end given to [`run`].
#[derive(Debug)]
pub struct WriterQueue(mpsc::Receiver<Outgoing>);

impl Outbox {
    /// Queues a stanza; `false` when the session's writer is gone.
    pub async fn send(&self, stanza: &Element) -> bool {
        self.0.send(Outgoing::Stanza { xml: encode::stanza(stanza), written: None }).await.is_ok()
    }

    /// Queues a stanza and waits until it was written to the socket.
    pub async fn send_written(&self, stanza: &Element) -> Result<()> {
        let (written, done) = oneshot::channel();
        self.0
            .send(Outgoing::Stanza { xml: encode::stanza(stanza), written: Some(written) })
            .await
            .map_err(|_| Error::Closed)?;
        done.await.map_err(|_| Error::Closed)
    }

    /// Asks the writer to end the stream (with a stream error) after what is queued.
    pub async fn close(&self, error: Option<StreamCondition>) {
        let _ = self.0.send(Outgoing::Close(error)).await;
    }
}

async fn write(socket: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, socket.write_all(bytes)).await.map_err(|_| Error::Timeout("writing"))??;
    Ok(())
}

/// Most bytes gathered from the queue into one write.
const COALESCE_MAX: usize = 64 * 1024;

/// Writes what is queued until asked to close (or every outbox is dropped), sending a
/// whitespace keepalive after `keepalive` of silence. Stanzas queued together go out in one
/// write (up to [`COALESCE_MAX`]): one segment for the server to read instead of one each.
pub async fn run(mut socket: OwnedWriteHalf, mut queue: WriterQueue, keepalive: Duration) -> Result<()> {
    loop {
        match tokio::time::timeout(keepalive, queue.0.recv()).await {
            Err(_) => write(&mut socket, b" ").await?,
            Ok(Some(Outgoing::Stanza { xml, written })) => {
                let mut bytes = xml;
                let mut waiting: Vec<oneshot::Sender<()>> = written.into_iter().collect();
                let mut close = None;
                while bytes.len() < COALESCE_MAX {
                    match queue.0.try_recv() {
                        Ok(Outgoing::Stanza { xml, written }) => {
                            bytes.push_str(&xml);
                            waiting.extend(written);
                        }
                        Ok(Outgoing::Close(error)) => {
                            close = Some(error);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                write(&mut socket, bytes.as_bytes()).await?;
                for written in waiting {
                    let _ = written.send(());
                }
                if let Some(error) = close {
                    return finish(socket, error).await;
                }
            }
            Ok(Some(Outgoing::Close(error))) => return finish(socket, error).await,
            Ok(None) => return finish(socket, None).await,
        }
    }
}

/// Ends the stream (with a stream error, if any) and shuts the socket down.
async fn finish(mut socket: OwnedWriteHalf, error: Option<StreamCondition>) -> Result<()> {
    let end = error.map_or_else(|| encode::CLOSE.to_owned(), encode::stream_error);
    let _ = write(&mut socket, end.as_bytes()).await;
    let _ = socket.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test(start_paused = true)]
    async fn writes_in_order_keeps_alive_and_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        let (_read, write_half) = client.into_split();
        let (outbox, queue) = channel(8);
        let writer = tokio::spawn(run(write_half, queue, Duration::from_secs(60)));
        outbox.send_written(&Element::new("iq", crate::stream::NS_COMPONENT).attr("id", "1")).await.expect("written");
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert!(outbox.send(&Element::new("message", crate::stream::NS_COMPONENT)).await);
        outbox.close(None).await;
        writer.await.expect("join").expect("clean");
        let mut seen = String::new();
        server.read_to_string(&mut seen).await.expect("read");
        assert_eq!(seen, "<iq id='1'/> <message/></stream:stream>");
        assert!(!outbox.send(&Element::new("message", crate::stream::NS_COMPONENT)).await);
    }

    #[tokio::test]
    async fn stanzas_queued_together_go_out_in_order_before_the_close() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        let (_read, write_half) = client.into_split();
        let (outbox, queue) = channel(512);
        for n in 0..300 {
            let id = format!("{n}-{}", "x".repeat(300));
            assert!(outbox.send(&Element::new("iq", crate::stream::NS_COMPONENT).attr("id", id.as_str())).await);
        }
        outbox.close(Some(StreamCondition::ConnectionTimeout)).await;
        run(write_half, queue, Duration::from_secs(60)).await.expect("clean");
        let mut seen = String::new();
        server.read_to_string(&mut seen).await.expect("read");
        let expected: String = (0..300).map(|n| format!("<iq id='{n}-{}'/>", "x".repeat(300))).collect();
        assert!(seen.starts_with(&expected), "every stanza, in order, more than one write's worth");
        assert!(seen[expected.len()..].contains("connection-timeout"), "then the close: {}", &seen[expected.len()..]);
    }
}
