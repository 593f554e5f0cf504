//! The guess-limited restore on the client (protocol section 6.2): the OPRF exchange through the component, version 1 blobs sealed and opened, the restore proof.
//!
//! The passphrase never leaves this device: keydir sees a blinded group element, and the
//! unblinded output stays here, combined with Argon2id of the passphrase into the key of the
//! blob's passphrase slot. Every evaluation counts as a failed guess at keydir until this
//! client proves, by signing keydir's challenge with the identity key it just opened, that
//! the guess was right.

use super::{Account, run_kdf};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::stanzas;
use keyward_proto::elements::{OprfQuery, OprfResult, RestoreProof};
use keyward_proto::restore::{OpenedV1, OprfOutput, RecoveryCode, RestoreChallenge, SecretV1, blind, finalize};
use keyward_proto::{BareJid, KdfPolicy, KeyPair, VerifiedBundle, XmlElement};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokio_xmpp::IqRequest;

/// keydir's answer for one passphrase: the unblinded output and the challenge to sign.
pub(super) struct Evaluated {
    output: OprfOutput,
    challenge: RestoreChallenge,
    /// keydir's word on how many more unproven tries it answers (informative only).
    left: Option<u32>,
}

/// Blinds `passphrase`, has keydir evaluate it through the component (one counted guess) and
/// unblinds the answer. A locked account is [`Error::RestoreLocked`]; a keydir without an OPRF
/// seed is [`Error::RestoreUnavailable`].
pub(super) async fn evaluate(
    conn: &mut Connection,
    component: &BareJid,
    me: &BareJid,
    passphrase: &SecretString,
) -> Result<Evaluated> {
    let (state, blinded) = blind(passphrase.expose_secret().as_bytes())?;
    let request = IqRequest::Get(stanzas::to_minidom(&OprfQuery { blinded }.to_element())?);
    let answer = match conn.iq(Some(component), request, "oprf").await {
        Ok(Some(answer)) => answer,
        Ok(None) => return Err(Error::UnexpectedAnswer("oprf")),
        Err(Error::Refused { condition, text, .. }) if condition == "not-allowed" && is(&text, "restore-locked") => {
            return Err(Error::RestoreLocked(me.clone()));
        }
        Err(Error::Refused { condition, .. }) if condition == "service-unavailable" => {
            return Err(Error::RestoreUnavailable);
        }
        Err(e) => return Err(e),
    };
    let result = OprfResult::from_element(&stanzas::from_minidom(&answer)?)?;
    let output = finalize(state, &result.evaluated)?;
    Ok(Evaluated { output, challenge: result.challenge, left: result.left })
}

fn is(text: &Option<String>, name: &str) -> bool {
    text.as_deref() == Some(name)
}

/// Proves to keydir that the guess behind `challenge` was right, which clears the account's
/// failed guesses: the challenge signed with the identity key just opened (or just published).
pub(super) async fn prove(
    conn: &mut Connection,
    component: &BareJid,
    me: &BareJid,
    keys: &KeyPair,
    challenge: RestoreChallenge,
) -> Result<()> {
    let proof = RestoreProof::sign(keys, me, challenge);
    conn.iq(Some(component), IqRequest::Set(stanzas::to_minidom(&proof.to_element())?), "restore-proof").await?;
    Ok(())
}

/// A version 1 blob just sealed, its recovery code, and the challenge to prove with once the
/// blob is published.
pub(super) type Sealed = (SecretV1, RecoveryCode, RestoreChallenge);

/// Seals `keys` as a version 1 blob with the account's passphrase (one evaluation) and a fresh
/// recovery code. The keys come back whether or not the sealing worked (the outer error only
/// when the KDF task itself died).
pub(super) async fn seal(
    account: &Account,
    conn: &mut Connection,
    component: &BareJid,
    keys: KeyPair,
) -> Result<(KeyPair, Result<Sealed>)> {
    let keys = Arc::new(keys);
    let sealed = seal_shared(account, conn, component, Arc::clone(&keys)).await;
    // The KDF task has ended and dropped its handle: the keys are this one's alone again.
    let keys = Arc::try_unwrap(keys).map_err(|_| Error::Connection("the KDF task kept the keys".into()))?;
    Ok((keys, sealed))
}

