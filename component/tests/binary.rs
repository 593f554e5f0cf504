//! The `keyward-component` binary, configured through the environment only, against a
//! real Prosody: `serve` connects, serves /healthz and /metrics, never logs its secrets, and exits
//! cleanly on SIGTERM; `healthcheck` exits 0 only while the running component's stream is up.

use std::process::Stdio;
use std::time::{Duration, Instant};

use keyward_tests::free_port;
use keyward_tests::net::http_get;
use keyward_tests::xmpp::ServerOptions;
use keyward_tests::xmpp::{ServerKind, XmppServer};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

const TOKEN: &str = "token-that-must-not-appear-in-logs";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_from_the_environment_and_stop_on_sigterm() {
    let prosody = XmppServer::start(ServerKind::Prosody, ServerOptions::default()).await.expect("prosody");
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port().expect("port")).parse().expect("addr");
    let keydir_port = free_port().expect("port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward-component"))
        .arg("serve")
        .env("KEYWARD_XMPP_ADDR", prosody.component_addr().to_string())
        .env("KEYWARD_COMPONENT_JID", prosody.component_jid())
        .env("KEYWARD_COMPONENT_SECRET", prosody.secret())
        .env("KEYWARD_KEYDIR_URL", format!("http://127.0.0.1:{keydir_port}"))
        .env("KEYWARD_COMPONENT_TOKEN", TOKEN)
        .env("KEYWARD_METRICS_LISTEN", metrics.to_string())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the built binary");

    let started = Instant::now();
    loop {
        if let Ok((200, body)) = http_get(metrics, "/healthz").await {
            assert_eq!(body.trim(), "stream up");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the binary's stream never came up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, page) = http_get(metrics, "/metrics").await.expect("metrics");
    assert_eq!(status, 200);
    assert!(page.contains("keyward_component_connected 1"), "{page}");
    // As in the container image: the listener is given as 0.0.0.0, probed on loopback.
    let (healthy, stderr) = healthcheck(&format!("0.0.0.0:{}", metrics.port())).await;
    assert!(healthy, "healthcheck failed while the stream is up: {stderr}");
    let (healthy, _) = healthcheck(&metrics.to_string()).await;
    assert!(healthy);

    let pid = child.id().expect("pid").to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exits").expect("wait");
    assert!(status.success(), "exit status {status}");
    let (healthy, stderr) = healthcheck(&metrics.to_string()).await;
    assert!(!healthy, "healthcheck passed with nothing listening");
    assert!(stderr.contains("unhealthy"), "{stderr}");

    let mut logs = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut logs).await.expect("stderr");
    child.stdout.take().expect("stdout").read_to_string(&mut logs).await.expect("stdout");
    assert!(logs.contains("stream up"), "{logs}");
    assert!(logs.contains("stream closed"), "{logs}");
    assert!(!logs.contains(prosody.secret()), "the component secret was logged:\n{logs}");
    assert!(!logs.contains(TOKEN), "the keydir token was logged:\n{logs}");
}

/// Runs `keyward-component healthcheck` with `KEYWARD_METRICS_LISTEN=listen`: (exit 0, stderr).
async fn healthcheck(listen: &str) -> (bool, String) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_keyward-component"))
        .arg("healthcheck")
        .env("KEYWARD_METRICS_LISTEN", listen)
        .output()
        .await
        .expect("the built binary");
    assert!(started.elapsed() < Duration::from_secs(5), "healthcheck took {:?}", started.elapsed());
    let code = output.status.code();
    assert!(matches!(code, Some(0 | 1)), "exit status {:?}", output.status);
    (code == Some(0), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_fails_while_the_stream_is_down() {
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port().expect("port")).parse().expect("addr");
    let nothing = free_port().expect("port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward-component"))
        .arg("serve")
        .env("KEYWARD_XMPP_ADDR", format!("127.0.0.1:{nothing}"))
        .env("KEYWARD_COMPONENT_JID", "keys.example.test")
        .env("KEYWARD_COMPONENT_SECRET", "secret")
        .env("KEYWARD_KEYDIR_URL", format!("http://127.0.0.1:{nothing}"))
        .env("KEYWARD_COMPONENT_TOKEN", TOKEN)
        .env("KEYWARD_METRICS_LISTEN", metrics.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the built binary");
    let started = Instant::now();
    while http_get(metrics, "/healthz").await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(15), "the metrics listener never came up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(http_get(metrics, "/healthz").await.expect("healthz").0, 503);
    let (healthy, stderr) = healthcheck(&metrics.to_string()).await;
    assert!(!healthy, "healthcheck passed with the stream down");
    assert!(stderr.contains("503"), "{stderr}");
    child.kill().await.expect("kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_invalid_configuration() {
    let output = Command::new(env!("CARGO_BIN_EXE_keyward-component"))
        .arg("serve")
        .env("KEYWARD_XMPP_ADDR", "127.0.0.1:1")
        .env("KEYWARD_COMPONENT_JID", "user@keys.example.test")
        .env("KEYWARD_COMPONENT_SECRET", "s3cret-value")
        .env("KEYWARD_KEYDIR_URL", "http://127.0.0.1:1")
        .env("KEYWARD_COMPONENT_TOKEN", TOKEN)
        .env("KEYWARD_METRICS_LISTEN", "127.0.0.1:0")
        .output()
        .await
        .expect("the built binary");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the component JID must be a domain"), "{stderr}");
    assert!(!stderr.contains("s3cret-value") && !stderr.contains(TOKEN), "{stderr}");
}
