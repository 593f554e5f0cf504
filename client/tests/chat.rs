//! `keyward chat` as a person uses it: the real binary in a real terminal (tmux, 80x24) against a real stack (each XMPP server, the component, keydir, Postgres): a request accepted, a hostile body shown escaped, a reply sent, the safety number confirmed, the terminal restored on /quit.

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

keyward_tests::on_both_servers!(chat_in_a_real_terminal);

async fn chat_in_a_real_terminal(kind: ServerKind) {
    let stack = Stack::start(kind, StackOptions::default()).await.expect("stack");
    let (carol_dir, dave_dir) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    for local in ["carol", "dave"] {
        stack.xmpp().register(local, &password(local)).await.expect("register");
    }
    keyward(&stack, "carol", carol_dir.path(), &["init"]);
    keyward(&stack, "dave", dave_dir.path(), &["init"]);
    let carol = format!("carol@{}", stack.domain());
    let dave = format!("dave@{}", stack.domain());
    keyward(&stack, "carol", carol_dir.path(), &["add", &dave]);

    let mut command = vec![
        "env".to_owned(),
        format!("KEYWARD_PASSWORD={}", password("dave")),
        format!("KEYWARD_PASSPHRASE={}", passphrase("dave")),
        "KEYWARD_LOG=off".to_owned(),
        env!("CARGO_BIN_EXE_keyward").to_owned(),
    ];
    command.extend(account_args(&stack, "dave", dave_dir.path()));
    command.push("chat".into());
    let shell =
        format!("{}; echo chat-exited-$?; sleep 60", command.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "));
    let tmux = Tmux::start(&format!("{kind:?}"), &shell);

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
    let deadline = Instant::now() + WAIT;
    loop {
        let out = keyward(&stack, "carol", carol_dir.path(), &["--json", "recv", "--timeout", "2"]);
        if String::from_utf8_lossy(&out.stdout).contains("\"body\":\"hello carol\"") {
            break;
        }
        assert!(Instant::now() < deadline, "carol never received dave's message");
    }

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
