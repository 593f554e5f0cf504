//! Key transparency in the client: pins the directory's keys, asks for proofs with every key lookup, and checks them before any key is used (protocol section 15.3).
//!
//! Once the component has offered keydir's log keys (disco#info), this device pins them for
//! good and every `keys` lookup asks for proofs: the signed head must verify with the pinned key
//! and extend the head verified before (a smaller or forked one is the directory caught, kept
//! as evidence), and each item's akd proof must agree with the item. A revocation is applied
//! only when the map proves it. An answer without proofs is refused: a component cannot turn
//! transparency off for a device that has seen it.

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::stanzas;
use crate::store::Store;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_proto::elements::{
    FEATURE_TRANSPARENCY, HeadProofs, HistoryAnswer, HistoryQuery, KeyItem, KeyStatus, KeysQuery, KeysResult,
};
use keyward_proto::transparency::check::{DirectoryKeys, ItemVerdict, check_head, check_item};
use keyward_proto::transparency::heads::{Comparison, Head, HeadSummary, VerifiedHead, VerifierKey};
use keyward_proto::transparency::lookup::verify_history;
use keyward_proto::transparency::value::MapValue;
use keyward_proto::{BareJid, XmlElement};
use std::time::Duration;
use time::OffsetDateTime;
use tokio_xmpp::IqRequest;
use tokio_xmpp::minidom::Element as MElement;

/// How often a component that offered no transparency is asked again.
const OFFER_RECHECK_MS: i64 = 60 * 60 * 1000;
/// How long a revocation the directory reports but the map does not prove yet, or the auditors'
/// cosignatures of a new head, are waited for (keydir publishes an epoch every few seconds), in steps.
const REVOCATION_WAIT: Duration = Duration::from_millis(500);
const REVOCATION_WAIT_STEPS: u32 = 16;

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The pinned directory keys: asks the component (disco#info) when none are pinned and it was
/// not asked within the hour, and pins what it offers.
pub(crate) async fn directory_keys(
    conn: &mut Connection,
    component: &BareJid,
    store: &Store,
) -> Result<Option<DirectoryKeys>> {
    let pinned = store.transparency()?;
    if let Some(pinned) = &pinned
        && (pinned.keys.is_some() || now_ms() - pinned.checked_at_ms < OFFER_RECHECK_MS)
    {
        return Ok(pinned.keys.clone());
    }
    let offered = match conn.iq(Some(component), IqRequest::Get(stanzas::disco_info_query()), "disco#info").await {
        Ok(Some(answer)) => offered_keys(&answer)?,
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(cause = %e, "the component did not answer disco#info");
            return Ok(None);
        }
    };
    store.offer_transparency(offered.as_ref(), now_ms())?;
    Ok(store.transparency()?.and_then(|p| p.keys))
}

/// keydir's log keys in the component's disco#info (XEP-0128 form of type [`FEATURE_TRANSPARENCY`]).
fn offered_keys(answer: &MElement) -> Result<Option<DirectoryKeys>> {
    if !stanzas::disco_features(answer).iter().any(|f| f == FEATURE_TRANSPARENCY) {
        return Ok(None);
    }
    let form = answer
        .children()
        .find(|c| c.is("x", "jabber:x:data") && form_value(c, "FORM_TYPE").as_deref() == Some(FEATURE_TRANSPARENCY));
    let Some(form) = form else { return Ok(None) };
    let field = |var: &'static str| form_value(form, var).ok_or(Error::UnexpectedAnswer("disco#info transparency"));
    let origin = field("origin")?;
    let log_key = VerifierKey::parse(&field("log-key")?)?;
    let vrf = STANDARD.decode(field("vrf-key")?).map_err(|_| Error::UnexpectedAnswer("disco#info transparency"))?;
    let vrf_key =
        <[u8; 32]>::try_from(vrf.as_slice()).map_err(|_| Error::UnexpectedAnswer("disco#info transparency"))?;
    if log_key.name() != origin {
        return Err(Error::UnexpectedAnswer("disco#info transparency"));
    }
    Ok(Some(DirectoryKeys { origin, log_key, vrf_key }))
}

fn form_value(form: &MElement, var: &str) -> Option<String> {
    form.children()
        .find(|f| f.is("field", "jabber:x:data") && f.attr("var") == Some(var))
        .and_then(|f| f.children().find(|v| v.is("value", "jabber:x:data")))
        .map(MElement::text)
}

