//! What the adversary does with real parts: edits keydir's database under the running stack,
//! queues notices of its own, and sends stanzas as a user (the server can log in as anyone).

use keyward_client::Connection;
use keyward_client::keyward_proto::transparency::value::{BundleCommitment, MapValue, Revocation, label};
use keyward_client::keyward_proto::{
    BareJid, Envelope, Fingerprint, KeyPair, Recipient, Sealed, VerifiedBundle, XmlElement,
};
use keyward_client::stanzas::sealed_message;
use keyward_tests::component::ComponentOptions;
use keyward_tests::stack::{Stack, StackOptions};
use keyward_tests::xmpp::ServerKind;
use sqlx::Connection as _;
use time::OffsetDateTime;
use tokio_xmpp::parsers::message::Message;

use crate::support::User;
pub use crate::support::wait_published;

/// Queues `bundle_xml` as `jid`'s next value of keydir's transparency map, as a hostile directory
/// does with a bundle it swaps in: keydir serves only bundles its map (or the map's queue)
/// commits to, so an edit of the bundle rows alone reaches nobody. The map then shows the swap
/// to anyone who checks it; these tests are about what the client does without that check.
pub async fn commit_to_map(db: &mut sqlx::PgConnection, jid: &BareJid, bundle_xml: &str) -> anyhow::Result<()> {
    let value = MapValue::Bundle(BundleCommitment::of(bundle_xml.as_bytes())).encode();
    sqlx::query("INSERT INTO transparency_pending (label, value) VALUES ($1, $2)")
        .bind(label(jid))
        .bind(value)
        .execute(db)
        .await?;
    Ok(())
}

/// Replaces `jid`'s bundle row with `forged` (validly self-signed by a key the adversary holds),
/// committed to the map's queue too ([`commit_to_map`]), and waits until keydir has published
/// it: the swap is then in the map's history, as a directory that publishes its lie leaves it.
pub async fn swap_bundle(database_url: &str, forged: &VerifiedBundle) -> anyhow::Result<()> {
    swap_bundle_unpublished(database_url, forged).await?;
    wait_published(database_url).await
}

/// [`swap_bundle`] without waiting: the swap stays in the map's queue (published at the next
/// epoch, unless the adversary holds the publisher).
pub async fn swap_bundle_unpublished(database_url: &str, forged: &VerifiedBundle) -> anyhow::Result<()> {
    let mut db = sqlx::PgConnection::connect(database_url).await?;
    commit_to_map(&mut db, forged.jid(), &forged.to_xml()).await?;
    let updated = sqlx::query(
        "UPDATE bundles SET fingerprint = $2, ik = $3, ek = $4, created_unix = $5, sig = $6, xml = $7 WHERE jid = $1",
    )
    .bind(forged.jid().as_str())
    .bind(forged.fingerprint().to_hex())
    .bind(forged.identity_key().to_bytes().to_vec())
    .bind(forged.encryption_key().to_bytes().to_vec())
    .bind(i64::try_from(forged.created())?)
    .bind(forged.signature().to_vec())
    .bind(forged.to_xml())
    .execute(&mut db)
    .await?
    .rows_affected();
    assert_eq!(updated, 1, "the bundle row was replaced");
    db.close().await?;
    Ok(())
}

/// The whole stack as the adversary runs it. The adversary is the server side as a whole, and
/// these tests play it by editing the directory's database: what they write must reach clients
/// at once. So the component's answer cache is off (it keeps a well-behaved directory's answers
/// for a while, which would only delay the edits; a hostile component answers what it likes).
pub async fn stack(kind: ServerKind) -> anyhow::Result<Stack> {
    crate::support::stack_with(kind, StackOptions { component: no_answer_cache, ..StackOptions::default() }).await
}

fn no_answer_cache(options: &mut ComponentOptions) {
    options.env.push(("KEYWARD_ANSWER_CACHE_ENTRIES".to_owned(), "0".to_owned()));
}

