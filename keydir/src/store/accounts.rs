//! Accounts as the component sees them: publish, fetch the secret, look up bundles, relay.

use super::Status;
use super::edges::EdgeWriter;
use crate::problem::{ApiError, ApiResult};
use keyward_proto::restore::AnySecret;
use keyward_proto::transparency::value::{MapValue, label};
use keyward_proto::{BareJid, IdentityPublic, SecretSig, VerifiedBundle, XmlElement};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use tracing::instrument;

/// A verified bundle with the fields the table stores.
pub struct NewBundle {
    verified: VerifiedBundle,
    jid: BareJid,
    fingerprint: String,
    ik: Vec<u8>,
    ek: Vec<u8>,
    created: i64,
    sig: Vec<u8>,
    xml: String,
}

impl NewBundle {
    /// The columns of a bundle that verified for its account.
    pub fn from_verified(bundle: &VerifiedBundle) -> ApiResult<Self> {
        let created =
            i64::try_from(bundle.created()).map_err(|_| ApiError::BadBundle("created is out of range".into()))?;
        Ok(Self {
            verified: bundle.clone(),
            jid: bundle.jid().clone(),
            fingerprint: bundle.fingerprint().to_hex(),
            ik: bundle.identity_key().to_bytes().to_vec(),
            ek: bundle.encryption_key().to_bytes().to_vec(),
            created,
            sig: bundle.signature().to_vec(),
            xml: bundle.to_xml(),
        })
    }
}

/// A parsed secret blob and its secret update, with the fields the table stores.
///
/// The update is not verified here: [`publish`] verifies it inside its
/// transaction, against the identity key of the bundle the account has.
pub struct NewSecret {
    blob: AnySecret,
    update: SecretSig,
    m_kib: i32,
    t: i32,
    p: i32,
    seq: i64,
    xml: String,
}

impl NewSecret {
    /// The columns of a parsed secret blob (either version) and its (not yet verified) update.
    pub fn new(blob: AnySecret, update: SecretSig) -> ApiResult<Self> {
        let params = match &blob {
            AnySecret::V0(blob) => *blob.params(),
            AnySecret::V1(blob) => *blob.params(),
        };
        let int = |v: u32| i32::try_from(v).map_err(|_| ApiError::BadSecret("KDF parameter out of range".into()));
        if params.m_kib == 0 || params.t == 0 || params.p == 0 {
            return Err(ApiError::BadSecret("KDF parameters must be positive".into()));
        }
        // keyward-proto refuses a seq above 2^63 - 1 when it parses one.
        let seq =
            i64::try_from(update.seq()).map_err(|_| ApiError::BadSecretSignature("seq is out of range".into()))?;
        let xml = blob.to_xml();
        Ok(Self { blob, update, m_kib: int(params.m_kib)?, t: int(params.t)?, p: int(params.p)?, seq, xml })
    }
}

/// The locked account row, its bundle's fields and its secret update, if it has them.
struct Current {
    status: Status,
    ik: Option<Vec<u8>>,
    ek: Option<Vec<u8>>,
    created_unix: Option<i64>,
    sig: Option<Vec<u8>>,
    has_secret: bool,
    secret_seq: Option<i64>,
    secret_sig: Option<Vec<u8>>,
    secret_xml: Option<String>,
}

/// What a publish does to the stored secret blob.
#[derive(Debug, PartialEq, Eq)]
enum SecretWrite {
    /// No blob yet, or a greater seq (or a row from before seqs): store this one.
    Store,
    /// Exactly the stored update again: nothing to write.
    Same,
}

/// Decides, for a correctly signed update, whether it may replace the stored blob.
fn secret_write(current: &Current, secret: &NewSecret) -> ApiResult<SecretWrite> {
    if !current.has_secret {
        return Ok(SecretWrite::Store);
    }
    match current.secret_seq {
        // Stored before updates were signed: any correctly signed update replaces it.
        None => Ok(SecretWrite::Store),
        Some(stored) if secret.seq > stored => Ok(SecretWrite::Store),
        Some(stored)
            if secret.seq == stored
                && current.secret_sig.as_deref() == Some(&secret.update.signature()[..])
                && current.secret_xml.as_deref() == Some(secret.xml.as_str()) =>
        {
            Ok(SecretWrite::Same)
        }
        Some(stored) => Err(ApiError::StaleSecret(format!(
            "the stored secret blob has seq {stored}; a replacement needs a greater seq than {}",
            secret.seq
        ))),
    }
}

