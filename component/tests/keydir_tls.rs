//! The component to keydir over HTTPS: keydir serves its API with a certificate from a
//! throwaway CA, the component trusts that CA through `KEYWARD_KEYDIR_CA`, and requests go end
//! to end through a real XMPP server; trusting another CA makes every request fail
//! (`service-unavailable`) with the certificate error in the component's log.
//!
//! Prosody only: the XMPP server plays no part in the HTTPS between component and keydir.

mod common;

use std::time::Duration;

use common::{Identity, User, options, statuses};
use keyward_tests::process::wait_for_log;
use keyward_tests::stack::{KeydirChoice, KeydirTls, Stack, StackOptions};
use keyward_tests::xmpp::ServerKind;

/// Waits up to 15 s for the component's log to contain `needle`; returns the log.
async fn wait_for_component_log(stack: &Stack, needle: &str) -> String {
    wait_for_log(&stack.component_log_path(), needle, Duration::from_secs(15)).await.expect("logged")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_lookup_over_https_with_a_private_ca() {
    let options = StackOptions { keydir_tls: KeydirTls::On, ..options(true, KeydirChoice::Real) };
    let mut stack = Stack::start(ServerKind::Prosody, options).await.expect("stack");
    assert!(stack.keydir_url().starts_with("https://"), "{}", stack.keydir_url());
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let mut bob = User::login(stack.xmpp(), "bob").await.expect("bob");
    alice.set(&keys, &Identity::new(&alice.jid).publish_xml()).await.expect("publish").payload().expect("published");
    let lookup = "<keys xmlns='urn:keyward:0'><item jid='alice@example.test'/></keys>";
    let answer = bob.get(&keys, lookup).await.expect("keys").payload().expect("ok").expect("keys");
    assert_eq!(statuses(&answer), vec![("alice@example.test".into(), "active".into(), true)]);
    wait_for_component_log(&stack, "keydir over HTTPS").await;
    stack.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keydir_certificate_from_another_ca_makes_requests_fail() {
    let options = StackOptions { keydir_tls: KeydirTls::WrongCa, ..options(true, KeydirChoice::Real) };
    let mut stack = Stack::start(ServerKind::Prosody, options).await.expect("stack");
    let keys = stack.component_jid().to_owned();
    let mut alice = User::login(stack.xmpp(), "alice").await.expect("alice");
    let answer = alice.set(&keys, &Identity::new(&alice.jid).publish_xml()).await.expect("publish");
    assert_eq!(answer.condition(), Some("service-unavailable"), "{answer:?}");
    // Both throwaway CAs have the same name: rustls rejects the signature (`BadSignature`).
    wait_for_component_log(&stack, "invalid peer certificate").await;
    stack.stop().await.expect("stop");
}
