//! The guess-limited restore's count (protocol section 6.2): one row-locked transaction per evaluation, per proof, per unlock.
//!
//! Everything is in Postgres (`restore_attempts`, `restore_challenges`), so the count and the
//! lock survive restarts and are shared by every replica: each change locks the account's row
//! `FOR UPDATE` first, so concurrent evaluations through two replicas are counted one after the
//! other and only one of them can be the last one allowed.

use super::Status;
use crate::problem::{ApiError, ApiResult};
use keyward_proto::{BareJid, IdentityPublic};
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use time::OffsetDateTime;
use tracing::instrument;

mod policy;
mod unlock;
pub use policy::{Policy, Refusal, State, decide};
pub use unlock::unlock;

/// How long a challenge stays good for its proof.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(15 * 60);

/// The account's row in `restore_attempts`, locked, and the transaction's time.
struct Counted {
    attempts: i32,
    locked_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
}

impl Counted {
    fn state(&self) -> State {
        State { attempts: self.attempts, locked_at: self.locked_at }
    }
}

/// Refuses a revoked account (403); holds a share lock on its row until the transaction ends,
/// so a revocation waits for it. An account with no row yet gets one, without a bundle: at first
/// use the client seals its blob (one evaluation) before it publishes, and guesses made before
/// first use must count as much as later ones (an answer for a guessed passphrase would open
/// the blob the account publishes later with that passphrase).
#[instrument(skip_all)]
async fn usable(tx: &mut PgConnection, jid: &BareJid) -> ApiResult<()> {
    super::accounts::insert_account(&mut *tx, jid).await?;
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: Status" FROM accounts WHERE jid = $1 FOR SHARE"#,
        jid.as_str()
    )
    .fetch_optional(tx)
    .await?;
    match status {
        None => Err(ApiError::NotFound("no such account".into())),
        Some(Status::Revoked) => Err(ApiError::Revoked),
        Some(Status::Active) => Ok(()),
    }
}