/// Stores an account's bundle and secret. `Ok(true)`: created; `Ok(false)`:
/// the same bundle was already there (the secret is replaced when its signed
/// update has a greater seq, left as it is when the update is the stored one).
///
/// The secret update is verified here, in the transaction that holds the
/// account's row lock, with the identity key of the STORED bundle (for a new
/// account: the bundle being stored). Nothing reaching this API replaces a blob
/// without the account's identity key, whatever the component sends.
#[instrument(skip_all, fields(jid = %bundle.jid))]
pub async fn publish(pool: &PgPool, bundle: &NewBundle, secret: &NewSecret) -> ApiResult<bool> {
    let mut tx = pool.begin().await?;
    insert_account(&mut tx, &bundle.jid).await?;
    // The row lock serialises publishes and revocations of this account.
    let current = lock_for_publish(&mut tx, &bundle.jid).await?;
    if current.status != Status::Active {
        return Err(ApiError::Revoked);
    }
    let (created, ik) = match (&current.sig, &current.ik) {
        (Some(sig), Some(ik)) => {
            let same = ik[..] == bundle.ik[..]
                && current.ek.as_deref() == Some(&bundle.ek[..])
                && current.created_unix == Some(bundle.created)
                && sig == &bundle.sig;
            if !same {
                return Err(ApiError::Conflict("a different bundle is already stored for this account".into()));
            }
            (false, stored_identity_key(ik)?)
        }
        _ => {
            insert_bundle(&mut tx, bundle).await?;
            // The map commits to the bundle exactly as stored and served (its XML's bytes).
            let value = MapValue::bundle(bundle.xml.as_bytes()).encode();
            super::transparency::enqueue(&mut tx, &label(&bundle.jid), &value).await?;
            (true, *bundle.verified.identity_key())
        }
    };
    secret.update.verify_any(&ik, &bundle.jid, &secret.blob).map_err(|_| {
        ApiError::BadSecretSignature("the secret blob is not signed by the account's identity key".into())
    })?;
    if secret_write(&current, secret)? == SecretWrite::Store {
        upsert_secret(&mut tx, &bundle.jid, secret).await?;
    }
    tx.commit().await?;
    Ok(created)
}

/// The identity key of a stored bundle (checked when it was stored).
pub(super) fn stored_identity_key(bytes: &[u8]) -> ApiResult<IdentityPublic> {
    <[u8; 32]>::try_from(bytes).ok().and_then(|b| IdentityPublic::from_bytes(&b).ok()).ok_or_else(|| {
        tracing::error!("a stored identity key does not parse");
        ApiError::Internal
    })
}

/// Adds the account row, if it is not there yet (a row without a bundle looks up as `none`).
#[instrument(skip_all)]
pub(super) async fn insert_account(tx: &mut PgConnection, jid: &BareJid) -> sqlx::Result<()> {
    sqlx::query!("INSERT INTO accounts (jid) VALUES ($1) ON CONFLICT (jid) DO NOTHING", jid.as_str())
        .execute(tx)
        .await?;
    Ok(())
}

/// Locks the account row (`FOR UPDATE`) and reads it with its bundle's fields.
#[instrument(skip_all)]
async fn lock_for_publish(tx: &mut PgConnection, jid: &BareJid) -> sqlx::Result<Current> {
    sqlx::query_as!(
        Current,
        r#"SELECT a.status AS "status: Status", b.ik AS "ik?", b.ek AS "ek?", b.created_unix AS "created_unix?", b.sig AS "sig?",
                  s.jid IS NOT NULL AS "has_secret!", s.seq AS "secret_seq?", s.sig AS "secret_sig?",
                  s.xml AS "secret_xml?"
           FROM accounts a LEFT JOIN bundles b ON b.jid = a.jid LEFT JOIN secret_blobs s ON s.jid = a.jid
          WHERE a.jid = $1 FOR UPDATE OF a"#,
        jid.as_str()
    )
    .fetch_one(tx)
    .await
}

