//! The key set-up: first use, a new device, this device or a recovery, decided and done on one connection with one login and one lookup.

use super::{Account, Session, Setup, directory, now_ms, restore, run_kdf};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::store::{AccountState, Store};
use keyward_proto::elements::{KeyStatus, Publish};
use keyward_proto::restore::{AnySecret, RecoveryCode};
use keyward_proto::{BareJid, Bundle, KdfPolicy, KeyPair, SecretBlob, VerifiedBundle, XmlElement};
use secrecy::{ExposeSecret, SecretString};

/// Which set-ups the caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Whatever the account needs: this device's keys, else the server's, else new ones.
    Any,
    /// New keys only (`keyward init`).
    FirstUse,
    /// The server's keys only (`keyward login`).
    NewDevice,
    /// This device's keys, else the server's (every other command).
    Existing,
}

/// Seals keys kept on this device only as a version 0 blob (Argon2id alone): without a
/// component there is no keydir to evaluate an OPRF, and the blob never leaves this device.
async fn seal_local(account: &Account, keys: KeyPair) -> Result<(KeyPair, SecretBlob)> {
    KdfPolicy::STRICT.check(&account.kdf)?;
    let passphrase = account.passphrase.clone();
    let jid = account.connect.jid.clone();
    let params = account.kdf;
    let (keys, blob) = run_kdf(&account.progress, move || {
        let blob = SecretBlob::seal(&keys, &jid, passphrase.expose_secret().as_bytes(), params);
        (keys, blob)
    })
    .await?;
    Ok((keys, blob?))
}

/// Opens a version 0 blob with the passphrase (Argon2id alone; no keydir involved).
async fn open_v0(account: &Account, blob: SecretBlob, bundle: &VerifiedBundle) -> Result<KeyPair> {
    let passphrase = account.passphrase.clone();
    let jid = account.connect.jid.clone();
    let opened =
        run_kdf(&account.progress, move || blob.open(passphrase.expose_secret().as_bytes(), &jid, &KdfPolicy::STRICT))
            .await?;
    let keys = match opened {
        Ok(keys) => keys,
        Err(keyward_proto::Error::Decrypt) => return Err(Error::WrongPassphrase { tries_left: None }),
        Err(e) => return Err(e.into()),
    };
    restore::check_matches(&keys, bundle, &account.connect.jid)?;
    Ok(keys)
}

/// Keys that were opened, the blob to cache, and the recovery code made on the way (first use,
/// or the migration of a version 0 blob), to be shown to the user once.
struct Opened {
    keys: KeyPair,
    secret: AnySecret,
    recovery_code: Option<RecoveryCode>,
}

/// Migration (protocol section 6.2): keys opened from a version 0 blob are sealed again as
/// version 1, with a new recovery code, published over the version 0 blob (a greater seq), and
/// proven, so the count keydir made for the sealing is cleared. The keys are open either way:
/// when the migration fails, the version 0 blob stays cached and the next start tries again.
async fn migrate(
    account: &Account,
    conn: &mut Connection,
    component: &BareJid,
    keys: KeyPair,
    local: SecretBlob,
    bundle: &VerifiedBundle,
) -> Result<Opened> {
    let me = &account.connect.jid;
    let (keys, sealed) = restore::seal(account, conn, component, keys).await?;
    let published = async {
        let (blob, code, challenge) = sealed?;
        let publish = Publish::signed(&keys, bundle, blob.clone(), now_ms())?;
        directory::publish(conn, component, me, &publish).await?;
        restore::prove(conn, component, me, &keys, challenge).await?;
        Ok::<_, Error>((blob, code))
    }
    .await;
    match published {
        Ok((blob, code)) => {
            tracing::info!(account = %me, "the sealed keys were migrated to version 1 (guess-limited restore)");
            Ok(Opened { keys, secret: blob.into(), recovery_code: Some(code) })
        }
        Err(e) => {
            tracing::warn!(cause = %e, "could not migrate the sealed keys to version 1; the next start tries again");
            Ok(Opened { keys, secret: local.into(), recovery_code: None })
        }
    }
}

