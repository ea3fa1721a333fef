//! Cancelling a running workflow from outside.

use tokio::sync::watch;

/// The side that cancels.
#[derive(Debug, Clone)]
pub struct CancelHandle(std::sync::Arc<watch::Sender<bool>>);

/// The side that is cancelled.
#[derive(Debug, Clone)]
pub struct CancelToken(watch::Receiver<bool>);

/// A connected handle and token.
pub fn cancel_pair() -> (CancelHandle, CancelToken) {
    let (tx, rx) = watch::channel(false);
    (CancelHandle(std::sync::Arc::new(tx)), CancelToken(rx))
}

impl CancelHandle {
    /// Cancels the workflow (idempotent).
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }
}

impl CancelToken {
    /// A token that is never cancelled.
    pub fn never() -> Self {
        cancel_pair().1
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when cancellation is requested (never, if the handle is dropped first).
    pub async fn cancelled(&mut self) {
        if self.0.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
