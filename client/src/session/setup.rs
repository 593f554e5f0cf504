//! The key set-up: first use, a new device or this device, decided and done on one connection with one login and one lookup.

use super::{Account, KdfProgress, Session, Setup, directory, now_ms};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::store::{AccountState, Store};
use keyward_proto::elements::{KeyStatus, Publish};
use keyward_proto::{Bundle, KdfPolicy, KeyPair, SecretBlob, VerifiedBundle};
use secrecy::ExposeSecret;

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

async fn run_kdf<T: Send + 'static>(
    progress: &Option<KdfProgress>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    if let Some(p) = progress {
        p(true);
    }
    let out = tokio::task::spawn_blocking(work).await;
    if let Some(p) = progress {
        p(false);
    }
    out.map_err(|e| Error::Connection(format!("KDF task failed: {e}")))
}

async fn seal_secret(account: &Account, keys: KeyPair) -> Result<(KeyPair, SecretBlob)> {
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

async fn open_secret(account: &Account, blob: SecretBlob, bundle: &VerifiedBundle) -> Result<KeyPair> {
    let passphrase = account.passphrase.clone();
    let jid = account.connect.jid.clone();
    let opened =
        run_kdf(&account.progress, move || blob.open(passphrase.expose_secret().as_bytes(), &jid, &KdfPolicy::STRICT))
            .await?;
    let keys = match opened {
        Ok(keys) => keys,
        Err(keyward_proto::Error::Decrypt) => return Err(Error::WrongPassphrase),
        Err(e) => return Err(e.into()),
    };
    if keys.identity_public() != *bundle.identity_key() || keys.encryption_public() != *bundle.encryption_key() {
        return Err(Error::SecretMismatch(account.connect.jid.clone()));
    }
    Ok(keys)
}
impl Session {
    /// Opens a session with no key handling asked of the user: keys cached on this
    /// device, else fetched from the server (new device), else generated and
    /// published (first use). One connection, one login, at most one `keys` lookup.
    pub async fn start(account: &Account) -> Result<(Self, Setup)> {
        Self::set_up(account, Want::Any).await
    }

    /// First use: generates keys, seals them with the passphrase (Argon2id),
    /// publishes bundle and secret to the component, and caches both here.
    pub async fn first_use(account: &Account) -> Result<Self> {
        Ok(Self::set_up(account, Want::FirstUse).await?.0)
    }

    /// A new device: fetches the sealed secret, opens it with the passphrase
    /// (refusing weakened KDF parameters), and checks it matches the published bundle.
    pub async fn new_device(account: &Account) -> Result<Self> {
        Ok(Self::set_up(account, Want::NewDevice).await?.0)
    }

    /// Opens the keys cached on this device (or fetches them like a new device).
    pub async fn resume(account: &Account) -> Result<Self> {
        Ok(Self::set_up(account, Want::Existing).await?.0)
    }

    /// Uses keys that were made elsewhere, without publishing them: they are
    /// sealed with the passphrase and cached on this device only. For setups
    /// where bundles travel out of band (no component), and for tests.
    pub async fn with_local_keys(account: &Account, keys: KeyPair, created_unix_s: u64) -> Result<Self> {
        let store = Store::open(&account.data_dir, &account.connect.jid)?;
        let me = account.connect.jid.clone();
        let (keys, secret) = seal_secret(account, keys).await?;
        let bundle = Bundle::sign(&keys, me.clone(), created_unix_s);
        store.save_account(&AccountState::new(&bundle, &secret))?;
        let mut conn = Connection::connect(&account.connect).await?;
        let component = directory::component_or_server(&mut conn, account).await?;
        Ok(Self { conn, me, component, keys, bundle, store, caught_up: Default::default() })
    }

    async fn set_up(account: &Account, want: Want) -> Result<(Self, Setup)> {
        let store = Store::open(&account.data_dir, &account.connect.jid)?;
        let me = account.connect.jid.clone();
        let cached = match want {
            Want::Any | Want::Existing => store.account()?,
            Want::FirstUse | Want::NewDevice => None,
        };
        if let Some(state) = cached {
            let bundle = state.bundle(&me)?;
            let keys = open_secret(account, state.secret()?, &bundle).await?;
            let mut conn = Connection::connect(&account.connect).await?;
            let component = directory::component_or_server(&mut conn, account).await?;
            return Ok((
                Self { conn, me, component, keys, bundle, store, caught_up: Default::default() },
                Setup::ThisDevice,
            ));
        }
        let mut conn = Connection::connect(&account.connect).await?;
        let component = conn.find_component(account.connect.component.as_ref()).await?;
        // The directory's view decides: revoked, no keys yet, or keys to fetch.
        let item = directory::lookup_one(&mut conn, &component, &me).await?;
        let (keys, bundle, secret, setup) = match (item.status, want) {
            (KeyStatus::Revoked { reason, .. }, _) => return Err(Error::Revoked { jid: me, reason: Some(reason) }),
            (KeyStatus::None, Want::NewDevice | Want::Existing) => return Err(Error::NotInitialized(me)),
            (KeyStatus::None, Want::Any | Want::FirstUse) => {
                account.passphrase_policy.check(
                    account.passphrase.expose_secret(),
                    account.connect.password.expose_secret(),
                    &me,
                )?;
                let (keys, secret) = seal_secret(account, KeyPair::generate()?).await?;
                let bundle = Bundle::sign(&keys, me.clone(), now_ms() / 1000);
                let publish = Publish::signed(&keys, &bundle, secret.clone(), now_ms())?;
                directory::publish(&mut conn, &component, &me, &publish).await?;
                (keys, bundle, secret, Setup::FirstUse)
            }
            (KeyStatus::Active, Want::FirstUse) => return Err(Error::AlreadyInitialized(me)),
            (KeyStatus::Active, Want::Any | Want::NewDevice | Want::Existing) => {
                let bundle = item.bundle.as_ref().ok_or(Error::UnexpectedAnswer("keys"))?;
                let bundle = crate::contacts::verify_bundle(bundle, &me)
                    .map_err(|cause| Error::BadBundle { jid: me.clone(), cause })?;
                let secret = directory::fetch_secret(&mut conn, &component, &me).await?;
                let keys = open_secret(account, secret.clone(), &bundle).await?;
                (keys, bundle, secret, Setup::NewDevice)
            }
        };
        store.save_account(&AccountState::new(&bundle, &secret))?;
        Ok((Self { conn, me, component, keys, bundle, store, caught_up: Default::default() }, setup))
    }
}
