//! The shutdown signal both services stop on: SIGTERM (what Kubernetes and systemd send) or Ctrl-C.

/// Completes on SIGTERM or SIGINT (Ctrl-C), and logs that shutdown was requested. If a signal
/// handler cannot be installed, that signal is simply never seen.
pub async fn signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}
