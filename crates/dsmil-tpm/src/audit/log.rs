//! Appending to the audit log.
//!
//! Each event becomes one line: its body (sequence number, time, event) with the chain hash of
//! its predecessor and its own `SHA-256(prev ‖ body)`, written and `fsync`ed before `append`
//! returns. Appends are group-committed: a writer thread takes every event waiting (up to
//! `MAX_GROUP`, 4,096), writes their lines with one `write` and one `fsync`, and answers them all —
//! so throughput grows with concurrency instead of being one `fsync` per event. A group that
//! cannot be written is cut off the file again and fails as a whole. Every `batch_entries`
//! entries, or `batch_interval` after the first unsigned one, a checkpoint line closes the
//! batch: the Merkle root over all entries so far, signed through the `Signer` port (a signed
//! tree head, as in transparency logs). Signing is per batch, not per event, because hardware
//! TPMs sign a few times per second.
//!
//! Reading the log's state never waits for the writer: [`AuditLog::len`],
//! [`AuditLog::signed`], [`AuditLog::tree_head`], [`AuditLog::status`], proofs and
//! verification read what the writer published after its last group commit or checkpoint
//! (see `writer`), so an async handler is not parked behind an `fsync`.
//!
//! Memory does not grow with the log: reopening streams the file (on the blocking pool), and
//! what stays in memory is the Merkle frontier, the leaves since the last checkpoint, and 40
//! bytes per 1,024 entries for inclusion proofs (see `chunks`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dsmil_core::monitoring::SecurityEvent;
use dsmil_core::ports::{
    AuditReceipt, AuditSink, ConsistencyProof, PortError, SignedTreeHead, Signer, Verifier,
};
use serde::Serialize;

pub use super::proof::InclusionProof;
use super::verify::{TreeHead, VerifyError, VerifySummary};
use super::writer::{Inner, Pending, checkpoint, close_batches};
use crate::error::Cause;

/// A function the log's writer calls just before each `fsync` (of entries and of
/// checkpoints) — **for tests and fault injection only**. It runs on the writer's thread with
/// the log's write lock held: while it blocks, the sync (and every append waiting for it) is
/// held; an error it returns is handled as that `fsync` failing (the lines are cut off the
/// file again and their appends fail). Readers of the log's state are not held by it.
#[derive(Clone)]
pub struct SyncHook(Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>);

impl SyncHook {
    /// A hook calling `f` before each sync.
    pub fn new(f: impl Fn() -> std::io::Result<()> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub(super) fn call(&self) -> std::io::Result<()> {
        (self.0)()
    }
}

impl std::fmt::Debug for SyncHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncHook(..)")
    }
}

impl PartialEq for SyncHook {
    /// The same hook (the same allocation), not merely an equal-looking function.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// When batches close.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    /// Entries per batch. Default: 256.
    pub batch_entries: u64,
    /// Longest time an entry stays unsigned. Default: 1 s.
    pub batch_interval: Duration,
    /// Shortest time between two checkpoints, so a flood of events costs a bounded number of
    /// TPM signatures (a hardware TPM signs a few times per second). Default: 25 ms.
    pub min_checkpoint_interval: Duration,
    /// Called before each `fsync`, for tests and fault injection ([`SyncHook`]). Default:
    /// none (production).
    pub before_sync: Option<SyncHook>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            batch_entries: 256,
            batch_interval: Duration::from_secs(1),
            min_checkpoint_interval: Duration::from_millis(25),
            before_sync: None,
        }
    }
}

/// What opening an existing log found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenReport {
    /// Entries already in the log.
    pub entries: u64,
    /// Bytes of an incomplete last line that were cut off (a write torn by a crash).
    pub torn_bytes: u64,
}

/// The log's size and latest signed tree head, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogStatus {
    /// Entries in the log (on disk).
    pub entries: u64,
    /// Entries covered by the latest checkpoint.
    pub signed: u64,
    /// The latest signed tree head.
    pub tree_head: Option<TreeHead>,
}

