//! The state of `keyward chat` as a pure state machine: session events and key presses in, screen state and commands for the driver out; no I/O, no terminal.
//!
//! Every string kept here that came from a peer or a server (bodies, JIDs, reasons, error
//! texts) is escaped by [`sanitize`] when it enters the state, so the renderer cannot show a
//! control, bidi or invisible character whatever it does.

use super::super::sanitize;
use crate::events::Warning;
use crate::session::MAX_HISTORY;
use crate::{ContactView, HistoryItem, Incoming, KeyEvent, Link, Received, SafetyReport, Trust};
use keyward_proto::{BareJid, Fingerprint};
use std::fmt::Display;

/// How many archived messages are loaded when a conversation is first opened.
pub const HISTORY_LIMIT: usize = 50;

/// How many lines Page Up and Page Down move the conversation.
pub const PAGE: usize = 10;

/// What the user should know about a contact's key, worst first in [`TrustMark::worse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustMark {
    /// No key known for the contact (yet).
    NoKey,
    /// Pinned on first use, not compared out of band.
    Tofu,
    /// The user compared the safety number and confirmed it.
    Verified,
    /// A different key was offered and is held back.
    KeyChanged,
    /// The contact's key was revoked: final.
    Revoked,
}

impl TrustMark {
    /// The mark shown beside the contact.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoKey => "no key yet",
            Self::Tofu => "tofu, not verified",
            Self::Verified => "verified",
            Self::KeyChanged => "KEY CHANGED",
            Self::Revoked => "REVOKED",
        }
    }

    fn of_view(view: &ContactView) -> Self {
        if view.status == "revoked" {
            Self::Revoked
        } else if view.key_changed {
            Self::KeyChanged
        } else {
            match view.trust {
                Some(Trust::Verified) => Self::Verified,
                Some(Trust::Tofu) => Self::Tofu,
                None => Self::NoKey,
            }
        }
    }

    fn of_trust(trust: Trust) -> Self {
        match trust {
            Trust::Verified => Self::Verified,
            Trust::Tofu => Self::Tofu,
        }
    }
}

/// What kind of line of a conversation, which decides how it is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A message from the contact whose signature checked out.
    Verified,
    /// A message that did NOT verify: never drawn like a verified one.
    NotVerified,
    /// A message this account sent.
    Own,
    /// Information (history loaded, key pinned, request accepted...).
    Notice,
    /// A warning (key changed, revoked, refused message, bounce...).
    Warning,
}

/// One line of a conversation, already escaped for the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// How it is drawn.
    pub kind: LineKind,
    /// The text, escaped.
    pub text: String,
    /// The message id, to leave out of the history a message already shown live.
    id: Option<String>,
    /// Put there by the archive: replaced when more of the archive is loaded.
    archived: bool,
}

/// A contact in the left pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEntry {
    /// The contact.
    pub jid: BareJid,
    /// The JID escaped for display.
    pub shown: String,
    /// What is known of its key.
    pub trust: TrustMark,
    /// Messages received while the conversation was not selected.
    pub unread: usize,
    /// The conversation's lines, oldest first.
    pub lines: Vec<ChatLine>,
    /// How many of the last lines are scrolled out of view below (Page Up / Page Down).
    pub scroll: usize,
    history_requested: bool,
    /// The most archived messages asked for so far (0: none yet).
    history_limit: usize,
    /// The archive had fewer than that: there is nothing older to load.
    history_complete: bool,
}

impl ContactEntry {
    fn new(jid: BareJid) -> Self {
        Self {
            shown: sanitize::escape(jid.as_str()),
            jid,
            trust: TrustMark::NoKey,
            unread: 0,
            lines: Vec::new(),
            scroll: 0,
            history_requested: false,
            history_limit: 0,
            history_complete: false,
        }
    }

    fn push(&mut self, kind: LineKind, text: String) {
        self.lines.push(ChatLine { kind, text, id: None, archived: false });
    }
}

/// A key the driver passes in, already stripped of the terminal's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Enter: send the line or run the command.
    Enter,
    /// Delete the last character.
    Backspace,
    /// Clear the input line.
    Esc,
    /// Next contact.
    Tab,
    /// Previous contact.
    BackTab,
    /// Previous contact.
    Up,
    /// Next contact.
    Down,
    /// Scroll the conversation back; at its top, load older messages from the archive.
    PageUp,
    /// Scroll the conversation forward.
    PageDown,
    /// Quit.
    CtrlC,
}

/// What the driver should do on the session; it reports the outcome back to [`App`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send `text` to `to`; then [`App::sent`] or [`App::failed`].
    Send {
        /// The contact.
        to: BareJid,
        /// The text.
        text: String,
    },
    /// Add the contact; then [`App::added`].
    Add(BareJid),
    /// Accept the contact's request; then [`App::added`].
    Accept(BareJid),
    /// Load the last `limit` messages of the archive; then [`App::history_loaded`].
    LoadHistory {
        /// The contact.
        jid: BareJid,
        /// At most this many ([`HISTORY_LIMIT`] first, more as the user scrolls back).
        limit: usize,
    },
    /// Fetch the safety number; then [`App::safety`].
    Safety(BareJid),
    /// Confirm the key after comparing `number`; then [`App::confirmed`].
    Confirm {
        /// The contact.
        jid: BareJid,
        /// What the user typed.
        number: String,
    },
    /// Leave.
    Quit,
}

