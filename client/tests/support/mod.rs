//! TEMPORARY minimal Prosody for the client's tests, until the keyward-tests
//! Prosody fixture lands on main; then this file is deleted and the tests use
//! that fixture (there must be one place that runs servers).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Prosody on a free loopback port, with in-band registration, killed on drop.
pub struct Prosody {
    _dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Prosody {
    /// Starts Prosody for `example.test`; fails naming the Debian package when it is missing.
    pub fn start() -> Self {
        assert!(
            Path::new("/usr/bin/prosody").exists(),
            "prosody is not installed: apt-get install -y prosody prosody-modules"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let d = dir.path();
        let config = format!(
            r#"run_as_root = true
daemonize = false
pidfile = "{d}/prosody.pid"
data_path = "{d}"
log = {{ info = "{d}/prosody.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
allow_registration = true
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "offline"; "register" }}
modules_disabled = {{ "s2s"; "tls" }}
VirtualHost "example.test"
"#,
            d = d.display()
        );
        std::fs::write(d.join("prosody.cfg.lua"), config).expect("config");
        let child = Command::new("prosody")
            .arg("-F")
            .arg("--config")
            .arg(d.join("prosody.cfg.lua"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prosody starts");
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "prosody did not open its port");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { _dir: dir, child, port }
    }

    /// The c2s address.
    pub fn c2s_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
