//! `keyward-auditor`: `check` (one round), `follow` (a round every interval) and `key` (print the cosignature verifier key keydir is configured with).

use clap::{Args, Parser, Subcommand};
use keyward_auditor::{Auditor, AuditorError, Cosigner, Keydir, Outcome};
use keyward_service::{LogFormat, Secret};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// keyward's transparency auditor: verifies a keydir's epoch heads and cosigns them.
#[derive(Parser)]
#[command(name = "keyward-auditor", version)]
struct Cli {
    /// Log lines as JSON or for humans.
    #[arg(long, env = "KEYWARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One round: exit 0 verified (and cosigned if a key is set), 1 alarm, 2 usage or network.
    Check(RunArgs),
    /// A round every --interval-ms until stopped; after an alarm it keeps running but never
    /// cosigns again. Exits 1 if an alarm was raised, else 0.
    Follow {
        #[command(flatten)]
        run: RunArgs,
        /// Milliseconds between rounds.
        #[arg(long, env = "KEYWARD_AUDITOR_INTERVAL_MS", default_value_t = 10_000)]
        interval_ms: u64,
    },
    /// Prints the verifier key of the cosigning key, for keydir's KEYWARD_TRANSPARENCY_AUDITORS.
    Key(KeyArgs),
}

#[derive(Args)]
struct KeyArgs {
    /// The auditor's key name (e.g. its host name): no space, no '+'.
    #[arg(long, env = "KEYWARD_AUDITOR_NAME")]
    name: Option<String>,
    /// The cosigning key: base64 of a 32 byte Ed25519 seed (`head -c 32 /dev/urandom | base64`).
    #[arg(long, env = "KEYWARD_AUDITOR_KEY", hide_env_values = true)]
    key: Option<Secret>,
    /// A file holding the cosigning key (base64); instead of KEYWARD_AUDITOR_KEY.
    #[arg(long, env = "KEYWARD_AUDITOR_KEY_FILE")]
    key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The cosigner, if a key is set (then a name is needed).
    fn cosigner(&self) -> Result<Option<Cosigner>, AuditorError> {
        let name = || {
            self.name
                .as_deref()
                .ok_or_else(|| AuditorError::Usage("a cosigning key needs --name (KEYWARD_AUDITOR_NAME)".into()))
        };
        match (&self.key, &self.key_file) {
            (Some(_), Some(_)) => {
                Err(AuditorError::Usage("set KEYWARD_AUDITOR_KEY or KEYWARD_AUDITOR_KEY_FILE, not both".into()))
            }
            (Some(key), None) => Cosigner::from_base64(name()?, key.expose()).map(Some),
            (None, Some(path)) => Cosigner::from_file(name()?, path).map(Some),
            (None, None) => Ok(None),
        }
    }
}

#[derive(Args)]
struct RunArgs {
    /// keydir's base URL.
    #[arg(long, env = "KEYWARD_AUDITOR_KEYDIR")]
    keydir: String,
    /// The state directory (pinned keys, last verified head, alarm evidence).
    #[arg(long, env = "KEYWARD_AUDITOR_STATE")]
    state: PathBuf,
    /// keydir's note verifier key to pin (`<origin>+<key ID>+<base64>`); default: the pinned
    /// one, or keydir's as served the first time.
    #[arg(long, env = "KEYWARD_AUDITOR_LOG_KEY")]
    log_key: Option<String>,
    /// keydir's VRF public key to pin (base64); default as for the log key.
    #[arg(long, env = "KEYWARD_AUDITOR_VRF_KEY")]
    vrf_key: Option<String>,
    #[command(flatten)]
    key: KeyArgs,
}

impl RunArgs {
    async fn auditor(&self) -> Result<Auditor, AuditorError> {
        let cosigner = self.key.cosigner()?;
        if cosigner.is_none() {
            tracing::warn!("no cosigning key (KEYWARD_AUDITOR_KEY): heads are verified, not cosigned");
        }
        let keydir = Keydir::new(&self.keydir)?;
        Auditor::open(keydir, &self.state, self.log_key.as_deref(), self.vrf_key.as_deref(), cosigner).await
    }
}

fn report(result: &Result<Outcome, AuditorError>) {
    match result {
        Ok(Outcome::NoHeadYet) => tracing::info!("keydir has signed no head yet"),
        Ok(Outcome::Verified { size, cosigned }) => tracing::info!(size, cosigned, "round done"),
        // Alarms were logged with their evidence when raised.
        Err(err) if err.alarm().is_some() => tracing::error!(alarm = err.alarm().unwrap_or_default(), "{err}"),
        Err(err) => tracing::warn!("{err}"),
    }
}

async fn run(command: Command) -> Result<ExitCode, AuditorError> {
    match command {
        Command::Key(args) => {
            let cosigner = args.cosigner()?.ok_or_else(|| AuditorError::Usage("no cosigning key is set".into()))?;
            println!("{}", cosigner.verifier());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => {
            let mut auditor = args.auditor().await?;
            let result = auditor.round().await;
            report(&result);
            result.map(|_| ExitCode::SUCCESS)
        }
        Command::Follow { run, interval_ms } => {
            let mut auditor = run.auditor().await?;
            let interval = Duration::from_millis(interval_ms.max(100));
            let stop = keyward_service::shutdown::signal();
            tokio::pin!(stop);
            loop {
                // A round stopped half-way leaves the state as it was, or saved and not cosigned.
                tokio::select! {
                    () = &mut stop => break,
                    result = auditor.round() => report(&result),
                }
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(interval) => {}
                }
            }
            Ok(if auditor.state().alarm.is_some() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    keyward_service::telemetry::init(cli.log_format);
    match run(cli.command).await {
        Ok(code) => code,
        Err(err) => {
            if err.alarm().is_none() {
                tracing::error!("{err}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
