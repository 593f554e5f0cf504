//! Configuration from flags and environment; tokens, the database URL and the OPRF seed in types that never print.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

mod auditors;
mod restore;
mod transparency;

pub use keyward_service::{LogFormat, Secret, Token};
pub use restore::{LOCK_SECONDS_LIMIT, MAX_ATTEMPTS_LIMIT, RestoreSettings, parse_seed};
pub use transparency::{KeySource, MAX_EPOCH_MS, MIN_EPOCH_MS, SigningKey, TransparencySettings, VrfKey};

/// Everything `serve` needs, from flags or environment variables.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Postgres URL, e.g. postgres://keydir@db/keyward.
    #[arg(long, env = "KEYWARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,
    /// Bearer token of the admin API.
    #[arg(long, env = "KEYWARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Secret,
    /// Bearer token of the component API.
    #[arg(long, env = "KEYWARD_COMPONENT_TOKEN", hide_env_values = true)]
    pub component_token: Secret,
    /// host:port of the HTTP API.
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// host:port of the Prometheus metrics endpoint.
    #[arg(long, env = "KEYWARD_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    pub metrics_listen: String,
    /// Largest database connection pool.
    #[arg(long, env = "KEYWARD_DB_POOL_MAX", default_value_t = 10)]
    pub db_pool_max: u32,
    /// How often a waiting claim re-checks the outbox even without a NOTIFY (milliseconds).
    #[arg(long, env = "KEYWARD_SWEEP_MS", default_value_t = 2000)]
    pub sweep_ms: u64,
    /// Longest a claim waits (milliseconds, at most 30000), whatever it asks for.
    #[arg(long, env = "KEYWARD_MAX_CLAIM_WAIT_MS", default_value_t = 30_000)]
    pub max_claim_wait_ms: u64,
    /// Most keys one requester may hold: a lookup that would give it new keys past this is
    /// refused (`holding-limit`); keys it holds are still answered. 1 to 10000000.
    #[arg(long, env = "KEYWARD_MAX_HOLDINGS", default_value_t = 10_000)]
    pub max_holdings: i64,
    /// Hours an acknowledged notice is kept before it is deleted (0: at the next pruning
    /// pass). Unacknowledged notices are never deleted. At most 87600 (ten years).
    #[arg(long, env = "KEYWARD_NOTICE_RETENTION_HOURS", default_value_t = 168)]
    pub notice_retention_hours: u64,
    /// How often acknowledged notices past their retention are deleted (milliseconds, 100 to 86400000).
    #[arg(long, env = "KEYWARD_PRUNE_INTERVAL_MS", default_value_t = 600_000)]
    pub prune_interval_ms: u64,
    /// PEM certificate chain of the API: with --tls-key, the API serves HTTPS only.
    #[arg(long, env = "KEYWARD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the API's certificate.
    #[arg(long, env = "KEYWARD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// OPRF master seed of the guess-limited restore: base64 of 32 to 1024 random bytes. Keep it
    /// out of the database's backups. Without it (and without --oprf-seed-file) the restore
    /// endpoints answer 503 `restore-unavailable`.
    #[arg(long, env = "KEYWARD_OPRF_SEED", hide_env_values = true)]
    pub oprf_seed: Option<Secret>,
    /// A file holding the OPRF master seed (base64), e.g. a mounted Kubernetes Secret; instead
    /// of KEYWARD_OPRF_SEED.
    #[arg(long, env = "KEYWARD_OPRF_SEED_FILE")]
    pub oprf_seed_file: Option<PathBuf>,
    /// OPRF evaluations answered without a valid restore proof before the account is locked
    /// (the last one is still answered). 1 to 1000.
    #[arg(long, env = "KEYWARD_RESTORE_MAX_ATTEMPTS", default_value_t = 10)]
    pub restore_max_attempts: u32,
    /// Seconds after which a restore lock expires by itself; 0: only an admin unlocks.
    #[arg(long, env = "KEYWARD_RESTORE_LOCK_SECONDS", default_value_t = 0)]
    pub restore_lock_seconds: u64,
    /// VRF private key of the key transparency map: base64 of 32 random bytes. It must never
    /// change for the life of the directory; keep it out of the database's backups. Without it
    /// (and without --vrf-key-file) no epoch is published and the transparency endpoints answer
    /// 503 `unavailable` (updates still queue for the first epoch).
    #[arg(long, env = "KEYWARD_VRF_KEY", hide_env_values = true)]
    pub vrf_key: Option<Secret>,
    /// A file holding the VRF private key (base64), e.g. a mounted Kubernetes Secret; instead of
    /// KEYWARD_VRF_KEY.
    #[arg(long, env = "KEYWARD_VRF_KEY_FILE")]
    pub vrf_key_file: Option<PathBuf>,
    /// Ed25519 key (base64 of a 32 byte seed) with which keydir signs the epoch heads of the
    /// transparency log. Clients pin its public key; keep it out of the database's backups.
    /// Without it (and without --transparency-signing-key-file) no head is signed and the head
    /// endpoints answer 503 `unavailable` (the map still publishes).
    #[arg(long, env = "KEYWARD_TRANSPARENCY_SIGNING_KEY", hide_env_values = true)]
    pub transparency_signing_key: Option<Secret>,
    /// A file holding the head signing key (base64), e.g. a mounted Kubernetes Secret; instead
    /// of KEYWARD_TRANSPARENCY_SIGNING_KEY.
    #[arg(long, env = "KEYWARD_TRANSPARENCY_SIGNING_KEY_FILE")]
    pub transparency_signing_key_file: Option<PathBuf>,
    /// The epoch log's origin: the heads' first line and the signing key's name (printable
    /// ASCII, no space or '+', at most 255 bytes). Default: `keyward/` and the hex of the VRF
    /// public key's first 8 bytes. It must never change for the life of the directory.
    #[arg(long, env = "KEYWARD_TRANSPARENCY_ORIGIN")]
    pub transparency_origin: Option<String>,
    /// The auditors whose cosignatures keydir accepts and serves with its heads: C2SP verifier
    /// keys of type 0x04 (`<name>+<key ID hex>+<base64(0x04 || Ed25519 public key)>`, as
    /// `keyward-auditor key` prints them), separated by commas or white space; at most 15.
    #[arg(long, env = "KEYWARD_TRANSPARENCY_AUDITORS")]
    pub transparency_auditors: Option<String>,
    /// How often pending map updates are published as one epoch (milliseconds, 100 to 3600000).
    #[arg(long, env = "KEYWARD_TRANSPARENCY_EPOCH_MS", default_value_t = 2000)]
    pub transparency_epoch_ms: u64,
    /// Most memory (MiB, 0 to 65536; 0: none) the lookup proofs of the current epoch may take:
    /// a proof asked again before the next epoch is served from there instead of being
    /// computed again. The whole cache is dropped at every new epoch.
    #[arg(long, env = "KEYWARD_TRANSPARENCY_PROOF_CACHE_MB", default_value_t = 64)]
    pub transparency_proof_cache_mb: u64,
}