/// Queues a `<revoked/>` notice of the adversary's making in keydir's outbox: the real component
/// delivers it to `recipient`, stamped with the component's own JID.
///
/// A notice tells what the directory's rows say (its subject's fingerprint, revocation time and
/// reason), so the adversary edits those rows the way only the database's owner can: it drops
/// the rule that an active account has no revocation time, gives `about` the fingerprint `fp`
/// and, unless it is revoked already, the time `at`, while its status stays active and its
/// bundle genuine: a lookup still answers `active` with the real key.
pub async fn queue_revoked_notice(
    stack: &Stack,
    recipient: &BareJid,
    about: &BareJid,
    fp: Fingerprint,
    at: OffsetDateTime,
) -> anyhow::Result<()> {
    let mut db = sqlx::PgConnection::connect(stack.database_url()?).await?;
    sqlx::query("ALTER TABLE accounts DROP CONSTRAINT IF EXISTS accounts_revocation_fields").execute(&mut db).await?;
    sqlx::query(
        "UPDATE accounts SET revoked_at = COALESCE(revoked_at, $2), reason = COALESCE(reason, 'forged by the directory')
          WHERE jid = $1",
    )
    .bind(about.as_str())
    .bind(at)
    .execute(&mut db)
    .await?;
    sqlx::query("UPDATE bundles SET fingerprint = $2 WHERE jid = $1")
        .bind(about.as_str())
        .bind(fp.to_hex())
        .execute(&mut db)
        .await?;
    // One revocation notice per subject and recipient: the adversary replaces an earlier one.
    sqlx::query("DELETE FROM notices WHERE recipient = $1 AND subject = $2 AND kind = 'revoked'")
        .bind(recipient.as_str())
        .bind(about.as_str())
        .execute(&mut db)
        .await?;
    sqlx::query("INSERT INTO notices (recipient, kind, subject) VALUES ($1, 'revoked', $2)")
        .bind(recipient.as_str())
        .bind(about.as_str())
        .execute(&mut db)
        .await?;
    db.close().await?;
    Ok(())
}

/// Marks `jid` revoked in the directory's database at `at`, as a hostile directory would
/// (no admin request, no notices), the revocation of `fp` published in its map (which holds
/// the time to the second).
pub async fn mark_revoked(stack: &Stack, jid: &BareJid, fp: Fingerprint, at: OffsetDateTime) -> anyhow::Result<()> {
    let at = at.replace_nanosecond(0)?;
    let mut db = sqlx::PgConnection::connect(stack.database_url()?).await?;
    let revocation = Revocation::new(fp, u64::try_from(at.unix_timestamp())?, "edited in the database")?;
    sqlx::query("INSERT INTO transparency_pending (label, value) VALUES ($1, $2)")
        .bind(label(jid))
        .bind(MapValue::Revoked(revocation).encode())
        .execute(&mut db)
        .await?;
    let updated = sqlx::query(
        "UPDATE accounts SET status = 'revoked', revoked_at = $2, reason = 'edited in the database' WHERE jid = $1",
    )
    .bind(jid.as_str())
    .bind(at)
    .execute(&mut db)
    .await?
    .rows_affected();
    assert_eq!(updated, 1, "the account row was changed");
    db.close().await?;
    wait_published(stack.database_url()?).await
}

/// A second connection as `user` (the server, or whoever holds the XMPP password).
pub async fn connect_as(user: &User) -> anyhow::Result<Connection> {
    Ok(Connection::connect(&user.connect_options()).await?)
}

/// Unix milliseconds now.
pub fn now_ms() -> anyhow::Result<u64> {
    Ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis().try_into()?)
}

/// A sealed message stanza from `from` to `to`, signed by `signer` at `ts_ms`, for `to_bundle`'s key.
pub fn sealed_stanza(
    signer: &KeyPair,
    from: &BareJid,
    to: &BareJid,
    to_bundle: &VerifiedBundle,
    id: &str,
    ts_ms: u64,
    body: &str,
) -> anyhow::Result<Message> {
    let envelope = Envelope { from: from.clone(), to: to.clone(), ts_ms, msg_id: id.to_owned(), body: body.to_owned() };
    let sealed = Sealed::seal(signer, &envelope, &[Recipient::from(to_bundle)])?;
    Ok(sealed_message(to, id, &sealed)?)
}