/// [`seal`] of keys the caller keeps (a running session's).
pub(super) async fn seal_shared(
    account: &Account,
    conn: &mut Connection,
    component: &BareJid,
    keys: Arc<KeyPair>,
) -> Result<Sealed> {
    KdfPolicy::STRICT.check(&account.kdf)?;
    let me = account.connect.jid.clone();
    let Evaluated { output, challenge, .. } = evaluate(conn, component, &me, &account.passphrase).await?;
    let code = RecoveryCode::generate()?;
    let passphrase = account.passphrase.clone();
    let params = account.kdf;
    let (code, blob) = run_kdf(&account.progress, move || {
        let blob = SecretV1::seal(&keys, &me, passphrase.expose_secret().as_bytes(), &output, &code, params);
        (code, blob)
    })
    .await?;
    Ok((blob?, code, challenge))
}

/// Checks that opened keys are the ones the account published.
pub(super) fn check_matches(keys: &KeyPair, bundle: &VerifiedBundle, me: &BareJid) -> Result<()> {
    if keys.identity_public() != *bundle.identity_key() || keys.encryption_public() != *bundle.encryption_key() {
        return Err(Error::SecretMismatch(me.clone()));
    }
    Ok(())
}

/// Opens a version 1 blob with the account's passphrase: its KDF parameters are checked before
/// a guess is spent, then one evaluation, Argon2id, the slot; the keys must be the published
/// ones, and the proof clears the failed guesses.
pub(super) async fn open(
    account: &Account,
    conn: &mut Connection,
    component: &BareJid,
    blob: SecretV1,
    bundle: &VerifiedBundle,
) -> Result<KeyPair> {
    KdfPolicy::STRICT.check(blob.params())?;
    let me = account.connect.jid.clone();
    let Evaluated { output, challenge, left } = evaluate(conn, component, &me, &account.passphrase).await?;
    let passphrase = account.passphrase.clone();
    let jid = me.clone();
    let opened = run_kdf(&account.progress, move || {
        blob.open_with_passphrase(passphrase.expose_secret().as_bytes(), &output, &jid, &KdfPolicy::STRICT)
    })
    .await?;
    let keys = match opened {
        Ok(opened) => opened.into_keys(),
        Err(keyward_proto::Error::Decrypt) => return Err(Error::WrongPassphrase { tries_left: left }),
        Err(e) => return Err(e.into()),
    };
    check_matches(&keys, bundle, &me)?;
    prove(conn, component, &me, &keys, challenge).await?;
    Ok(keys)
}

/// Opens a version 1 blob with a recovery code (no keydir involved: the code is 130 random bits).
pub(super) fn open_with_recovery(blob: &SecretV1, code: &RecoveryCode, me: &BareJid) -> Result<OpenedV1> {
    match blob.open_with_recovery(code, me) {
        Ok(opened) => Ok(opened),
        Err(keyward_proto::Error::Decrypt) => Err(Error::WrongRecoveryCode),
        Err(e) => Err(e.into()),
    }
}

/// A copy of `blob` (opened as `opened`) with the account's passphrase as its new passphrase
/// (one evaluation) and `code` as its new recovery code; and the challenge to prove with.
pub(super) async fn reseal(
    account: &Account,
    conn: &mut Connection,
    component: &BareJid,
    blob: SecretV1,
    opened: OpenedV1,
    code: &RecoveryCode,
) -> Result<(OpenedV1, SecretV1, RestoreChallenge)> {
    KdfPolicy::STRICT.check(&account.kdf)?;
    let me = account.connect.jid.clone();
    let Evaluated { output, challenge, .. } = evaluate(conn, component, &me, &account.passphrase).await?;
    let passphrase = account.passphrase.clone();
    let params = account.kdf;
    let code = code.clone();
    let (opened, blob) = run_kdf(&account.progress, move || {
        let resealed = blob
            .reseal_passphrase(&opened, &me, passphrase.expose_secret().as_bytes(), &output, params)
            .and_then(|blob| blob.reseal_recovery(&opened, &me, &code));
        (opened, resealed)
    })
    .await?;
    Ok((opened, blob?, challenge))
}
