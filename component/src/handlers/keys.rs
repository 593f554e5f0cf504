//! `keys`: the bundles and status of up to 100 accounts; shared with `roster-keys`.

use keyward_contract::KeyStatus as Directory;
use keyward_proto::elements::{KeyItem, KeyStatus, KeysQuery, KeysResult};
use keyward_proto::xml::Element;
use keyward_proto::{BareJid, Bundle, XmlElement};
use tracing::warn;

use super::{Outcome, keydir_failed, refused, sender};
use crate::context::SessionContext;
use crate::keydir::LookupItem;
use crate::stanza::{Condition, Iq, StanzaError};

/// Looks the accounts up in keydir, recording that the sender now holds each bundle.
pub async fn handle(iq: &Iq, payload: &Element, ctx: &SessionContext) -> Outcome {
    let requester = sender(iq)?;
    let query = KeysQuery::from_element(payload).map_err(|e| refused(&e))?;
    // Proofs only when asked (the query is then at most `KEYS_PROOF_ITEMS` long) and when keydir
    // signs heads; the client decides what an answer without them is worth. Fetched first:
    // see `transparency::fetch`.
    let proofs = match query.known_size() {
        Some(known) if ctx.shared.transparency.get(&ctx.shared.keydir).await.is_some() => Some(
            crate::transparency::fetch(&ctx.shared.keydir, query.items(), known)
                .await
                .map_err(|e| keydir_failed(&e))?,
        ),
        _ => None,
    };
    let mut items = lookup(ctx, &requester, query.items()).await?;
    let transparency = proofs.and_then(|proofs| proofs.attach(&mut items));
    Ok(Some(KeysResult { items, transparency }.to_element()))
}

/// Looks up any number of accounts, 100 per keydir call.
pub async fn lookup(ctx: &SessionContext, requester: &BareJid, jids: &[BareJid]) -> Result<Vec<KeyItem>, StanzaError> {
    let (cache, metrics) = (&ctx.shared.answers, &ctx.shared.metrics);
    let mut items = Vec::with_capacity(jids.len());
    for chunk in jids.chunks(keyward_proto::limits::KEYS_ITEMS) {
        // Keys the requester holds and the cache knows active (under its lease) need no keydir request.
        let hits: Vec<Option<KeyItem>> = chunk.iter().map(|jid| cache.get(requester, jid)).collect();
        let misses: Vec<BareJid> =
            chunk.iter().zip(&hits).filter(|(_, hit)| hit.is_none()).map(|(jid, _)| jid.clone()).collect();
        metrics.answer_cache_hits.inc_by((chunk.len() - misses.len()) as u64);
        metrics.answer_cache_misses.inc_by(misses.len() as u64);
        let mut found = if misses.is_empty() {
            Vec::new().into_iter()
        } else {
            ctx.shared.keydir.lookup(Some(requester), &misses).await.map_err(|e| keydir_failed(&e))?.into_iter()
        };
        for (jid, hit) in chunk.iter().zip(hits) {
            let item = match hit {
                Some(item) => item,
                None => {
                    let item = key_item(jid, found.next().ok_or_else(|| internal("too few items", jid))?)?;
                    cache.put(requester, &item);
                    item
                }
            };
            items.push(item);
        }
    }
    Ok(items)
}

fn internal(what: &str, jid: &BareJid) -> StanzaError {
    warn!(%jid, what, "keydir returned an unusable lookup item");
    StanzaError::new(Condition::InternalServerError)
}

/// The bundles this process verified: the same bundle in every lookup answer is verified once.
static VERIFIED: std::sync::LazyLock<keyward_proto::VerifyCache> =
    std::sync::LazyLock::new(keyward_proto::VerifyCache::default);

/// Checks one keydir item (its bundle verifies and is the account's) and converts it.
fn key_item(jid: &BareJid, item: LookupItem) -> Result<KeyItem, StanzaError> {
    if item.jid != jid.as_str() {
        return Err(internal("jid out of order", jid));
    }
    let bundle = match item.bundle.as_deref() {
        Some(xml) => {
            let bundle = Bundle::parse(xml.as_bytes()).map_err(|_| internal("bundle unreadable", jid))?;
            VERIFIED.verify_for(&bundle, jid).map_err(|_| internal("bundle does not verify", jid))?;
            Some(bundle)
        }
        None => None,
    };
    let status = match item.status {
        Directory::Active if bundle.is_some() => KeyStatus::Active,
        Directory::Active => return Err(internal("active without a bundle", jid)),
        Directory::None => KeyStatus::None,
        Directory::Revoked => {
            let at = item.revoked_at.ok_or_else(|| internal("revoked without a time", jid))?;
            KeyStatus::Revoked { at, reason: item.reason.unwrap_or_default() }
        }
    };
    Ok(KeyItem { jid: jid.clone(), status, bundle, proof: None })
}