/// The whole state of the chat screen.
#[derive(Debug)]
pub struct App {
    me: BareJid,
    /// The account, escaped.
    pub me_shown: String,
    /// Contacts, in the order shown.
    pub contacts: Vec<ContactEntry>,
    /// The index of the selected contact.
    pub selected: Option<usize>,
    /// People who asked to add this account, not accepted yet.
    pub requests: Vec<BareJid>,
    /// What is being typed.
    pub input: String,
    /// The status line, escaped.
    pub status: String,
    /// This account was revoked: shown on every screen.
    pub self_revoked: Option<String>,
    /// The user asked to leave.
    pub quit: bool,
    /// The connection to the server broke and the session is reconnecting.
    pub offline: bool,
    /// Messages typed while offline, sent in order once the connection is back.
    outbox: Vec<(BareJid, String)>,
}

const OFFLINE: &str = "OFFLINE: the connection broke; reconnecting by itself (what you type waits)";

const HELP: &str = "Enter: send  Tab: next  PgUp/PgDn  /add JID /accept /verify /confirm NUM /quit";

impl App {
    /// An empty screen for `me`.
    pub fn new(me: BareJid) -> Self {
        Self {
            me_shown: sanitize::escape(me.as_str()),
            me,
            contacts: Vec::new(),
            selected: None,
            requests: Vec::new(),
            input: String::new(),
            status: HELP.to_owned(),
            self_revoked: None,
            quit: false,
            offline: false,
            outbox: Vec::new(),
        }
    }

    /// The selected contact.
    pub fn current(&self) -> Option<&ContactEntry> {
        self.selected.and_then(|i| self.contacts.get(i))
    }

    /// The contact list as the session lists it; selects the first one and asks for its history.
    pub fn set_contacts(&mut self, views: &[ContactView]) -> Vec<Command> {
        for view in views {
            let trust = TrustMark::of_view(view);
            self.entry(&view.jid).trust = trust;
        }
        if self.selected.is_none() && !self.contacts.is_empty() {
            return self.select(0);
        }
        Vec::new()
    }

    /// A key press; returns what the driver should do.
    pub fn key(&mut self, key: Key) -> Vec<Command> {
        match key {
            Key::Char(c) => {
                if !sanitize::is_unsafe(c) {
                    self.input.push(c);
                }
                Vec::new()
            }
            Key::Backspace => {
                self.input.pop();
                Vec::new()
            }
            Key::Esc => {
                self.input.clear();
                Vec::new()
            }
            Key::Tab | Key::Down => self.step(1),
            Key::BackTab | Key::Up => self.step(-1),
            Key::PageUp => self.page_up(),
            Key::PageDown => {
                if let Some(entry) = self.selected.and_then(|i| self.contacts.get_mut(i)) {
                    entry.scroll = entry.scroll.saturating_sub(PAGE);
                }
                Vec::new()
            }
            Key::CtrlC => {
                self.quit = true;
                vec![Command::Quit]
            }
            Key::Enter => {
                let line = std::mem::take(&mut self.input);
                self.submit(line.trim())
            }
        }
    }

    /// Text pasted into the terminal (bracketed paste): added to the input line as typed, its
    /// line breaks as spaces (a paste never sends by itself), anything unsafe left out.
    pub fn paste(&mut self, text: &str) {
        let text = text.replace("\r\n", " ").replace(['\n', '\r'], " ");
        self.input.extend(text.chars().filter(|&c| !sanitize::is_unsafe(c)));
    }

    /// Scrolls the selected conversation back a page; at its top, asks the archive for more
    /// (four times as many, up to [`MAX_HISTORY`]) unless it had no more.
    fn page_up(&mut self) -> Vec<Command> {
        let Some(entry) = self.selected.and_then(|i| self.contacts.get_mut(i)) else { return Vec::new() };
        let top = entry.lines.len().saturating_sub(1);
        if entry.scroll < top {
            entry.scroll = (entry.scroll + PAGE).min(top);
            return Vec::new();
        }
        if !entry.history_requested || entry.history_complete || entry.history_limit >= MAX_HISTORY {
            self.status = "the beginning of what can be shown here (keyward history --limit N reads more)".into();
            return Vec::new();
        }
        let limit = (entry.history_limit * 4).min(MAX_HISTORY);
        entry.history_limit = limit;
        self.status = format!("loading up to {limit} archived messages");
        vec![Command::LoadHistory { jid: entry.jid.clone(), limit }]
    }

    fn step(&mut self, by: isize) -> Vec<Command> {
        let count = self.contacts.len();
        if count == 0 {
            return Vec::new();
        }
        let now = self.selected.map_or(0, |i| i as isize);
        let next = (now + by).rem_euclid(count as isize) as usize;
        self.select(next)
    }

    fn select(&mut self, index: usize) -> Vec<Command> {
        let Some(entry) = self.contacts.get_mut(index) else { return Vec::new() };
        self.selected = Some(index);
        entry.unread = 0;
        entry.scroll = 0;
        if entry.history_requested || entry.trust == TrustMark::NoKey {
            return Vec::new();
        }
        entry.history_requested = true;
        entry.history_limit = HISTORY_LIMIT;
        vec![Command::LoadHistory { jid: entry.jid.clone(), limit: HISTORY_LIMIT }]
    }

