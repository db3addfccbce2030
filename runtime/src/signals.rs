//! Clean shutdown on SIGTERM (what the kubelet sends) and SIGINT (Ctrl-C).
//!
//! The handlers are installed when a [`Shutdown`] is made, before a process announces
//! that it is ready: a SIGTERM that arrives between the announcement and the first
//! await is then kept rather than killing the process with the default action.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// SIGTERM and SIGINT handlers, installed by [`Shutdown::install`].
pub struct Shutdown {
    term: Signal,
    int: Signal,
}

impl Shutdown {
    /// Installs the handlers; needs a tokio runtime.
    pub fn install() -> anyhow::Result<Shutdown> {
        Ok(Shutdown {
            term: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
        })
    }

    /// Resolves when SIGTERM or SIGINT arrives (or arrived since [`Shutdown::install`]).
    pub async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = self.int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
    }

    /// A token cancelled on SIGTERM/SIGINT, for tasks that must stop together.
    pub fn into_token(self) -> CancellationToken {
        let token = CancellationToken::new();
        let child = token.clone();
        tokio::spawn(async move {
            self.recv().await;
            child.cancel();
        });
        token
    }
}
