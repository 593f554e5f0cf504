//! An admin's unlock: clears the count and the lock in one transaction with its audit row.

use super::{State, lock_count, write_count};
use crate::problem::{ApiError, ApiResult};
use keyward_proto::BareJid;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::instrument;

/// Whether the account exists (share-locked until the transaction ends).
#[instrument(skip_all)]
async fn exists(tx: &mut PgConnection, jid: &BareJid) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!("SELECT 1 AS one FROM accounts WHERE jid = $1 FOR SHARE", jid.as_str())
        .fetch_optional(tx)
        .await?;
    Ok(found.is_some())
}

/// Appends the audit row of an unlock.
#[instrument(skip_all)]
async fn insert_audit(tx: &mut PgConnection, jid: &BareJid, detail: &serde_json::Value) -> sqlx::Result<()> {
    sqlx::query!("INSERT INTO audit_log (action, jid, detail) VALUES ('unlock', $1, $2)", jid.as_str(), detail)
        .execute(tx)
        .await?;
    Ok(())
}

/// Clears `jid`'s failed guesses and lock. `Ok(true)`: there was something to clear, and the
/// audit row (reason, the count and lock time cleared) is written; `Ok(false)`: nothing to do,
/// nothing written. 404 for an unknown account.
#[instrument(skip(pool, reason), fields(jid = %jid))]
pub async fn unlock(pool: &PgPool, jid: &BareJid, reason: &str) -> ApiResult<bool> {
    let mut tx = pool.begin().await?;
    if !exists(&mut tx, jid).await? {
        return Err(ApiError::NotFound("no such account".into()));
    }
    let counted = lock_count(&mut tx, jid).await?;
    let cleared = State { attempts: 0, locked_at: None };
    if counted.state() == cleared {
        tx.commit().await?;
        return Ok(false);
    }
    write_count(&mut tx, jid, cleared, false).await?;
    let locked_at = counted.locked_at.and_then(|at: OffsetDateTime| at.format(&Rfc3339).ok());
    let detail = serde_json::json!({
        "reason": reason,
        "attempts": counted.attempts,
        "locked_at": locked_at,
    });
    insert_audit(&mut tx, jid, &detail).await?;
    tx.commit().await?;
    Ok(true)
}
