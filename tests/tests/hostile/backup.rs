//! The key backup against whoever holds only the XMPP password (or runs the XMPP server): they
//! cannot destroy it, swap it, or put an old one back through the real component, because
//! replacing a secret blob needs a secret update signed by the account's identity key with a
//! greater `seq` (protocol section 6.1). A direct edit of keydir's database can still change the
//! row (a stolen or hostile directory): the client then refuses a foreign blob.

use anyhow::{Context, bail};
use keyward_client::keyward_proto::elements::Publish;
use keyward_client::keyward_proto::restore::{AnySecret, RecoveryCode, SecretV1};
use keyward_client::keyward_proto::xml::{Element, ParseLimits};
use keyward_client::keyward_proto::{BareJid, KeyPair, SecretBlob, SecretSig, VerifiedBundle, XmlElement};
use keyward_client::{Connection, Error, Session, Setup, stanzas};
use keyward_tests::on_both_servers;
use keyward_tests::stack::Stack;
use keyward_tests::xmpp::ServerKind;
use secrecy::SecretString;
use sqlx::Connection as _;
use tokio_xmpp::IqRequest;

use crate::adversary::stack;
use crate::adversary::{connect_as, now_ms};
use crate::support::{FAST_KDF, User};

on_both_servers!(
    the_xmpp_password_alone_cannot_replace_the_key_backup,
    a_database_edit_can_swap_the_backup_but_the_client_refuses_it
);

/// Sends `publish` (an XML `<publish>` element) to the component over `conn`; `Ok(())` when stored,
/// else the condition the component answered with.
async fn publish(conn: &mut Connection, component: &BareJid, publish: &str) -> anyhow::Result<Result<(), String>> {
    let element = Element::parse(publish.as_bytes(), &ParseLimits::STANZA)?;
    match conn.iq(Some(component), IqRequest::Set(stanzas::to_minidom(&element)?), "publish").await {
        Ok(_) => Ok(Ok(())),
        Err(Error::Refused { condition, .. }) => Ok(Err(condition)),
        Err(other) => Err(other.into()),
    }
}

/// `alice`'s keys restored on a brand-new device with `passphrase`: the session and how it set up.
async fn new_device(alice: &User, passphrase: &str) -> anyhow::Result<Result<Session, Error>> {
    let dir = tempfile::Builder::new().prefix("keyward-device-").tempdir()?;
    let mut account = alice.account_on(dir.path());
    account.passphrase = SecretString::from(passphrase.to_owned());
    Ok(match Session::start(&account).await {
        Ok((session, Setup::NewDevice)) => Ok(session),
        Ok((_, setup)) => bail!("a new device set up as {setup:?}"),
        Err(err) => Err(err),
    })
}

/// Checks that a new device restores alice's own keys with `passphrase`.
async fn restores(alice: &User, passphrase: &str, bundle: &VerifiedBundle) -> anyhow::Result<()> {
    let session = new_device(alice, passphrase).await?.context("alice's new device restores her keys")?;
    assert_eq!(session.fingerprint(), bundle.fingerprint(), "the restored keys are alice's");
    session.close().await?;
    Ok(())
}

/// A blob of keys the attacker made, sealed for `jid` under `passphrase` (strict-policy KDF, so
/// that a client would open it).
fn foreign_blob(attacker: &KeyPair, jid: &BareJid, passphrase: &str) -> anyhow::Result<SecretBlob> {
    Ok(SecretBlob::seal(attacker, jid, passphrase.as_bytes(), FAST_KDF)?)
}

