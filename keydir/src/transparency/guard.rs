//! The serving check: an active bundle is served only when the map's current value or an update queued for it commits to it.
//!
//! The accounts tables are the store of record, but a database edit there (a bundle swapped
//! by `UPDATE`) writes nothing to the map or its queue. Such a bundle is withheld: a lookup
//! answers the account as having no key, a key-relay notice carrying it is not sent (it stays
//! leased and comes back, like any notice that cannot be made), an alarm is logged (the JID,
//! never key material) and `keyward_keydir_transparency_refused_bundles_total` counts it.
//! An active account whose map value is its revocation (the revocation was undone in the
//! accounts table) is refused the same way. Clients would catch either through the proofs anyway; keydir refusing it first keeps an
//! edited row from reaching anyone at all.

use crate::metrics::TransparencyMetrics;
use crate::problem::ApiResult;
use crate::store::Status;
use crate::store::accounts::Known;
use keyward_contract::component::{Notice, NoticeEvent};
use keyward_proto::transparency::value::MapValue;
use sqlx::PgPool;
use std::collections::HashSet;

/// Which map values may commit to a served bundle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Against {
    /// The label's current value (or a queued one): what a lookup of an active account needs,
    /// so that a revocation undone in the accounts table is caught too.
    Current,
    /// Any value the label ever had (or a queued one): a key relay queued before its subject
    /// was revoked still carries the bundle the map had.
    History,
}

/// The JIDs among `(jid, bundle)` whose bundle nothing in the map or the queue commits to,
/// each logged and counted.
async fn uncommitted(
    pool: &PgPool,
    metrics: &TransparencyMetrics,
    served: &[(&str, &str)],
    against: Against,
) -> ApiResult<HashSet<String>> {
    if served.is_empty() {
        return Ok(HashSet::new());
    }
    let labels: Vec<Vec<u8>> = served.iter().map(|(jid, _)| jid.as_bytes().to_vec()).collect();
    let found = crate::store::transparency::commitments(pool, &labels).await?;
    let mut refused = HashSet::new();
    for (jid, bundle) in served {
        let entry = found.iter().find(|c| c.label == jid.as_bytes());
        let committed = entry.is_some_and(|c| {
            let published = match against {
                Against::Current => c.current.as_slice(),
                Against::History => c.published.as_slice(),
            };
            published.iter().chain(c.pending.iter()).any(|value| commits(value, bundle.as_bytes()))
        });
        if !committed {
            metrics.refused_bundles.inc();
            tracing::error!(
                alarm = "transparency-uncommitted-bundle",
                jid = %jid,
                "a stored bundle is neither the map's value nor queued for it: not served (was the database edited?)"
            );
            refused.insert((*jid).to_owned());
        }
    }
    Ok(refused)
}

/// `known` with every active bundle that nothing in the map or queue commits to removed.
pub async fn withhold_uncommitted(
    pool: &PgPool,
    metrics: &TransparencyMetrics,
    mut known: Vec<Known>,
) -> ApiResult<Vec<Known>> {
    let served: Vec<(&str, &str)> = known
        .iter()
        .filter(|k| k.status == Status::Active)
        .filter_map(|k| Some((k.jid.as_str(), k.bundle.as_deref()?)))
        .collect();
    let refused = uncommitted(pool, metrics, &served, Against::Current).await?;
    for account in known.iter_mut().filter(|k| refused.contains(&k.jid)) {
        account.bundle = None;
    }
    Ok(known)
}

/// `notices` without the key relays whose bundle nothing in the map or queue commits to.
pub async fn withhold_uncommitted_relays(
    pool: &PgPool,
    metrics: &TransparencyMetrics,
    mut notices: Vec<Notice>,
) -> ApiResult<Vec<Notice>> {
    let served: Vec<(&str, &str)> = notices
        .iter()
        .filter_map(|n| match &n.event {
            NoticeEvent::KeyRelay { bundle } => Some((n.subject.as_str(), bundle.as_str())),
            NoticeEvent::Revoked { .. } => None,
        })
        .collect();
    let refused = uncommitted(pool, metrics, &served, Against::History).await?;
    notices.retain(|n| !(matches!(n.event, NoticeEvent::KeyRelay { .. }) && refused.contains(&n.subject)));
    Ok(notices)
}

/// Whether a stored map value commits to `bundle` (a value that does not parse commits to nothing).
fn commits(value: &[u8], bundle: &[u8]) -> bool {
    MapValue::parse(value).is_ok_and(|value| value.commits_to(bundle))
}
