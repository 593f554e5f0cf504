//! The hostile-server suite: the test plays the adversary of keyward's threat model with real
//! parts (a keydir database edited under the running stack, a rogue process connected as the
//! component, stanzas injected through the server, stored messages re-sent) and asserts that the
//! client never shows anything forged, replayed or unverifiable as if it were genuine, with the
//! typed error or warning the user sees. Every test runs on Prosody and on ejabberd.
//!
//! `docs/threat-model.md` maps each attack to the rule of `docs/protocol.md` that stops it and to
//! the test here that shows it. Run one server's half with
//! `cargo test -p keyward-tests --test hostile prosody` (build the binaries first, as for `e2e`).

#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

mod adversary;
mod backup;
mod component;
mod directory;
mod display;
mod plaintext;
mod reconnect;
mod transparency;
mod trust;