/// `keys` for up to [`keyward_proto::elements::KEYS_PROOF_ITEMS`] accounts with proofs, checked:
/// the items as the map proves them (a proven revocation with the map's time and reason).
pub(crate) async fn fetch_checked(
    conn: &mut Connection,
    component: &BareJid,
    store: &Store,
    keys: &DirectoryKeys,
    jids: &[BareJid],
) -> Result<Vec<KeyItem>> {
    let mut step = 0;
    loop {
        // A new head is cosigned by the auditors a moment after keydir signs it: wait for them
        // as for a revocation's epoch.
        let (items, unproven) = match fetch_once(conn, component, store, keys, jids).await {
            Err(Error::HeadNotCosigned { .. }) if step < REVOCATION_WAIT_STEPS => (Vec::new(), true),
            other => other?,
        };
        if !unproven || step >= REVOCATION_WAIT_STEPS {
            return Ok(items);
        }
        step += 1;
        tokio::time::sleep(REVOCATION_WAIT).await;
    }
}

/// One proven lookup; whether a reported revocation is not proven yet.
async fn fetch_once(
    conn: &mut Connection,
    component: &BareJid,
    store: &Store,
    keys: &DirectoryKeys,
    jids: &[BareJid],
) -> Result<(Vec<KeyItem>, bool)> {
    let stored = stored_head(store, keys)?;
    let query = KeysQuery::with_proofs(jids.to_vec(), stored.as_ref().map_or(0, Head::size))?;
    let answer = conn.iq(Some(component), IqRequest::Get(stanzas::to_minidom(&query.to_element())?), "keys").await?;
    let answer = answer.ok_or(Error::UnexpectedAnswer("keys"))?;
    let result = KeysResult::from_element(&stanzas::from_minidom(&answer)?)?;
    let caught = |jid: Option<&BareJid>, cause| Error::DirectoryCaught { jid: jid.cloned(), cause };
    let Some(proofs) = result.transparency else {
        // A directory that has published nothing yet has no head; after a head, that is a rollback.
        if stored.is_some() || result.items.iter().any(|i| i.proof.is_some()) {
            tracing::error!(alarm = "transparency-head-refused", "the directory sent no epoch head");
            return Err(caught(None, keyward_proto::Error::MapProof("no epoch head sent")));
        }
        let unproven = result.items.iter().any(|i| matches!(i.status, KeyStatus::Revoked { .. }));
        let items = result.items.into_iter().filter(|i| jids.contains(&i.jid)).map(unproven_revocation).collect();
        return Ok((items, unproven));
    };
    let verified = accept_head(store, component, keys, stored.as_ref(), &proofs)?;
    let mut unproven = false;
    let mut items = Vec::with_capacity(result.items.len());
    for mut item in result.items.into_iter().filter(|i| jids.contains(&i.jid)) {
        match check_item(keys, &verified.head, &item) {
            Ok(ItemVerdict::Proven | ItemVerdict::NotInMap) => {}
            Ok(ItemVerdict::ProvenRevoked(revocation)) => {
                let at =
                    OffsetDateTime::from_unix_timestamp(i64::try_from(revocation.revoked_at()).unwrap_or(i64::MAX))
                        .map_err(|_| caught(Some(&item.jid), keyward_proto::Error::MapProof("revocation time")))?;
                item.status = KeyStatus::Revoked { at, reason: revocation.reason().to_owned() };
            }
            Ok(ItemVerdict::RevocationUnproven) => {
                unproven = true;
                item = unproven_revocation(item);
            }
            Err(cause) => {
                tracing::error!(alarm = "transparency-item-refused", jid = %item.jid, %cause, "the directory's answer contradicts its map");
                return Err(caught(Some(&item.jid), cause));
            }
        }
        items.push(item);
    }
    Ok((items, unproven))
}