async fn the_xmpp_password_alone_cannot_replace_the_key_backup(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let session = alice.session(Setup::FirstUse).await?;
    let bundle = session.bundle().clone();
    session.close().await?;

    // Someone with only alice's XMPP password (or the server, which can log in as her) talks to
    // the real component. alice's bundle is public: anyone can look it up.
    let mut thief = connect_as(&alice).await?;
    let component = thief.find_component(Some(&BareJid::parse(stack.component_jid())?)).await?;
    let attacker = KeyPair::generate()?;
    let theirs = foreign_blob(&attacker, &alice.jid, "the thief's passphrase")?;
    let seq = now_ms()? + 60_000;
    let signed_by_attacker = Publish {
        bundle: bundle.bundle().clone(),
        secret: theirs.clone().into(),
        secret_sig: SecretSig::sign(&attacker, &alice.jid, seq, &theirs)?,
    };
    let with_sig = signed_by_attacker.to_xml();
    let sig_start = with_sig.find("<secret-sig").context("has a secret-sig")?;
    let without_sig = format!("{}</publish>", &with_sig[..sig_start]);
    let garbage_sig = format!(
        "{}<secret-sig xmlns='urn:keyward:0' seq='{seq}'>{}==</secret-sig></publish>",
        &with_sig[..sig_start],
        "A".repeat(86)
    );
    // Garbage in alice's blob: even the ciphertext of her real blob, truncated.
    let garbage = with_sig.replacen("<ct>", "<ct>AAAA", 1);
    let attempts = [
        ("a foreign blob signed by the thief's key", with_sig.clone()),
        ("a foreign blob with no secret update", without_sig),
        ("a foreign blob with a garbage signature", garbage_sig),
        ("a garbage blob", garbage),
    ];
    for (case, xml) in &attempts {
        let answer = publish(&mut thief, &component, xml).await?;
        assert_eq!(answer, Err("bad-request".to_owned()), "{case}");
    }
    // Nothing changed: alice's next device restores her keys with her passphrase.
    restores(&alice, &alice.passphrase, &bundle).await?;

    // alice changes her passphrase (her device holds her key, so it can sign the new blob).
    let keys = alice.keys()?;
    let store = keyward_client::Store::open(alice.device.path(), &alice.jid)?;
    let old_blob = store.account()?.context("alice's first device")?.secret()?;
    assert!(matches!(old_blob, AnySecret::V1(_)), "first use seals a version 1 blob");
    let new_passphrase = "alice's NEW passphrase: the old one leaked";
    let oprf = alice.oprf_output(new_passphrase.as_bytes())?;
    let code = RecoveryCode::generate()?;
    let renewed = SecretV1::seal(&keys, &alice.jid, new_passphrase.as_bytes(), &oprf, &code, FAST_KDF)?;
    let change = Publish::signed(&keys, &bundle, renewed, now_ms()?)?;
    let mut own_device = connect_as(&alice).await?;
    assert_eq!(publish(&mut own_device, &component, &change.to_xml()).await?, Ok(()), "alice's own update");
    own_device.close().await?;

    // The thief replays an older update of alice (her old blob, under the leaked passphrase,
    // correctly signed by her key but with a smaller seq): refused, typed.
    let replay = Publish::signed(&keys, &bundle, old_blob, change.secret_sig.seq() - 1)?;
    assert_eq!(
        publish(&mut thief, &component, &replay.to_xml()).await?,
        Err("unexpected-request".to_owned()),
        "a replayed older update"
    );
    // The same update again is harmless (a retry), and changes nothing.
    assert_eq!(publish(&mut thief, &component, &change.to_xml()).await?, Ok(()), "the stored update repeated");
    thief.close().await?;

    // The old passphrase opens nothing any more; the new one restores alice's keys.
    match new_device(&alice, &alice.passphrase).await? {
        Err(Error::WrongPassphrase { .. }) => {}
        Err(other) => bail!("the old passphrase: expected WrongPassphrase, got {other:?}"),
        Ok(_) => bail!("the old blob was put back"),
    }
    restores(&alice, new_passphrase, &bundle).await?;
    Ok(())
}

async fn a_database_edit_can_swap_the_backup_but_the_client_refuses_it(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    alice.session(Setup::FirstUse).await?.close().await?;

    // The directory's database is the attacker's: the row takes any blob, no signature needed.
    // Even knowing alice's (leaked) passphrase, a blob of other keys is refused by her client.
    let attacker = KeyPair::generate()?;
    let theirs = foreign_blob(&attacker, &alice.jid, &alice.passphrase)?;
    swap_secret(&stack, &alice.jid, &theirs).await?;
    match new_device(&alice, &alice.passphrase).await? {
        Err(Error::SecretMismatch(jid)) => assert_eq!(jid, alice.jid),
        Err(other) => bail!("a swapped blob: expected SecretMismatch, got {other:?}"),
        Ok(session) => bail!("a swapped blob was used: {}", session.fingerprint()),
    }
    Ok(())
}

/// Overwrites `jid`'s stored secret blob in keydir's database, as a stolen or hostile directory can.
async fn swap_secret(stack: &Stack, jid: &BareJid, blob: &SecretBlob) -> anyhow::Result<()> {
    let mut db = sqlx::PgConnection::connect(stack.database_url()?).await?;
    let updated = sqlx::query("UPDATE secret_blobs SET xml = $2, seq = NULL, sig = NULL WHERE jid = $1")
        .bind(jid.as_str())
        .bind(blob.to_xml())
        .execute(&mut db)
        .await?
        .rows_affected();
    assert_eq!(updated, 1, "the secret row was replaced");
    db.close().await?;
    Ok(())
}
