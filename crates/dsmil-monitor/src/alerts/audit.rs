//! Ordered, non-blocking forwarding of audit entries to core's [`AuditSink`].
//!
//! The alert engine is synchronous; the audit sink is async and may be slow (the TPM layer's
//! signed log). Entries go through a bounded queue to one writer task that appends them in
//! order. Submitting never waits: when the queue is full the entry is dropped and logged.
//! A failed append is logged and counted, never retried and never fatal.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dsmil_core::SecurityEvent;
use dsmil_core::ports::AuditSink;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::collect::NoRuntime;

/// Entries that may wait for the writer before new ones are dropped.
pub const DEFAULT_AUDIT_QUEUE: usize = 1024;

enum Message {
    Entry(Box<SecurityEvent>),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Default)]
struct Stats {
    appended: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// What the audit writer has done since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStats {
    /// Entries the sink accepted.
    pub appended: u64,
    /// Entries the sink refused (logged).
    pub failed: u64,
    /// Entries dropped because the queue was full or the writer had stopped (logged).
    pub dropped: u64,
}

/// Sends audit entries to a writer task. Cheap to clone; the task ends when every clone is
/// dropped, after appending what was queued.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Message>,
    stats: Arc<Stats>,
}

impl fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditWriter")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts a writer task appending to `sink`, with a queue of [`DEFAULT_AUDIT_QUEUE`].
    pub fn spawn(sink: Arc<dyn AuditSink>) -> Result<Self, NoRuntime> {
        Self::spawn_with_capacity(sink, DEFAULT_AUDIT_QUEUE)
    }

    /// Starts a writer task with a queue of `capacity` entries (at least 1).
    pub fn spawn_with_capacity(
        sink: Arc<dyn AuditSink>,
        capacity: usize,
    ) -> Result<Self, NoRuntime> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NoRuntime)?;
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(Stats::default());
        runtime.spawn(write_all(sink, rx, stats.clone()));
        Ok(Self { tx, stats })
    }

    /// Queues `event` for the sink. Never waits; a full queue drops the entry with an error
    /// log.
    pub fn submit(&self, event: SecurityEvent) {
        if let Err(e) = self.tx.try_send(Message::Entry(Box::new(event))) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            let (reason, event) = match e {
                mpsc::error::TrySendError::Full(Message::Entry(ev)) => ("queue full", Some(ev)),
                mpsc::error::TrySendError::Closed(Message::Entry(ev)) => {
                    ("writer stopped", Some(ev))
                }
                _ => ("queue unavailable", None),
            };
            tracing::error!(
                reason,
                event_type = event.as_ref().map(|e| e.event_type.as_str()),
                "audit entry dropped"
            );
        }
    }

    /// Waits until every entry submitted before this call has been handed to the sink (and
    /// the sink answered). Returns at once if the writer has stopped.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Counts since start.
    pub fn stats(&self) -> AuditStats {
        AuditStats {
            appended: self.stats.appended.load(Ordering::Relaxed),
            failed: self.stats.failed.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
        }
    }
}

async fn write_all(sink: Arc<dyn AuditSink>, mut rx: mpsc::Receiver<Message>, stats: Arc<Stats>) {
    while let Some(message) = rx.recv().await {
        match message {
            Message::Entry(event) => {
                let event_type = event.event_type.clone();
                match sink.append(*event).await {
                    Ok(_) => {
                        stats.appended.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, event_type, "cannot append to the audit log");
                    }
                }
            }
            Message::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}
