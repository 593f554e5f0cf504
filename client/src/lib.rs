//! keyward client SDK: end-to-end encrypted XMPP chat on any server, with no key handling asked of the user.
//!
//! A [`Session`] connects to an XMPP server (SASL SCRAM over STARTTLS or direct
//! TLS; plain TCP only with [`Transport::InsecurePlaintext`] for loopback
//! tests), sets up the account's keys ([`Session::start`]: cached on this
//! device, else fetched and opened with the passphrase, else generated and
//! published), pins contacts' keys on first use, and seals and opens messages
//! in the stanza format of the keyward protocol. All cryptography comes from
//! [`keyward_proto`]. Local state ([`Store`]) is kept in the user's data folder
//! with owner-only permissions; private keys are stored only sealed with the
//! passphrase.
//!
//! The `keyward` command line tool ([`cli`]) is a thin layer over this API.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod binding;
pub mod cli;
mod connection;
mod contacts;
mod error;
mod events;
mod fsutil;
pub mod passphrase;
mod session;
pub mod stanzas;
mod store;
mod transparency;

pub use connection::{ConnectOptions, Connection, Link, Transport, register};
pub use contacts::{Compared, Contact, Contacts, PinOutcome, Revocation, Trust};
pub use error::{Error, Result};
pub use events::{Incoming, KeyEvent, Received, Warning};
pub use keyward_proto;
pub use passphrase::PassphrasePolicy;
pub use session::{
    Account, ContactView, FOREVER, HistoryItem, KdfProgress, MAX_HISTORY, SafetyReport, Sent, Session, Setup,
    safety_report,
};
pub use store::{AccountState, DATA_DIR_ENV, DATABASE_FILE, STATE_FOLDER, Store, default_data_dir};
