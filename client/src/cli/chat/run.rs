//! The driver of `keyward chat`: the terminal in raw mode on the alternate screen (always restored), key presses and session events fed to the state, its commands run on the session.

use super::app::{App, Command, Key};
use super::ui;
use crate::{Compared, Session};
use anyhow::bail;
use crossterm::event::{self, Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, terminal};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::collections::VecDeque;
use std::io::{self, IsTerminal, Stdout};
use std::sync::Once;
use std::time::Duration;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender, error::TryRecvError};

/// How long the session is waited on before typed keys are looked at again.
const TICK: Duration = Duration::from_millis(50);

/// Runs the chat screen on an online session until the user quits.
pub(crate) async fn run(session: &mut Session) -> anyhow::Result<()> {
    if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
        bail!("keyward chat needs a terminal (use send and recv in scripts)");
    }
    let mut app = App::new(session.me().clone());
    let contacts = session.contacts().await?;
    let first = app.set_contacts(&contacts);
    let mut screen = Screen::enter()?;
    let (tx, mut keys) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_terminal(tx));
    let result = drive(session, &mut app, &mut screen.terminal, &mut keys, first).await;
    reader.abort();
    drop(screen);
    result
}

/// Forwards the terminal's events until the receiver is gone.
async fn read_terminal(tx: UnboundedSender<io::Result<Event>>) {
    let mut events = EventStream::new();
    while let Some(event) = events.next().await {
        if tx.send(event).is_err() {
            return;
        }
    }
}

async fn drive(
    session: &mut Session,
    app: &mut App,
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    keys: &mut UnboundedReceiver<io::Result<Event>>,
    first: Vec<Command>,
) -> anyhow::Result<()> {
    let mut queue = VecDeque::from(first);
    loop {
        while let Some(command) = queue.pop_front() {
            if command == Command::Quit {
                return Ok(());
            }
            terminal.draw(|frame| ui::draw(frame, app))?;
            queue.extend(execute(session, app, command).await);
        }
        if app.quit {
            return Ok(());
        }
        terminal.draw(|frame| ui::draw(frame, app))?;
        let mut typed = false;
        loop {
            match keys.try_recv() {
                Ok(event) => match event? {
                    Event::Key(key) => {
                        if let Some(key) = key_of(key) {
                            queue.extend(app.key(key));
                            typed = true;
                        }
                    }
                    Event::Paste(text) => {
                        app.paste(&text);
                        typed = true;
                    }
                    Event::Resize(..) => typed = true,
                    _ => {}
                },
                Err(TryRecvError::Empty) => break,
                // The terminal is gone.
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        if typed {
            continue;
        }
        // Never cut short (no select with the keys): dropping it while it opens a message could
        // lose the message. Keys wait at most TICK.
        if let Some(event) = session.next_event(TICK).await? {
            queue.extend(app.incoming(event));
        }
    }
}

/// The key as the state knows it; key releases and unbound keys are dropped.
fn key_of(event: KeyEvent) -> Option<Key> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    let control = event.modifiers.contains(KeyModifiers::CONTROL);
    Some(match event.code {
        KeyCode::Char('c' | 'd') if control => Key::CtrlC,
        KeyCode::Char(_) if control => return None,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        _ => return None,
    })
}

/// Runs one command of the state on the session and reports the outcome back to it.
async fn execute(session: &mut Session, app: &mut App, command: Command) -> Vec<Command> {
    match command {
        Command::Send { to, text } => match session.send(&to, &text).await {
            Ok(sent) => app.sent(&to, &text, &sent.id),
            Err(e) => app.failed(Some(&to), "send", &e),
        },
        Command::Add(jid) => match session.add(&jid).await {
            Ok(event) => return app.added(&jid, &event, false),
            Err(e) => app.failed(Some(&jid), "add", &e),
        },
        Command::Accept(jid) => match session.accept(&jid).await {
            Ok(event) => return app.added(&jid, &event, true),
            Err(e) => app.failed(Some(&jid), "accept", &e),
        },
        Command::LoadHistory { jid, limit } => match session.history(&jid, limit).await {
            Ok(items) => app.history_loaded(&jid, &items, limit),
            Err(e) => app.failed(Some(&jid), "history", &e),
        },
        Command::Safety(jid) => match session.safety_number(&jid).await {
            Ok(report) => app.safety(&report),
            Err(e) => app.failed(Some(&jid), "verify", &e),
        },
        Command::Confirm { jid, number } => {
            match Compared::parse(&number).and_then(|compared| session.confirm(&jid, &compared)) {
                Ok(fingerprint) => app.confirmed(&jid, &fingerprint),
                Err(e) => app.failed(Some(&jid), "confirm", &e),
            }
        }
        Command::Quit => {}
    }
    Vec::new()
}

/// The terminal in raw mode on the alternate screen; restored when dropped, and by the panic
/// hook on a panic.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> anyhow::Result<Self> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        terminal::enable_raw_mode()?;
        let entered = execute!(io::stdout(), terminal::EnterAlternateScreen, event::EnableBracketedPaste)
            .map_err(anyhow::Error::from)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())).map_err(anyhow::Error::from));
        match entered {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen, and shows the cursor; harmless when not in them.
fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), event::DisableBracketedPaste, terminal::LeaveAlternateScreen, cursor::Show);
}
