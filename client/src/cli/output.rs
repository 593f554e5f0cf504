//! What the tool prints: short lines for people, one JSON object per line for scripts (`--json`).

use super::sanitize;
use crate::{
    ContactView, HistoryItem, Incoming, KdfProgress, KeyEvent, Link, Received, SafetyReport, Sent, Session, Setup,
};
use indicatif::{ProgressBar, ProgressStyle};
use keyward_proto::BareJid;
use keyward_proto::restore::RecoveryCode;
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A spinner on stderr while the passphrase KDF runs, only when stderr is a terminal.
pub fn kdf_spinner() -> Option<KdfProgress> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let slot: Arc<Mutex<Option<ProgressBar>>> = Arc::new(Mutex::new(None));
    Some(Arc::new(move |started: bool| {
        let Ok(mut slot) = slot.lock() else { return };
        if started {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
                bar.set_style(style);
            }
            bar.set_message("deriving the key from your passphrase (Argon2id)...");
            bar.enable_steady_tick(Duration::from_millis(100));
            *slot = Some(bar);
        } else if let Some(bar) = slot.take() {
            bar.finish_and_clear();
        }
    }))
}

/// Prints results in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

fn print_json(value: Value) {
    println!("{value}");
}

/// The JSON object of a received message: `from`, `body`, `verified`, `trust`, `warnings`, plus `id` and `sent_at_ms`.
pub fn message_json(message: &Received) -> Value {
    json!({
        "from": message.from.as_str(),
        "to": message.to.as_str(),
        "body": message.body,
        "verified": message.verified,
        "trust": message.trust.as_str(),
        "warnings": message.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "id": message.id,
        "sent_at_ms": message.sent_at_ms,
    })
}

/// The JSON object of a key event (`notice` names its kind).
pub fn key_event_json(event: &KeyEvent) -> Value {
    match event {
        KeyEvent::Pinned { jid, fingerprint } => {
            json!({"notice": "key-pinned", "jid": jid.as_str(), "fingerprint": fingerprint.to_hex()})
        }
        KeyEvent::Unchanged { jid } => json!({"notice": "key-unchanged", "jid": jid.as_str()}),
        KeyEvent::Changed { jid, pinned, offered } => json!({
            "notice": "key-changed", "jid": jid.as_str(), "pinned": pinned.to_hex(), "offered": offered.to_hex(),
            "warning": format!("the key of {jid} CHANGED: run `keyward verify {jid}` and compare safety numbers"),
        }),
        KeyEvent::Revoked { jid, at, reason } => {
            json!({"notice": "revoked", "jid": jid.as_str(), "at": at, "reason": reason})
        }
        KeyEvent::NoKey { jid } => json!({"notice": "no-key", "jid": jid.as_str()}),
    }
}

/// Any text that came from a peer or the server, escaped for a terminal (section 12.3).
fn e(text: impl std::fmt::Display) -> String {
    sanitize::escape(&text.to_string())
}

fn key_event_text(event: &KeyEvent) -> String {
    let jid = match event {
        KeyEvent::Pinned { jid, .. }
        | KeyEvent::Unchanged { jid }
        | KeyEvent::Changed { jid, .. }
        | KeyEvent::Revoked { jid, .. }
        | KeyEvent::NoKey { jid } => e(jid),
    };
    match event {
        KeyEvent::Pinned { fingerprint, .. } => format!("pinned the key of {jid}: {fingerprint} (trust on first use)"),
        KeyEvent::Unchanged { .. } => format!("the key of {jid} is unchanged"),
        KeyEvent::Changed { pinned, offered, .. } => format!(
            "WARNING: the key of {jid} CHANGED!\n  pinned:  {pinned}\n  offered: {offered}\nThe new key is NOT trusted. Compare safety numbers with `keyward verify {jid}` and only then `--confirm`."
        ),
        KeyEvent::Revoked { at, reason, .. } => {
            format!("REVOKED: {jid} was revoked at {} ({}); nothing will be encrypted to it again", e(at), e(reason))
        }
        KeyEvent::NoKey { .. } => format!("{jid} has no keyward key yet; it will be pinned when they set up keyward"),
    }
}

