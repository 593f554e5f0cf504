//! Configuration from flags and environment; tokens and the database URL in types that never print.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

pub use keyward_service::{LogFormat, Secret, Token};

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
    /// PEM certificate chain of the API: with --tls-key, the API serves HTTPS only.
    #[arg(long, env = "KEYWARD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the API's certificate.
    #[arg(long, env = "KEYWARD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
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
}

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

    #[test]
    fn short_or_equal_tokens_are_refused() {
        assert!(Token::new("short").is_err());
        assert!(Settings::new("postgres://x", "0123456789abcdef", "0123456789abcdef").is_err());
    }
}