    fn submit(&mut self, line: &str) -> Vec<Command> {
        if line.is_empty() {
            return Vec::new();
        }
        let Some(command) = line.strip_prefix('/') else {
            let Some(contact) = self.current() else {
                self.status = "no contact selected: /add JID first".into();
                return Vec::new();
            };
            let to = contact.jid.clone();
            if self.offline {
                let waiting = format!("-- waiting for the connection to send: {}", sanitize::body(line));
                self.entry(&to).push(LineKind::Notice, waiting);
                self.outbox.push((to, line.to_owned()));
                return Vec::new();
            }
            return vec![Command::Send { to, text: line.to_owned() }];
        };
        let (name, arg) = command.split_once(' ').map_or((command, ""), |(n, a)| (n, a.trim()));
        match name {
            "quit" | "q" => {
                self.quit = true;
                vec![Command::Quit]
            }
            "add" => self.parse_jid(arg).map(Command::Add).into_iter().collect(),
            "accept" => {
                let jid = if arg.is_empty() { self.requests.first().cloned() } else { self.parse_jid(arg) };
                match jid {
                    Some(jid) => vec![Command::Accept(jid)],
                    None if arg.is_empty() => {
                        self.status = "no pending request: /accept JID".into();
                        Vec::new()
                    }
                    None => Vec::new(),
                }
            }
            "verify" => match self.current() {
                Some(contact) => vec![Command::Safety(contact.jid.clone())],
                None => {
                    self.status = "select a contact to verify".into();
                    Vec::new()
                }
            },
            "confirm" => match (self.current(), arg.is_empty()) {
                (None, _) => {
                    self.status = "select a contact to confirm".into();
                    Vec::new()
                }
                (Some(_), true) => {
                    self.status = "/confirm NUMBER: the safety number as the contact reads it to you".into();
                    Vec::new()
                }
                (Some(contact), false) => vec![Command::Confirm { jid: contact.jid.clone(), number: arg.to_owned() }],
            },
            "help" => {
                self.status = HELP.into();
                Vec::new()
            }
            _ => {
                self.status = format!("unknown command /{}: {HELP}", sanitize::escape(name));
                Vec::new()
            }
        }
    }

    fn parse_jid(&mut self, text: &str) -> Option<BareJid> {
        match BareJid::parse(text) {
            Ok(jid) if jid == self.me => {
                self.status = "that is your own account".into();
                None
            }
            Ok(jid) => Some(jid),
            Err(_) => {
                self.status = format!("not a valid bare JID: {}", sanitize::escape(text));
                None
            }
        }
    }

    /// The entry of `jid`, added at the end if new.
    fn entry(&mut self, jid: &BareJid) -> &mut ContactEntry {
        let index = match self.contacts.iter().position(|c| &c.jid == jid) {
            Some(index) => index,
            None => {
                self.contacts.push(ContactEntry::new(jid.clone()));
                self.contacts.len() - 1
            }
        };
        &mut self.contacts[index]
    }

    /// The entry of `jid`, noting a line the user has not seen if it is not selected.
    fn entry_unread(&mut self, jid: &BareJid) -> &mut ContactEntry {
        let selected = self.current().is_some_and(|c| &c.jid == jid);
        let entry = self.entry(jid);
        if !selected {
            entry.unread += 1;
        }
        entry
    }

    /// An event from the session.
    pub fn incoming(&mut self, event: Incoming) -> Vec<Command> {
        match event {
            Incoming::Message(message) => {
                let from = message.from.clone();
                self.message(&from, &message, false);
            }
            Incoming::Sent(message) => {
                let to = message.to.clone();
                self.message(&to, &message, true);
            }
            Incoming::Key(key) => self.key_event(&key),
            Incoming::SelfRevoked { at, reason } => {
                let text = format!(
                    "YOUR ACCOUNT WAS REVOKED at {} ({}): create a new account",
                    sanitize::escape(&at),
                    sanitize::escape(&reason)
                );
                self.status = text.clone();
                self.self_revoked = Some(text);
            }
            Incoming::ContactRequest(jid) => {
                let shown = sanitize::escape(jid.as_str());
                self.status = format!("{shown} wants to add you: /accept {shown}");
                if !self.requests.contains(&jid) {
                    self.requests.push(jid);
                }
            }
            Incoming::RequestApproved(jid) => {
                self.entry(&jid).push(LineKind::Notice, "-- asked back; approved, since you added them".into());
            }
            Incoming::ContactAccepted(jid) => {
                self.entry(&jid).push(LineKind::Notice, "-- accepted your request".into());
            }
            Incoming::ContactEnded(jid) => {
                self.entry(&jid).push(LineKind::Notice, "-- ended the subscription".into());
            }
            Incoming::Rejected { from, error } => {
                let text = format!("REFUSED a message: {}", sanitize::escape(&error.to_string()));
                self.notice_from(&from, text);
            }
            Incoming::Unencrypted { from } => {
                self.notice_from(&from, "ignored a message without keyward encryption (not shown)".into());
            }
            Incoming::Bounce { from, condition } => {
                self.notice_from(&from, format!("a message bounced: {}", sanitize::escape(&condition)));
            }
            Incoming::Link(Link::Lost) => {
                self.offline = true;
                self.status = OFFLINE.into();
            }
            Incoming::Link(Link::Restored) => {
                self.offline = false;
                self.status = "reconnected".into();
                let outbox = std::mem::take(&mut self.outbox);
                return outbox.into_iter().map(|(to, text)| Command::Send { to, text }).collect();
            }
        }
        self.history_if_selected()
    }

