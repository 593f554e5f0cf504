//! Draws the `keyward chat` state with ratatui: contacts on the left, the conversation on the right, the input line and the status line at the bottom; legible in 80x24.
//!
//! Every text drawn here is escaped by the state ([`super::app`]) or, for the JIDs of pending
//! requests, here; this module adds only its own fixed texts.

use super::app::{App, LineKind, TrustMark};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph};

/// The width of the contacts pane.
const CONTACTS_WIDTH: u16 = 26;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let [main, input, status] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(3), Constraint::Length(1)]).areas(frame.area());
    let [contacts, conversation] =
        Layout::horizontal([Constraint::Length(CONTACTS_WIDTH), Constraint::Min(20)]).areas(main);
    draw_contacts(frame, app, contacts);
    draw_conversation(frame, app, conversation);
    draw_input(frame, app, input);
    let (text, style) = match &app.self_revoked {
        Some(text) => (text.as_str(), Style::new().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD)),
        None if app.offline => {
            (app.status.as_str(), Style::new().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD))
        }
        None => (app.status.as_str(), Style::new().add_modifier(Modifier::REVERSED)),
    };
    frame.render_widget(Paragraph::new(format!(" {text}")).style(style), status);
}

fn trust_style(trust: TrustMark) -> Style {
    match trust {
        TrustMark::Verified => Style::new().fg(Color::Green),
        TrustMark::Tofu | TrustMark::NoKey => Style::new().fg(Color::Yellow),
        TrustMark::KeyChanged | TrustMark::Revoked => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

fn draw_contacts(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let mut items: Vec<ListItem<'_>> = app
        .contacts
        .iter()
        .map(|contact| {
            let unread = if contact.unread > 0 { format!(" ({})", contact.unread) } else { String::new() };
            ListItem::new(Text::from(vec![
                Line::from(format!("{}{unread}", contact.shown)),
                Line::from(Span::styled(format!("  {}", contact.trust.label()), trust_style(contact.trust))),
            ]))
        })
        .collect();
    for request in &app.requests {
        let shown = super::super::sanitize::escape(request.as_str());
        items.push(ListItem::new(Text::from(vec![
            Line::from(shown),
            Line::from(Span::styled("  wants to add you", Style::new().fg(Color::Cyan))),
        ])));
    }
    let list = List::new(items)
        .block(Block::bordered().title(format!(" {} ", app.me_shown)))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol(">");
    let mut state = ListState::default().with_selected(app.selected);
    frame.render_stateful_widget(list, area, &mut state);
}

fn line_style(kind: LineKind) -> Style {
    match kind {
        LineKind::Verified => Style::new(),
        LineKind::NotVerified => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        LineKind::Own => Style::new().fg(Color::Cyan),
        LineKind::Notice => Style::new().fg(Color::DarkGray),
        LineKind::Warning => Style::new().fg(Color::Red),
    }
}

fn draw_conversation(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let Some(contact) = app.current() else {
        let text = "No contact yet. /add JID asks someone to add you; /accept JID answers a request.";
        let block = Block::bordered().title(" conversation ");
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(Paragraph::new(lines_of(text, inner.width, Style::new())), inner);
        return;
    };
    let title = Line::from(vec![
        Span::raw(format!(" {} ", contact.shown)),
        Span::styled(format!("[{}] ", contact.trust.label()), trust_style(contact.trust)),
    ]);
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width;
    let banner = match contact.trust {
        TrustMark::Verified => None,
        TrustMark::Tofu => Some("key NOT VERIFIED: /verify, then /confirm NUMBER"),
        TrustMark::NoKey => Some("no key yet: messages cannot be sent until the contact publishes one"),
        TrustMark::KeyChanged => Some("KEY CHANGED: new messages are not trusted; /verify and /confirm"),
        TrustMark::Revoked => Some("KEY REVOKED: do not trust anything from this contact"),
    };
    let mut lines: Vec<Line<'_>> = Vec::new();
    if let Some(banner) = banner {
        lines.extend(lines_of(banner, width, trust_style(contact.trust).add_modifier(Modifier::REVERSED)));
    }
    // Scrolled back: the lines below the view are left out, and the last row says so.
    let shown = contact.lines.len().saturating_sub(contact.scroll);
    let below = contact.lines.len() - shown;
    let mut room = usize::from(inner.height).saturating_sub(lines.len());
    if below > 0 {
        room = room.saturating_sub(1);
    }
    let mut body: Vec<Line<'_>> = Vec::new();
    for line in &contact.lines[..shown] {
        body.extend(lines_of(&line.text, width, line_style(line.kind)));
    }
    // The last lines that fit below the banner.
    let skip = body.len().saturating_sub(room);
    lines.extend(body.into_iter().skip(skip));
    if below > 0 {
        let more = format!("-- {below} more line{} below: Page Down --", if below == 1 { "" } else { "s" });
        lines.extend(lines_of(&more, width, Style::new().add_modifier(Modifier::REVERSED)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// `text` cut into lines at most `width` columns wide, each styled.
fn lines_of(text: &str, width: u16, style: Style) -> Vec<Line<'static>> {
    wrap(text, usize::from(width)).into_iter().map(|l| Line::from(Span::styled(l, style))).collect()
}

/// `text` cut into lines at most `width` terminal columns wide (at least one line): at spaces
/// where it can, inside a word too long for a line, counting wide characters (CJK, emoji) as the
/// two columns they take.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let options = textwrap::Options::new(width.max(1)).break_words(true);
    textwrap::wrap(text, options).into_iter().map(std::borrow::Cow::into_owned).collect()
}

fn draw_input(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let to = app.current().map_or_else(|| "no contact".to_owned(), |c| c.shown.clone());
    let block = Block::bordered().title(format!(" to {to} "));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // The end of the line when it is longer than the box.
    let room = usize::from(inner.width).saturating_sub(3).max(1);
    let count = app.input.chars().count();
    let shown: String = app.input.chars().skip(count.saturating_sub(room)).collect();
    let cursor = u16::try_from(shown.chars().count() + 2).unwrap_or(inner.width);
    frame.render_widget(Paragraph::new(format!("> {shown}")), inner);
    frame.set_cursor_position(Position::new(inner.x + cursor.min(inner.width.saturating_sub(1)), inner.y));
}

#[cfg(test)]
mod tests {
    use super::super::app::tests::{alice, jid, received};
    use super::super::app::{App, Key};
    use super::*;
    use crate::{Incoming, KeyEvent};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// The screen's rows as text, at 80x24.
    fn screen(app: &App) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
        terminal.draw(|frame| draw(frame, app)).expect("draw");
        let buffer = terminal.backend().buffer();
        (0..24).map(|y| (0..80).map(|x| buffer[(x, y)].symbol()).collect()).collect()
    }

    /// The right-hand part of the rows: the conversation pane.
    fn conversation(rows: &[String]) -> Vec<String> {
        rows.iter().map(|r| r.chars().skip(usize::from(CONTACTS_WIDTH)).collect()).collect()
    }

    fn contacts(rows: &[String]) -> Vec<String> {
        rows.iter().map(|r| r.chars().take(usize::from(CONTACTS_WIDTH)).collect()).collect()
    }

    fn shows(rows: &[String], text: &str) -> bool {
        rows.iter().any(|r| r.contains(text))
    }

    #[test]
    fn a_received_message_appears_in_the_conversation_pane() {
        let mut app = alice();
        app.incoming(Incoming::Message(received("bob@example.test", "b1", "hi alice, lunch?", true)));
        let rows = screen(&app);
        assert_eq!(rows.len(), 24);
        assert!(shows(&conversation(&rows), "bob: hi alice, lunch?"), "{rows:#?}");
        assert!(shows(&conversation(&rows), "bob@example.test [tofu, not verified]"), "{rows:#?}");
        assert!(shows(&conversation(&rows), "key NOT VERIFIED: /verify"), "{rows:#?}");
        assert!(shows(&contacts(&rows), "bob@example.test"), "{rows:#?}");
        assert!(shows(&contacts(&rows), "carol@example.test"), "{rows:#?}");
        assert!(rows[0].contains("alice@example.test"), "{rows:#?}");
        assert!(rows[23].contains("/confirm"), "the status line: {rows:#?}");
    }

    #[test]
    fn an_unverified_message_is_marked_and_styled_apart() {
        let mut app = alice();
        app.incoming(Incoming::Message(received("bob@example.test", "b1", "good", true)));
        app.incoming(Incoming::Message(received("bob@example.test", "b2", "forged", false)));
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
        terminal.draw(|frame| draw(frame, &app)).expect("draw");
        let buffer = terminal.backend().buffer();
        let rows = screen(&app);
        let good = rows.iter().position(|r| r.contains("bob: good")).expect("good line");
        let forged = rows.iter().position(|r| r.contains("bob [NOT VERIFIED]: forged")).expect("forged line");
        let x = u16::try_from(rows[forged].chars().position(|c| c == '[').expect("mark")).expect("x");
        let y = |row: usize| u16::try_from(row).expect("y");
        assert_eq!(buffer[(x, y(forged))].fg, Color::Red);
        assert_ne!(buffer[(x, y(good))].fg, Color::Red);
    }

    #[test]
    fn scrolled_back_the_pane_shows_older_lines_and_says_how_many_are_below() {
        let mut app = alice();
        for i in 0..40 {
            app.incoming(Incoming::Message(received("bob@example.test", &format!("b{i}"), &format!("msg {i}"), true)));
        }
        app.key(Key::PageUp);
        let rows = conversation(&screen(&app));
        assert!(shows(&rows, "bob: msg 29"), "{rows:#?}");
        assert!(!shows(&rows, "bob: msg 30"), "{rows:#?}");
        assert!(shows(&rows, "-- 10 more lines below: Page Down --"), "{rows:#?}");
        app.key(Key::PageDown);
        let rows = conversation(&screen(&app));
        assert!(shows(&rows, "bob: msg 39"), "{rows:#?}");
        assert!(!shows(&rows, "below: Page Down"), "{rows:#?}");
    }

    #[test]
    fn a_revoked_contact_is_marked_in_both_panes() {
        let mut app = alice();
        app.incoming(Incoming::Key(KeyEvent::Revoked {
            jid: jid("bob@example.test"),
            at: "2026-01-01T00:00:00Z".into(),
            reason: "lost laptop".into(),
        }));
        let rows = screen(&app);
        assert!(shows(&contacts(&rows), "REVOKED"), "{rows:#?}");
        assert!(shows(&contacts(&rows), "verified"), "carol stays verified: {rows:#?}");
        assert!(shows(&conversation(&rows), "KEY REVOKED: do not trust anything"), "{rows:#?}");
        // Wrapped at a space, never inside a word.
        assert!(shows(&conversation(&rows), "(lost"), "{rows:#?}");
        assert!(shows(&conversation(&rows), "laptop): do not trust"), "{rows:#?}");
    }

    #[test]
    fn escape_and_bidi_characters_from_a_peer_show_escaped() {
        let mut app = alice();
        let body = "\u{1b}[2J\u{7}\u{202e}fdp.exe";
        app.incoming(Incoming::Message(received("bob@example.test", "b1", body, true)));
        app.incoming(Incoming::ContactRequest(jid("eve@example.test")));
        let rows = screen(&app);
        assert!(shows(&rows, "bob: \\u{001b}[2J\\u{0007}\\u{202e}fdp.exe"), "{rows:#?}");
        assert!(shows(&contacts(&rows), "eve@example.test"), "{rows:#?}");
        assert!(shows(&contacts(&rows), "wants to add you"), "{rows:#?}");
        for row in &rows {
            assert!(!row.chars().any(super::super::super::sanitize::is_unsafe), "{row:?}");
        }
    }

    #[test]
    fn the_input_line_shows_what_is_typed_and_its_end_when_long() {
        let mut app = alice();
        for c in "draft".chars() {
            app.key(Key::Char(c));
        }
        let rows = screen(&app);
        assert!(rows[21].contains("> draft"), "{rows:#?}");
        assert!(rows[20].contains("to bob@example.test"), "{rows:#?}");
        for c in std::iter::repeat_n('x', 100).chain("END".chars()) {
            app.key(Key::Char(c));
        }
        let rows = screen(&app);
        assert!(rows[21].contains("xxxEND"), "{rows:#?}");
        assert!(!rows[21].contains("draft"), "{rows:#?}");
    }

    #[test]
    fn a_long_conversation_shows_its_last_lines() {
        let mut app = alice();
        for i in 0..40 {
            app.incoming(Incoming::Message(received("bob@example.test", &format!("b{i}"), &format!("msg {i}"), true)));
        }
        let rows = screen(&app);
        assert!(shows(&rows, "bob: msg 39"), "{rows:#?}");
        assert!(!shows(&rows, "bob: msg 0 "), "{rows:#?}");
        assert_eq!(wrap("abcdef", 4), ["abcd", "ef"]);
        assert_eq!(wrap("", 4), [""]);
        assert_eq!(wrap("see you at noon", 8), ["see you", "at noon"]);
        // Wide characters take two columns each.
        assert_eq!(wrap("漢字漢字漢", 4), ["漢字", "漢字", "漢"]);
        for line in wrap("a 漢字 mixed with 🦀🦀🦀 crabs and averyveryverylongword", 7) {
            assert!(unicode_width::UnicodeWidthStr::width(line.as_str()) <= 7, "{line:?}");
        }
    }

    #[test]
    fn an_empty_account_says_what_to_do() {
        let rows = screen(&App::new(jid("alice@example.test")));
        assert!(shows(&rows, "/add JID"), "{rows:#?}");
        assert!(shows(&rows, "to no contact"), "{rows:#?}");
    }
}