/// Opens the account's blob (cached here or fetched from the directory) with the passphrase;
/// a version 0 blob is migrated when the directory holds one ([`migrate`]).
async fn open_any(
    account: &Account,
    conn: &mut Connection,
    component: Option<&BareJid>,
    secret: AnySecret,
    bundle: &VerifiedBundle,
) -> Result<Opened> {
    match (secret, component) {
        (AnySecret::V1(blob), Some(component)) => {
            match restore::open(account, conn, component, blob.clone(), bundle).await {
                Ok(keys) => Ok(Opened { keys, secret: blob.into(), recovery_code: None }),
                // The passphrase may have been changed on another device (`keyward recover`):
                // the directory's blob, if it is another one, is worth the one more guess.
                Err(wrong @ Error::WrongPassphrase { .. }) => {
                    match directory::fetch_secret(conn, component, &account.connect.jid).await {
                        Ok(AnySecret::V1(current)) if current != blob => {
                            let keys = restore::open(account, conn, component, current.clone(), bundle).await?;
                            Ok(Opened { keys, secret: current.into(), recovery_code: None })
                        }
                        _ => Err(wrong),
                    }
                }
                Err(e) => Err(e),
            }
        }
        (AnySecret::V1(_), None) => Err(Error::NoComponent { domain: account.connect.jid.domain().to_owned() }),
        (AnySecret::V0(blob), component) => {
            let keys = open_v0(account, blob.clone(), bundle).await?;
            let Some(component) = component else {
                return Ok(Opened { keys, secret: blob.into(), recovery_code: None });
            };
            upgrade(account, conn, component, keys, blob, bundle).await
        }
    }
}

/// After a version 0 blob opened: migrates the directory's version 0 blob, or adopts its
/// version 1 blob when another device migrated it first. Keys that were never published (kept
/// on this device only), and failures, leave the cached blob as it is; the next start tries again.
async fn upgrade(
    account: &Account,
    conn: &mut Connection,
    component: &BareJid,
    keys: KeyPair,
    local: SecretBlob,
    bundle: &VerifiedBundle,
) -> Result<Opened> {
    let me = &account.connect.jid;
    let kept = |keys| Opened { keys, secret: local.clone().into(), recovery_code: None };
    let outcome = match directory::fetch_secret(conn, component, me).await {
        Err(Error::SecretMismatch(_)) => return Ok(kept(keys)),
        Err(e) => Err(e),
        Ok(AnySecret::V0(_)) => return migrate(account, conn, component, keys, local, bundle).await,
        Ok(AnySecret::V1(blob)) => restore::open(account, conn, component, blob.clone(), bundle)
            .await
            .map(|opened| Opened { keys: opened, secret: blob.into(), recovery_code: None }),
    };
    match outcome {
        Ok(opened) => Ok(opened),
        // Keeping the old blob would spend one more counted guess at every start.
        Err(Error::WrongPassphrase { .. }) => Err(Error::PassphraseChangedElsewhere(me.clone())),
        // The account's restore is locked: nothing may be guessed until an admin acts.
        Err(e @ Error::RestoreLocked(_)) => Err(e),
        Err(e) => {
            tracing::warn!(cause = %e, "could not adopt the directory's version 1 blob; using the one on this device");
            Ok(kept(keys))
        }
    }
}

impl Session {
    /// Opens a session with no key handling asked of the user: keys cached on this
    /// device, else fetched from the server (new device), else generated and
    /// published (first use). One connection, one login, at most one `keys` lookup.
    pub async fn start(account: &Account) -> Result<(Self, Setup)> {
        Self::set_up(account, Want::Any).await
    }

    /// First use: generates keys, seals them with the passphrase (Argon2id and keydir's OPRF,
    /// protocol section 6.2) and a new recovery code ([`Session::take_recovery_code`]),
    /// publishes bundle and secret to the component, and caches both here.
    pub async fn first_use(account: &Account) -> Result<Self> {
        Ok(Self::set_up(account, Want::FirstUse).await?.0)
    }

    /// A new device: fetches the sealed secret, opens it with the passphrase (refusing
    /// weakened KDF parameters; each try is one guess counted by keydir until it is proven),
    /// and checks it matches the published bundle. A version 0 blob is migrated to version 1.
    pub async fn new_device(account: &Account) -> Result<Self> {
        Ok(Self::set_up(account, Want::NewDevice).await?.0)
    }

    /// Opens the keys cached on this device (or fetches them like a new device).
    pub async fn resume(account: &Account) -> Result<Self> {
        Ok(Self::set_up(account, Want::Existing).await?.0)
    }

