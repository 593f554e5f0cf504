//! Accounts as admins see them: revocation (with its audit row and notices), reads, the audit log.

use crate::problem::{ApiError, ApiResult};
use keyward_proto::elements::Revoked;
use keyward_proto::{BareJid, Fingerprint, XmlElement};
use serde_json::Value;
use sqlx::PgPool;
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

#[derive(sqlx::FromRow)]
struct Locked {
    status: String,
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
    let locked: Option<Locked> = sqlx::query_as(
        "SELECT a.status, a.revoked_at, a.reason, b.fingerprint
           FROM accounts a JOIN bundles b ON b.jid = a.jid
          WHERE a.jid = $1 FOR UPDATE OF a",
    )
    .bind(jid.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(locked) = locked else {
        return Err(ApiError::NotFound("no such account".into()));
    };
    if locked.status == "revoked" {
        let (notices,): (i64,) = sqlx::query_as("SELECT count(*) FROM notices WHERE subject = $1 AND kind = 'revoked'")
            .bind(jid.as_str())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let (Some(at), Some(reason)) = (locked.revoked_at, locked.reason) else {
            tracing::error!("a revoked account lacks its time or reason");
            return Err(ApiError::Internal);
        };
        return Ok(Revocation { at, reason, notices, changed: false });
    }
    let fp = Fingerprint::from_hex(&locked.fingerprint).map_err(|_| {
        tracing::error!("a stored fingerprint does not parse");
        ApiError::Internal
    })?;
    let at = now_micros();
    let payload = Revoked { jid: jid.clone(), fp, at, reason: reason.to_owned() }.to_xml();
    sqlx::query("UPDATE accounts SET status = 'revoked', revoked_at = $2, reason = $3 WHERE jid = $1")
        .bind(jid.as_str())
        .bind(at)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    let notices = sqlx::query(
        "INSERT INTO notices (recipient, kind, subject, payload)
         SELECT recipient, 'revoked', $1, $2
           FROM (SELECT holder AS recipient FROM holders WHERE jid = $1 UNION SELECT $1) AS r
          ORDER BY recipient
         ON CONFLICT (subject, recipient) WHERE kind = 'revoked' DO NOTHING",
    )
    .bind(jid.as_str())
    .bind(&payload)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let notices = i64::try_from(notices).unwrap_or(i64::MAX);
    let detail = serde_json::json!({
        "reason": reason,
        "fingerprint": locked.fingerprint,
        "notices": notices,
    });
    sqlx::query("INSERT INTO audit_log (action, jid, detail) VALUES ('revoke', $1, $2)")
        .bind(jid.as_str())
        .bind(&detail)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Revocation { at, reason: reason.to_owned(), notices, changed: true })
}

/// An account as the admin API shows it.
#[derive(sqlx::FromRow)]
pub struct AccountRow {
    /// The account.
    pub jid: String,
    /// `active` or `revoked`.
    pub status: String,
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
}

/// The account query with a `WHERE` (and more) appended: a literal, as sqlx wants.
macro_rules! select_accounts {
    ($rest:literal) => {
        concat!(
            "SELECT a.jid, a.status, b.fingerprint, a.created_at, a.revoked_at, a.reason,
                    (SELECT count(*) FROM holders h WHERE h.jid = a.jid) AS holders
               FROM accounts a JOIN bundles b ON b.jid = a.jid ",
            $rest
        )
    };
}

/// One account.
#[instrument(skip(pool), fields(jid = %jid))]
pub async fn account(pool: &PgPool, jid: &BareJid) -> ApiResult<AccountRow> {
    let row: Option<AccountRow> =
        sqlx::query_as(select_accounts!("WHERE a.jid = $1")).bind(jid.as_str()).fetch_optional(pool).await?;
    row.ok_or_else(|| ApiError::NotFound("no such account".into()))
}

/// Accounts in JID order after `after`, optionally of one status; one more
/// than `limit` when there are more.
#[instrument(skip(pool))]
pub async fn accounts(
    pool: &PgPool,
    status: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<AccountRow>> {
    let rows = sqlx::query_as(select_accounts!(
        "WHERE ($1::text IS NULL OR a.status = $1) AND ($2::text IS NULL OR a.jid > $2) ORDER BY a.jid LIMIT $3"
    ))
    .bind(status)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// One audit log entry.
#[derive(sqlx::FromRow)]
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
    let rows = sqlx::query_as(
        "SELECT id, at, action, jid, detail FROM audit_log
          WHERE ($1::text IS NULL OR jid = $1) AND ($2::bigint IS NULL OR id < $2)
          ORDER BY id DESC LIMIT $3",
    )
    .bind(jid)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}