impl Output {
    /// Output as JSON (`true`) or text.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub(crate) fn registered(&self, jid: &BareJid) {
        if self.json {
            print_json(json!({"registered": jid.as_str()}));
        } else {
            println!("registered {}", e(jid));
        }
    }

    pub(crate) fn ready(&self, session: &Session, setup: Setup, code: Option<&RecoveryCode>) {
        let what = match setup {
            Setup::FirstUse => "first-use",
            Setup::NewDevice => "new-device",
            Setup::ThisDevice => "this-device",
        };
        if self.json {
            let mut value =
                json!({"jid": session.me().as_str(), "fingerprint": session.fingerprint().to_hex(), "setup": what});
            if let Some(code) = code {
                value["recovery_code"] = json!(code.to_grouped().as_str());
            }
            print_json(value);
        } else {
            match setup {
                Setup::FirstUse => println!("keys created and published for {}", e(session.me())),
                _ => println!("keys of {} opened on this device", e(session.me())),
            }
            println!("your fingerprint: {}", session.fingerprint());
            if let Some(code) = code {
                print_recovery_code(code);
            }
        }
    }

    pub(crate) fn recovered(&self, session: &Session, code: Option<&RecoveryCode>) {
        if self.json {
            let mut value = json!({"jid": session.me().as_str(), "fingerprint": session.fingerprint().to_hex(), "setup": "recovered"});
            if let Some(code) = code {
                value["recovery_code"] = json!(code.to_grouped().as_str());
            }
            print_json(value);
        } else {
            println!(
                "keys of {} recovered on this device; your new passphrase opens them from now on",
                e(session.me())
            );
            println!("your fingerprint: {}", session.fingerprint());
            if let Some(code) = code {
                print_recovery_code(code);
            }
        }
    }

    pub(crate) fn passphrase_changed(&self, session: &Session, code: &RecoveryCode) {
        if self.json {
            print_json(
                json!({"jid": session.me().as_str(), "passphrase_changed": true, "recovery_code": code.to_grouped().as_str()}),
            );
        } else {
            println!(
                "the passphrase of {} is changed; the old one and the old recovery code no longer open your keys",
                e(session.me())
            );
            print_recovery_code(code);
        }
    }

    /// A recovery code made while a command opened the keys (an older blob was sealed again):
    /// on standard error, so that the command's own output stays as it is.
    pub(crate) fn migrated(&self, code: &RecoveryCode) {
        if self.json {
            eprintln!("{}", json!({"recovery_code": code.to_grouped().as_str()}));
        } else {
            eprintln!("your keys were sealed again in keyward's new format, which limits passphrase guesses");
            eprintln!("{}", recovery_code_text(code));
        }
    }

    pub(crate) fn contact_added(&self, jid: &BareJid, event: &KeyEvent, accepted: bool) {
        if self.json {
            let mut value = key_event_json(event);
            value["contact"] = json!(jid.as_str());
            value["accepted"] = json!(accepted);
            print_json(value);
        } else {
            if accepted {
                println!("accepted {} and sent them your key", e(jid));
            } else {
                println!("asked to add {} and sent them your key", e(jid));
            }
            self.key_event_text(event);
        }
    }

    fn key_event_text(&self, event: &KeyEvent) {
        let text = key_event_text(event);
        if matches!(event, KeyEvent::Changed { .. } | KeyEvent::Revoked { .. }) {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    pub(crate) fn sent(&self, to: &BareJid, sent: &Sent) {
        if self.json {
            print_json(json!({"to": to.as_str(), "id": sent.id, "fingerprint": sent.to_fingerprint.to_hex()}));
        } else {
            println!("sent to {} (key {})", e(to), sent.to_fingerprint);
        }
    }

    /// Says that `recv` listens, for people: not for scripts (`--json`) nor with `--timeout`.
    pub(crate) fn listening(&self, me: &BareJid, bounded: bool) {
        if !self.json && !bounded {
            eprintln!("receiving for {} (Ctrl-C to stop)", e(me));
        }
    }

    pub(crate) fn incoming(&self, event: &Incoming) {
        if self.json {
            let value = match event {
                Incoming::Message(message) => message_json(message),
                Incoming::Sent(message) => {
                    let mut value = message_json(message);
                    value["sent_elsewhere"] = json!(true);
                    value
                }
                Incoming::Key(key) => key_event_json(key),
                Incoming::SelfRevoked { at, reason } => json!({"notice": "self-revoked", "at": at, "reason": reason}),
                Incoming::ContactRequest(jid) => json!({"notice": "contact-request", "jid": jid.as_str()}),
                Incoming::RequestApproved(jid) => json!({"notice": "request-approved", "jid": jid.as_str()}),
                Incoming::ContactAccepted(jid) => json!({"notice": "contact-accepted", "jid": jid.as_str()}),
                Incoming::ContactEnded(jid) => json!({"notice": "contact-ended", "jid": jid.as_str()}),
                Incoming::Rejected { from, error } => {
                    json!({"notice": "rejected", "jid": from.as_str(), "error": error.to_string()})
                }
                Incoming::Unencrypted { from } => json!({"notice": "unencrypted", "jid": from.as_str()}),
                Incoming::Bounce { from, condition } => {
                    json!({"notice": "bounce", "jid": from.as_str(), "condition": condition})
                }
                Incoming::Link(Link::Lost) => json!({"notice": "connection-lost"}),
                Incoming::Link(Link::Restored) => json!({"notice": "reconnected"}),
            };
            print_json(value);
            return;
        }
        match event {
            Incoming::Message(message) => {
                let mark = if message.verified { "verified signature" } else { "NOT VERIFIED" };
                let body = sanitize::body(&message.body);
                println!("{} [{}, {}]: {body}", e(&message.from), message.trust.as_str(), mark);
                for warning in &message.warnings {
                    eprintln!("  WARNING {}", e(warning));
                }
            }
            Incoming::Sent(message) => {
                let body = sanitize::body(&message.body);
                println!("you, to {} [sent from another device]: {body}", e(&message.to));
            }
            Incoming::Key(key) => self.key_event_text(key),
            Incoming::SelfRevoked { at, reason } => {
                eprintln!("YOUR ACCOUNT WAS REVOKED at {} ({}); create a new account", e(at), e(reason))
            }
            Incoming::ContactRequest(jid) => {
                let jid = e(jid);
                println!("{jid} wants to add you: `keyward accept {jid}`")
            }
            Incoming::RequestApproved(jid) => println!("{} asked back; approved, since you added them", e(jid)),
            Incoming::ContactAccepted(jid) => println!("{} accepted your request", e(jid)),
            Incoming::ContactEnded(jid) => println!("{} ended the subscription", e(jid)),
            Incoming::Rejected { from, error } => eprintln!("REFUSED a message from {}: {}", e(from), e(error)),
            Incoming::Unencrypted { from } => eprintln!("ignored an unencrypted message from {}", e(from)),
            Incoming::Bounce { from, condition } => {
                eprintln!("a message to {} bounced: {}", e(from), e(condition))
            }
            Incoming::Link(Link::Lost) => eprintln!("the connection to the server broke; reconnecting"),
            Incoming::Link(Link::Restored) => eprintln!("reconnected"),
        }
    }

    pub(crate) fn history(&self, items: &[HistoryItem]) {
        for item in items {
            match item {
                HistoryItem::Message { archived_at, message } => {
                    if self.json {
                        let mut value = message_json(message);
                        value["archived_at"] = json!(archived_at);
                        print_json(value);
                        continue;
                    }
                    let mark = if message.verified { "verified signature" } else { "NOT VERIFIED" };
                    let when = archived_at.as_deref().map(e).unwrap_or_default();
                    let body = sanitize::body(&message.body);
                    println!("{when} {} [{}, {}]: {body}", e(&message.from), message.trust.as_str(), mark);
                    for warning in &message.warnings {
                        println!("  WARNING {}", e(warning));
                    }
                }
                HistoryItem::Unreadable { archived_at, from, reason } => {
                    if self.json {
                        print_json(json!({
                            "unreadable": true,
                            "from": from.as_ref().map(BareJid::as_str),
                            "archived_at": archived_at,
                            "reason": reason.to_string(),
                        }));
                        continue;
                    }
                    let when = archived_at.as_deref().map(e).unwrap_or_default();
                    let from = from.as_ref().map(e).unwrap_or_else(|| "?".into());
                    println!("{when} {from} [NOT SHOWN: {}]", e(reason));
                }
            }
        }
    }

    pub(crate) fn contacts(&self, contacts: &[ContactView]) {
        if self.json {
            let list: Vec<Value> = contacts
                .iter()
                .map(|c| {
                    json!({
                        "jid": c.jid.as_str(),
                        "status": c.status,
                        "fingerprint": c.fingerprint.map(|f| f.to_hex()),
                        "trust": c.trust.map(|t| t.as_str()),
                        "key_changed": c.key_changed,
                    })
                })
                .collect();
            print_json(Value::Array(list));
            return;
        }
        if contacts.is_empty() {
            println!("no contacts yet: `keyward add JID`");
        }
        for c in contacts {
            let trust = c.trust.map_or("-", |t| t.as_str());
            let fp = c.fingerprint.map_or_else(|| "(no key pinned)".to_owned(), |f| f.to_string());
            let changed = if c.key_changed { "  KEY CHANGED: run keyward verify" } else { "" };
            println!("{}  {}  {}  {}{}", e(&c.jid), c.status, trust, fp, changed);
        }
    }

    pub(crate) fn safety(&self, report: &SafetyReport, confirmed: bool) {
        let trust = if confirmed { "verified" } else { report.trust.as_str() };
        if self.json {
            print_json(json!({
                "jid": report.jid.as_str(),
                "safety_number": report.number.to_string(),
                "mine": report.mine.to_hex(),
                "theirs": report.theirs.to_hex(),
                "trust": trust,
                "key_changed": report.changed && !confirmed,
            }));
            return;
        }
        if report.changed && !confirmed {
            eprintln!("WARNING: {} presents a NEW key; this is the number for the new key.", e(&report.jid));
        }
        println!("safety number with {}:", e(&report.jid));
        let groups = report.number.groups();
        for row in groups.chunks(4) {
            println!("  {}", row.join(" "));
        }
        println!("your fingerprint:  {}", report.mine);
        println!("their fingerprint: {}", report.theirs);
        if confirmed {
            println!("marked {} as verified", e(&report.jid));
        } else {
            println!(
                "trust: {trust}. Compare the number with {} (in person or by call), then run with --confirm.",
                e(&report.jid)
            );
        }
    }
}

/// The recovery code as it is shown, once.
fn recovery_code_text(code: &RecoveryCode) -> String {
    format!(
        "your recovery code: {}\n  write it down and keep it away from this device: it opens your keys if you forget your\n  passphrase (`keyward recover`), and it is shown only this once",
        code.to_grouped().as_str()
    )
}

fn print_recovery_code(code: &RecoveryCode) {
    println!("{}", recovery_code_text(code));
}
