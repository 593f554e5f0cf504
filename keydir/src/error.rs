//! The library's error type: what can stop the key directory from starting or running.

use thiserror::Error;

/// Why the key directory could not start, migrate or keep serving.
///
/// Request-level failures are not here: they become `problem+json` responses.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum Error {
    /// The database URL could not be parsed or the pool not created.
    #[error("database configuration: {0}")]
    DatabaseConfig(#[source] sqlx::Error),
    /// A database operation failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A listener failed (binding, accepting, or reading its address).
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// The metrics registry refused a metric (a programming error caught at start).
    #[error("metrics: {0}")]
    Metrics(#[from] keyward_service::Error),
    /// The API's certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// A configuration value was invalid.
    #[error("configuration: {0}")]
    Config(String),
}
