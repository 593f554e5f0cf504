//! A throwaway PostgreSQL cluster: initdb in a temp folder, a free loopback port, a fresh database per test.
//!
//! As root, `initdb` and `pg_ctl` run as the `postgres` user on a folder that
//! user owns; as an ordinary user they run directly. Stopped by PID on drop.
//! [`Postgres::shared`] is one cluster per test process, stopped by a watchdog
//! when the process exits. [`Postgres::start_tls`] is a cluster that accepts TLS connections
//! only (`ssl=on`, a certificate from a throwaway CA, `hostssl`-only `pg_hba.conf`).

use anyhow::{Context, bail};
use sqlx::{Connection, Executor};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const MISSING: &str = "PostgreSQL server binaries (initdb, pg_ctl) not found: \
    install the Debian package postgresql-15 (or postgresql)";

/// A running throwaway cluster.
#[derive(Debug)]
pub struct Postgres {
    dir: Option<tempfile::TempDir>,
    bindir: PathBuf,
    run_as: Option<String>,
    port: u16,
    pid: u32,
    /// Commits wait for their WAL to reach the OS, so a SIGKILL loses no committed transaction.
    crash_safe: bool,
    tls: Option<crate::tls::TestCa>,
}

/// The folder of the PostgreSQL server binaries (`initdb`, `pg_ctl`, `pg_dump`).
pub fn bindir() -> anyhow::Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.sort();
    found.into_iter().rev().find(|dir| dir.join("initdb").exists()).context(MISSING)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn id_of(user: &str, flag: &str) -> anyhow::Result<u32> {
    let out = Command::new("id").args([flag, user]).output().context("running id")?;
    if !out.status.success() {
        bail!("no user {user:?}: as root, PostgreSQL must run as the postgres user (Debian package postgresql-15)");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

impl Postgres {
    /// Creates and starts a new cluster, tuned for speed (`synchronous_commit=off`: a
    /// SIGKILL may lose the last commits; see [`start_crash_safe`](Self::start_crash_safe)).
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(false, None)
    }

    /// Creates and starts a new cluster whose committed transactions survive a SIGKILL of its
    /// processes (`synchronous_commit=on`; `fsync` stays off: a process crash, not a power loss).
    pub fn start_crash_safe() -> anyhow::Result<Self> {
        Self::start_with(true, None)
    }

    /// Creates and starts a new cluster that refuses connections without TLS: `ssl=on` with a
    /// certificate for `localhost`, `127.0.0.1` and `::1` from a throwaway CA (see
    /// [`ca_file`](Self::ca_file)), and a `pg_hba.conf` of `hostssl` lines only.
    pub fn start_tls() -> anyhow::Result<Self> {
        Self::start_with(false, Some(crate::tls::TestCa::loopback()?))
    }

    fn start_with(crash_safe: bool, tls: Option<crate::tls::TestCa>) -> anyhow::Result<Self> {
        let bindir = bindir()?;
        let run_as = is_root().then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new().prefix("keyward-pg-").tempdir().context("creating a temp folder")?;
        if let Some(user) = &run_as {
            let (uid, gid) = (id_of(user, "-u")?, id_of(user, "-g")?);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).context("chown of the cluster folder")?;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        }
        let data = dir.path().join("data");
        let mut postgres = Self { dir: Some(dir), bindir, run_as, port: 0, pid: 0, crash_safe, tls };
        let status = postgres
            .command("initdb")
            .args(["-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8", "-U", "postgres", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context("running initdb")?;
        if !status.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&status.stderr));
        }
        if let Some(ca) = &postgres.tls {
            postgres.require_tls(&data, ca.files())?;
        }
        // Another process may take the port between choosing and binding: retry.
        let mut last = String::new();
        for _ in 0..5 {
            let port = crate::free_port()?;
            match postgres.launch(port) {
                Ok(()) => return Ok(postgres),
                Err(err) => last = format!("{err:#}"),
            }
        }
        bail!("PostgreSQL did not start: {last}")
    }

    /// `pg_ctl start` on `port` with the cluster's data folder; records the postmaster's PID.
    fn launch(&mut self, port: u16) -> anyhow::Result<()> {
        let data = self.path().join("data");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit={} \
             -c full_page_writes=off -c max_connections=300",
            self.path().display(),
            if self.crash_safe { "on" } else { "off" },
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.path().join("log"))
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context("running pg_ctl start")?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.path().join("log")).unwrap_or_default();
            bail!("pg_ctl start failed: {}{log}", String::from_utf8_lossy(&out.stderr));
        }
        self.port = port;
        self.pid = read_pid(&data)?;
        Ok(())
    }

    /// SIGKILL to the postmaster and every process it started, all at once (a crash of the
    /// whole server, no shutdown at all); waits until they are gone. The data folder and the
    /// port stay, for [`start_again`](Self::start_again). Not for [`Postgres::shared`].
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if self.pid == 0 {
            bail!("the cluster is not running (or is the shared one)");
        }
        let mut pids = children_of(self.pid);
        pids.push(self.pid);
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        // A backend may have ended on its own meanwhile: "no such process" is fine.
        let _ = Command::new("kill").arg("-KILL").args(&list).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|pid| running(*pid)) {
            if Instant::now() > deadline {
                bail!("PostgreSQL processes {pids:?} still run 10 s after SIGKILL");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // A killed postmaster may stay a zombie until its parent reaps it, and Postgres takes a
        // lock file naming a PID that still exists for a running server: they are stale now.
        let _ = std::fs::remove_file(self.path().join("data/postmaster.pid"));
        let _ = std::fs::remove_file(self.path().join(format!(".s.PGSQL.{}.lock", self.port)));
        self.pid = 0;
        Ok(())
    }

    /// Starts a killed cluster again on the same port and data folder (crash recovery runs);
    /// returns once it accepts connections.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.pid != 0 {
            bail!("the cluster is running");
        }
        self.dir.as_ref().context("cluster folder already handed over")?;
        self.launch(self.port)
    }

    /// The postmaster's process ID while it runs (0 once stopped, killed or handed over).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Copies the certificate and key into the data folder (the server insists on owning its
    /// key, mode 0600), turns `ssl` on and allows TCP connections with TLS only.
    fn require_tls(&self, data: &Path, files: &crate::tls::TlsFiles) -> anyhow::Result<()> {
        let owner = match &self.run_as {
            Some(user) => Some((id_of(user, "-u")?, id_of(user, "-g")?)),
            None => None,
        };
        for (from, to) in [(&files.cert, "server.crt"), (&files.key, "server.key")] {
            let to = data.join(to);
            std::fs::copy(from, &to).with_context(|| format!("copying {}", from.display()))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&to, Some(uid), Some(gid)).context("chown of the TLS files")?;
            }
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .context("opening postgresql.conf")?;
        std::io::Write::write_all(
            &mut conf,
            b"\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        )
        .context("writing postgresql.conf")?;
        // No `host` line: a TCP connection without TLS matches nothing and is refused.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .context("writing pg_hba.conf")?;
        Ok(())
    }

    /// The CA certificate (PEM) that signed the server's certificate, for a cluster started
    /// with [`start_tls`](Self::start_tls): what `sslrootcert=` names.
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|ca| ca.files().ca.as_path())
    }

    /// One cluster for the whole test process, started on first use and
    /// stopped by a watchdog process when this process exits.
    pub fn shared() -> anyhow::Result<&'static Postgres> {
        static SHARED: OnceLock<Result<(Postgres, ChildStdin), String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            let mut postgres = Postgres::start().map_err(|e| format!("{e:#}"))?;
            let watchdog = postgres.watchdog().map_err(|e| format!("{e:#}"))?;
            Ok((postgres, watchdog))
        });
        match shared {
            Ok((postgres, _)) => Ok(postgres),
            Err(err) => bail!("{err}"),
        }
    }

    /// Hands stopping and removal to a shell that waits for our end of a pipe
    /// to close (this process exiting, however it exits).
    fn watchdog(&mut self) -> anyhow::Result<ChildStdin> {
        let dir = self.dir.take().context("cluster folder already handed over")?;
        let path = dir.keep();
        let script = format!(
            "cat >/dev/null; kill -INT {pid} 2>/dev/null; i=0; \
             while [ -e '{data}/postmaster.pid' ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; \
             kill -KILL {pid} 2>/dev/null; rm -rf '{path}'",
            pid = self.pid,
            data = path.join("data").display(),
            path = path.display(),
        );
        let mut child: Child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the cluster watchdog")?;
        let stdin = child.stdin.take().context("watchdog stdin")?;
        // The watchdog outlives us; the pid 0 marks this cluster as handed over.
        self.pid = 0;
        Ok(stdin)
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or_else(|| Path::new("/nonexistent"))
    }

    fn command(&self, program: &str) -> Command {
        let binary = self.bindir.join(program);
        match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(binary);
                command
            }
            None => Command::new(binary),
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of database `name` (user `postgres`, trust authentication). No `sslmode`: the
    /// driver's default `prefer` uses TLS, unverified, when the server offers it.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn fresh_database(&self) -> anyhow::Result<String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!("test_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await.context("connecting to Postgres")?;
        // The name is ours (digits and underscores), never input.
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} TEMPLATE template0")))
            .await
            .context("creating a database")?;
        conn.close().await?;
        Ok(self.url(&name))
    }

    /// Stops the cluster (fast shutdown, then SIGKILL after 5 s) and removes its folder.
    pub fn stop(&mut self) {
        if self.pid == 0 {
            return;
        }
        let pid = self.pid.to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let pidfile = self.path().join("data/postmaster.pid");
        let deadline = Instant::now() + Duration::from_secs(5);
        while pidfile.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if pidfile.exists() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        self.pid = 0;
        self.dir.take();
    }
}

