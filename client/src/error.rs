//! The one error type of `keyward-client`: everything the SDK can refuse or fail at.

use keyward_proto::BareJid;
use thiserror::Error;

/// Everything that can go wrong in a keyward client session.
///
/// Messages name what failed and what to do about it; they never contain a
/// password, a passphrase, a private key or message plaintext.
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum Error {
    /// A wire format, signature, decryption or replay check failed.
    #[error(transparent)]
    Protocol(#[from] keyward_proto::Error),
    /// The connection to the XMPP server failed or broke.
    #[error("connection to the XMPP server failed: {0}")]
    Connection(String),
    /// The server refused the account's password (SASL failure).
    #[error("the server refused the login for {jid}: {condition}")]
    AuthFailed {
        /// The account.
        jid: BareJid,
        /// The SASL condition the server gave.
        condition: String,
    },
    /// The server offers no SCRAM mechanism, so the password would be exposed; checked on
    /// every login, reconnects included (the password is never sent).
    #[error("the server offers no SASL SCRAM mechanism (offered: {offered}); refusing to send the password")]
    NoScram {
        /// The mechanisms the server offered.
        offered: String,
    },
    /// Plain TCP (no TLS) was asked for an address that is not loopback, or without an
    /// explicit address: refused before connecting, so nothing crosses a network in the clear.
    #[error(
        "refusing plain TCP without TLS to {target}: --insecure-plaintext is only for a loopback address (127.0.0.0/8, ::1) given as HOST:PORT"
    )]
    PlaintextNotLoopback {
        /// The address asked for, with the offending IP address when it resolved.
        target: String,
    },
    /// No keyward component was found among the services of the account's server.
    #[error(
        "no keyward component found on {domain} (no item of its service discovery answers as urn:keyward:0); name one with --component"
    )]
    NoComponent {
        /// The account's domain.
        domain: String,
    },
    /// The component named (or discovered) did not identify itself as keyward.
    #[error("{jid} is not a keyward component ({cause}): refusing to send it keyward requests")]
    NotKeywardComponent {
        /// The JID that was checked.
        jid: BareJid,
        /// What its disco#info answered.
        cause: String,
    },
    /// No answer arrived in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// An IQ was answered with an error.
    #[error("{to} refused the {request} request: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Refused {
        /// Who answered.
        to: String,
        /// What was asked.
        request: &'static str,
        /// The RFC 6120 condition, e.g. `item-not-found`.
        condition: String,
        /// The server's text, if any.
        text: Option<String>,
    },
    /// An answer did not have the expected shape.
    #[error("unexpected answer to {0}")]
    UnexpectedAnswer(&'static str),
    /// In-band registration refused: the account exists.
    #[error("the account {0} already exists")]
    AccountExists(BareJid),
    /// This device has no keys for the account yet.
    #[error("no keys for {0} on this device: run `keyward init` (first use) or `keyward login` (new device)")]
    NoLocalKeys(BareJid),
    /// The account has no keys on the server.
    #[error("{0} has no keyward keys on the server yet: run `keyward init`")]
    NotInitialized(BareJid),
    /// First use was asked, but the account already has keys on the server.
    #[error("{0} already has keyward keys on the server: run `keyward login` on a new device")]
    AlreadyInitialized(BareJid),
    /// The secret blob from the server does not match the published bundle.
    #[error("the secret blob on the server does not match the published keys of {0}: refusing to use it")]
    SecretMismatch(BareJid),
    /// A new passphrase was refused by the passphrase policy (too weak, or the XMPP password).
    #[error(transparent)]
    PassphraseRefused(#[from] crate::passphrase::Refused),
    /// The passphrase did not open the secret blob. With a version 1 blob the try was counted
    /// by the key directory: ten in a row without a right one lock the account's restore.
    #[error(
        "wrong passphrase (or the stored secret was tampered with); {}",
        match tries_left {
            Some(0) => "the next wrong try locks your keys until an administrator unlocks them".to_owned(),
            Some(n) => format!("{n} more wrong tries lock your keys until an administrator unlocks them"),
            None => "each wrong try counts, and ten in a row lock your keys until an administrator unlocks them".to_owned(),
        }
    )]
    WrongPassphrase {
        /// How many more wrong tries the key directory says it answers before it locks the
        /// restore (its word only: the server side may say anything); `None` when it did not
        /// say, or for a version 0 blob, which no directory counts.
        tries_left: Option<u32>,
    },
    /// The key directory refuses to evaluate more passphrases for the account: too many wrong
    /// ones (protocol section 6.2). Nothing on this side can lift it.
    #[error(
        "the key directory locked the restore of {0}'s keys after too many wrong passphrases: ask your server's administrator to unlock it (`POST /v0/admin/accounts/{0}/unlock`), or wait if they configured the lock to expire"
    )]
    RestoreLocked(BareJid),
    /// The key directory cannot evaluate passphrases (no OPRF seed configured), so version 1
    /// blobs can be neither sealed nor opened.
    #[error(
        "the key directory cannot seal or open keys now (it has no OPRF seed configured): tell your server's operator"
    )]
    RestoreUnavailable,
    /// The recovery code did not open the secret blob.
    #[error("that recovery code does not open your keys (a code made before your last recovery no longer does)")]
    WrongRecoveryCode,
    /// The account's blob was sealed before recovery codes existed (version 0).
    #[error(
        "the keys of {0} on the server have no recovery code yet (sealed by an older keyward): open them once with your passphrase (`keyward login`), which prints one"
    )]
    NoRecoverySlot(BareJid),
    /// The passphrase opened the keys cached on this device but not the account's blob on the
    /// server: it was changed on another device.
    #[error(
        "your passphrase opens the keys on this device but not those on the server of {0}: it was changed on another device; run `keyward login` with the new passphrase"
    )]
    PassphraseChangedElsewhere(BareJid),
    /// The account (own or a contact) was revoked by an administrator.
    #[error("{jid} was revoked{}: never encrypting to it again", reason.as_deref().filter(|r| !r.is_empty()).map(|r| format!(" ({r})")).unwrap_or_default())]
    Revoked {
        /// The revoked account.
        jid: BareJid,
        /// The administrator's reason.
        reason: Option<String>,
    },
    /// The contact has no keyward key, so nothing can be encrypted to it.
    #[error("{0} has no keyward key: ask them to run `keyward init`")]
    NoKey(BareJid),
    /// The contact's key changed and the new key was not confirmed yet.
    #[error(
        "the key of {jid} CHANGED (pinned {pinned}, now offered {offered}); compare safety numbers with `keyward verify {jid}` and confirm with `--confirm` before sending"
    )]
    KeyChanged {
        /// The contact.
        jid: BareJid,
        /// The fingerprint pinned so far.
        pinned: String,
        /// The new fingerprint offered.
        offered: String,
    },
    /// A message verified only with a contact's held-back changed key: never opened
    /// (version 0 has no legitimate key change; the stanza is kept as evidence).
    #[error(
        "refused a message from {jid}: it is signed by a CHANGED key ({offered}), not the pinned one ({pinned}); compare safety numbers with `keyward verify {jid}`"
    )]
    SignedByChangedKey {
        /// The contact.
        jid: BareJid,
        /// The pinned fingerprint.
        pinned: String,
        /// The changed key's fingerprint.
        offered: String,
    },
    /// The key directory was caught contradicting its own signed history (protocol section
    /// 15.3): a head that does not verify, rolls back or forks (both heads kept as evidence), a
    /// key or revocation its map does not hold, or an answer without the proofs this device
    /// requires. Nothing from that answer was used.
    #[error("ALARM: the key directory contradicts its signed history{}: {cause}", jid.as_ref().map(|j| format!(" about {j}")).unwrap_or_default())]
    DirectoryCaught {
        /// The account the contradiction is about, if one.
        jid: Option<BareJid>,
        /// What failed: [`keyward_proto::Error::Fork`], `Rollback`, `KeyNotInMap`,
        /// `RevocationWithheld`, `KeyWithheld`, `MapProof`, a signature or log proof.
        cause: keyward_proto::Error,
    },
    /// The key directory's head lacks the fresh cosignatures of the auditors this account
    /// requires ([`crate::Account::cosignatures`]): nothing from the answer was used.
    #[error("the key directory's head has {valid} fresh auditor cosignatures, {required} required")]
    HeadNotCosigned {
        /// Valid fresh cosignatures of configured auditors.
        valid: usize,
        /// How many are required.
        required: usize,
    },
    /// A revocation (a notice or a directory answer) failed the checks of protocol section 8.
    #[error("refused a revocation of {jid}: {reason}")]
    RevocationRefused {
        /// The contact it was about.
        jid: BareJid,
        /// Which check failed.
        reason: String,
    },
    /// A carbon copy (XEP-0280) came from someone other than the account itself: anyone can
    /// wrap a forged message in a carbon, so only the server-stamped own bare JID counts.
    #[error("refused a carbon copy from {0}: carbons count only from your own account")]
    ForgedCarbon(BareJid),
    /// What the user entered to confirm a key is neither the safety number nor the fingerprint of it.
    #[error(
        "what you entered does not match the key of {0}: nothing was confirmed; compare the safety number again (`keyward verify {0}`)"
    )]
    ConfirmMismatch(BareJid),
    /// A bundle for a contact did not verify or was for another account.
    #[error("refused a key for {jid}: {cause}")]
    BadBundle {
        /// The contact.
        jid: BareJid,
        /// Why it was refused.
        cause: keyward_proto::Error,
    },
    /// A contact is not known locally.
    #[error("{0} is not a contact: run `keyward add {0}` first")]
    UnknownContact(BareJid),
    /// An argument was not valid.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Local state could not be read or written.
    #[error("local state at {path}: {cause}")]
    Store {
        /// The file or folder.
        path: String,
        /// The I/O or format error.
        cause: String,
    },
}

impl Error {
    pub(crate) fn store(path: &std::path::Path, cause: impl std::fmt::Display) -> Self {
        Self::Store { path: path.display().to_string(), cause: cause.to_string() }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