    /// A warning about something `from` sent: in its conversation if it is a contact, else (a
    /// stranger, the component, a server) in the status line, without making it a contact.
    fn notice_from(&mut self, from: &BareJid, text: String) {
        if self.contacts.iter().any(|c| &c.jid == from) {
            self.entry_unread(from).push(LineKind::Warning, format!("!! {text}"));
        } else {
            self.status = format!("{}: {text}", sanitize::escape(from.as_str()));
        }
    }

    /// A contact that got its first key while selected gets its history now.
    fn history_if_selected(&mut self) -> Vec<Command> {
        match self.selected {
            Some(index) if self.contacts.get(index).is_some_and(|c| !c.history_requested) => self.select(index),
            _ => Vec::new(),
        }
    }

    fn message(&mut self, contact: &BareJid, message: &Received, own: bool) {
        let lines = message_lines(message, &self.me, own);
        let entry = self.entry_unread(contact);
        apply_warnings(entry, &message.warnings);
        if !own && entry.trust == TrustMark::NoKey {
            entry.trust = TrustMark::of_trust(message.trust);
        }
        entry.lines.extend(lines);
    }

    fn key_event(&mut self, event: &KeyEvent) {
        match event {
            KeyEvent::Pinned { jid, fingerprint } => {
                let entry = self.entry(jid);
                entry.trust = TrustMark::Tofu;
                entry.push(
                    LineKind::Notice,
                    format!("-- key {fingerprint} pinned on first use: NOT VERIFIED yet, /verify to compare"),
                );
            }
            KeyEvent::Unchanged { .. } => {}
            KeyEvent::Changed { jid, pinned, offered } => {
                let entry = self.entry_unread(jid);
                if entry.trust != TrustMark::Revoked {
                    entry.trust = TrustMark::KeyChanged;
                }
                entry.push(LineKind::Warning, key_changed_text(pinned, offered));
            }
            KeyEvent::Revoked { jid, .. } if jid == &self.me => {}
            KeyEvent::Revoked { jid, at, reason } => {
                let entry = self.entry_unread(jid);
                entry.trust = TrustMark::Revoked;
                entry.push(
                    LineKind::Warning,
                    format!(
                        "!! KEY REVOKED at {} ({}): do not trust anything from this contact",
                        sanitize::escape(at),
                        sanitize::escape(reason)
                    ),
                );
            }
            KeyEvent::NoKey { jid } => {
                self.entry(jid).push(LineKind::Notice, "-- has no keyward key yet".into());
            }
        }
    }

    /// A message went out.
    pub fn sent(&mut self, to: &BareJid, text: &str, id: &str) {
        let entry = self.entry(to);
        for (i, line) in sanitize::body(text).split('\n').enumerate() {
            let text = if i == 0 { format!("you: {line}") } else { line.to_owned() };
            entry.lines.push(ChatLine { kind: LineKind::Own, text, id: Some(id.to_owned()), archived: false });
        }
    }

    /// A contact was added or accepted; `event` is what the session learned of its key.
    pub fn added(&mut self, jid: &BareJid, event: &KeyEvent, accepted: bool) -> Vec<Command> {
        self.requests.retain(|r| r != jid);
        let shown = sanitize::escape(jid.as_str());
        self.status = if accepted { format!("accepted {shown}") } else { format!("asked to add {shown}") };
        self.entry(jid);
        self.key_event(event);
        let index = self.contacts.iter().position(|c| &c.jid == jid);
        index.map(|i| self.select(i)).unwrap_or_default()
    }

    /// The archive's last messages with `jid`, oldest first, asked for with `limit`: shown
    /// before what arrived live, in place of what the archive gave before.
    pub fn history_loaded(&mut self, jid: &BareJid, items: &[HistoryItem], limit: usize) {
        let me = self.me.clone();
        let entry = self.entry(jid);
        entry.history_complete = items.len() < limit;
        entry.lines.retain(|line| !line.archived);
        let mut lines = Vec::new();
        let mut ids = Vec::new();
        for item in items {
            match item {
                HistoryItem::Message { message, .. } => {
                    ids.push(message.id.clone());
                    lines.extend(message_lines(message, &me, false));
                }
                HistoryItem::Unreadable { reason, .. } => lines.push(ChatLine {
                    kind: LineKind::Warning,
                    text: format!("!! an archived message is not shown: {}", sanitize::escape(&reason.to_string())),
                    id: None,
                    archived: false,
                }),
            }
        }
        let count = ids.len();
        let more = if entry.history_complete { "" } else { " (Page Up: older)" };
        lines.push(ChatLine {
            kind: LineKind::Notice,
            text: format!("-- {count} archived message{}{more}", if count == 1 { "" } else { "s" }),
            id: None,
            archived: false,
        });
        for line in &mut lines {
            line.archived = true;
        }
        let live = std::mem::take(&mut entry.lines);
        lines.extend(live.into_iter().filter(|l| l.id.as_ref().is_none_or(|id| !ids.contains(id))));
        // The scroll counts lines below the view, so what was in view stays in view.
        entry.lines = lines;
    }

