//! A second device: `login` with the passphrase opens the blob from the server and matches the
//! published bundle; a wrong passphrase opens nothing and caches nothing. Every set-up (first use,
//! new device, this device) is one connection with one login and at most one `keys` lookup.

use keyward_client::{Error, Incoming, Session, Setup, Trust};
use keyward_tests::xmpp::ServerKind;

use crate::support::{User, expect, stack};
use keyward_tests::on_both_servers;

on_both_servers!(second_device, every_set_up_is_one_connection_and_one_lookup);

/// How many `keys` requests the component answered so far (its request histogram's count).
async fn keys_lookups(stack: &keyward_tests::stack::Stack) -> anyhow::Result<u64> {
    let page = stack.component().metrics().await?;
    let count = page
        .lines()
        .find(|l| l.starts_with("keyward_component_request_duration_seconds_count{") && l.contains("request=\"keys\""))
        .and_then(|l| l.rsplit(' ').next())
        .map(|n| n.parse::<u64>())
        .transpose()?;
    Ok(count.unwrap_or(0))
}

async fn every_set_up_is_one_connection_and_one_lookup(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    // Every connection of alice's client goes through a gate that counts them.
    let gate = keyward_tests::gate::Gate::start(stack.c2s_addr(), true).await?;
    let through_gate = |dir: &std::path::Path| {
        let mut account = alice.account_on(dir);
        account.connect.server = Some(gate.addr().to_string());
        account
    };
    let (laptop, phone) = (tempfile::tempdir()?, tempfile::tempdir()?);
    for (dir, expected, lookups) in [
        (laptop.path(), Setup::FirstUse, 1),
        (phone.path(), Setup::NewDevice, 1),
        (laptop.path(), Setup::ThisDevice, 0),
    ] {
        let (connections, keys) = (gate.connections(), keys_lookups(&stack).await?);
        let (session, setup) = Session::start(&through_gate(dir)).await?;
        assert_eq!(setup, expected);
        assert_eq!(gate.connections() - connections, 1, "{setup:?}: one connection (so one login)");
        assert_eq!(keys_lookups(&stack).await? - keys, lookups, "{setup:?}: keys lookups");
        session.close().await?;
    }
    Ok(())
}

async fn second_device(kind: ServerKind) -> anyhow::Result<()> {
    let stack = stack(kind).await?;
    let alice = User::register(&stack, "alice").await?;
    let bob = User::register(&stack, "bob").await?;
    let first = alice.session(Setup::FirstUse).await?;
    let (fingerprint, bundle) = (first.fingerprint(), first.bundle().clone());
    first.close().await?;
    let mut b = bob.session(Setup::FirstUse).await?;
    b.add(&alice.jid).await?;
    b.send(&alice.jid, "read me on your new laptop").await?;

    // A wrong passphrase on a new device: refused, and nothing is cached there.
    let wrong_dir = tempfile::tempdir()?;
    let mut wrong = alice.account_on(wrong_dir.path());
    wrong.passphrase = "not the passphrase".to_owned().into();
    match Session::new_device(&wrong).await {
        Err(Error::WrongPassphrase { .. }) => {}
        other => panic!("expected WrongPassphrase, got {other:?}"),
    }
    let store = keyward_client::Store::open(wrong_dir.path(), &alice.jid)?;
    assert!(store.account()?.is_none(), "nothing cached after a wrong passphrase");

    // First use on another device is refused: the account already has keys.
    let other_dir = tempfile::tempdir()?;
    match Session::first_use(&alice.account_on(other_dir.path())).await {
        Err(Error::AlreadyInitialized(jid)) => assert_eq!(jid, alice.jid),
        other => panic!("expected AlreadyInitialized, got {other:?}"),
    }

    // The right passphrase on a new device: the same keys as the first device.
    let laptop_dir = tempfile::tempdir()?;
    let (mut laptop, setup) = Session::start(&alice.account_on(laptop_dir.path())).await?;
    assert_eq!(setup, Setup::NewDevice);
    assert_eq!(laptop.fingerprint(), fingerprint);
    assert_eq!(laptop.bundle(), &bundle);
    // The new device reads what was sent while it did not exist yet.
    laptop.go_online().await?;
    match expect(&mut laptop, "bob's message", |e| matches!(e, Incoming::Message(_))).await? {
        Incoming::Message(m) => {
            assert_eq!(m.from, bob.jid);
            assert_eq!(m.body, "read me on your new laptop");
            assert!(m.verified);
            assert_eq!(m.trust, Trust::Tofu);
        }
        _ => unreachable!(),
    }
    laptop.close().await?;
    // Later sessions on the laptop open the keys cached there.
    let (again, setup) = Session::start(&alice.account_on(laptop_dir.path())).await?;
    assert_eq!(setup, Setup::ThisDevice);
    assert_eq!(again.fingerprint(), fingerprint);
    again.close().await?;
    b.close().await?;
    Ok(())
}
