//! End-to-end tests: the real client SDK and `keyward` binary through the real component, keydir,
//! Postgres and XMPP server, every test on both Prosody and ejabberd.
//!
//! One Postgres serves the whole binary (a fresh database per test); every test has its own
//! stack. Run one server's half with `cargo test -p keyward-tests --test e2e prosody`.
//! keydir, the component and `keyward` run as their built binaries: `cargo test --workspace`
//! builds them; alone, build them first with
//! `cargo build -p keyward-keydir -p keyward-component -p keyward-client --bins`.

mod auditor;
mod blindness;
mod carbons;
mod cli;
mod devices;
mod flow;
mod history;
mod replicas;
mod restore;
mod revocation;
mod support;
mod tls;
