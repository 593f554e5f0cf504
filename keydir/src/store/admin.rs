//! Accounts as admins see them: revocation (with its audit row and notices), reads, the audit log.

use super::Status;
use crate::problem::{ApiError, ApiResult};
use keyward_proto::transparency::value::{MapValue, Revocation as MapRevocation, label};
use keyward_proto::{BareJid, Fingerprint};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tracing::instrument;

/// The result of a revocation.
pub struct Revocation {
    /// When the account was revoked (now, or the first time).
    pub at: OffsetDateTime,
    /// Why (this call's reason, or the first one's).
    pub reason: String,
    /// Notices queued by the revocation that changed the account.
    pub notices: i64,
    /// Whether this call revoked the account (false: it already was).
    pub changed: bool,
}

struct Locked {
    status: Status,
    revoked_at: Option<OffsetDateTime>,
    reason: Option<String>,
    fingerprint: String,
}

/// Now, at the precision Postgres keeps (microseconds), so stored and sent times agree.
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000).unwrap_or(now)
}

/// Revokes an account in one transaction: status, one `revoked` notice per
/// holder and one to the account, and the audit row. Idempotent.
#[instrument(skip(pool, reason), fields(jid = %jid))]
pub async fn revoke(pool: &PgPool, jid: &BareJid, reason: &str) -> ApiResult<Revocation> {
    let mut tx = pool.begin().await?;
    // The row lock makes concurrent revocations (and publishes, lookups,
    // relays) of this account wait for this transaction.
    let Some(locked) = lock_for_revoke(&mut tx, jid).await? else {
        return Err(ApiError::NotFound("no such account".into()));
    };
    if locked.status == Status::Revoked {
        let notices = count_revoked_notices(&mut tx, jid).await?;
        tx.commit().await?;
        let (Some(at), Some(reason)) = (locked.revoked_at, locked.reason) else {
            tracing::error!("a revoked account lacks its time or reason");
            return Err(ApiError::Internal);
        };
        return Ok(Revocation { at, reason, notices, changed: false });
    }
    let at = now_micros();
    let value = revocation_value(&locked.fingerprint, at, reason)?;
    mark_revoked(&mut tx, jid, at, reason).await?;
    // The map's terminal value, queued with the store of record's change.
    super::transparency::enqueue(&mut tx, &label(jid), &value).await?;
    // The notices name their subject; the claim reads the time, reason and fingerprint from there.
    let notices = insert_revoked_notices(&mut tx, jid).await?;
    let notices = i64::try_from(notices).unwrap_or(i64::MAX);
    let detail = serde_json::json!({
        "reason": reason,
        "fingerprint": locked.fingerprint,
        "notices": notices,
    });
    insert_audit(&mut tx, jid, &detail).await?;
    tx.commit().await?;
    Ok(Revocation { at, reason: reason.to_owned(), notices, changed: true })
}

/// The map value of a revocation: the stored fingerprint, the time in whole seconds, the reason.
fn revocation_value(fingerprint: &str, at: OffsetDateTime, reason: &str) -> ApiResult<Vec<u8>> {
    let fingerprint = Fingerprint::from_hex(fingerprint).map_err(|_| {
        tracing::error!("a stored fingerprint does not parse");
        ApiError::Internal
    })?;
    let seconds = u64::try_from(at.unix_timestamp()).map_err(|_| ApiError::Internal)?;
    let revocation = MapRevocation::new(fingerprint, seconds, reason)
        .map_err(|err| ApiError::BadRequest(format!("reason: {err}")))?;
    Ok(MapValue::Revoked(revocation).encode())
}

/// Locks the account row (`FOR UPDATE`) and reads it with its fingerprint;
/// `None` if it has no bundle.
#[instrument(skip_all)]
async fn lock_for_revoke(tx: &mut PgConnection, jid: &BareJid) -> sqlx::Result<Option<Locked>> {
    sqlx::query_as!(
        Locked,
        r#"SELECT a.status AS "status: Status", a.revoked_at, a.reason, b.fingerprint
           FROM accounts a JOIN bundles b ON b.jid = a.jid
          WHERE a.jid = $1 FOR UPDATE OF a"#,
        jid.as_str()
    )
    .fetch_optional(tx)
    .await
}

/// How many `revoked` notices the revocation of `jid` queued: the count its audit row
/// recorded (delivered notices are pruned after their retention, so the rows cannot be
/// counted), or the rows still there for a revocation without one.
#[instrument(skip_all)]
async fn count_revoked_notices(tx: &mut PgConnection, jid: &BareJid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(
                  (SELECT (detail->>'notices')::bigint FROM audit_log
                    WHERE jid = $1 AND action = 'revoke' ORDER BY id LIMIT 1),
                  (SELECT count(*) FROM notices WHERE subject = $1 AND kind = 'revoked')) AS "count!""#,
        jid.as_str()
    )
    .fetch_one(tx)
    .await
}

