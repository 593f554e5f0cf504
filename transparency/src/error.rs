//! akd's `StorageError` for what goes wrong here: database failures and rows akd could not have written.
//!
//! akd's storage trait returns its own `StorageError`, so this crate has no error type of
//! its own. `NotFound` is reserved for a missing record (akd acts on it: a missing azks
//! makes a new directory), a lost connection is `Connection`, everything else `Other`.
//! Messages name the table and column, never a row's label or value.

use akd::errors::StorageError;

/// A failed query or transaction.
pub(crate) fn database(err: sqlx::Error) -> StorageError {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StorageError::Connection(format!("Postgres: {err}")),
        other => StorageError::Other(format!("Postgres: {other}")),
    }
}

/// A stored value that no record of akd's can have: the table is damaged or was edited.
/// `column` is `table.column`.
pub(crate) fn corrupt(column: &str, why: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("corrupt row: {column} {why}"))
}

/// A value akd handed over that the table cannot hold (an integer beyond bigint).
pub(crate) fn unstorable(column: &str, why: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("cannot store in {column}: {why}"))
}