/// Stores a new bundle.
#[instrument(skip_all)]
async fn insert_bundle(tx: &mut PgConnection, bundle: &NewBundle) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO bundles (jid, fingerprint, ik, ek, created_unix, sig, xml)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        bundle.jid.as_str(),
        bundle.fingerprint,
        bundle.ik,
        bundle.ek,
        bundle.created,
        bundle.sig,
        bundle.xml,
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Stores the secret blob with its update, replacing the previous one (the caller
/// checked the signature and that the seq is greater, under the account's row lock).
#[instrument(skip_all)]
async fn upsert_secret(tx: &mut PgConnection, jid: &BareJid, secret: &NewSecret) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO secret_blobs (jid, kdf_m_kib, kdf_t, kdf_p, xml, seq, sig) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (jid) DO UPDATE
            SET kdf_m_kib = excluded.kdf_m_kib, kdf_t = excluded.kdf_t, kdf_p = excluded.kdf_p,
                xml = excluded.xml, seq = excluded.seq, sig = excluded.sig, updated_at = now()",
        jid.as_str(),
        secret.m_kib,
        secret.t,
        secret.p,
        secret.xml,
        secret.seq,
        &secret.update.signature()[..],
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// The account's secret blob.
#[instrument(skip(pool), fields(jid = %jid))]
pub async fn secret(pool: &PgPool, jid: &BareJid) -> ApiResult<String> {
    let row = sqlx::query!(
        r#"SELECT a.status AS "status: Status", s.xml AS "xml?" FROM accounts a LEFT JOIN secret_blobs s ON s.jid = a.jid WHERE a.jid = $1"#,
        jid.as_str()
    )
    .fetch_optional(pool)
    .await?;
    match row.map(|row| (row.status, row.xml)) {
        None | Some((_, None)) => Err(ApiError::NotFound("no secret is stored for this account".into())),
        Some((Status::Revoked, _)) => Err(ApiError::Revoked),
        Some((_, Some(xml))) => Ok(xml),
    }
}

/// What the directory knows of one account, for a lookup.
#[derive(Clone)]
pub struct Known {
    /// The account.
    pub jid: String,
    /// Its status.
    pub status: Status,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why.
    pub reason: Option<String>,
    /// Its bundle.
    pub bundle: Option<String>,
}

/// What the directory knows of one account, and whether the requester holds its key already.
struct KnownHeld {
    jid: String,
    status: Status,
    revoked_at: Option<OffsetDateTime>,
    reason: Option<String>,
    bundle: Option<String>,
    held: bool,
}

impl From<KnownHeld> for Known {
    fn from(row: KnownHeld) -> Self {
        Self { jid: row.jid, status: row.status, revoked_at: row.revoked_at, reason: row.reason, bundle: row.bundle }
    }
}

/// Whether answering an account to `requester` hands out a key that must be recorded as held:
/// an active bundle that is not the requester's own. The one rule for lookups and group commit.
pub(super) fn hands_out_key(status: Status, has_bundle: bool, jid: &str, requester: &BareJid) -> bool {
    status == Status::Active && has_bundle && jid != requester.as_str()
}

/// Whether answering `row` to `requester` gives it a key it does not hold yet (a new holder edge).
fn gives_new_key(row: &KnownHeld, requester: &BareJid) -> bool {
    !row.held && hands_out_key(row.status, row.bundle.is_some(), &row.jid, requester)
}

/// Looks up accounts and records that `requester` holds each active bundle returned.
///
/// Most lookups are of keys the requester holds already: they only read (no transaction that
/// writes, no row lock). That is safe because the edge is committed: a revocation that commits
/// later fans out to every edge it sees, this one included. Only a lookup that hands out a key
/// for the first time records edges, through `edges` (group commit), where the edge is durable
/// before the answer leaves; it is refused (`holding-limit`) when the requester would then hold
/// more than `max_holdings` keys.
#[instrument(skip_all, fields(count = jids.len()))]
pub async fn lookup(
    pool: &PgPool,
    edges: &EdgeWriter,
    requester: Option<&BareJid>,
    jids: &[BareJid],
    max_holdings: i64,
) -> ApiResult<Vec<Known>> {
    let mut wanted: Vec<&str> = jids.iter().map(BareJid::as_str).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let holder = requester.map_or("", BareJid::as_str);
    let rows = read_known(pool, &wanted, holder).await?;
    let Some(requester) = requester else { return Ok(rows.into_iter().map(Known::from).collect()) };
    let new = rows.iter().filter(|row| gives_new_key(row, requester)).count();
    if new == 0 {
        return Ok(rows.into_iter().map(Known::from).collect());
    }
    // A key is never answered without its edge: past the cap, the lookup is refused whole.
    super::holdings::check(pool, requester, i64::try_from(new).unwrap_or(i64::MAX), max_holdings).await?;
    edges.record(requester, &wanted).await
}

/// Reads the accounts among `jids` (sorted, distinct) that exist, in JID order, and whether
/// `holder` (empty: nobody) holds each one's key; a plain read, no lock.
#[instrument(skip_all)]
async fn read_known(pool: &PgPool, jids: &[&str], holder: &str) -> sqlx::Result<Vec<KnownHeld>> {
    sqlx::query_as!(
        KnownHeld,
        r#"SELECT a.jid, a.status AS "status: Status", a.revoked_at, a.reason, b.xml AS "bundle?",
                  EXISTS (SELECT 1 FROM holders h WHERE h.jid = a.jid AND h.holder = $2) AS "held!"
           FROM accounts a LEFT JOIN bundles b ON b.jid = a.jid
          WHERE a.jid = ANY($1) ORDER BY a.jid"#,
        jids as &[&str],
        holder
    )
    .fetch_all(pool)
    .await
}

/// Reads the accounts among `jids` (sorted, distinct) that exist, in JID order.
/// FOR SHARE: a revocation of one of these waits until the holder edges are
/// committed, so its fan-out includes this requester.
#[instrument(skip_all)]
pub(super) async fn share_known(tx: &mut PgConnection, jids: &[&str]) -> sqlx::Result<Vec<Known>> {
    sqlx::query_as!(
        Known,
        r#"SELECT a.jid, a.status AS "status: Status", a.revoked_at, a.reason, b.xml AS "bundle?"
           FROM accounts a LEFT JOIN bundles b ON b.jid = a.jid
          WHERE a.jid = ANY($1) ORDER BY a.jid FOR SHARE OF a"#,
        jids as &[&str]
    )
    .fetch_all(tx)
    .await
}

/// Records the holder edges `(jids[i], holders[i])`, given in `(jid, holder)` order.
#[instrument(skip_all, fields(count = jids.len()))]
pub(super) async fn insert_edges(tx: &mut PgConnection, jids: &[&str], holders: &[&str]) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO holders (jid, holder) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (jid, holder) DO NOTHING",
        jids as &[&str],
        holders as &[&str]
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Records that `to` holds `from`'s key and queues a key-relay notice to `to`.
#[instrument(skip(pool), fields(from = %from, to = %to))]
pub async fn relay(pool: &PgPool, from: &BareJid, to: &BareJid) -> ApiResult<i64> {
    let mut tx = pool.begin().await?;
    match share_bundle(&mut tx, from).await? {
        None | Some((_, false)) => return Err(ApiError::NotFound("the sender has no bundle".into())),
        Some((Status::Revoked, _)) => return Err(ApiError::Revoked),
        Some((Status::Active, true)) => {}
    }
    insert_holder(&mut tx, from, to).await?;
    // The notice names its subject; the claim reads the bundle (which never changes) from there.
    let id = insert_relay_notice(&mut tx, from, to).await?;
    tx.commit().await?;
    Ok(id)
}

/// The account's status and whether it has a bundle, if it exists, locked `FOR SHARE`.
#[instrument(skip_all)]
async fn share_bundle(tx: &mut PgConnection, jid: &BareJid) -> sqlx::Result<Option<(Status, bool)>> {
    let row = sqlx::query!(
        r#"SELECT a.status AS "status: Status", b.jid IS NOT NULL AS "has_bundle!"
           FROM accounts a LEFT JOIN bundles b ON b.jid = a.jid
          WHERE a.jid = $1 FOR SHARE OF a"#,
        jid.as_str()
    )
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|row| (row.status, row.has_bundle)))
}

/// Records that `holder` holds `jid`'s key.
#[instrument(skip_all)]
async fn insert_holder(tx: &mut PgConnection, jid: &BareJid, holder: &BareJid) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO holders (jid, holder) VALUES ($1, $2) ON CONFLICT (jid, holder) DO NOTHING",
        jid.as_str(),
        holder.as_str()
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Queues a key-relay notice about `from` to `to`; returns its id.
#[instrument(skip_all)]
async fn insert_relay_notice(tx: &mut PgConnection, from: &BareJid, to: &BareJid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO notices (recipient, kind, subject) VALUES ($1, 'key-relay', $2) RETURNING id",
        to.as_str(),
        from.as_str()
    )
    .fetch_one(tx)
    .await
}
