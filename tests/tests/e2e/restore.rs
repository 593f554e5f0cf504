//! The guess-limited restore (protocol section 6.2) end to end, on both servers: a database dump
//! alone opens no blob, ten wrong passphrases lock the restore (across a keydir restart) until an
//! audited admin unlock, a right one before that clears the count, the recovery code sets a new
//! passphrase that a third device uses, and version 0 blobs are migrated after their first open.

use anyhow::{Context, bail};
use keyward_client::keyward_proto::elements::Publish;
use keyward_client::keyward_proto::restore::{AnySecret, OprfSeed, RecoveryCode, blind, evaluate, finalize};
use keyward_client::keyward_proto::{BareJid, Bundle, KdfPolicy, KeyPair, SecretBlob, XmlElement};
use keyward_client::{Connection, Error, Session, Setup, stanzas};
use keyward_tests::on_both_servers;
use keyward_tests::stack::Stack;
use keyward_tests::xmpp::ServerKind;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::json;
use tokio_xmpp::IqRequest;

use crate::support::{FAST_KDF, User, admin, stack, stack_with};
use keyward_tests::stack::StackOptions;

/// A stack whose component lets one user make many requests: every try below is a whole new
/// device (discovery, lookup, blob, evaluation), far past the default 120 a minute.
async fn many_devices_stack(kind: ServerKind) -> anyhow::Result<Stack> {
    let options = StackOptions {
        component: |component| {
            component.env.push(("KEYWARD_REQUESTS_PER_MINUTE".into(), "6000".into()));
            component.env.push(("KEYWARD_REQUESTS_BURST".into(), "600".into()));
        },
        ..StackOptions::default()
    };
    stack_with(kind, options).await
}

on_both_servers!(
    a_database_dump_alone_opens_no_blob_even_with_the_right_passphrase,
    ten_wrong_passphrases_lock_the_restore_across_a_restart_until_an_admin_unlocks_it,
    a_right_passphrase_after_nine_wrong_ones_works_and_clears_the_count,
    the_recovery_code_sets_a_new_passphrase_that_a_third_device_uses,
    a_changed_passphrase_opens_the_keys_and_the_old_one_no_longer_does,
    a_version_0_blob_is_migrated_after_its_first_open
);

/// `user`'s keys on a brand-new device with `passphrase`: the session, or why it failed.
async fn new_device(user: &User, passphrase: &str) -> anyhow::Result<Result<Session, Error>> {
    let dir = tempfile::Builder::new().prefix("keyward-device-").tempdir()?;
    let mut account = user.account_on(dir.path());
    account.passphrase = SecretString::from(passphrase.to_owned());
    Ok(match Session::start(&account).await {
        Ok((session, Setup::NewDevice)) => Ok(session),
        Ok((_, setup)) => bail!("a new device set up as {setup:?}"),
        Err(err) => Err(err),
    })
}

/// Tries `passphrase` on a new device and expects the error `wanted` names.
async fn refused(user: &User, passphrase: &str, wanted: fn(&Error) -> bool, what: &str) -> anyhow::Result<()> {
    match new_device(user, passphrase).await? {
        Err(err) if wanted(&err) => Ok(()),
        Err(err) => bail!("{what}: got {err:?}"),
        Ok(session) => bail!("{what}: the keys opened ({})", session.fingerprint()),
    }
}

/// Tries a wrong passphrase `n` times, each on its own new device.
async fn wrong_guesses(user: &User, n: usize) -> anyhow::Result<()> {
    for i in 0..n {
        let wrong = format!("wrong guess {i} at {}'s passphrase", user.jid);
        // keydir's count, as the client tells the user: this try counted, 10 - (i + 1) are left.
        let left = u32::try_from(9 - i)?;
        match new_device(user, &wrong).await? {
            Err(Error::WrongPassphrase { tries_left }) => assert_eq!(tries_left, Some(left), "try {i}"),
            Err(err) => bail!("a wrong passphrase: got {err:?}"),
            Ok(session) => bail!("a wrong passphrase opened the keys ({})", session.fingerprint()),
        }
    }
    Ok(())
}

