//! The per-requester holding cap: how many new keys a lookup would hand out, against how many the requester holds.

use crate::problem::{ApiError, ApiResult};
use keyward_proto::BareJid;
use sqlx::PgPool;
use tracing::instrument;

/// Refuses (`holding-limit`) a lookup that would give `requester` `new` keys it does not hold
/// yet when it would then hold more than `max`. Called only for a lookup that hands out new keys
/// (one of keys it holds never is), just before their edges are recorded.
///
/// The count is read outside the recording transaction: concurrent lookups of one requester can
/// each pass and together go past the cap by at most their new keys (100 per lookup). The cap
/// bounds the holder graph; it is not a security boundary on its own.
#[instrument(skip(pool), fields(requester = %requester))]
pub async fn check(pool: &PgPool, requester: &BareJid, new: i64, max: i64) -> ApiResult<()> {
    let held = held(pool, requester, max).await?;
    if held + new > max {
        return Err(ApiError::HoldingLimit(format!(
            "the requester holds {held} keys; this lookup would add {new} more, past the limit of {max}"
        )));
    }
    Ok(())
}

/// The keys `requester` holds, counted up to `max` (an index-only scan of `holders_by_holder`,
/// at most `max` entries).
async fn held(pool: &PgPool, requester: &BareJid, max: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "held!" FROM (SELECT 1 FROM holders WHERE holder = $1 LIMIT $2) AS held"#,
        requester.as_str(),
        max
    )
    .fetch_one(pool)
    .await
}
