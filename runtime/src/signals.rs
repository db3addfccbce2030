//! Clean shutdown on SIGTERM (what the kubelet sends) and SIGINT (Ctrl-C).

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown() {
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
}

/// A token cancelled on SIGTERM/SIGINT, for tasks that must stop together.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        shutdown().await;
        child.cancel();
    });
    token
}
