//! keyward-tests: the one place that knows how to run real servers for tests, the local stack and benchmarks.
//!
//! Every fixture starts a real server on a free loopback port in its own temp
//! folder and stops it by PID when dropped. A missing server binary is an
//! error naming the Debian package to install, never a silent skip.

pub mod component;
pub mod ejabberd;
pub mod keydir;
pub mod net;
pub mod postgres;
pub mod prosody;
pub mod stack;
pub mod tls;
pub mod xmpp;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A fresh temp folder, removed when the returned value drops.
pub fn temp_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(prefix).tempdir()
}

/// Waits until something accepts TCP connections on `addr`, or fails after `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("nothing listens on {addr} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