/// Validated settings of a running key directory.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the database is.
    pub database_url: Secret,
    /// The admin API's token.
    pub admin_token: Token,
    /// The component API's token.
    pub component_token: Token,
    /// Largest pool size.
    pub db_pool_max: u32,
    /// Fallback re-check period of a waiting claim.
    pub sweep: Duration,
    /// Longest a claim waits, whatever it asks for.
    pub max_claim_wait: Duration,
    /// The API's certificate and key: HTTPS when set, plain HTTP otherwise.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Most keys one requester may hold through lookups.
    pub max_holdings: i64,
    /// How long an acknowledged notice is kept.
    pub notice_retention: Duration,
    /// How often acknowledged notices past their retention are deleted.
    pub prune_interval: Duration,
    /// The guess-limited restore: seed, limit, lock expiry.
    pub restore: RestoreSettings,
    /// The key transparency map: VRF key and epoch interval.
    pub transparency: TransparencySettings,
}

/// The largest accepted `KEYWARD_MAX_HOLDINGS`.
const MAX_HOLDINGS_LIMIT: i64 = 10_000_000;
/// The longest accepted `KEYWARD_NOTICE_RETENTION_HOURS`.
const RETENTION_HOURS_LIMIT: u64 = 87_600;
/// The largest accepted `KEYWARD_TRANSPARENCY_PROOF_CACHE_MB`.
const MAX_PROOF_CACHE_MB: u64 = 65_536;