/// Checks that a new device opens `user`'s keys with `passphrase`.
async fn opens(user: &User, passphrase: &str, fingerprint: &str) -> anyhow::Result<()> {
    let session = new_device(user, passphrase).await?.context("a new device opens the keys")?;
    assert_eq!(session.fingerprint().to_hex(), fingerprint, "the opened keys are the account's");
    session.close().await?;
    Ok(())
}

/// The account's restore state in keydir's admin view.
async fn restore_state(stack: &Stack, jid: &BareJid) -> anyhow::Result<serde_json::Value> {
    let (status, body) = admin(stack, Method::GET, &format!("/v0/admin/accounts/{jid}"), None).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    Ok(body["restore"].clone())
}

/// Every `<secret .../secret>` in `dump`.
fn blobs_in(dump: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(dump);
    let mut found = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find("<secret ") {
        let Some(len) = rest[start..].find("</secret>") else { break };
        found.push(rest[start..start + len + "</secret>".len()].to_owned());
        rest = &rest[start + len..];
    }
    found
}

async fn a_database_dump_alone_opens_no_blob_even_with_the_right_passphrase(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let session = alice.session(Setup::FirstUse).await?;
    let fingerprint = session.fingerprint();
    session.close().await?;

    let dump = stack.pg_dump().await?;
    let blobs = blobs_in(&dump);
    assert_eq!(blobs.len(), 1, "the dump holds alice's blob");
    let AnySecret::V1(blob) = AnySecret::parse(blobs[0].as_bytes())? else {
        bail!("first use stored a version 0 blob")
    };
    // Whoever holds the dump but not keydir's seed can only make OPRF outputs with a seed of
    // their own: with the right passphrase, the project's own code opens nothing.
    let passphrase = alice.passphrase.as_bytes();
    for _ in 0..3 {
        let seed = OprfSeed::generate()?;
        let (state, blinded) = blind(passphrase)?;
        let guessed = finalize(state, &evaluate(&seed, &alice.jid, &blinded)?)?;
        let opened = blob.open_with_passphrase(passphrase, &guessed, &alice.jid, &KdfPolicy::STRICT);
        assert!(matches!(opened, Err(keyward_client::keyward_proto::Error::Decrypt)), "opened without the seed");
    }
    // The control: with keydir's own seed (which the dump does not hold), the same blob opens.
    let output = alice.oprf_output(passphrase)?;
    let keys = blob.open_with_passphrase(passphrase, &output, &alice.jid, &KdfPolicy::STRICT)?.into_keys();
    assert_eq!(keys.fingerprint(), fingerprint);
    let seed = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, stack.oprf_seed().context("seed")?)?;
    assert!(!dump.windows(seed.len()).any(|w| w == seed.as_slice()), "the seed is in the dump");
    Ok(())
}

async fn ten_wrong_passphrases_lock_the_restore_across_a_restart_until_an_admin_unlocks_it(
    kind: ServerKind,
) -> anyhow::Result<()> {
    let mut stack = many_devices_stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let fingerprint = alice.session(Setup::FirstUse).await?.fingerprint().to_hex();

    wrong_guesses(&alice, 10).await?;
    assert_eq!(restore_state(&stack, &alice.jid).await?["attempts"], 10);
    let locked = |e: &Error| matches!(e, Error::RestoreLocked(jid) if jid.as_str().starts_with("alice@"));
    refused(&alice, &alice.passphrase, locked, "the right passphrase after ten wrong ones").await?;
    assert_eq!(restore_state(&stack, &alice.jid).await?["locked"], true);

    // The lock is in Postgres: a restarted keydir keeps it.
    stack.restart_keydir().await?;
    stack.wait_component_up().await?;
    refused(&alice, &alice.passphrase, locked, "the right passphrase after a restart").await?;

    // An admin unlocks, with a reason that the audit log keeps.
    let path = format!("/v0/admin/accounts/{}/unlock", alice.jid);
    let (status, body) =
        admin(&stack, Method::POST, &path, Some(json!({"reason": "alice called the helpdesk"}))).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], true);
    let (_, audit) = admin(&stack, Method::GET, &format!("/v0/admin/audit?jid={}", alice.jid), None).await?;
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"], "unlock", "{audit}");
    assert_eq!(entry["detail"]["reason"], "alice called the helpdesk");
    assert_eq!(entry["detail"]["attempts"], 10);
    opens(&alice, &alice.passphrase, &fingerprint).await?;
    assert_eq!(restore_state(&stack, &alice.jid).await?["attempts"], 0);
    Ok(())
}

