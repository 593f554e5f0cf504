//! A TCP proxy that holds every answer back until it is opened: makes a real service slow on cue.
//!
//! Requests pass through at once; the bytes coming back wait while the gate is shut. Tests use
//! it to keep a request in flight for exactly as long as they need, without fixed sleeps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running gate in front of `upstream`. Dropping it stops accepting and cuts open connections.
#[derive(Debug)]
pub struct Gate {
    addr: SocketAddr,
    open: watch::Sender<bool>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Gate {
    /// Listens on a free loopback port, forwarding to `upstream`; starts shut when `open` is false.
    pub async fn start(upstream: SocketAddr, open: bool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the gate")?;
        let addr = listener.local_addr()?;
        let (open, watcher) = watch::channel(open);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                connections.spawn(forward(client, upstream, watcher.clone()));
            }
        });
        Ok(Self { addr, open, accepted, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections the gate accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// `http://ADDR`, for an HTTP service behind the gate.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets answers through (the ones held so far first).
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Holds answers back from now on.
    pub fn shut(&self) {
        self.open.send_replace(false);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, mut open: watch::Receiver<bool>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let answers = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if open.wait_for(|open| *open).await.is_err() {
                break;
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(requests, answers);
}
