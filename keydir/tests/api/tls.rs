//! TLS to Postgres: a cluster that accepts TLS only (certificate from a throwaway CA), reached
//! with `sslmode=verify-full`; the wrong CA and plain TCP leave keydir unready, with the cause
//! in its log. And the start-up line that says how the database is reached.

use crate::helpers::{Auth, TestApp};
use keyward_tests::keydir::{Keydir, KeydirOptions};
use keyward_tests::postgres::Postgres;
use keyward_tests::tls::TestCa;
use reqwest::{Method, StatusCode};
use std::path::Path;
use std::time::Duration;

/// A cluster that refuses TCP without TLS, and a fresh database's URL without parameters.
async fn tls_cluster() -> (Postgres, String) {
    let postgres = tokio::task::spawn_blocking(Postgres::start_tls).await.expect("joins").expect("TLS cluster");
    // The fixture's own connection uses the driver's default, sslmode=prefer (TLS, unverified).
    let url = postgres.fresh_database().await.expect("database");
    (postgres, url)
}

fn with_params(url: &str, params: &str) -> String {
    format!("{url}?{params}")
}

fn verify_full(url: &str, ca: &Path) -> String {
    with_params(url, &format!("sslmode=verify-full&sslrootcert={}", ca.display()))
}

/// keydir's options for a keydir that logs at info (the transport line) and is not migrated
/// by the fixture when it is not meant to reach its database.
fn options(url: &str, migrate: bool) -> KeydirOptions {
    KeydirOptions { log_filter: "info".into(), migrate, ..KeydirOptions::new(url) }
}

/// Waits up to 15 s for keydir's log to contain `needle`; returns the log.
async fn wait_for_log(keydir: &Keydir, needle: &str) -> String {
    keyward_tests::process::wait_for_log(&keydir.log_path(), needle, Duration::from_secs(15)).await.expect("logged")
}

#[tokio::test]
async fn keydir_reaches_postgres_over_verified_tls() {
    let (postgres, url) = tls_cluster().await;
    let ca = postgres.ca_file().expect("a TLS cluster has a CA");
    let app = TestApp::start(options(&verify_full(&url, ca), true)).await;
    let ready = app.send(Method::GET, "/readyz", Auth::None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
    app.account("alice@example.test").await;
    let lookup = app.lookup(None, &["alice@example.test"]).await;
    assert_eq!(lookup.status, StatusCode::OK, "{lookup:?}");
    assert_eq!(lookup.body["items"][0]["status"], "active", "{lookup:?}");
    wait_for_log(&app.keydir, "database over TLS, server certificate verified").await;
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let (_postgres, url) = tls_cluster().await;
    let other = TestCa::loopback().expect("another CA");
    let app = TestApp::start(options(&verify_full(&url, &other.files().ca), false)).await;
    app.send(Method::GET, "/readyz", Auth::None, None).await.assert_problem(503, "unavailable");
    // Both throwaway CAs have the same name, so rustls finds the other CA as the issuer and
    // rejects the signature (`BadSignature`); a CA of another name gives `UnknownIssuer`.
    wait_for_log(&app.keydir, "invalid peer certificate").await;
}

#[tokio::test]
async fn plain_tcp_is_refused_by_a_tls_only_server() {
    let (_postgres, url) = tls_cluster().await;
    let app = TestApp::start(options(&with_params(&url, "sslmode=disable"), false)).await;
    app.send(Method::GET, "/readyz", Auth::None, None).await.assert_problem(503, "unavailable");
    let log = wait_for_log(&app.keydir, "no encryption").await;
    assert!(log.contains("database over plain TCP on loopback"), "{log}");
}

#[tokio::test]
async fn plain_tcp_to_another_host_is_warned_about_without_the_password() {
    // Nothing needs to answer: the warning is logged at start, before any connection.
    let url = "postgres://keydir:hunter2-db-password@db.invalid:5432/keyward?sslmode=disable";
    let keydir = Keydir::start(options(url, false)).await.expect("keydir starts without its database");
    let log = wait_for_log(&keydir, "database over plain TCP to a non-loopback host").await;
    assert!(log.contains(r#""level":"WARN""#), "{log}");
    assert!(log.contains("db.invalid"), "{log}");
    assert!(!log.contains("hunter2"), "the password was logged:\n{log}");
}