/// Locks the account's count row `FOR UPDATE`, creating it first if needed.
#[instrument(skip_all)]
async fn lock_count(tx: &mut PgConnection, jid: &BareJid) -> sqlx::Result<Counted> {
    sqlx::query!("INSERT INTO restore_attempts (jid) VALUES ($1) ON CONFLICT (jid) DO NOTHING", jid.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query_as!(
        Counted,
        r#"SELECT attempts, locked_at, now() AS "now!" FROM restore_attempts WHERE jid = $1 FOR UPDATE"#,
        jid.as_str()
    )
    .fetch_one(tx)
    .await
}

/// Writes the count and the lock.
#[instrument(skip_all)]
async fn write_count(tx: &mut PgConnection, jid: &BareJid, state: State, attempted: bool) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE restore_attempts
            SET attempts = $2, locked_at = $3, updated_at = now(),
                last_attempt_at = CASE WHEN $4 THEN now() ELSE last_attempt_at END
          WHERE jid = $1",
        jid.as_str(),
        state.attempts,
        state.locked_at,
        attempted
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Records a challenge issued to `jid`, and deletes its expired ones.
#[instrument(skip_all)]
async fn insert_challenge(
    tx: &mut PgConnection,
    jid: &BareJid,
    challenge: &[u8; 32],
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM restore_challenges WHERE jid = $1 AND expires_at <= now()", jid.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "INSERT INTO restore_challenges (challenge, jid, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
        &challenge[..],
        jid.as_str(),
        now,
        now + CHALLENGE_TTL
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Counts one evaluation for `jid` and records its `challenge`, committed before the caller
/// evaluates: `Ok(attempts_left)`, or `restore-locked` (also when this call locks an account
/// whose count is already at the limit, e.g. after the limit was lowered).
#[instrument(skip(pool, challenge, policy), fields(jid = %jid))]
pub async fn count_evaluation(pool: &PgPool, jid: &BareJid, challenge: &[u8; 32], policy: &Policy) -> ApiResult<i64> {
    let mut tx = pool.begin().await?;
    usable(&mut tx, jid).await?;
    let counted = lock_count(&mut tx, jid).await?;
    match decide(counted.state(), counted.now, policy) {
        Ok(next) => {
            write_count(&mut tx, jid, next, true).await?;
            insert_challenge(&mut tx, jid, challenge, counted.now).await?;
            tx.commit().await?;
            Ok(i64::from(policy.max_attempts) - i64::from(next.attempts))
        }
        Err(Refusal { state, changed }) => {
            if changed {
                write_count(&mut tx, jid, state, false).await?;
                tx.commit().await?;
            }
            Err(ApiError::RestoreLocked(policy.locked_detail(state.locked_at)))
        }
    }
}

/// The stored bundle's identity key of an active account (404 unknown, 403 revoked), share-locked.
#[instrument(skip_all)]
async fn identity_key(tx: &mut PgConnection, jid: &BareJid) -> ApiResult<IdentityPublic> {
    let row = sqlx::query!(
        r#"SELECT a.status AS "status: Status", b.ik FROM accounts a JOIN bundles b ON b.jid = a.jid
            WHERE a.jid = $1 FOR SHARE OF a"#,
        jid.as_str()
    )
    .fetch_optional(tx)
    .await?;
    match row {
        None => Err(ApiError::NotFound("no such account".into())),
        Some(row) if row.status == Status::Revoked => Err(ApiError::Revoked),
        Some(row) => super::accounts::stored_identity_key(&row.ik),
    }
}

/// Whether `challenge` was issued to `jid`, is unused and has not expired (locked for the
/// transaction, so a concurrent proof with it waits and then finds it gone).
#[instrument(skip_all)]
async fn challenge_is_open(tx: &mut PgConnection, jid: &BareJid, challenge: &[u8; 32]) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!(
        "SELECT 1 AS one FROM restore_challenges WHERE challenge = $1 AND jid = $2 AND expires_at > now() FOR UPDATE",
        &challenge[..],
        jid.as_str()
    )
    .fetch_optional(tx)
    .await?;
    Ok(found.is_some())
}

/// Uses up a challenge.
#[instrument(skip_all)]
async fn delete_challenge(tx: &mut PgConnection, challenge: &[u8; 32]) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM restore_challenges WHERE challenge = $1", &challenge[..]).execute(tx).await?;
    Ok(())
}

/// Checks a restore proof: `verify` is given the stored bundle's identity key and says whether
/// the signature verifies. A refused proof (unknown, used or expired challenge; bad signature)
/// changes nothing. A good one uses up its challenge and clears the count: `Ok(true)`; on a
/// locked account it clears nothing (only an admin or the lock's expiry does): `Ok(false)`.
#[instrument(skip(pool, challenge, verify, policy), fields(jid = %jid))]
pub async fn prove(
    pool: &PgPool,
    jid: &BareJid,
    challenge: &[u8; 32],
    verify: impl FnOnce(&IdentityPublic) -> ApiResult<bool>,
    policy: &Policy,
) -> ApiResult<bool> {
    let mut tx = pool.begin().await?;
    let ik = identity_key(&mut tx, jid).await?;
    let counted = lock_count(&mut tx, jid).await?;
    if !challenge_is_open(&mut tx, jid, challenge).await? {
        return Err(ApiError::BadRestoreProof(
            "the challenge was not issued to this account, or was already used, or expired".into(),
        ));
    }
    if !verify(&ik)? {
        return Err(ApiError::BadRestoreProof("the signature does not verify with the account's identity key".into()));
    }
    delete_challenge(&mut tx, challenge).await?;
    let state = policy.effective(counted.state(), counted.now);
    let reset = state.locked_at.is_none();
    if reset {
        write_count(&mut tx, jid, State { attempts: 0, locked_at: None }, false).await?;
    }
    tx.commit().await?;
    Ok(reset)
}
