//! keyward-tests: the one place that knows how to run real servers for tests, the local stack and benchmarks.
//!
//! Every fixture starts a real server on a free loopback port in its own temp
//! folder and stops it by PID when dropped. A missing server binary is an
//! error naming the Debian package to install, never a silent skip.

pub mod component;
pub mod ejabberd;
pub mod gate;
pub mod keydir;
pub mod net;
pub mod postgres;
pub mod process;
pub mod prosody;
pub mod stack;
pub mod tls;
pub mod xmpp;

use std::net::TcpListener;

/// A loopback port that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A fresh temp folder, removed when the returned value drops.
pub fn temp_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(prefix).tempdir()
}

/// Generates, for each named `async fn NAME(kind: ServerKind)` (returning `()` or a `Result`),
/// a module `NAME` holding two tests, `prosody` and `ejabberd`: every server-facing behaviour is
/// checked against both servers. Used as `on_both_servers!(first_test, second_test);`.
#[macro_export]
macro_rules! on_both_servers {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn prosody() {
                $crate::TestOutcome::check(super::$name($crate::xmpp::ServerKind::Prosody).await);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ejabberd() {
                $crate::TestOutcome::check(super::$name($crate::xmpp::ServerKind::Ejabberd).await);
            }
        }
    )+};
}

/// What a test body of [`on_both_servers!`] returns: nothing (it panics on failure) or a `Result`.
pub trait TestOutcome {
    /// Panics, with the error, on a failure.
    fn check(self);
}

impl TestOutcome for () {
    fn check(self) {}
}

impl<E: std::fmt::Debug> TestOutcome for Result<(), E> {
    fn check(self) {
        if let Err(err) = self {
            panic!("{err:?}");
        }
    }
}