    /// Uses keys that were made elsewhere, without publishing them: they are
    /// sealed with the passphrase (version 0: no keydir takes part) and cached on this device
    /// only. For setups where bundles travel out of band (no component), and for tests.
    pub async fn with_local_keys(account: &Account, keys: KeyPair, created_unix_s: u64) -> Result<Self> {
        let store = account.open_store()?;
        let me = account.connect.jid.clone();
        let (keys, secret) = seal_local(account, keys).await?;
        let bundle = Bundle::sign(&keys, me.clone(), created_unix_s);
        store.save_account(&AccountState::new(&bundle, &secret.into()))?;
        let mut conn = Connection::connect(&account.connect).await?;
        let component = directory::component_or_server(&mut conn, account).await?;
        Ok(Self::assemble(conn, me, component, keys, bundle, store, None))
    }

    async fn set_up(account: &Account, want: Want) -> Result<(Self, Setup)> {
        let store = account.open_store()?;
        let me = account.connect.jid.clone();
        let cached = match want {
            Want::Any | Want::Existing => store.account()?,
            Want::FirstUse | Want::NewDevice => None,
        };
        let mut conn = Connection::connect(&account.connect).await?;
        if let Some(state) = cached {
            let bundle = state.bundle(&me)?;
            let found = match conn.find_component(account.connect.component.as_ref()).await {
                Ok(component) => Some(component),
                Err(Error::NoComponent { .. }) => None,
                Err(e) => return Err(e),
            };
            let opened = open_any(account, &mut conn, found.as_ref(), state.secret()?, &bundle).await?;
            if opened.secret.to_xml() != state.secret {
                store.save_account(&AccountState::new(&bundle, &opened.secret))?;
            }
            // Without a component, the server's own domain stands in (it refuses keyward requests).
            let component = match found {
                Some(component) => component,
                None => BareJid::parse(me.domain())?,
            };
            let session = Self::assemble(conn, me, component, opened.keys, bundle, store, opened.recovery_code);
            return Ok((session, Setup::ThisDevice));
        }
        let component = conn.find_component(account.connect.component.as_ref()).await?;
        // The directory's view decides: revoked, no keys yet, or keys to fetch.
        let item = directory::lookup_one(&mut conn, &component, &store, &me).await?;
        let (opened, bundle, setup) = match (item.status, want) {
            (KeyStatus::Revoked { reason, .. }, _) => return Err(Error::Revoked { jid: me, reason: Some(reason) }),
            (KeyStatus::None, Want::NewDevice | Want::Existing) => return Err(Error::NotInitialized(me)),
            (KeyStatus::None, Want::Any | Want::FirstUse) => {
                account.passphrase_policy.check(
                    account.passphrase.expose_secret(),
                    account.connect.password.expose_secret(),
                    &me,
                )?;
                let (keys, sealed) = restore::seal(account, &mut conn, &component, KeyPair::generate()?).await?;
                let (blob, code, challenge) = sealed?;
                let bundle = Bundle::sign(&keys, me.clone(), now_ms() / 1000);
                let publish = Publish::signed(&keys, &bundle, blob.clone(), now_ms())?;
                directory::publish(&mut conn, &component, &me, &publish).await?;
                restore::prove(&mut conn, &component, &me, &keys, challenge).await?;
                (Opened { keys, secret: blob.into(), recovery_code: Some(code) }, bundle, Setup::FirstUse)
            }
            (KeyStatus::Active, Want::FirstUse) => return Err(Error::AlreadyInitialized(me)),
            (KeyStatus::Active, Want::Any | Want::NewDevice | Want::Existing) => {
                let bundle = item.bundle.as_ref().ok_or(Error::UnexpectedAnswer("keys"))?;
                let bundle = crate::contacts::verify_bundle(bundle, &me)
                    .map_err(|cause| Error::BadBundle { jid: me.clone(), cause })?;
                let secret = directory::fetch_secret(&mut conn, &component, &me).await?;
                let opened = match secret {
                    AnySecret::V1(blob) => {
                        let keys = restore::open(account, &mut conn, &component, blob.clone(), &bundle).await?;
                        Opened { keys, secret: blob.into(), recovery_code: None }
                    }
                    AnySecret::V0(blob) => {
                        let keys = open_v0(account, blob.clone(), &bundle).await?;
                        migrate(account, &mut conn, &component, keys, blob, &bundle).await?
                    }
                };
                (opened, bundle, Setup::NewDevice)
            }
        };
        store.save_account(&AccountState::new(&bundle, &opened.secret))?;
        Ok((Self::assemble(conn, me, component, opened.keys, bundle, store, opened.recovery_code), setup))
    }

