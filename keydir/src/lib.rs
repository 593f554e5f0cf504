//! keyward's key directory (keydir): the one service that owns the database.
//!
//! It stores each account's signed bundle and passphrase-sealed secret blob,
//! records who holds whose key, revokes accounts for admins, and keeps the
//! notice outbox that the component drains (deleting delivered notices after
//! their retention, `retention`). Two HTTP APIs on one listener (the
//! component API and the admin API, see `docs/keydir-api.md`), Prometheus
//! metrics on a second one.
//!
//! Entry point for embedding and tests: [`run`], which takes already-bound
//! listeners and a shutdown future.

pub mod api;
mod auth;
pub mod cli;
pub mod config;
mod error;
mod metrics;
mod problem;
mod retention;
mod server;
mod state;
mod store;
pub mod tls;
mod transparency;
mod wake;

pub use config::{Settings, Token};
pub use error::Error;
pub use server::{connect, migrate, run};

/// The embedded migrations of the `migrations/` folder at the repository root.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