fn read_pid(data: &Path) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).context("reading postmaster.pid")?;
    text.lines().next().unwrap_or_default().trim().parse().context("parsing postmaster.pid")
}

/// The processes whose parent is `parent` (from `/proc`).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
            ppid == Some(parent)
        })
        .collect()
}

/// Whether a process runs (a zombie waiting to be reaped counts as gone).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a process still runs (a defunct postmaster waiting to be reaped counts as gone).
    fn alive(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn a_cluster_serves_fresh_databases_and_is_gone_after_drop() {
        let postgres = Postgres::start().expect("starts");
        let (pid, folder) = (postgres.pid, postgres.path().to_owned());
        assert!(alive(pid));
        let first = postgres.fresh_database().await.expect("database");
        let second = postgres.fresh_database().await.expect("database");
        assert_ne!(first, second);
        let mut conn = sqlx::PgConnection::connect(&first).await.expect("connects");
        let (one,): (i32,) = sqlx::query_as("SELECT 1").fetch_one(&mut conn).await.expect("query");
        assert_eq!(one, 1);
        conn.close().await.expect("closes");
        drop(postgres);
        assert!(!alive(pid), "postmaster {pid} still runs");
        assert!(!folder.exists(), "{} was not removed", folder.display());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_safe_cluster_keeps_its_commits_across_sigkill_and_start_again() {
        let mut postgres =
            tokio::task::spawn_blocking(Postgres::start_crash_safe).await.expect("task").expect("starts");
        let (port, old_pid) = (postgres.port(), postgres.pid());
        let url = postgres.fresh_database().await.expect("database");
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connects");
        conn.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (42)").await.expect("writes");
        postgres.kill().expect("kills");
        assert!(!running(old_pid), "postmaster {old_pid} survived SIGKILL");
        assert!(sqlx::query("SELECT 1").execute(&mut conn).await.is_err(), "the old connection still works");
        postgres.start_again().expect("starts again");
        assert_eq!(postgres.port(), port);
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connects again");
        let (n,): (i32,) = sqlx::query_as("SELECT n FROM t").fetch_one(&mut conn).await.expect("reads");
        assert_eq!(n, 42);
    }
}
