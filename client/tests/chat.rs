//! `keyward chat` as a person uses it: the real binary in a real terminal (tmux, 80x24) against a real stack (each XMPP server, the component, keydir, Postgres): a request accepted, a hostile body shown escaped, a reply sent, the safety number confirmed, the server killed and back mid-conversation, a revocation arriving, the terminal restored on /quit.

use keyward_tests::stack::{Stack, StackOptions};
use keyward_tests::xmpp::ServerKind;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn password(local: &str) -> String {
    format!("password-of-{local}")
}

fn passphrase(local: &str) -> String {
    format!("{local}'s rhubarb tractor hums over velvet anchors")
}

/// The arguments that point `keyward` at the stack as `local`.
fn account_args(stack: &Stack, local: &str, data: &Path) -> Vec<String> {
    vec![
        "--insecure-plaintext".into(),
        "--server".into(),
        stack.c2s_addr().to_string(),
        "--component".into(),
        stack.component_jid().into(),
        "--jid".into(),
        format!("{local}@{}", stack.domain()),
        "--data-dir".into(),
        data.to_str().expect("utf-8 path").into(),
    ]
}

fn keyward(stack: &Stack, local: &str, data: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(account_args(stack, local, data))
        .args(args)
        .env("KEYWARD_PASSWORD", password(local))
        .env("KEYWARD_PASSPHRASE", passphrase(local))
        .env_remove("KEYWARD_DATA_DIR")
        .output()
        .expect("runs keyward");
    assert!(output.status.success(), "keyward {args:?} as {local} failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// `text` quoted for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A tmux server of its own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, command: &str) -> Self {
        let tmux = Self { socket: format!("keyward-chat-test-{name}-{}", std::process::id()) };
        let started = tmux.run(&["new-session", "-d", "-x", "80", "-y", "24", command]);
        assert!(started.status.success(), "tmux: {}", String::from_utf8_lossy(&started.stderr));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux runs (installed by `cargo xtask install`)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p"]).stdout).into_owned()
    }

    /// Types `text` then Enter.
    fn enter(&self, text: &str) {
        assert!(self.run(&["send-keys", "-l", text]).status.success());
        assert!(self.run(&["send-keys", "Enter"]).status.success());
    }

    /// Pastes `text` as a terminal does when the application asked for bracketed paste.
    fn paste(&self, text: &str) {
        assert!(self.run(&["set-buffer", "--", text]).status.success());
        assert!(self.run(&["paste-buffer", "-p", "-d"]).status.success());
    }

    /// Waits until the screen shows `text`; returns the screen.
    async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(Instant::now() < deadline, "the screen never showed {text:?}:\n{screen}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Starts `keyward chat` as `local` in a terminal of its own; the shell prints `chat-exited-CODE`
/// when it ends.
fn start_chat(stack: &Stack, kind: ServerKind, local: &str, data: &Path) -> Tmux {
    let mut command = vec![
        "env".to_owned(),
        format!("KEYWARD_PASSWORD={}", password(local)),
        format!("KEYWARD_PASSPHRASE={}", passphrase(local)),
        "KEYWARD_LOG=off".to_owned(),
        env!("CARGO_BIN_EXE_keyward").to_owned(),
    ];
    command.extend(account_args(stack, local, data));
    command.push("chat".into());
    let shell =
        format!("{}; echo chat-exited-$?; sleep 60", command.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "));
    Tmux::start(&format!("{kind:?}-{local}"), &shell)
}

/// The conversation pane's text without any white space, so that a line wrapped anywhere still
/// reads whole (the pane is columns 27 to 78 of 80).
fn conversation(screen: &str) -> String {
    screen.lines().flat_map(|row| row.chars().skip(27).take(52)).filter(|c| !c.is_whitespace()).collect()
}

/// Waits until `local` receives a message with `body` (`keyward recv`).
fn wait_received(stack: &Stack, local: &str, data: &Path, body: &str) {
    let wanted = format!("\"body\":{}", serde_json::to_string(body).expect("JSON"));
    let deadline = Instant::now() + WAIT;
    loop {
        let out = keyward(stack, local, data, &["--json", "recv", "--timeout", "2"]);
        if String::from_utf8_lossy(&out.stdout).contains(&wanted) {
            return;
        }
        assert!(Instant::now() < deadline, "{local} never received {body:?}");
    }
}

/// Carol and dave, registered and with keys (`keyward init`), each with a data folder of their
/// own; carol has asked to add dave.
struct Pair {
    carol: String,
    carol_dir: tempfile::TempDir,
    dave: String,
    dave_dir: tempfile::TempDir,
}

async fn carol_asks_dave(stack: &Stack) -> Pair {
    let (carol_dir, dave_dir) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    for local in ["carol", "dave"] {
        stack.xmpp().register(local, &password(local)).await.expect("register");
    }
    keyward(stack, "carol", carol_dir.path(), &["init"]);
    keyward(stack, "dave", dave_dir.path(), &["init"]);
    let carol = format!("carol@{}", stack.domain());
    let dave = format!("dave@{}", stack.domain());
    keyward(stack, "carol", carol_dir.path(), &["add", &dave]);
    Pair { carol, carol_dir, dave, dave_dir }
}

keyward_tests::on_both_servers!(chat_in_a_real_terminal);

async fn chat_in_a_real_terminal(kind: ServerKind) {
    let stack = Stack::start(kind, StackOptions::default()).await.expect("stack");
    let Pair { carol, carol_dir, dave, dave_dir } = carol_asks_dave(&stack).await;

    let tmux = start_chat(&stack, kind, "dave", dave_dir.path());

    // Carol's request and her relayed key came while dave was away.
    tmux.wait_for("wants to add you").await;
    tmux.enter("/accept");
    let screen = tmux.wait_for(&format!("accepted {carol}")).await;
    assert!(screen.contains("tofu, not verified"), "{screen}");

    // A message with an escape sequence and a bidi override shows escaped.
    keyward(&stack, "carol", carol_dir.path(), &["send", &dave, "hi \u{1b}[31mdave\u{202e}!"]);
    let screen = tmux.wait_for("carol: hi \\u{001b}[31mdave\\u{202e}!").await;
    assert!(!screen.contains('\u{1b}') && !screen.contains('\u{202e}'), "{screen}");

    tmux.enter("hello carol");
    tmux.wait_for("you: hello carol").await;
    wait_received(&stack, "carol", carol_dir.path(), "hello carol");

    // A pasted text with a line break stays in the input line until Enter (bracketed paste).
    tmux.paste("pasted\nin one go");
    tmux.wait_for("> pasted in one go").await;
    assert!(!tmux.screen().contains("you: pasted"), "the paste was sent by itself:\n{}", tmux.screen());
    tmux.enter("");
    tmux.wait_for("you: pasted in one go").await;

    // Carol reads her safety number out; dave compares it on his screen and confirms it.
    let report = keyward(&stack, "carol", carol_dir.path(), &["--json", "verify", &dave]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).expect("JSON");
    let number = report["safety_number"].as_str().expect("safety number");
    tmux.enter("/verify");
    tmux.wait_for("-- safety number: ").await;
    tmux.enter(&format!("/confirm {number}"));
    let screen = tmux.wait_for("marked VERIFIED").await;
    assert!(screen.contains(&format!("{carol} [verified]")), "{screen}");

    // /quit leaves the alternate screen: the shell's line is what remains.
    tmux.enter("/quit");
    let screen = tmux.wait_for("chat-exited-0").await;
    assert!(!screen.contains("> "), "the chat screen was left behind:\n{screen}");
}

keyward_tests::on_both_servers!(chat_rides_out_a_server_restart_and_shows_a_revocation_where_it_happens);

async fn chat_rides_out_a_server_restart_and_shows_a_revocation_where_it_happens(kind: ServerKind) {
    let mut stack = Stack::start(kind, StackOptions::default()).await.expect("stack");
    let Pair { carol, carol_dir, dave, dave_dir } = carol_asks_dave(&stack).await;
    keyward(&stack, "dave", dave_dir.path(), &["accept", &carol]);

    let tmux = start_chat(&stack, kind, "dave", dave_dir.path());
    tmux.wait_for("tofu, not verified").await;
    keyward(&stack, "carol", carol_dir.path(), &["send", &dave, "before the restart"]);
    tmux.wait_for("carol: before the restart").await;

    // The server dies under the chat: the screen says so, and what dave types meanwhile waits.
    stack.kill_xmpp().await.expect("kill the XMPP server");
    tmux.wait_for("OFFLINE").await;
    tmux.enter("typed offline");
    tmux.wait_for("waiting for the connection to send: typed offline").await;
    assert!(!tmux.screen().contains("chat-exited"), "the chat ended with the connection:\n{}", tmux.screen());

    // Back by itself once the server is: the waiting message goes out, and messages come in again.
    stack.restart_xmpp().await.expect("restart the XMPP server");
    // The waiting line goes out only once the session is back; the status line may by then
    // say something newer than "reconnected" (ejabberd repeats a request at the new session).
    let screen = tmux.wait_for("you: typed offline").await;
    assert!(!screen.contains("OFFLINE"), "{screen}");
    wait_received(&stack, "carol", carol_dir.path(), "typed offline");
    keyward(&stack, "carol", carol_dir.path(), &["send", &dave, "after the restart"]);
    tmux.wait_for("carol: after the restart").await;

    // The admin revokes carol mid-conversation: the warning appears in the conversation and the
    // contact is marked, and nothing more is encrypted to her.
    stack.revoke(&carol, "laptop stolen").await.expect("revoke");
    let screen = tmux.wait_for("!! KEY REVOKED at").await;
    let wanted: String = "(laptop stolen): do not trust anything".split_whitespace().collect();
    assert!(conversation(&screen).contains(&wanted), "{screen}");
    assert!(screen.contains("carol@example.test [REVOKED]"), "{screen}");
    assert!(!screen.contains("tofu, not verified"), "carol is still shown as trusted:\n{screen}");
    tmux.enter("are you there?");
    let screen = tmux.wait_for("send failed").await;
    assert!(!screen.contains("you: are you there?"), "{screen}");

    tmux.enter("/quit");
    tmux.wait_for("chat-exited-0").await;
}