async fn a_right_passphrase_after_nine_wrong_ones_works_and_clears_the_count(kind: ServerKind) -> anyhow::Result<()> {
    let stack = many_devices_stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let fingerprint = alice.session(Setup::FirstUse).await?.fingerprint().to_hex();
    for round in 0..2 {
        wrong_guesses(&alice, 9).await?;
        assert_eq!(restore_state(&stack, &alice.jid).await?["attempts"], 9, "round {round}");
        // Nine and one right: without the proof clearing the count, the second round would lock.
        opens(&alice, &alice.passphrase, &fingerprint).await?;
        assert_eq!(restore_state(&stack, &alice.jid).await?["attempts"], 0, "round {round}");
    }
    Ok(())
}

async fn the_recovery_code_sets_a_new_passphrase_that_a_third_device_uses(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let mut first = alice.session(Setup::FirstUse).await?;
    let code = first.take_recovery_code().context("first use made a recovery code")?;
    assert!(first.take_recovery_code().is_none(), "the code is handed out once");
    let fingerprint = first.fingerprint().to_hex();
    first.close().await?;

    // alice forgot her passphrase: on a second device the code opens her keys and she picks a
    // new passphrase. A wrong code (a typo passes the checksum only by chance) opens nothing.
    let new_passphrase = "alice's new passphrase after the recovery: plum orchard";
    let second = tempfile::tempdir()?;
    let mut account = alice.account_on(second.path());
    account.passphrase = SecretString::from(new_passphrase.to_owned());
    let other = RecoveryCode::generate()?;
    match Session::recover(&account, &other).await {
        Err(Error::WrongRecoveryCode) => {}
        Err(e) => bail!("a wrong recovery code: got {e:?}"),
        Ok(_) => bail!("a wrong recovery code opened the keys"),
    }
    let mut recovered = Session::recover(&account, &code).await?;
    assert_eq!(recovered.fingerprint().to_hex(), fingerprint, "the recovered keys are alice's");
    let new_code = recovered.take_recovery_code().context("the recovery made a new code")?;
    recovered.close().await?;

    // A third device: the new passphrase opens the keys, the old one no longer does.
    opens(&alice, new_passphrase, &fingerprint).await?;
    refused(&alice, &alice.passphrase, |e| matches!(e, Error::WrongPassphrase { .. }), "the old passphrase").await?;
    // The used code opens nothing any more; the new one does.
    let fourth = tempfile::tempdir()?;
    let mut account = alice.account_on(fourth.path());
    account.passphrase = SecretString::from("and yet another passphrase: copper kettle".to_owned());
    assert!(matches!(Session::recover(&account, &code).await, Err(Error::WrongRecoveryCode)), "the used code");
    Session::recover(&account, &new_code).await?.close().await?;
    // The device of the second step still opens (its own copy under the passphrase it set).
    let (session, setup) = Session::start(&account).await?;
    assert_eq!(setup, Setup::ThisDevice);
    session.close().await?;
    Ok(())
}

async fn a_changed_passphrase_opens_the_keys_and_the_old_one_no_longer_does(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let mut session = alice.session(Setup::FirstUse).await?;
    let first_code = session.take_recovery_code().context("first use made a code")?;
    let fingerprint = session.fingerprint().to_hex();
    let new_passphrase = "alice changed it: walnut harbour under a copper moon";
    // The policy holds for a change too (the suite's accounts allow weak ones: this one does not).
    let mut strict = alice.account();
    strict.passphrase_policy = keyward_client::PassphrasePolicy::Strict;
    let weak = session.change_passphrase(&strict, SecretString::from("password1".to_owned())).await;
    assert!(matches!(weak, Err(Error::PassphraseRefused(_))), "{weak:?}");
    let code = session.change_passphrase(&alice.account(), SecretString::from(new_passphrase.to_owned())).await?;
    session.close().await?;

    // This device opens with the new passphrase, and so does a new one; the old one opens nothing.
    let mut account = alice.account();
    account.passphrase = SecretString::from(new_passphrase.to_owned());
    let (session, setup) = Session::start(&account).await?;
    assert_eq!(setup, Setup::ThisDevice);
    session.close().await?;
    opens(&alice, new_passphrase, &fingerprint).await?;
    refused(&alice, &alice.passphrase, |e| matches!(e, Error::WrongPassphrase { .. }), "the old passphrase").await?;
    // Only the new recovery code opens the keys.
    let spare = tempfile::tempdir()?;
    let mut account = alice.account_on(spare.path());
    account.passphrase = SecretString::from("and after that one more: quiet meadow lanterns".to_owned());
    assert!(matches!(Session::recover(&account, &first_code).await, Err(Error::WrongRecoveryCode)), "the old code");
    Session::recover(&account, &code).await?.close().await?;
    Ok(())
}

