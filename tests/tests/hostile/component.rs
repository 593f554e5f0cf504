//! The component by name (protocol 12.4): the keyward component runs at `directory.<domain>`,
//! and a rogue service holds the conventional name `keys.<domain>`. Clients that discover the
//! component use the real one and send the rogue nothing but disco#info; a client told to use
//! `keys.<domain>` (or a JID where nothing answers) refuses it with the typed error before any
//! keyward request.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use keyward_client::keyward_proto::BareJid;
use keyward_client::{Error, KeyEvent, Session, Setup};
use keyward_component::Secret;
use keyward_component::connection::Connection;
use keyward_component::stream::{DecoderLimits, Frame};
use keyward_tests::on_both_servers;
use keyward_tests::stack::StackOptions;
use keyward_tests::xmpp::{ServerKind, ServerOptions};
use tokio::io::AsyncWriteExt;

use crate::support::{User, WAIT, stack_with};

on_both_servers!(a_service_named_keys_is_not_trusted_by_name);

const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

async fn a_service_named_keys_is_not_trusted_by_name(kind: ServerKind) -> anyhow::Result<()> {
    let domain = "example.test";
    let rogue_jid = format!("keys.{domain}");
    let options = StackOptions {
        server: ServerOptions {
            registration: true,
            component: format!("directory.{domain}"),
            extra_components: vec![rogue_jid.clone()],
            ..ServerOptions::default()
        },
        ..StackOptions::default()
    };
    let stack = stack_with(kind, options).await?;

    // The rogue: connected as keys.<domain>, answers disco#info as a chat room service, and
    // records the payload namespace of every stanza a client sends it.
    let (mut rogue, mut writer) = Connection::establish(
        &stack.xmpp().extra_component_addr().to_string(),
        &BareJid::parse(&rogue_jid)?,
        &Secret::new(stack.xmpp().options().extra_component_secret(&rogue_jid)),
        DecoderLimits::default(),
        WAIT,
    )
    .await
    .context("the rogue connects")?;
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let rogue_task = {
        let asked = asked.clone();
        tokio::spawn(async move {
            while let Ok(frame) = rogue.read_frame().await {
                let Frame::Stanza(stanza) = frame else { continue };
                let payload = stanza.children().first();
                // Only what clients send counts (ejabberd's mod_privilege advertises to every component).
                if !stanza.get_attr("from").is_some_and(|f| f.contains('@')) {
                    continue;
                }
                if let Ok(mut asked) = asked.lock() {
                    asked.push(
                        payload.map_or_else(|| format!("<{}/> without payload", stanza.name()), |p| p.ns().to_owned()),
                    );
                }
                let attr = |name: &str| stanza.get_attr(name).unwrap_or_default().to_owned();
                if stanza.name() == "iq"
                    && attr("type") == "get"
                    && payload.is_some_and(|p| p.is("query", NS_DISCO_INFO))
                {
                    let reply = format!(
                        "<iq type='result' from='{}' to='{}' id='{}'><query xmlns='{NS_DISCO_INFO}'><identity category='conference' type='text'/><feature var='http://jabber.org/protocol/muc'/></query></iq>",
                        attr("to"),
                        attr("from"),
                        attr("id")
                    );
                    if writer.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        })
    };

    // Discovery finds the real component: alice publishes, bob finds her key through it.
    let alice = User::register(&stack, "alice").await?;
    let bob = User::register(&stack, "bob").await?;
    let mut connection = keyward_client::Connection::connect(&alice.connect_options()).await?;
    let found = connection.find_component(None).await?;
    assert_eq!(found.as_str(), stack.component_jid(), "the discovered component");
    connection.close().await?;
    let discovering = |user: &User| {
        let mut account = user.account();
        account.connect.component = None;
        account
    };
    let (a, setup) = Session::start(&discovering(&alice)).await?;
    assert_eq!(setup, Setup::FirstUse);
    let (mut b, _) = Session::start(&discovering(&bob)).await?;
    match b.add(&alice.jid).await? {
        KeyEvent::Pinned { fingerprint, .. } => assert_eq!(fingerprint, a.fingerprint()),
        other => panic!("expected alice's key pinned, got {other:?}"),
    }

    // Named explicitly, keys.<domain> is checked and refused; so is a JID nobody answers for.
    for named in [rogue_jid.as_str(), "nothing.example.test"] {
        let mut account = bob.account_on(tempfile::tempdir()?.path());
        account.connect.component = Some(BareJid::parse(named)?);
        match Session::start(&account).await {
            Err(Error::NotKeywardComponent { jid, .. }) => assert_eq!(jid.as_str(), named),
            other => panic!("{named}: expected NotKeywardComponent, got {other:?}"),
        }
    }

    // The rogue was reachable (it was asked who it is) and was asked nothing else.
    let asked = asked.lock().map(|a| a.clone()).unwrap_or_default();
    assert!(asked.iter().any(|ns| ns == NS_DISCO_INFO), "the rogue was never reached: {asked:?}");
    assert!(asked.iter().all(|ns| ns == NS_DISCO_INFO), "the rogue got more than disco#info: {asked:?}");
    for session in [a, b] {
        session.close().await?;
    }
    rogue_task.abort();
    Ok(())
}