/// Why the log cannot be used, or an append, checkpoint or proof failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing the file failed. The source is shared: every append of a group
    /// that failed gets the same I/O error.
    #[error("audit log {path}: cannot {action}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done ("append an entry", "append a group of 3 entries", "write a
        /// checkpoint").
        action: String,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The existing log is not intact; nothing will be appended to it.
    #[error("audit log {path} is damaged")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The first problem.
        #[source]
        error: VerifyError,
    },
    /// Signing a checkpoint failed.
    #[error("signing a checkpoint failed")]
    Signing(#[source] PortError),
    /// The writer thread has stopped (it could not be started, or the log is closing).
    #[error("audit log {path}: the writer has stopped")]
    Stopped {
        /// The file.
        path: PathBuf,
    },
    /// An inclusion proof cannot be built from the entries on disk.
    #[error("audit log {path}: {reason}")]
    Proof {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
        /// The error reading the entries back, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// Work on the blocking pool did not finish (it panicked, or the runtime shut down).
    #[error("audit log {path}: {what} did not finish")]
    Task {
        /// The file.
        path: PathBuf,
        /// What the work was ("opening the log", "writing a checkpoint").
        what: &'static str,
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A checkpoint line could not be encoded.
    #[error("audit log {path}: cannot encode a checkpoint line")]
    Encode {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// Events that may wait for the writer before `append` waits for room.
const QUEUE_DEPTH: usize = 65_536;

/// The audit log.
pub struct AuditLog {
    inner: Arc<Inner>,
    writer: tokio::sync::mpsc::Sender<Pending>,
    closer: tokio::task::JoinHandle<()>,
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.closer.abort();
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl AuditLog {
    /// Opens (creating) the log at `path`. An incomplete last line is cut off and reported; a
    /// log whose chain or roots do not check out is refused. The file is read on the blocking
    /// pool.
    pub async fn open(
        path: &Path,
        signer: Arc<dyn Signer>,
        config: AuditConfig,
    ) -> Result<(Self, OpenReport), AuditError> {
        let file = path.to_owned();
        let (inner, torn) =
            tokio::task::spawn_blocking(move || super::writer::recover(&file, signer, config))
                .await
                .map_err(|source| AuditError::Task {
                    path: path.to_owned(),
                    what: "opening the log",
                    source,
                })??;
        let inner = Arc::new(inner);
        let entries = inner.published.borrow().entries;
        let (writer, queue) = tokio::sync::mpsc::channel(QUEUE_DEPTH);
        let for_writer = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("dsmil-audit-writer".into())
            .spawn(move || for_writer.serve(queue))
            .map_err(|e| super::writer::io_error(path, "start the writer thread", e))?;
        let closer = tokio::spawn(close_batches(
            Arc::downgrade(&inner),
            Arc::clone(&inner.batch_full),
        ));
        Ok((
            Self {
                inner,
                writer,
                closer,
            },
            OpenReport {
                entries,
                torn_bytes: torn,
            },
        ))
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Entries in the log (never waits for the writer).
    pub fn len(&self) -> u64 {
        self.inner.published.borrow().entries
    }

    /// Whether it holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries covered by the latest checkpoint (never waits for the writer).
    pub fn signed(&self) -> u64 {
        self.inner.published.borrow().signed
    }

    /// The latest signed tree head — what an auditor or the TPM anchor remembers so that a
    /// log cut back to an earlier checkpoint is caught ([`super::verify_file_against`]).
    /// Never waits for the writer.
    pub fn tree_head(&self) -> Option<TreeHead> {
        self.inner.published.borrow().head
    }

    /// [`AuditLog::len`], [`AuditLog::signed`] and [`AuditLog::tree_head`] from one
    /// publication of the writer, so they agree with each other (never waits for the writer).
    pub fn status(&self) -> LogStatus {
        let now = *self.inner.published.borrow();
        LogStatus {
            entries: now.entries,
            signed: now.signed,
            tree_head: now.head,
        }
    }

    /// Appends `event`; returns once it is on disk. A background task closes the batch (signs
    /// a checkpoint) when it is full or old enough; appenders never wait for the TPM.
    pub async fn append_event(&self, event: SecurityEvent) -> Result<AuditReceipt, AuditError> {
        let stopped = || AuditError::Stopped {
            path: self.inner.path.clone(),
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer
            .send(Pending { event, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// The latest checkpoint as a signed tree head (also the one found at open), with an
    /// empty `public_key`; see [`super::WitnessedLog`] for heads a witness can check.
    pub fn latest_head(&self) -> Option<SignedTreeHead> {
        self.inner.heads.borrow().clone()
    }

    /// Told of every new checkpoint (the value is the latest head, as [`AuditLog::latest_head`]).
    pub fn watch_heads(&self) -> tokio::sync::watch::Receiver<Option<SignedTreeHead>> {
        self.inner.heads.subscribe()
    }

    /// Signs a checkpoint over every entry now (no-op when all are signed).
    pub async fn checkpoint(&self) -> Result<(), AuditError> {
        checkpoint(&self.inner).await
    }

    /// Verifies the log as written so far, like [`super::verify_file_against`], while it stays
    /// open for appending: only the lines complete when the call starts are read, so an append
    /// in progress is not mistaken for a torn write.
    pub async fn verify_against(
        &self,
        verifier: &dyn Verifier,
        head: Option<&TreeHead>,
    ) -> Result<VerifySummary, VerifyError> {
        let end = self.inner.published.borrow().file_len;
        super::verify::verify_prefix(&self.inner.path, verifier, head, end).await
    }

    /// The inclusion proof of entry `seq` in the latest signed tree head (`None` until it is
    /// signed). The log keeps only chunk roots in memory; the leaves of at most two chunks
    /// are read back from the file, on the blocking pool.
    pub async fn prove(&self, seq: u64) -> Result<Option<InclusionProof>, AuditError> {
        super::proof::prove(&self.inner, seq).await
    }

    /// The consistency proof between the trees of the first `from` and `to` entries (RFC 9162
    /// §2.1.4): what a witness that saw the older head checks before it accepts the newer one.
    /// `None` when `from > to` or `to` exceeds the latest signed tree head.
    pub async fn consistency(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Option<ConsistencyProof>, AuditError> {
        super::proof::consistency(&self.inner, from, to).await
    }
}

#[async_trait]
impl AuditSink for AuditLog {
    async fn append(&self, event: SecurityEvent) -> Result<AuditReceipt, PortError> {
        self.append_event(event)
            .await
            .map_err(|e| PortError::Backend(crate::error::chain(&e)))
    }
}
