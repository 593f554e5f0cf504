//! Postgres LISTEN/NOTIFY: wakes waiting claims when notices are queued.

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The channel the `notices_wake` trigger notifies.
pub const CHANNEL: &str = "keyward_notices";

/// Listens until the task is aborted, reconnecting after failures. Every
/// notification (and every reconnect, since notifications may have been
/// missed meanwhile) wakes all waiting claims; the claims' periodic sweep
/// covers the time the listener is down.
pub async fn listen(pool: PgPool, wake: Arc<Notify>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    tracing::debug!("listening for outbox notifications");
                    wake.notify_waiters();
                    loop {
                        match listener.recv().await {
                            Ok(_) => wake.notify_waiters(),
                            Err(err) => {
                                tracing::warn!(cause = %err, "outbox listener lost its connection");
                                break;
                            }
                        }
                    }
                }
                Err(err) => tracing::warn!(cause = %err, "LISTEN failed"),
            },
            Err(err) => tracing::warn!(cause = %err, "outbox listener cannot connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
