//! Requests to the keyward component (protocol section 9), each one IQ on the session's connection; answers parsed, nothing applied.

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::stanzas;
use crate::store::Store;
use crate::transparency;
use keyward_proto::elements::{
    FEATURE_ROSTER_KEYS, KEYS_PROOF_ITEMS, KeyItem, KeysQuery, KeysResult, Publish, Relay, RosterKeys, RosterKeysQuery,
    SecretQuery,
};
use keyward_proto::restore::AnySecret;
use keyward_proto::{BareJid, XmlElement};
use tokio_xmpp::IqRequest;

/// `keys` for `jids`; only items that were asked for count. With the directory's transparency
/// keys pinned, in chunks of [`KEYS_PROOF_ITEMS`] with proofs, each checked before it is
/// returned ([`crate::transparency`]); otherwise in chunks of the protocol's limit.
pub(crate) async fn fetch_keys(
    conn: &mut Connection,
    component: &BareJid,
    store: &Store,
    jids: &[BareJid],
) -> Result<Vec<KeyItem>> {
    if let Some(keys) = transparency::directory_keys(conn, component, store).await? {
        let mut items = Vec::with_capacity(jids.len());
        for chunk in jids.chunks(KEYS_PROOF_ITEMS) {
            items.extend(transparency::fetch_checked(conn, component, store, &keys, chunk).await?);
        }
        return Ok(items);
    }
    let mut items = Vec::with_capacity(jids.len());
    for chunk in jids.chunks(keyward_proto::limits::KEYS_ITEMS) {
        let query = KeysQuery::new(chunk.to_vec())?;
        let answer =
            conn.iq(Some(component), IqRequest::Get(stanzas::to_minidom(&query.to_element())?), "keys").await?;
        let answer = answer.ok_or(Error::UnexpectedAnswer("keys"))?;
        let result = KeysResult::from_element(&stanzas::from_minidom(&answer)?)?;
        items.extend(result.items.into_iter().filter(|i| chunk.contains(&i.jid)));
    }
    Ok(items)
}

/// `keys` for one account: its item, which the directory must give.
pub(crate) async fn lookup_one(
    conn: &mut Connection,
    component: &BareJid,
    store: &Store,
    jid: &BareJid,
) -> Result<KeyItem> {
    fetch_keys(conn, component, store, std::slice::from_ref(jid))
        .await?
        .into_iter()
        .find(|i| &i.jid == jid)
        .ok_or(Error::UnexpectedAnswer("keys"))
}

/// `publish` of the own bundle and sealed secret: [`Error::AlreadyInitialized`] when the
/// directory holds a different bundle (`conflict`).
pub(crate) async fn publish(conn: &mut Connection, component: &BareJid, me: &BareJid, publish: &Publish) -> Result<()> {
    let request = IqRequest::Set(stanzas::to_minidom(&publish.to_element())?);
    match conn.iq(Some(component), request, "publish").await {
        Ok(_) => Ok(()),
        Err(Error::Refused { condition, .. }) if condition == "conflict" => Err(Error::AlreadyInitialized(me.clone())),
        Err(e) => Err(e),
    }
}

/// `secret`: the own sealed blob (either version); [`Error::SecretMismatch`] when the directory has none.
pub(crate) async fn fetch_secret(conn: &mut Connection, component: &BareJid, me: &BareJid) -> Result<AnySecret> {
    let request = IqRequest::Get(stanzas::to_minidom(&SecretQuery.to_element())?);
    match conn.iq(Some(component), request, "secret").await {
        Ok(Some(answer)) => Ok(AnySecret::from_element(&stanzas::from_minidom(&answer)?)?),
        Ok(None) => Err(Error::UnexpectedAnswer("secret")),
        Err(Error::Refused { condition, .. }) if condition == "item-not-found" => {
            Err(Error::SecretMismatch(me.clone()))
        }
        Err(e) => Err(e),
    }
}

/// `relay` of the own key to `to`.
pub(crate) async fn relay(conn: &mut Connection, component: &BareJid, to: &BareJid) -> Result<()> {
    let relay = Relay { to: to.clone() };
    conn.iq(Some(component), IqRequest::Set(stanzas::to_minidom(&relay.to_element())?), "relay").await?;
    Ok(())
}

/// The roster annotated with keys (`roster-keys`) where the component has the roster
/// privilege, `None` where it does not say so in disco#info.
pub(crate) async fn roster_keys(conn: &mut Connection, component: &BareJid) -> Result<Option<Vec<KeyItem>>> {
    let features = match conn.iq(Some(component), IqRequest::Get(stanzas::disco_info_query()), "disco#info").await {
        Ok(Some(answer)) => stanzas::disco_features(&answer),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(cause = %e, "the component did not answer disco#info");
            Vec::new()
        }
    };
    if !features.iter().any(|f| f == FEATURE_ROSTER_KEYS) {
        return Ok(None);
    }
    let request = IqRequest::Get(stanzas::to_minidom(&RosterKeysQuery.to_element())?);
    let answer =
        conn.iq(Some(component), request, "roster-keys").await?.ok_or(Error::UnexpectedAnswer("roster-keys"))?;
    Ok(Some(RosterKeys::from_element(&stanzas::from_minidom(&answer)?)?.items))
}

/// The checked component ([`Connection::find_component`]) for sessions that can work without
/// one (keys exchanged out of band): when the server lists none, the server's own domain
/// stands in, which refuses keyward requests and sends no notices.
pub(crate) async fn component_or_server(conn: &mut Connection, account: &super::Account) -> Result<BareJid> {
    match conn.find_component(account.connect.component.as_ref()).await {
        Err(Error::NoComponent { domain }) => Ok(BareJid::parse(&domain)?),
        other => other,
    }
}