/// Sets the account's status to `revoked`, with when and why.
#[instrument(skip_all)]
async fn mark_revoked(tx: &mut PgConnection, jid: &BareJid, at: OffsetDateTime, reason: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE accounts SET status = 'revoked', revoked_at = $2, reason = $3 WHERE jid = $1",
        jid.as_str(),
        at,
        reason
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Queues a `revoked` notice about `jid` for every holder of its key and for `jid`, once
/// each; returns how many were queued.
#[instrument(skip_all)]
async fn insert_revoked_notices(tx: &mut PgConnection, jid: &BareJid) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "INSERT INTO notices (recipient, kind, subject)
         SELECT recipient, 'revoked', $1
           FROM (SELECT holder AS recipient FROM holders WHERE jid = $1 UNION SELECT $1) AS r
          ORDER BY recipient
         ON CONFLICT (subject, recipient) WHERE kind = 'revoked' DO NOTHING",
        jid.as_str()
    )
    .execute(tx)
    .await?;
    Ok(done.rows_affected())
}

/// Appends the audit row of a revocation.
#[instrument(skip_all)]
async fn insert_audit(tx: &mut PgConnection, jid: &BareJid, detail: &Value) -> sqlx::Result<()> {
    sqlx::query!("INSERT INTO audit_log (action, jid, detail) VALUES ('revoke', $1, $2)", jid.as_str(), detail)
        .execute(tx)
        .await?;
    Ok(())
}

/// An account as the admin API shows it.
pub struct AccountRow {
    /// The account.
    pub jid: String,
    /// Its status.
    pub status: Status,
    /// Fingerprint of its identity key.
    pub fingerprint: String,
    /// When it first published.
    pub created_at: OffsetDateTime,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why.
    pub reason: Option<String>,
    /// How many accounts hold its key.
    pub holders: i64,
    /// Failed restore guesses, as stored.
    pub restore_attempts: i32,
    /// When its restore was locked, as stored.
    pub restore_locked_at: Option<OffsetDateTime>,
}

/// The status of one account, if it exists with a bundle (a row without one, made by a restore
/// count before first use, has no key to revoke).
#[instrument(skip(pool), fields(jid = %jid))]
pub async fn status(pool: &PgPool, jid: &BareJid) -> ApiResult<Option<Status>> {
    Ok(sqlx::query_scalar!(
        r#"SELECT a.status AS "status: Status" FROM accounts a JOIN bundles b ON b.jid = a.jid WHERE a.jid = $1"#,
        jid.as_str()
    )
    .fetch_optional(pool)
    .await?)
}

/// One account.
#[instrument(skip(pool), fields(jid = %jid))]
pub async fn account(pool: &PgPool, jid: &BareJid) -> ApiResult<AccountRow> {
    let row = sqlx::query_as!(
        AccountRow,
        r#"SELECT a.jid, a.status AS "status: Status", b.fingerprint, a.created_at, a.revoked_at, a.reason,
                  (SELECT count(*) FROM holders h WHERE h.jid = a.jid) AS "holders!",
                  COALESCE(r.attempts, 0) AS "restore_attempts!", r.locked_at AS "restore_locked_at?"
             FROM accounts a JOIN bundles b ON b.jid = a.jid LEFT JOIN restore_attempts r ON r.jid = a.jid
            WHERE a.jid = $1"#,
        jid.as_str()
    )
    .fetch_optional(pool)
    .await?;
    row.ok_or_else(|| ApiError::NotFound("no such account".into()))
}

/// Accounts in JID order after `after`, optionally of one status; one more
/// than `limit` when there are more.
#[instrument(skip(pool))]
pub async fn accounts(
    pool: &PgPool,
    status: Option<Status>,
    after: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<AccountRow>> {
    let rows = sqlx::query_as!(
        AccountRow,
        r#"SELECT a.jid, a.status AS "status: Status", b.fingerprint, a.created_at, a.revoked_at, a.reason,
                  (SELECT count(*) FROM holders h WHERE h.jid = a.jid) AS "holders!",
                  COALESCE(r.attempts, 0) AS "restore_attempts!", r.locked_at AS "restore_locked_at?"
             FROM accounts a JOIN bundles b ON b.jid = a.jid LEFT JOIN restore_attempts r ON r.jid = a.jid
            WHERE ($1::account_status IS NULL OR a.status = $1) AND ($2::text IS NULL OR a.jid > $2)
            ORDER BY a.jid LIMIT $3"#,
        status as Option<Status>,
        after,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// One audit log entry.
pub struct AuditRow {
    /// Increasing id.
    pub id: i64,
    /// When.
    pub at: OffsetDateTime,
    /// What (`revoke`).
    pub action: String,
    /// On which account.
    pub jid: String,
    /// Details of the action.
    pub detail: Value,
}

/// Audit entries newest first, before id `before`, optionally of one account;
/// one more than `limit` when there are more.
#[instrument(skip(pool))]
pub async fn audit(pool: &PgPool, jid: Option<&str>, before: Option<i64>, limit: i64) -> ApiResult<Vec<AuditRow>> {
    let rows = sqlx::query_as!(
        AuditRow,
        "SELECT id, at, action, jid, detail FROM audit_log
          WHERE ($1::text IS NULL OR jid = $1) AND ($2::bigint IS NULL OR id < $2)
          ORDER BY id DESC LIMIT $3",
        jid,
        before,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
