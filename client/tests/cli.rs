//! The `keyward` binary against a real Prosody: registration, secrets from env and files, clear errors, JSON output.

use keyward_tests::xmpp::{ServerKind, ServerOptions, XmppServer};
use std::process::{Command, Output};

fn keyward(prosody: &XmppServer, data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["--server", &prosody.c2s_addr().to_string(), "--insecure-plaintext", "--data-dir"])
        .arg(data)
        .args(args)
        .env_remove("KEYWARD_PASSWORD")
        .env_remove("KEYWARD_PASSPHRASE")
        .env_remove("KEYWARD_JID")
        .output()
        .expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_errors_and_json() {
    let prosody =
        XmppServer::start(ServerKind::Prosody, ServerOptions { registration: true, ..ServerOptions::default() })
            .await
            .expect("prosody starts");
    let data = tempfile::tempdir().expect("dir");
    let password = data.path().join("password");
    std::fs::write(&password, "carol's password\n").expect("writes");
    let pw = password.to_str().expect("utf8");

    let out = keyward(&prosody, data.path(), &["--jid", "carol@example.test", "--password-file", pw, "register"]);
    assert!(out.status.success(), "register failed: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("registered carol@example.test"));

    // Registering again is a clear error, also in JSON.
    let out =
        keyward(&prosody, data.path(), &["--json", "--jid", "carol@example.test", "--password-file", pw, "register"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already exists"), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    assert!(json["error"].as_str().is_some_and(|e| e.contains("already exists")));

    // No terminal and no secret: says where to put it.
    let out = keyward(&prosody, data.path(), &["--jid", "carol@example.test", "contacts"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("KEYWARD_PASSWORD"), "{}", text(&out.stderr));

    // A wrong password is refused by the server, quickly and clearly.
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["--server", &prosody.c2s_addr().to_string(), "--insecure-plaintext", "--jid", "carol@example.test"])
        .arg("--data-dir")
        .arg(data.path())
        .args(["init"])
        .env("KEYWARD_PASSWORD", "wrong")
        .env("KEYWARD_PASSPHRASE", "a long passphrase")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("refused the login"), "{}", text(&out.stderr));

    // Verifying a contact not pinned on this device needs a session, hence the password.
    let out = keyward(&prosody, data.path(), &["--jid", "carol@example.test", "verify", "dave@example.test"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("KEYWARD_PASSWORD"), "{}", text(&out.stderr));

    // State folder permissions: keyward's own folder and the account folder are private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for folder in [data.path().join("keyward"), data.path().join("keyward").join("carol@example.test")] {
            let mode = std::fs::metadata(&folder).expect("the folder exists").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", folder.display());
        }
    }
}