/// Publishes `keys` for `user` with a version 0 blob, as a client before version 1 did.
async fn publish_version_0(stack: &Stack, user: &User, keys: &KeyPair, created: u64) -> anyhow::Result<()> {
    let bundle = Bundle::sign(keys, user.jid.clone(), created);
    let blob = SecretBlob::seal(keys, &user.jid, user.passphrase.as_bytes(), FAST_KDF)?;
    let publish = Publish::signed(keys, &bundle, blob, now_ms())?;
    let mut conn = Connection::connect(&user.connect_options()).await?;
    let component = conn.find_component(Some(&BareJid::parse(stack.component_jid())?)).await?;
    conn.iq(Some(&component), IqRequest::Set(stanzas::to_minidom(&publish.to_element())?), "publish").await?;
    conn.close().await?;
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The version of `jid`'s blob in keydir's database.
async fn stored_version(stack: &Stack, jid: &BareJid) -> anyhow::Result<&'static str> {
    use sqlx::Connection as _;
    let mut db = sqlx::PgConnection::connect(stack.database_url()?).await?;
    let xml: String =
        sqlx::query_scalar("SELECT xml FROM secret_blobs WHERE jid = $1").bind(jid.as_str()).fetch_one(&mut db).await?;
    Ok(match AnySecret::parse(xml.as_bytes())? {
        AnySecret::V0(_) => "v0",
        AnySecret::V1(_) => "v1",
    })
}

async fn a_version_0_blob_is_migrated_after_its_first_open(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let created = now_ms() / 1000;

    // alice's device holds a version 0 blob, as does the directory: her next start migrates.
    let alice = User::register(&stack, "alice").await?;
    let (mut ik_seed, mut ek_secret) = ([0u8; 32], [0u8; 32]);
    getrandom::fill(&mut ik_seed).and_then(|()| getrandom::fill(&mut ek_secret)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let keys = KeyPair::from_secret_bytes(&ik_seed, &ek_secret);
    publish_version_0(&stack, &alice, &keys, created).await?;
    let copy = KeyPair::from_secret_bytes(&ik_seed, &ek_secret);
    Session::with_local_keys(&alice.account(), copy, created).await?.close().await?;
    assert_eq!(stored_version(&stack, &alice.jid).await?, "v0");
    let mut session = alice.session(Setup::ThisDevice).await?;
    assert_eq!(session.fingerprint(), keys.fingerprint());
    assert!(session.take_recovery_code().is_some(), "the migration made a recovery code");
    session.close().await?;
    assert_eq!(stored_version(&stack, &alice.jid).await?, "v1");
    let store = keyward_client::Store::open(alice.device.path(), &alice.jid)?;
    let cached = store.account()?.context("cached")?.secret()?;
    assert!(matches!(cached, AnySecret::V1(_)), "the device caches the version 1 blob");
    // Then every device opens version 1, through keydir, and makes no new code.
    let mut again = alice.session(Setup::ThisDevice).await?;
    assert!(again.take_recovery_code().is_none());
    again.close().await?;
    opens(&alice, &alice.passphrase, &keys.fingerprint().to_hex()).await?;

    // bob's first open is on a new device: it migrates too.
    let bob = User::register(&stack, "bob").await?;
    let bob_keys = KeyPair::generate()?;
    publish_version_0(&stack, &bob, &bob_keys, created).await?;
    let mut session = bob.session(Setup::NewDevice).await?;
    assert!(session.take_recovery_code().is_some(), "the migration made a recovery code");
    session.close().await?;
    assert_eq!(stored_version(&stack, &bob.jid).await?, "v1");
    Ok(())
}