/// Checks an answer's head against the pinned keys, the cosignature policy and the stored head,
/// and stores it when it is newer. A fork or rollback keeps both heads as evidence.
fn accept_head(
    store: &Store,
    component: &BareJid,
    keys: &DirectoryKeys,
    stored: Option<&Head>,
    proofs: &HeadProofs,
) -> Result<VerifiedHead> {
    let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
    let verified = match check_head(keys, stored, proofs, &store.cosignature_policy(), now) {
        Ok(verified) => verified,
        Err(keyward_proto::Error::Cosignatures { valid, required }) => {
            tracing::warn!(valid, required, "the directory's head lacks the auditors' cosignatures");
            return Err(Error::HeadNotCosigned { valid, required });
        }
        Err(cause) => {
            if matches!(cause, keyward_proto::Error::Fork | keyward_proto::Error::Rollback) {
                let kept = store.transparency()?.and_then(|p| p.head).unwrap_or_default();
                store.keep_evidence("transparency-head", component, &format!("{kept}\n--\n{}", proofs.note))?;
            }
            tracing::error!(alarm = "transparency-head-refused", %cause, "the directory's epoch head is refused");
            return Err(Error::DirectoryCaught { jid: None, cause });
        }
    };
    store.store_head(&proofs.note, verified.head.size())?;
    Ok(verified)
}

/// The stored head, checked again with the pinned key.
fn stored_head(store: &Store, keys: &DirectoryKeys) -> Result<Option<Head>> {
    match store.transparency()?.and_then(|p| p.head) {
        Some(note) => Ok(Some(Head::open(note.as_bytes(), &keys.origin, &keys.log_key)?.0)),
        None => Ok(None),
    }
}

/// Monitors the own account's whole history in the map (akd `key_history`, protocol section
/// 15.3.3): every value it ever had must be the own bundle or the revocation of the own key; any
/// other is [`keyward_proto::Error::ForeignKey`]: a key the directory showed others for a while.
pub(crate) async fn check_own_history(
    conn: &mut Connection,
    component: &BareJid,
    store: &Store,
    keys: &DirectoryKeys,
    own: &keyward_proto::VerifiedBundle,
) -> Result<()> {
    let me = own.jid().clone();
    let stored = stored_head(store, keys)?;
    let query = HistoryQuery { known_size: stored.as_ref().map_or(0, Head::size) };
    let answer = conn.iq(Some(component), IqRequest::Get(stanzas::to_minidom(&query.to_element())?), "history").await?;
    let answer =
        HistoryAnswer::from_element(&stanzas::from_minidom(&answer.ok_or(Error::UnexpectedAnswer("history"))?)?)?;
    let caught = |cause| Error::DirectoryCaught { jid: Some(me.clone()), cause };
    let (Some(proofs), Some(proof)) = (answer.transparency, answer.proof) else {
        // Not in the map yet (published within the last epoch), or nothing published at all.
        return Ok(());
    };
    let verified = accept_head(store, component, keys, stored.as_ref(), &proofs)?;
    let leaf = verified.head.last_leaf();
    let values = verify_history(&keys.vrf_key, &leaf.akd_root, leaf.epoch, &me, &proof).map_err(caught)?;
    let own_xml = own.to_xml();
    for value in values {
        let own_value = match &value.value {
            MapValue::Bundle(commitment) => commitment.commits_to(own_xml.as_bytes()),
            MapValue::Revoked(revocation) => revocation.fingerprint() == &own.fingerprint(),
        };
        if !own_value {
            tracing::error!(
                alarm = "transparency-foreign-key",
                version = value.version,
                epoch = value.epoch,
                "the directory's map shows a key this account never published"
            );
            return Err(caught(keyward_proto::Error::ForeignKey));
        }
    }
    Ok(())
}

/// A revocation the map does not prove (yet) is not applied: the item stays active, as the map
/// shows it, until the revocation's epoch is published.
fn unproven_revocation(mut item: KeyItem) -> KeyItem {
    if matches!(item.status, KeyStatus::Revoked { .. }) && item.bundle.is_some() {
        item.status = KeyStatus::Active;
    }
    item
}

/// The newest verified head of the directory, if the directory's keys are pinned and a head was stored.
pub(crate) fn own_head(store: &Store) -> Result<Option<Head>> {
    let Some(pinned) = store.transparency()? else { return Ok(None) };
    let (Some(keys), Some(note)) = (pinned.keys, pinned.head) else { return Ok(None) };
    Ok(Some(Head::open(note.as_bytes(), &keys.origin, &keys.log_key)?.0))
}

/// The summary of the own newest verified head, carried in every sealed message sent (gossip).
pub(crate) fn own_summary(store: &Store) -> Result<Option<HeadSummary>> {
    Ok(own_head(store)?.as_ref().map(HeadSummary::of))
}

/// Compares a contact's gossiped head summary with the own newest head.
pub(crate) fn compare(store: &Store, theirs: &HeadSummary) -> Result<Option<Comparison>> {
    Ok(own_summary(store)?.map(|mine| mine.compare(theirs)))
}