impl Settings {
    /// Settings with defaults for everything but the URL and tokens.
    pub fn new(database_url: &str, admin_token: &str, component_token: &str) -> Result<Self, crate::Error> {
        if admin_token == component_token {
            return Err(crate::Error::Config("the admin and component tokens must differ".into()));
        }
        Ok(Self {
            database_url: Secret::new(database_url),
            admin_token: Token::new(admin_token).map_err(|e| crate::Error::Config(e.to_string()))?,
            component_token: Token::new(component_token).map_err(|e| crate::Error::Config(e.to_string()))?,
            db_pool_max: 10,
            sweep: Duration::from_secs(2),
            max_claim_wait: Duration::from_secs(30),
            tls: None,
            max_holdings: 10_000,
            notice_retention: Duration::from_secs(168 * 3600),
            prune_interval: Duration::from_secs(600),
            restore: RestoreSettings::default(),
            transparency: TransparencySettings::default(),
        })
    }

    /// Settings from `serve`'s flags.
    pub fn from_args(args: &ServeArgs) -> Result<Self, crate::Error> {
        let mut settings =
            Self::new(args.database_url.expose(), args.admin_token.expose(), args.component_token.expose())?;
        if args.db_pool_max == 0 {
            return Err(crate::Error::Config("KEYWARD_DB_POOL_MAX must be at least 1".into()));
        }
        settings.db_pool_max = args.db_pool_max;
        settings.sweep = Duration::from_millis(args.sweep_ms.clamp(50, 60_000));
        settings.max_claim_wait = Duration::from_millis(args.max_claim_wait_ms.min(30_000));
        settings.tls = crate::tls::tls_files(args.tls_cert.as_deref(), args.tls_key.as_deref())?;
        if !(1..=MAX_HOLDINGS_LIMIT).contains(&args.max_holdings) {
            return Err(crate::Error::Config(format!("KEYWARD_MAX_HOLDINGS must be 1 to {MAX_HOLDINGS_LIMIT}")));
        }
        if args.notice_retention_hours > RETENTION_HOURS_LIMIT {
            return Err(crate::Error::Config(format!(
                "KEYWARD_NOTICE_RETENTION_HOURS must be at most {RETENTION_HOURS_LIMIT}"
            )));
        }
        if !(100..=86_400_000).contains(&args.prune_interval_ms) {
            return Err(crate::Error::Config("KEYWARD_PRUNE_INTERVAL_MS must be 100 to 86400000".into()));
        }
        settings.max_holdings = args.max_holdings;
        settings.notice_retention = Duration::from_secs(args.notice_retention_hours * 3600);
        settings.prune_interval = Duration::from_millis(args.prune_interval_ms);
        settings.restore = RestoreSettings::new(
            args.oprf_seed.as_ref(),
            args.oprf_seed_file.as_deref(),
            args.restore_max_attempts,
            args.restore_lock_seconds,
        )?;
        settings.transparency = TransparencySettings::new(
            &KeySource {
                name: "KEYWARD_VRF_KEY",
                value: args.vrf_key.as_ref(),
                file_name: "KEYWARD_VRF_KEY_FILE",
                file: args.vrf_key_file.as_deref(),
            },
            &KeySource {
                name: "KEYWARD_TRANSPARENCY_SIGNING_KEY",
                value: args.transparency_signing_key.as_ref(),
                file_name: "KEYWARD_TRANSPARENCY_SIGNING_KEY_FILE",
                file: args.transparency_signing_key_file.as_deref(),
            },
            args.transparency_origin.as_deref(),
            args.transparency_epoch_ms,
        )?;
        settings.transparency.auditors = auditors::parse(args.transparency_auditors.as_deref().unwrap_or(""))?;
        if args.transparency_proof_cache_mb > MAX_PROOF_CACHE_MB {
            return Err(crate::Error::Config(format!(
                "KEYWARD_TRANSPARENCY_PROOF_CACHE_MB must be at most {MAX_PROOF_CACHE_MB}"
            )));
        }
        settings.transparency.proof_cache_bytes = usize::try_from(args.transparency_proof_cache_mb << 20)
            .map_err(|_| crate::Error::Config("KEYWARD_TRANSPARENCY_PROOF_CACHE_MB is too large here".into()))?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_and_never_print() {
        let token = Token::new("0123456789abcdef-admin").expect("long enough");
        assert!(token.matches(b"0123456789abcdef-admin"));
        assert!(!token.matches(b"0123456789abcdef-admiN"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "Token([redacted])");
        let settings =
            Settings::new("postgres://user:pw@host/db", "0123456789abcdef-a", "0123456789abcdef-c").expect("valid");
        let printed = format!("{settings:?}");
        assert!(!printed.contains("pw@host") && !printed.contains("abcdef-a"), "{printed}");
    }

    /// `serve`'s flags, parsed like the binary does (flags only: the environment is process-wide).
    fn from_flags(extra: &[&str]) -> Result<Settings, crate::Error> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ServeArgs,
        }
        use clap::Parser;
        let mut argv = vec![
            "serve",
            "--database-url=postgres://x",
            "--admin-token=0123456789abcdef-a",
            "--component-token=0123456789abcdef-c",
        ];
        argv.extend_from_slice(extra);
        Settings::from_args(&Cli::try_parse_from(argv).expect("flags parse").args)
    }