    /// The safety number with a contact, shown in its conversation.
    pub fn safety(&mut self, report: &SafetyReport) {
        let entry = self.entry(&report.jid);
        if report.changed {
            entry.push(
                LineKind::Warning,
                format!("!! the number below is for the NEW key {}, not the pinned one", report.theirs),
            );
        }
        entry.push(LineKind::Notice, format!("-- safety number: {}", report.number));
        entry.push(
            LineKind::Notice,
            "-- compare it with the contact (in person or by call), then /confirm NUMBER".into(),
        );
    }

    /// The user confirmed the key `fingerprint` of `jid`.
    pub fn confirmed(&mut self, jid: &BareJid, fingerprint: &Fingerprint) {
        let entry = self.entry(jid);
        entry.trust = TrustMark::Verified;
        entry.push(LineKind::Notice, format!("-- key {fingerprint} marked VERIFIED"));
        self.status = format!("{} is verified", sanitize::escape(jid.as_str()));
    }

    /// A command failed: said in the status line and, for a contact's command, in its conversation.
    pub fn failed(&mut self, contact: Option<&BareJid>, what: &str, error: &dyn Display) {
        let text = format!("{what} failed: {}", sanitize::escape(&format!("{error:#}")));
        if let Some(jid) = contact {
            self.entry(jid).push(LineKind::Warning, format!("!! {text}"));
        }
        self.status = text;
    }
}

fn key_changed_text(pinned: &Fingerprint, offered: &Fingerprint) -> String {
    format!("!! KEY CHANGED from {pinned} to {offered}: not trusted until you /verify and /confirm")
}

fn apply_warnings(entry: &mut ContactEntry, warnings: &[Warning]) {
    for warning in warnings {
        match warning {
            Warning::KeyChanged { .. } if entry.trust != TrustMark::Revoked => entry.trust = TrustMark::KeyChanged,
            Warning::ContactRevoked { .. } => entry.trust = TrustMark::Revoked,
            Warning::KeyChanged { .. } | Warning::DirectoryForked { .. } => {}
        }
    }
}

