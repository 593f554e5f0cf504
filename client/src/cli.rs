//! The `keyward` command line tool: argument parsing, secret input, output for people and for scripts.

mod chat;
mod output;
mod sanitize;
mod secrets;

use crate::{Account, ConnectOptions, Error, Incoming, KeyEvent, PassphrasePolicy, Session, Setup, Store, Transport};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use keyward_proto::BareJid;
use keyward_proto::transparency::heads::{CosignaturePolicy, VerifierKey};
use output::Output;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// End-to-end encrypted chat over any XMPP server.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, about, long_about = None)]
pub struct Cli {
    /// Your account, e.g. alice@example.org.
    #[arg(long, global = true, env = "KEYWARD_JID")]
    jid: Option<String>,
    /// Server address HOST:PORT (default: DNS SRV of the account's domain).
    #[arg(long, global = true, env = "KEYWARD_SERVER", value_name = "HOST:PORT")]
    server: Option<String>,
    /// The keyward component's JID (default: discovered on your server; checked either way).
    #[arg(long, global = true, env = "KEYWARD_COMPONENT")]
    component: Option<String>,
    /// Connect with plain TCP and NO TLS: only to a loopback --server HOST:PORT (test servers).
    #[arg(long, global = true, conflicts_with = "direct_tls")]
    insecure_plaintext: bool,
    /// Use TLS from the first byte instead of STARTTLS.
    #[arg(long, global = true)]
    direct_tls: bool,
    /// Folder in which keyward keeps its `keyward/` state folder (default: the user data folder, e.g. ~/.local/share).
    #[arg(long, global = true, env = "KEYWARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Read the XMPP password from this file (else KEYWARD_PASSWORD, else a prompt).
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
    /// Read the key passphrase from this file (else KEYWARD_PASSPHRASE, else a prompt).
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    /// Accept a weak key passphrase at first use. For tests only: a weak passphrase leaves your
    /// keys as weak as it is to whoever holds the key directory's database and OPRF seed.
    #[arg(long, global = true)]
    allow_weak_passphrase: bool,
    /// An auditor whose cosignature the key directory's heads must carry: its C2SP verifier key
    /// (`<name>+<key ID>+<base64>`, from `keyward-auditor key`). Repeat, or comma-separate in
    /// KEYWARD_AUDITORS.
    #[arg(long = "auditor", global = true, env = "KEYWARD_AUDITORS", value_delimiter = ',', value_name = "KEY")]
    auditors: Vec<String>,
    /// How many of the --auditor keys must have cosigned each head (default: all of them).
    #[arg(long, global = true, env = "KEYWARD_AUDITORS_REQUIRED", value_name = "N")]
    auditors_required: Option<usize>,
    /// The oldest a counted cosignature may be, in seconds.
    #[arg(long, global = true, env = "KEYWARD_HEAD_MAX_AGE", default_value_t = 86_400, value_name = "SECONDS")]
    head_max_age: u64,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the XMPP account on the server (in-band registration, XEP-0077).
    Register,
    /// First use: generate keys, seal them with your passphrase, publish them.
    Init,
    /// New device: fetch your sealed keys and open them with your passphrase.
    Login,
    /// Forgot your passphrase: open your keys with your recovery code and choose a new passphrase.
    Recover {
        /// Read the recovery code from this file (else KEYWARD_RECOVERY_CODE, else a prompt).
        #[arg(long, value_name = "FILE")]
        recovery_code_file: Option<PathBuf>,
    },
    /// Change your passphrase (your keys stay the same; you get a new recovery code).
    Passphrase {
        /// Read the new passphrase from this file (else KEYWARD_NEW_PASSPHRASE, else a prompt, twice).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Add a contact: ask to see their presence and send them your key.
    Add {
        /// The contact.
        #[arg(id = "contact", value_name = "JID")]
        jid: String,
    },
    /// Accept a contact's request and send them your key.
    Accept {
        /// The contact.
        #[arg(id = "contact", value_name = "JID")]
        jid: String,
    },
    /// Send an encrypted message.
    Send {
        /// The contact.
        #[arg(id = "contact", value_name = "JID")]
        jid: String,
        /// The text.
        text: String,
    },
    /// Receive messages and notices (until interrupted, or for --timeout seconds).
    Recv {
        /// Stop after this many seconds.
        #[arg(long, value_name = "S")]
        timeout: Option<f64>,
    },
    /// Show your conversation with a contact from the server's archive, decrypted and checked.
    History {
        /// The contact.
        #[arg(id = "contact", value_name = "JID")]
        jid: String,
        /// How many of the last messages (1 to 500).
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// List contacts with their keys and trust.
    Contacts,
    /// Show the safety number with a contact; --confirm NUMBER marks the key verified.
    Verify {
        /// The contact.
        #[arg(id = "contact", value_name = "JID")]
        jid: String,
        /// The safety number (or the contact's fingerprint) you compared with the contact, as
        /// they read it to you: the key is marked verified only if it matches.
        #[arg(long, value_name = "NUMBER")]
        confirm: Option<String>,
    },
    /// Chat interactively in the terminal: contacts, requests, conversations, safety numbers.
    ///
    /// Enter sends to the selected contact; Tab, Up and Down change contact; Page Up and Page
    /// Down scroll (Page Up at the top loads older messages from the archive). Commands: /add JID,
    /// /accept [JID], /verify, /confirm NUMBER, /help, /quit. It reconnects by itself when the
    /// server goes away; what is typed meanwhile is sent once it is back.
    Chat,
}

/// Runs the tool: parses arguments, runs the command, prints errors. The binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    // Log lines on the terminal would tear the chat screen: it shows failures itself.
    let default_filter = if matches!(cli.command, Command::Chat) { "off" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEYWARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            }
            // An error can quote the server (a refusal's text): escaped like everything it sends.
            eprintln!("error: {}", sanitize::escape(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn parse_jid(text: &str, what: &str) -> anyhow::Result<BareJid> {
    BareJid::parse(text).with_context(|| format!("{what} {text:?} is not a valid bare JID"))
}

impl Cli {
    fn jid(&self) -> anyhow::Result<BareJid> {
        let Some(jid) = &self.jid else { bail!("which account? pass --jid or set KEYWARD_JID") };
        parse_jid(jid, "--jid")
    }

    fn data_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => crate::default_data_dir().context("no data folder: pass --data-dir or set KEYWARD_DATA_DIR"),
        }
    }

    fn connect_options(&self) -> anyhow::Result<ConnectOptions> {
        let jid = self.jid()?;
        let password = secrets::password(self.password_file.as_deref(), &jid)?;
        let mut options = ConnectOptions::new(jid, password);
        options.server = self.server.clone();
        options.transport = if self.insecure_plaintext {
            Transport::InsecurePlaintext
        } else if self.direct_tls {
            Transport::DirectTls
        } else {
            Transport::StartTls
        };
        if let Some(component) = &self.component {
            options.component = Some(parse_jid(component, "--component")?);
        }
        Ok(options)
    }

    fn account(&self, confirm_passphrase: bool) -> anyhow::Result<Account> {
        let connect = self.connect_options()?;
        let passphrase = secrets::passphrase(self.passphrase_file.as_deref(), confirm_passphrase)?;
        let mut account = Account::new(connect, passphrase, self.data_dir()?);
        account.progress = output::kdf_spinner();
        if self.allow_weak_passphrase {
            account.passphrase_policy = PassphrasePolicy::AllowWeakForTests;
        }
        account.cosignatures = self.cosignature_policy()?;
        Ok(account)
    }

    fn cosignature_policy(&self) -> anyhow::Result<CosignaturePolicy> {
        let auditors = self
            .auditors
            .iter()
            .map(|key| VerifierKey::parse(key.trim()).map_err(|e| anyhow::anyhow!("--auditor {key}: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let required = self.auditors_required.unwrap_or(auditors.len());
        anyhow::ensure!(
            required <= auditors.len(),
            "--auditors-required {required}: only {} --auditor keys",
            auditors.len()
        );
        Ok(CosignaturePolicy { auditors, required, max_age_secs: self.head_max_age })
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output::new(cli.json);
    match &cli.command {
        Command::Register => {
            let options = cli.connect_options()?;
            crate::register(&options).await.context("registration failed")?;
            out.registered(&options.jid);
        }
        Command::Init => {
            let mut session = Session::first_use(&cli.account(true)?).await?;
            let code = session.take_recovery_code();
            out.ready(&session, Setup::FirstUse, code.as_ref());
            session.close().await?;
        }
        Command::Login => {
            let mut session = Session::new_device(&cli.account(false)?).await?;
            let code = session.take_recovery_code();
            out.ready(&session, Setup::NewDevice, code.as_ref());
            session.close().await?;
        }
        Command::Recover { recovery_code_file } => {
            let code = secrets::recovery_code(recovery_code_file.as_deref())?;
            // The passphrase asked for (twice at a prompt) is the new one.
            let mut session = Session::recover(&cli.account(true)?, &code).await?;
            let code = session.take_recovery_code();
            out.recovered(&session, code.as_ref());
            session.close().await?;
        }
        Command::Passphrase { new_passphrase_file } => {
            let account = cli.account(false)?;
            let new = secrets::new_passphrase(new_passphrase_file.as_deref())?;
            let mut session = resume(&cli, &out).await?;
            let code = session.change_passphrase(&account, new).await?;
            out.passphrase_changed(&session, &code);
            session.close().await?;
        }
        Command::Add { jid } => {
            let jid = parse_jid(jid, "contact")?;
            let mut session = resume(&cli, &out).await?;
            let event = session.add(&jid).await?;
            out.contact_added(&jid, &event, false);
            session.close().await?;
        }
        Command::Accept { jid } => {
            let jid = parse_jid(jid, "contact")?;
            let mut session = resume(&cli, &out).await?;
            let event = session.accept(&jid).await?;
            out.contact_added(&jid, &event, true);
            session.close().await?;
        }
        Command::Send { jid, text } => {
            let jid = parse_jid(jid, "contact")?;
            let mut session = resume(&cli, &out).await?;
            let sent = session.send(&jid, text).await?;
            out.sent(&jid, &sent);
            session.close().await?;
        }
        Command::Recv { timeout } => {
            let wait = match timeout {
                Some(s) if s.is_finite() && *s >= 0.0 => Duration::from_secs_f64(*s),
                Some(_) => bail!("--timeout must be a number of seconds"),
                None => crate::FOREVER,
            };
            let mut session = resume(&cli, &out).await?;
            session.go_online().await?;
            out.listening(session.me(), timeout.is_some());
            recv_loop(&mut session, &out, wait).await?;
            session.close().await?;
        }
        Command::History { jid, limit } => {
            let jid = parse_jid(jid, "contact")?;
            let mut session = resume(&cli, &out).await?;
            let items = session.history(&jid, *limit).await?;
            out.history(&items);
            session.close().await?;
        }
        Command::Contacts => {
            let mut session = resume(&cli, &out).await?;
            let contacts = session.contacts().await?;
            out.contacts(&contacts);
            session.close().await?;
        }
        Command::Verify { jid, confirm } => {
            let jid = parse_jid(jid, "contact")?;
            let compared = confirm.as_deref().map(crate::Compared::parse).transpose()?;
            verify(&cli, &out, &jid, compared.as_ref()).await?;
        }
        Command::Chat => {
            if cli.json {
                bail!("chat is interactive: --json does not apply");
            }
            let mut session = resume(&cli, &out).await?;
            session.go_online().await?;
            chat::run(&mut session).await?;
            session.close().await?;
        }
    }
    Ok(())
}

/// Opens the account's keys for a command; a recovery code made on the way (the migration of an
/// older blob) is shown before the command's own output.
async fn resume(cli: &Cli, out: &Output) -> anyhow::Result<Session> {
    let mut session = Session::resume(&cli.account(false)?).await?;
    if let Some(code) = session.take_recovery_code() {
        out.migrated(&code);
    }
    Ok(session)
}

async fn recv_loop(session: &mut Session, out: &Output, wait: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = tokio::select! {
            event = session.next_event(left) => event?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match event {
            Some(Incoming::Key(KeyEvent::Revoked { ref jid, .. })) if jid == session.me() => {}
            Some(event) => out.incoming(&event),
            None => return Ok(()),
        }
    }
}

async fn verify(cli: &Cli, out: &Output, jid: &BareJid, compared: Option<&crate::Compared>) -> anyhow::Result<()> {
    // Works offline when the contact's key is pinned; otherwise fetches it.
    let me = cli.jid()?;
    if jid == &me {
        bail!("that is your own account: verify a contact");
    }
    let store = Store::open(&cli.data_dir()?, &me)?;
    let own = store.account()?.map(|state| state.bundle(&me)).transpose()?;
    let local = match &own {
        Some(own) => match crate::safety_report(&store, own, jid) {
            Ok(report) => Some(report),
            Err(Error::UnknownContact(_) | Error::NoKey(_)) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let report = match local {
        Some(report) => report,
        None => {
            let mut session = resume(cli, out).await?;
            let report = session.safety_number(jid).await?;
            session.close().await?;
            report
        }
    };
    let Some(compared) = compared else {
        out.safety(&report, false);
        return Ok(());
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let theirs = store.update_contacts(|c| c.confirm(jid, compared, &report.mine, now_ms))??;
    // The key the user confirmed: the pinned one, or the held-back one it now replaces.
    let report = crate::SafetyReport {
        number: keyward_proto::SafetyNumber::of(&report.mine, &theirs),
        theirs,
        trust: crate::Trust::Verified,
        changed: false,
        ..report
    };
    out.safety(&report, true);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_argument_never_replaces_the_account() {
        for args in [
            &["keyward", "--jid", "carol@example.test", "add", "dave@example.test"][..],
            &["keyward", "--jid", "carol@example.test", "accept", "dave@example.test"],
            &["keyward", "--jid", "carol@example.test", "send", "dave@example.test", "hi"],
            &["keyward", "--jid", "carol@example.test", "verify", "dave@example.test"],
            &["keyward", "add", "dave@example.test", "--jid", "carol@example.test"],
        ] {
            let cli = Cli::try_parse_from(args).expect("parses");
            assert_eq!(cli.jid.as_deref(), Some("carol@example.test"), "{args:?}");
            let contact = match &cli.command {
                Command::Add { jid }
                | Command::Accept { jid }
                | Command::Send { jid, .. }
                | Command::Verify { jid, .. } => jid,
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(contact, "dave@example.test", "{args:?}");
        }
    }
}