    /// Forgot the passphrase: opens the directory's version 1 blob with `code` (the recovery
    /// slot needs no keydir, so no guess is counted), then seals it again with the account's
    /// passphrase as the new one (checked by the policy) and a new recovery code
    /// ([`Session::take_recovery_code`]; the used one no longer opens anything), publishes it
    /// and proves it. A locked restore ([`Error::RestoreLocked`]) must be unlocked by an admin first.
    pub async fn recover(account: &Account, code: &RecoveryCode) -> Result<Self> {
        let store = account.open_store()?;
        let me = account.connect.jid.clone();
        let mut conn = Connection::connect(&account.connect).await?;
        let component = conn.find_component(account.connect.component.as_ref()).await?;
        let item = directory::lookup_one(&mut conn, &component, &store, &me).await?;
        let bundle = match (item.status, item.bundle) {
            (KeyStatus::Revoked { reason, .. }, _) => return Err(Error::Revoked { jid: me, reason: Some(reason) }),
            (KeyStatus::None, _) | (KeyStatus::Active, None) => return Err(Error::NotInitialized(me)),
            (KeyStatus::Active, Some(bundle)) => crate::contacts::verify_bundle(&bundle, &me)
                .map_err(|cause| Error::BadBundle { jid: me.clone(), cause })?,
        };
        let AnySecret::V1(blob) = directory::fetch_secret(&mut conn, &component, &me).await? else {
            return Err(Error::NoRecoverySlot(me));
        };
        let opened = restore::open_with_recovery(&blob, code, &me)?;
        restore::check_matches(opened.keys(), &bundle, &me)?;
        account.passphrase_policy.check(
            account.passphrase.expose_secret(),
            account.connect.password.expose_secret(),
            &me,
        )?;
        let new_code = RecoveryCode::generate()?;
        let (opened, blob, challenge) =
            restore::reseal(account, &mut conn, &component, blob, opened, &new_code).await?;
        let keys = opened.into_keys();
        let publish = Publish::signed(&keys, &bundle, blob.clone(), now_ms())?;
        directory::publish(&mut conn, &component, &me, &publish).await?;
        restore::prove(&mut conn, &component, &me, &keys, challenge).await?;
        store.save_account(&AccountState::new(&bundle, &blob.into()))?;
        Ok(Self::assemble(conn, me, component, keys, bundle, store, Some(new_code)))
    }

    /// Changes the account's passphrase to `new` (checked by the policy; `account` is this
    /// session's): the keys it holds are sealed again as a new version 1 blob (one evaluation of
    /// the new passphrase) with a new recovery code, which is returned to be shown once; the blob
    /// is published over the old one and proven. From then on the old passphrase and the old
    /// code open nothing the directory hands out; a copy of an older blob (a backup) still holds
    /// the same keys under the old passphrase, which no change can undo.
    pub async fn change_passphrase(&mut self, account: &Account, new: SecretString) -> Result<RecoveryCode> {
        account.passphrase_policy.check(new.expose_secret(), account.connect.password.expose_secret(), &self.me)?;
        let mut next = account.clone();
        next.passphrase = new;
        let keys = std::sync::Arc::clone(&self.keys);
        let (blob, code, challenge) = restore::seal_shared(&next, &mut self.conn, &self.component, keys).await?;
        let publish = Publish::signed(&self.keys, &self.bundle, blob.clone(), now_ms())?;
        directory::publish(&mut self.conn, &self.component, &self.me, &publish).await?;
        restore::prove(&mut self.conn, &self.component, &self.me, &self.keys, challenge).await?;
        self.store.save_account(&AccountState::new(&self.bundle, &blob.into()))?;
        Ok(code)
    }

    fn assemble(
        conn: Connection,
        me: BareJid,
        component: BareJid,
        keys: KeyPair,
        bundle: VerifiedBundle,
        store: Store,
        recovery_code: Option<RecoveryCode>,
    ) -> Self {
        let keys = std::sync::Arc::new(keys);
        Self {
            conn,
            me,
            component,
            keys,
            bundle,
            store,
            caught_up: Default::default(),
            retries: Default::default(),
            recovery_code,
            own_key_checked: None,
        }
    }
}
