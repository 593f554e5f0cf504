//! The per-requester holding cap: how many new keys a lookup would hand out, against how many the requester holds.

use crate::problem::{ApiError, ApiResult};
use keyward_proto::BareJid;
use sqlx::PgPool;
use tracing::instrument;

/// What a lookup would change for its requester.
struct Holdings {
    /// Active keys among the looked-up accounts that the requester does not hold yet (not its own).
    new: i64,
    /// Keys the requester holds, counted up to the cap (0 when `new` is 0: not counted).
    held: i64,
}

/// Refuses (`holding-limit`) a lookup that would give `requester` keys it does not hold yet
/// when it would then hold more than `max`. A lookup of keys it holds is never refused.
///
/// The count is read before the lookup, outside its transaction: concurrent lookups of one
/// requester can each pass and together go past the cap by at most their new keys (100 per
/// lookup). The cap bounds the holder graph; it is not a security boundary on its own.
#[instrument(skip_all, fields(requester = %requester, count = jids.len()))]
pub async fn check(pool: &PgPool, requester: &BareJid, jids: &[BareJid], max: i64) -> ApiResult<()> {
    let wanted: Vec<&str> = jids.iter().map(BareJid::as_str).collect();
    let holdings = count(pool, &wanted, requester, max).await?;
    if holdings.new > 0 && holdings.held + holdings.new > max {
        return Err(ApiError::HoldingLimit(format!(
            "the requester holds {} keys; this lookup would add {} more, past the limit of {max}",
            holdings.held, holdings.new
        )));
    }
    Ok(())
}

/// Counts the new keys among `jids` and, only when there are some, the requester's holdings up
/// to `max` (an index-only scan of `holders_by_holder`, at most `max` entries).
async fn count(pool: &PgPool, jids: &[&str], requester: &BareJid, max: i64) -> sqlx::Result<Holdings> {
    sqlx::query_as!(
        Holdings,
        r#"WITH fresh AS (
               SELECT count(*) AS n FROM accounts a JOIN bundles b ON b.jid = a.jid
                WHERE a.jid = ANY($1) AND a.status = 'active' AND a.jid <> $2
                  AND NOT EXISTS (SELECT 1 FROM holders h WHERE h.jid = a.jid AND h.holder = $2))
           SELECT fresh.n AS "new!",
                  CASE WHEN fresh.n > 0
                       THEN (SELECT count(*) FROM (SELECT 1 FROM holders WHERE holder = $2 LIMIT $3) AS held)
                       ELSE 0 END AS "held!"
             FROM fresh"#,
        jids as &[&str],
        requester.as_str(),
        max
    )
    .fetch_one(pool)
    .await
}
