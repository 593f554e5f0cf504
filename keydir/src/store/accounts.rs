//! Accounts as the component sees them: publish, fetch the secret, look up bundles, relay.

use crate::problem::{ApiError, ApiResult};
use keyward_proto::elements::KeyRelay;
use keyward_proto::{BareJid, Bundle, SecretBlob, VerifiedBundle, XmlElement};
use sqlx::PgPool;
use time::OffsetDateTime;
use tracing::instrument;

/// A verified bundle with the fields the table stores.
pub struct NewBundle {
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

/// A parsed secret blob with the fields the table stores.
pub struct NewSecret {
    m_kib: i32,
    t: i32,
    p: i32,
    xml: String,
}

impl NewSecret {
    /// The columns of a parsed secret blob.
    pub fn from_blob(blob: &SecretBlob) -> ApiResult<Self> {
        let params = blob.params();
        let int = |v: u32| i32::try_from(v).map_err(|_| ApiError::BadSecret("KDF parameter out of range".into()));
        if params.m_kib == 0 || params.t == 0 || params.p == 0 {
            return Err(ApiError::BadSecret("KDF parameters must be positive".into()));
        }
        Ok(Self { m_kib: int(params.m_kib)?, t: int(params.t)?, p: int(params.p)?, xml: blob.to_xml() })
    }
}

/// The locked account row and its bundle's fields, if it has one.
#[derive(sqlx::FromRow)]
struct Current {
    status: String,
    ik: Option<Vec<u8>>,
    ek: Option<Vec<u8>>,
    created_unix: Option<i64>,
    sig: Option<Vec<u8>>,
}

/// Stores an account's bundle and secret. `Ok(true)`: created; `Ok(false)`:
/// the same bundle was already there (the secret is replaced).
#[instrument(skip_all, fields(jid = %bundle.jid))]
pub async fn publish(pool: &PgPool, bundle: &NewBundle, secret: &NewSecret) -> ApiResult<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO accounts (jid) VALUES ($1) ON CONFLICT (jid) DO NOTHING")
        .bind(bundle.jid.as_str())
        .execute(&mut *tx)
        .await?;
    // The row lock serialises publishes and revocations of this account.
    let current: Current = sqlx::query_as(
        "SELECT a.status, b.ik, b.ek, b.created_unix, b.sig
           FROM accounts a LEFT JOIN bundles b ON b.jid = a.jid
          WHERE a.jid = $1 FOR UPDATE OF a",
    )
    .bind(bundle.jid.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if current.status != "active" {
        return Err(ApiError::Revoked);
    }
    let created = match current.sig {
        Some(sig) => {
            let same = current.ik.as_deref() == Some(&bundle.ik[..])
                && current.ek.as_deref() == Some(&bundle.ek[..])
                && current.created_unix == Some(bundle.created)
                && sig == bundle.sig;
            if !same {
                return Err(ApiError::Conflict("a different bundle is already stored for this account".into()));
            }
            false
        }
        None => {
            sqlx::query(
                "INSERT INTO bundles (jid, fingerprint, ik, ek, created_unix, sig, xml)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(bundle.jid.as_str())
            .bind(&bundle.fingerprint)
            .bind(&bundle.ik)
            .bind(&bundle.ek)
            .bind(bundle.created)
            .bind(&bundle.sig)
            .bind(&bundle.xml)
            .execute(&mut *tx)
            .await?;
            true
        }
    };
    sqlx::query(
        "INSERT INTO secret_blobs (jid, kdf_m_kib, kdf_t, kdf_p, xml) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (jid) DO UPDATE
            SET kdf_m_kib = excluded.kdf_m_kib, kdf_t = excluded.kdf_t, kdf_p = excluded.kdf_p,
                xml = excluded.xml, updated_at = now()",
    )
    .bind(bundle.jid.as_str())
    .bind(secret.m_kib)
    .bind(secret.t)
    .bind(secret.p)
    .bind(&secret.xml)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// The account's secret blob.
#[instrument(skip(pool), fields(jid = %jid))]
pub async fn secret(pool: &PgPool, jid: &BareJid) -> ApiResult<String> {
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT a.status, s.xml FROM accounts a LEFT JOIN secret_blobs s ON s.jid = a.jid WHERE a.jid = $1",
    )
    .bind(jid.as_str())
    .fetch_optional(pool)
    .await?;
    match row {
        None | Some((_, None)) => Err(ApiError::NotFound("no secret is stored for this account".into())),
        Some((status, _)) if status != "active" => Err(ApiError::Revoked),
        Some((_, Some(xml))) => Ok(xml),
    }
}

/// What the directory knows of one account, for a lookup.
#[derive(sqlx::FromRow)]
pub struct Known {
    /// The account.
    pub jid: String,
    /// `active` or `revoked`.
    pub status: String,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why.
    pub reason: Option<String>,
    /// Its bundle.
    pub bundle: Option<String>,
}

/// Looks up accounts and records that `requester` holds each active bundle returned.
#[instrument(skip_all, fields(count = jids.len()))]
pub async fn lookup(pool: &PgPool, requester: Option<&BareJid>, jids: &[BareJid]) -> ApiResult<Vec<Known>> {
    let mut wanted: Vec<&str> = jids.iter().map(BareJid::as_str).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut tx = pool.begin().await?;
    // FOR SHARE: a revocation of one of these waits until the holder edges are
    // committed, so its fan-out includes this requester.
    let rows: Vec<Known> = sqlx::query_as(
        "SELECT a.jid, a.status, a.revoked_at, a.reason, b.xml AS bundle
           FROM accounts a LEFT JOIN bundles b ON b.jid = a.jid
          WHERE a.jid = ANY($1) ORDER BY a.jid FOR SHARE OF a",
    )
    .bind(&wanted)
    .fetch_all(&mut *tx)
    .await?;
    if let Some(requester) = requester {
        let held: Vec<&str> = rows
            .iter()
            .filter(|row| row.status == "active" && row.bundle.is_some() && row.jid != requester.as_str())
            .map(|row| row.jid.as_str())
            .collect();
        if !held.is_empty() {
            sqlx::query(
                "INSERT INTO holders (jid, holder) SELECT j, $2 FROM unnest($1::text[]) AS j ORDER BY j
                 ON CONFLICT (jid, holder) DO NOTHING",
            )
            .bind(&held)
            .bind(requester.as_str())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(rows)
}

/// Records that `to` holds `from`'s key and queues a key-relay notice to `to`.
#[instrument(skip(pool), fields(from = %from, to = %to))]
pub async fn relay(pool: &PgPool, from: &BareJid, to: &BareJid) -> ApiResult<i64> {
    let mut tx = pool.begin().await?;
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT a.status, b.xml FROM accounts a LEFT JOIN bundles b ON b.jid = a.jid
          WHERE a.jid = $1 FOR SHARE OF a",
    )
    .bind(from.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let xml = match row {
        None | Some((_, None)) => return Err(ApiError::NotFound("the sender has no bundle".into())),
        Some((status, _)) if status != "active" => return Err(ApiError::Revoked),
        Some((_, Some(xml))) => xml,
    };
    let bundle = Bundle::parse(xml.as_bytes()).map_err(|err| {
        tracing::error!(cause = %err, "a stored bundle does not parse");
        ApiError::Internal
    })?;
    let payload = KeyRelay { from: from.clone(), bundle }.to_xml();
    sqlx::query("INSERT INTO holders (jid, holder) VALUES ($1, $2) ON CONFLICT (jid, holder) DO NOTHING")
        .bind(from.as_str())
        .bind(to.as_str())
        .execute(&mut *tx)
        .await?;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO notices (recipient, kind, subject, payload) VALUES ($1, 'key-relay', $2, $3) RETURNING id",
    )
    .bind(to.as_str())
    .bind(from.as_str())
    .bind(&payload)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}