/// The lines of one message: a header with its body's first line, continuation lines, then its
/// warnings. A message that did not verify says so on its first line.
fn message_lines(message: &Received, me: &BareJid, elsewhere: bool) -> Vec<ChatLine> {
    let (kind, who) = if &message.from == me {
        (LineKind::Own, if elsewhere { "you (other device)".to_owned() } else { "you".to_owned() })
    } else {
        (LineKind::Verified, sanitize::escape(message.from.local().unwrap_or(message.from.as_str())))
    };
    let kind = if message.verified { kind } else { LineKind::NotVerified };
    let mark = if message.verified { "" } else { " [NOT VERIFIED]" };
    let mut lines: Vec<ChatLine> = sanitize::body(&message.body)
        .split('\n')
        .enumerate()
        .map(|(i, line)| ChatLine {
            kind,
            text: if i == 0 { format!("{who}{mark}: {line}") } else { line.to_owned() },
            id: Some(message.id.clone()),
            archived: false,
        })
        .collect();
    for warning in &message.warnings {
        let text = match warning {
            Warning::KeyChanged { pinned, offered } => key_changed_text(pinned, offered),
            Warning::ContactRevoked { at } => {
                format!("!! the contact's key was revoked at {}: do not trust this message", sanitize::escape(at))
            }
            Warning::DirectoryForked { size } => format!(
                "!! ALARM: the key directory showed this contact another history ({size} epochs): keys may be forged; /verify"
            ),
        };
        lines.push(ChatLine { kind: LineKind::Warning, text, id: None, archived: false });
    }
    lines
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::Error;
    use keyward_proto::SafetyNumber;

    pub(in super::super) fn jid(text: &str) -> BareJid {
        BareJid::parse(text).expect("jid")
    }

    pub(in super::super) fn fingerprint(byte: u8) -> Fingerprint {
        Fingerprint::of_identity_key(&[byte; 32])
    }

    pub(in super::super) fn received(from: &str, id: &str, body: &str, verified: bool) -> Received {
        Received {
            from: jid(from),
            to: jid("alice@example.test"),
            id: id.into(),
            sent_at_ms: 1,
            body: body.into(),
            verified,
            trust: Trust::Tofu,
            warnings: Vec::new(),
        }
    }

    pub(in super::super) fn view(contact: &str, status: &'static str, trust: Option<Trust>) -> ContactView {
        ContactView { jid: jid(contact), status, fingerprint: trust.map(|_| fingerprint(2)), trust, key_changed: false }
    }

    /// Alice's screen with bob (tofu) and carol (verified), bob selected.
    pub(in super::super) fn alice() -> App {
        let mut app = App::new(jid("alice@example.test"));
        let commands = app.set_contacts(&[
            view("bob@example.test", "active", Some(Trust::Tofu)),
            view("carol@example.test", "active", Some(Trust::Verified)),
        ]);
        assert_eq!(commands, [Command::LoadHistory { jid: jid("bob@example.test"), limit: HISTORY_LIMIT }]);
        app
    }

    fn type_line(app: &mut App, text: &str) -> Vec<Command> {
        for c in text.chars() {
            assert!(app.key(Key::Char(c)).is_empty());
        }
        app.key(Key::Enter)
    }

    fn texts(app: &App, contact: &str) -> Vec<String> {
        let entry = app.contacts.iter().find(|c| c.jid == jid(contact)).expect("contact");
        entry.lines.iter().map(|l| l.text.clone()).collect()
    }

    #[test]
    fn what_is_typed_while_offline_waits_and_is_sent_in_order_once_reconnected() {
        let mut app = alice();
        app.incoming(Incoming::Link(Link::Lost));
        assert!(app.offline);
        assert!(app.status.starts_with("OFFLINE"), "{}", app.status);
        assert!(type_line(&mut app, "first").is_empty(), "nothing is sent while offline");
        assert!(type_line(&mut app, "second").is_empty());
        assert_eq!(
            texts(&app, "bob@example.test"),
            ["-- waiting for the connection to send: first", "-- waiting for the connection to send: second"]
        );
        let bob = jid("bob@example.test");
        assert_eq!(
            app.incoming(Incoming::Link(Link::Restored)),
            [
                Command::Send { to: bob.clone(), text: "first".into() },
                Command::Send { to: bob.clone(), text: "second".into() },
            ]
        );
        assert!(!app.offline);
        assert_eq!(app.status, "reconnected");
        // Sent once: a second return of the link has nothing left to send.
        app.incoming(Incoming::Link(Link::Lost));
        assert!(app.incoming(Incoming::Link(Link::Restored)).is_empty());
        assert_eq!(type_line(&mut app, "third"), [Command::Send { to: bob, text: "third".into() }]);
    }

    #[test]
    fn a_typed_line_is_sent_to_the_selected_contact() {
        let mut app = alice();
        assert_eq!(
            type_line(&mut app, "hello bob"),
            [Command::Send { to: jid("bob@example.test"), text: "hello bob".into() }]
        );
        assert!(app.input.is_empty());
        app.sent(&jid("bob@example.test"), "hello bob", "m1");
        assert_eq!(texts(&app, "bob@example.test"), ["you: hello bob"]);
        assert_eq!(app.contacts[0].lines[0].kind, LineKind::Own);
        // Backspace and Esc edit the line; control characters typed are not kept.
        for key in [Key::Char('x'), Key::Char('\u{1b}'), Key::Char('y'), Key::Backspace] {
            app.key(key);
        }
        assert_eq!(app.input, "x");
        app.key(Key::Esc);
        assert!(app.input.is_empty());
        assert!(app.key(Key::Enter).is_empty());
    }

    #[test]
    fn slash_commands_become_session_commands() {
        let mut app = alice();
        assert_eq!(type_line(&mut app, "/add dave@example.test"), [Command::Add(jid("dave@example.test"))]);
        assert_eq!(type_line(&mut app, "/verify"), [Command::Safety(jid("bob@example.test"))]);
        assert_eq!(
            type_line(&mut app, "/confirm 12345 67890"),
            [Command::Confirm { jid: jid("bob@example.test"), number: "12345 67890".into() }]
        );
        assert!(type_line(&mut app, "/confirm").is_empty());
        assert!(app.status.contains("/confirm NUMBER"));
        assert!(type_line(&mut app, "/add not a jid").is_empty());
        assert!(app.status.starts_with("not a valid bare JID"), "{}", app.status);
        assert!(type_line(&mut app, "/add alice@example.test").is_empty());
        assert!(type_line(&mut app, "/accept").is_empty(), "no request pending");
        app.incoming(Incoming::ContactRequest(jid("erin@example.test")));
        assert!(app.status.contains("/accept erin@example.test"));
        assert_eq!(type_line(&mut app, "/accept"), [Command::Accept(jid("erin@example.test"))]);
        assert!(type_line(&mut app, "/frobnicate\u{1b}[2J").is_empty());
        assert!(!app.status.contains('\u{1b}'));
        assert!(!app.quit);
        assert_eq!(type_line(&mut app, "/quit"), [Command::Quit]);
        assert!(app.quit);
        let mut app = alice();
        assert_eq!(app.key(Key::CtrlC), [Command::Quit]);
        assert!(app.quit);
    }

    #[test]
    fn changing_contact_loads_its_history_once() {
        let mut app = alice();
        assert_eq!(app.key(Key::Tab), [Command::LoadHistory { jid: jid("carol@example.test"), limit: HISTORY_LIMIT }]);
        assert_eq!(app.current().map(|c| c.jid.as_str()), Some("carol@example.test"));
        assert!(app.key(Key::Down).is_empty(), "bob's history was asked for at the start");
        assert_eq!(app.selected, Some(0));
        assert!(app.key(Key::Up).is_empty());
        assert_eq!(app.selected, Some(1));
        assert!(app.key(Key::BackTab).is_empty());
        assert_eq!(app.selected, Some(0));
        // A contact without a key has no history to load until its key comes.
        let mut app = App::new(jid("alice@example.test"));
        assert!(app.set_contacts(&[view("bob@example.test", "none", None)]).is_empty());
        let commands =
            app.incoming(Incoming::Key(KeyEvent::Pinned { jid: jid("bob@example.test"), fingerprint: fingerprint(2) }));
        assert_eq!(commands, [Command::LoadHistory { jid: jid("bob@example.test"), limit: HISTORY_LIMIT }]);
        assert_eq!(app.contacts[0].trust, TrustMark::Tofu);
    }

    #[test]
    fn received_messages_go_to_their_conversation_and_an_unverified_one_is_marked() {
        let mut app = alice();
        app.incoming(Incoming::Message(received("bob@example.test", "b1", "hi alice", true)));
        app.incoming(Incoming::Message(received("carol@example.test", "c1", "psst", false)));
        assert_eq!(texts(&app, "bob@example.test"), ["bob: hi alice"]);
        assert_eq!(app.contacts[0].lines[0].kind, LineKind::Verified);
        assert_eq!(app.contacts[0].unread, 0, "bob is selected");
        assert_eq!(texts(&app, "carol@example.test"), ["carol [NOT VERIFIED]: psst"]);
        assert_eq!(app.contacts[1].lines[0].kind, LineKind::NotVerified);
        assert_eq!(app.contacts[1].unread, 1);
        app.key(Key::Tab);
        assert_eq!(app.contacts[1].unread, 0);
        // A stranger's message makes a new entry, and a carbon goes to the recipient's conversation.
        app.incoming(Incoming::Message(received("dave@example.test", "d1", "hey", true)));
        assert_eq!(app.contacts[2].trust, TrustMark::Tofu);
        let mut carbon = received("alice@example.test", "a1", "from my phone", true);
        carbon.to = jid("bob@example.test");
        app.incoming(Incoming::Sent(carbon));
        assert_eq!(texts(&app, "bob@example.test")[1], "you (other device): from my phone");
    }

    #[test]
    fn key_changes_revocations_and_refusals_mark_the_contact_and_warn() {
        let mut app = alice();
        app.incoming(Incoming::Key(KeyEvent::Changed {
            jid: jid("bob@example.test"),
            pinned: fingerprint(2),
            offered: fingerprint(3),
        }));
        assert_eq!(app.contacts[0].trust, TrustMark::KeyChanged);
        assert!(texts(&app, "bob@example.test")[0].starts_with("!! KEY CHANGED"));
        app.incoming(Incoming::Key(KeyEvent::Revoked {
            jid: jid("carol@example.test"),
            at: "2026-01-01T00:00:00Z".into(),
            reason: "stolen\u{1b}[31m".into(),
        }));
        assert_eq!(app.contacts[1].trust, TrustMark::Revoked);
        assert_eq!(
            texts(&app, "carol@example.test"),
            ["!! KEY REVOKED at 2026-01-01T00:00:00Z (stolen\\u{001b}[31m): do not trust anything from this contact"]
        );
        // A message carrying the revocation warning keeps the contact revoked and says so.
        let mut late = received("carol@example.test", "c2", "trust me", false);
        late.warnings.push(Warning::ContactRevoked { at: "2026-01-01T00:00:00Z".into() });
        app.incoming(Incoming::Message(late));
        assert_eq!(app.contacts[1].trust, TrustMark::Revoked);
        let lines = texts(&app, "carol@example.test");
        assert_eq!(lines[1], "carol [NOT VERIFIED]: trust me");
        assert!(lines[2].contains("revoked"));
        // The own account's revocation notice is not a contact's.
        let before = app.contacts.len();
        app.incoming(Incoming::Key(KeyEvent::Revoked {
            jid: jid("alice@example.test"),
            at: "x".into(),
            reason: "y".into(),
        }));
        assert_eq!(app.contacts.len(), before);
        app.incoming(Incoming::Rejected {
            from: jid("bob@example.test"),
            error: Error::Invalid { what: "signature", reason: "bad\u{202e}txt".into() },
        });
        let last = texts(&app, "bob@example.test").pop().expect("line");
        assert_eq!(last, "!! REFUSED a message: invalid signature: bad\\u{202e}txt");
        // From a stranger (or the component): said in the status line, no contact made.
        app.incoming(Incoming::Unencrypted { from: jid("spam@example.test") });
        assert_eq!(app.contacts.len(), before);
        assert!(app.status.starts_with("spam@example.test: ignored a message"), "{}", app.status);
        app.incoming(Incoming::SelfRevoked { at: "now".into(), reason: "lost\nphone".into() });
        assert_eq!(
            app.self_revoked.as_deref(),
            Some("YOUR ACCOUNT WAS REVOKED at now (lost\\nphone): create a new account")
        );
    }

    #[test]
    fn peer_text_is_escaped_before_it_enters_the_state() {
        let mut app = alice();
        let body = "a\u{1b}]0;pwned\u{7}\u{202e}gnp.exe\nsecond\u{85}line";
        app.incoming(Incoming::Message(received("bob@example.test", "b1", body, true)));
        assert_eq!(
            texts(&app, "bob@example.test"),
            ["bob: a\\u{001b}]0;pwned\\u{0007}\\u{202e}gnp.exe", "  | second\\u{0085}line"]
        );
        app.incoming(Incoming::Bounce { from: jid("bob@example.test"), condition: "gone\r\u{2066}".into() });
        app.failed(Some(&jid("bob@example.test")), "send", &"server said \u{1b}[2J");
        for contact in &app.contacts {
            assert!(!contact.shown.chars().any(sanitize::is_unsafe));
            for line in &contact.lines {
                assert!(!line.text.chars().any(sanitize::is_unsafe), "{:?}", line.text);
            }
        }
        assert!(!app.status.chars().any(sanitize::is_unsafe));
    }

    fn archive(from: usize, to: usize) -> Vec<HistoryItem> {
        (from..to)
            .map(|i| HistoryItem::Message {
                archived_at: None,
                message: received("bob@example.test", &format!("h{i}"), &format!("old {i}"), true),
            })
            .collect()
    }

    #[test]
    fn page_up_scrolls_back_and_at_the_top_loads_more_of_the_archive_until_it_has_no_more() {
        let mut app = alice();
        let bob = jid("bob@example.test");
        app.history_loaded(&bob, &archive(100, 150), HISTORY_LIMIT);
        app.incoming(Incoming::Message(received("bob@example.test", "live", "live one", true)));
        assert_eq!(app.contacts[0].lines.len(), 52);
        assert!(texts(&app, "bob@example.test").contains(&"-- 50 archived messages (Page Up: older)".to_owned()));
        // Five pages back reach the top (51 lines above the last); Page Down comes forward again.
        for expected in [10, 20, 30, 40, 50, 51] {
            assert!(app.key(Key::PageUp).is_empty());
            assert_eq!(app.contacts[0].scroll, expected);
        }
        assert_eq!(app.key(Key::PageDown), []);
        assert_eq!(app.contacts[0].scroll, 41);
        app.contacts[0].scroll = 51;
        // At the top: four times as many from the archive, then what it had replaces the old lines.
        assert_eq!(app.key(Key::PageUp), [Command::LoadHistory { jid: bob.clone(), limit: 200 }]);
        app.history_loaded(&bob, &archive(20, 150), 200);
        let lines = texts(&app, "bob@example.test");
        assert_eq!(lines.len(), 132, "130 archived, the count, the live one: {lines:?}");
        assert_eq!(lines[0], "bob: old 20");
        assert_eq!(lines[130], "-- 130 archived messages");
        assert_eq!(lines[131], "bob: live one");
        assert_eq!(app.contacts[0].scroll, 51, "the lines in view stay in view");
        // The archive had no more: the top says so instead of asking again.
        app.contacts[0].scroll = 131;
        assert_eq!(app.key(Key::PageUp), []);
        assert!(app.status.starts_with("the beginning"), "{}", app.status);
        // Another contact starts at the bottom.
        app.key(Key::Tab);
        assert_eq!(app.contacts[1].scroll, 0);
    }

    #[test]
    fn a_paste_is_typed_text_that_never_sends_by_itself() {
        let mut app = alice();
        app.paste("two\r\nlines\u{1b}[2J and a bell\u{7}\n");
        assert_eq!(app.input, "two lines[2J and a bell ");
        assert_eq!(
            app.key(Key::Enter),
            [Command::Send { to: jid("bob@example.test"), text: "two lines[2J and a bell".into() }]
        );
    }

    #[test]
    fn history_comes_before_live_lines_without_showing_a_message_twice() {
        let mut app = alice();
        app.incoming(Incoming::Message(received("bob@example.test", "b2", "live", true)));
        app.incoming(Incoming::Message(received("bob@example.test", "b3", "newer", true)));
        let mut mine = received("alice@example.test", "a1", "old question", true);
        mine.to = jid("bob@example.test");
        let items = [
            HistoryItem::Message { archived_at: None, message: mine },
            HistoryItem::Unreadable {
                archived_at: None,
                from: Some(jid("bob@example.test")),
                reason: Error::Invalid { what: "message", reason: "tampered".into() },
            },
            HistoryItem::Message { archived_at: None, message: received("bob@example.test", "b2", "live", true) },
        ];
        app.history_loaded(&jid("bob@example.test"), &items, HISTORY_LIMIT);
        assert_eq!(
            texts(&app, "bob@example.test"),
            [
                "you: old question",
                "!! an archived message is not shown: invalid message: tampered",
                "bob: live",
                "-- 2 archived messages",
                "bob: newer",
            ]
        );
    }

    #[test]
    fn verify_and_confirm_show_the_number_and_mark_the_key() {
        let mut app = alice();
        let report = SafetyReport {
            jid: jid("bob@example.test"),
            mine: fingerprint(1),
            theirs: fingerprint(2),
            number: SafetyNumber::of(&fingerprint(1), &fingerprint(2)),
            trust: Trust::Tofu,
            changed: false,
        };
        app.safety(&report);
        let lines = texts(&app, "bob@example.test");
        assert_eq!(lines[0], format!("-- safety number: {}", report.number));
        assert!(lines[1].contains("/confirm NUMBER"));
        app.confirmed(&jid("bob@example.test"), &fingerprint(2));
        assert_eq!(app.contacts[0].trust, TrustMark::Verified);
        assert!(app.status.contains("verified"));
    }

    #[test]
    fn adding_a_contact_selects_it_and_accepting_ends_the_request() {
        let mut app = App::new(jid("alice@example.test"));
        app.incoming(Incoming::ContactRequest(jid("bob@example.test")));
        assert_eq!(app.requests, [jid("bob@example.test")]);
        let event = KeyEvent::Pinned { jid: jid("bob@example.test"), fingerprint: fingerprint(2) };
        let commands = app.added(&jid("bob@example.test"), &event, true);
        assert_eq!(commands, [Command::LoadHistory { jid: jid("bob@example.test"), limit: HISTORY_LIMIT }]);
        assert!(app.requests.is_empty());
        assert_eq!(app.current().map(|c| c.trust), Some(TrustMark::Tofu));
        assert!(texts(&app, "bob@example.test")[0].contains("NOT VERIFIED yet"));
    }
}