    #[test]
    fn quotas_and_retention_default_and_are_bounded() {
        let settings = from_flags(&[]).expect("defaults");
        assert_eq!(settings.max_holdings, 10_000);
        assert_eq!(settings.notice_retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(settings.prune_interval, Duration::from_secs(600));
        let settings =
            from_flags(&["--max-holdings=3", "--notice-retention-hours=0", "--prune-interval-ms=100"]).expect("valid");
        assert_eq!((settings.max_holdings, settings.notice_retention), (3, Duration::ZERO));
        assert_eq!((settings.restore.max_attempts, settings.restore.lock), (10, None));
        assert!(settings.restore.seed.is_none());
        let settings = from_flags(&["--restore-max-attempts=3", "--restore-lock-seconds=900"]).expect("valid");
        assert_eq!((settings.restore.max_attempts, settings.restore.lock), (3, Some(Duration::from_secs(900))));
        for bad in [
            "--max-holdings=0",
            "--notice-retention-hours=87601",
            "--prune-interval-ms=99",
            "--restore-max-attempts=0",
            "--oprf-seed=dG9vIHNob3J0",
        ] {
            assert!(matches!(from_flags(&[bad]), Err(crate::Error::Config(_))), "{bad} accepted");
        }
    }

    #[test]
    fn the_proof_cache_is_64_mib_unless_set_and_bounded() {
        assert_eq!(from_flags(&[]).expect("defaults").transparency.proof_cache_bytes, 64 << 20);
        let off = from_flags(&["--transparency-proof-cache-mb=0"]).expect("valid");
        assert_eq!(off.transparency.proof_cache_bytes, 0);
        let set = from_flags(&["--transparency-proof-cache-mb=65536"]).expect("valid");
        assert_eq!(set.transparency.proof_cache_bytes, 65_536 << 20);
        assert!(matches!(from_flags(&["--transparency-proof-cache-mb=65537"]), Err(crate::Error::Config(_))));
    }

    #[test]
    fn short_or_equal_tokens_are_refused() {
        assert!(Token::new("short").is_err());
        assert!(Settings::new("postgres://x", "0123456789abcdef", "0123456789abcdef").is_err());
    }
}
