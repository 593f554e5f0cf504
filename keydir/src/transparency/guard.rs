//! The serving check: an active bundle is served only when the map's current value or an update queued for it commits to it.
//!
//! The accounts tables are the store of record, but a database edit there (a bundle swapped
//! by `UPDATE`) writes nothing to the map or its queue. Such a bundle is withheld: the lookup
//! answers the account as having no key, an alarm is logged (the JID, never key material)
//! and `keyward_keydir_transparency_refused_bundles_total` counts it. The client would catch
//! the swap through the proofs anyway; keydir refusing it first keeps an edited row from
//! reaching anyone at all.

use crate::metrics::TransparencyMetrics;
use crate::problem::ApiResult;
use crate::store::Status;
use crate::store::accounts::Known;
use keyward_proto::transparency::value::MapValue;
use sqlx::PgPool;

/// `known` with every active bundle that nothing in the map or queue commits to removed.
pub async fn withhold_uncommitted(
    pool: &PgPool,
    metrics: &TransparencyMetrics,
    mut known: Vec<Known>,
) -> ApiResult<Vec<Known>> {
    let labels: Vec<Vec<u8>> = known
        .iter()
        .filter(|k| k.status == Status::Active && k.bundle.is_some())
        .map(|k| k.jid.as_bytes().to_vec())
        .collect();
    if labels.is_empty() {
        return Ok(known);
    }
    let found = crate::store::transparency::commitments(pool, &labels).await?;
    for account in known.iter_mut().filter(|k| k.status == Status::Active) {
        let Some(bundle) = account.bundle.as_deref() else { continue };
        let entry = found.iter().find(|c| c.label == account.jid.as_bytes());
        let committed = entry
            .is_some_and(|c| c.current.iter().chain(c.pending.iter()).any(|value| commits(value, bundle.as_bytes())));
        if !committed {
            metrics.refused_bundles.inc();
            tracing::error!(
                alarm = "transparency-uncommitted-bundle",
                jid = %account.jid,
                "a stored bundle is neither the map's value nor queued for it: not served (was the database edited?)"
            );
            account.bundle = None;
        }
    }
    Ok(known)
}

/// Whether a stored map value commits to `bundle` (a value that does not parse commits to nothing).
fn commits(value: &[u8], bundle: &[u8]) -> bool {
    MapValue::parse(value).is_ok_and(|value| value.commits_to(bundle))
}
