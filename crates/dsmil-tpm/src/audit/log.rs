//! Appending to the audit log.
//!
//! Each event becomes one line: its body (sequence number, time, event) with the chain hash of
//! its predecessor and its own `SHA-256(prev ‖ body)`, written and `fsync`ed before `append`
//! returns. Appends are group-committed: a writer thread takes every event waiting (up to
//! [`MAX_GROUP`]), writes their lines with one `write` and one `fsync`, and answers them all —
//! so throughput grows with concurrency instead of being one `fsync` per event. A group that
//! cannot be written is cut off the file again and fails as a whole. Every `batch_entries`
//! entries, or `batch_interval` after the first unsigned one, a checkpoint line closes the
//! batch: the Merkle root over all entries so far, signed through the `Signer` port (a signed
//! tree head, as in transparency logs). Signing is per batch, not per event, because hardware
//! TPMs sign a few times per second.
//!
//! Memory does not grow with the log: reopening streams the file, and what stays in memory is
//! the Merkle frontier, the leaves since the last checkpoint, and 40 bytes per 1,024 entries
//! for inclusion proofs (see `chunks`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use dsmil_core::hex;
use dsmil_core::monitoring::SecurityEvent;
use dsmil_core::ports::{AuditReceipt, AuditSink, PortError, Signer, Verifier};
use serde::Serialize;
use tokio::time::Instant;

use super::chunks::{CHUNK, ChunkIndex};
use super::lines::{LineReader, read_leaves};
use super::merkle::Hash;
use super::record::{
    Checkpoint, EntryBody, Line, body_bytes, chain_hash, checkpoint_message, entry_leaf, entry_line,
};
use super::verify::{Replay, VerifyError, replay_line, utf8_line};

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
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            batch_entries: 256,
            batch_interval: Duration::from_secs(1),
            min_checkpoint_interval: Duration::from_millis(25),
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

/// Why the log cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuditError {
    /// The file could not be read or written.
    #[error("audit log {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The existing log is not intact; nothing will be appended to it.
    #[error("audit log {path} is damaged: {error}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The first problem.
        error: VerifyError,
    },
    /// Signing a checkpoint failed.
    #[error("signing a checkpoint failed: {0}")]
    Signing(String),
}

/// An inclusion proof of one entry in a signed tree head.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct InclusionProof {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's line, exactly as in the log file.
    pub entry: String,
    /// Its Merkle leaf hash, hex: SHA-256 of 0x00 and the entry's body
    /// ([`super::record::entry_leaf`] of [`super::record::body_bytes`]).
    pub leaf: String,
    /// Size of the signed tree.
    pub tree_size: u64,
    /// Its root, hex.
    pub root: String,
    /// Sibling hashes, bottom up, hex.
    pub proof: Vec<String>,
}

/// Most events written by one `write` + `fsync`.
pub const MAX_GROUP: usize = 4096;
/// Events that may wait for the writer before `append` waits for room.
const QUEUE_DEPTH: usize = 65_536;

struct State {
    file: File,
    /// Bytes of intact lines in the file.
    file_len: u64,
    replay: Replay,
    /// Chunk roots and offsets, for inclusion proofs.
    chunks: ChunkIndex,
    unsigned_since: Option<Instant>,
    /// When the last checkpoint was written.
    last_checkpoint: Option<Instant>,
}

struct Inner {
    path: PathBuf,
    signer: Arc<dyn Signer>,
    config: AuditConfig,
    state: Mutex<State>,
    /// One checkpoint at a time.
    signing: tokio::sync::Mutex<()>,
    /// Wakes the closer when a batch fills.
    batch_full: Arc<tokio::sync::Notify>,
}

/// An event waiting for the writer, and where its receipt goes.
struct Pending {
    event: SecurityEvent,
    reply: tokio::sync::oneshot::Sender<Result<AuditReceipt, AuditError>>,
}

/// The audit log.
pub struct AuditLog {
    inner: Arc<Inner>,
    writer: tokio::sync::mpsc::Sender<Pending>,
    closer: tokio::task::JoinHandle<()>,
}

impl InclusionProof {
    /// Checks the proof on its own: `entry` is entry `seq`, its leaf hash is `leaf`, and the
    /// sibling hashes lead from that leaf to `root` in a tree of `tree_size` entries. Whether
    /// `tree_size` and `root` are a tree head to trust — a signed checkpoint's, the TPM
    /// anchor's — is the caller's to compare (the pair is what a checkpoint signs; the proof
    /// alone does not bind the size). The error says which check failed.
    pub fn verify(&self) -> Result<(), String> {
        let Ok(super::record::Line::Entry(entry)) = serde_json::from_str(&self.entry) else {
            return Err("`entry` is not an audit log entry line".into());
        };
        if entry.body.seq != self.seq {
            return Err(format!(
                "`entry` is entry {}, not entry {}",
                entry.body.seq, self.seq
            ));
        }
        let leaf = entry_leaf(&body_bytes(&entry.body));
        if super::record::parse_hash(&self.leaf) != Some(leaf) {
            return Err("`leaf` is not the leaf hash of `entry`".into());
        }
        let root = super::record::parse_hash(&self.root)
            .ok_or("`root` is not 64 lower-case hex digits")?;
        let proof = self
            .proof
            .iter()
            .map(|h| super::record::parse_hash(h))
            .collect::<Option<Vec<Hash>>>()
            .ok_or("a proof hash is not 64 lower-case hex digits")?;
        if !super::merkle::verify_inclusion(&leaf, self.seq, self.tree_size, &proof, &root) {
            return Err(format!(
                "the proof does not lead from entry {} to the root of {} entries",
                self.seq, self.tree_size
            ));
        }
        Ok(())
    }
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

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AuditLog {
    /// Opens (creating) the log at `path`. An incomplete last line is cut off and reported; a
    /// log whose chain or roots do not check out is refused.
    pub async fn open(
        path: &Path,
        signer: Arc<dyn Signer>,
        config: AuditConfig,
    ) -> Result<(Self, OpenReport), AuditError> {
        let io = |reason: String| AuditError::Io {
            path: path.to_owned(),
            reason,
        };
        let damaged = |error: VerifyError| AuditError::Damaged {
            path: path.to_owned(),
            error,
        };
        let mut replay = Replay::default();
        let mut chunks = ChunkIndex::default();
        let (mut good_len, mut torn) = (0u64, 0u64);
        match File::open(path) {
            Ok(existing) => {
                let mut lines = LineReader::new(existing, 0, 1).map_err(|e| io(e.to_string()))?;
                while let Some(raw) = lines.next_line().map_err(|e| io(e.to_string()))? {
                    if !raw.complete {
                        torn = raw.bytes.len() as u64;
                        break;
                    }
                    let text = utf8_line(raw.bytes, raw.number, replay.entries).map_err(damaged)?;
                    let before = replay.entries;
                    replay_line(&mut replay, text, raw.number).map_err(damaged)?;
                    if replay.entries > before {
                        chunks.push(raw.offset, replay.completed_chunk);
                    }
                    good_len = raw.offset + raw.bytes.len() as u64 + 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e.to_string())),
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(e.to_string()))?;
        if torn > 0 {
            tracing::warn!(path = %path.display(), torn_bytes = torn, "audit log ended in a torn write; cutting it off");
            file.set_len(good_len).map_err(|e| io(e.to_string()))?;
            file.sync_all().map_err(|e| io(e.to_string()))?;
        }
        let entries = replay.entries;
        let unsigned_since = (replay.signed < entries).then(Instant::now);
        let inner = Arc::new(Inner {
            path: path.to_owned(),
            signer,
            config,
            state: Mutex::new(State {
                file,
                file_len: good_len,
                replay,
                chunks,
                unsigned_since,
                last_checkpoint: None,
            }),
            signing: tokio::sync::Mutex::new(()),
            batch_full: Arc::new(tokio::sync::Notify::new()),
        });
        let (writer, queue) = tokio::sync::mpsc::channel(QUEUE_DEPTH);
        let for_writer = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("dsmil-audit-writer".into())
            .spawn(move || for_writer.serve(queue))
            .map_err(|e| io(format!("cannot start the writer thread: {e}")))?;
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

    /// Entries in the log.
    pub fn len(&self) -> u64 {
        lock(&self.inner.state).replay.entries
    }

    /// Whether it holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries covered by the latest checkpoint.
    pub fn signed(&self) -> u64 {
        lock(&self.inner.state).replay.signed
    }

    /// The latest signed tree head — what an auditor or the TPM anchor remembers so that a
    /// log cut back to an earlier checkpoint is caught ([`super::verify_file_against`]).
    pub fn tree_head(&self) -> Option<super::TreeHead> {
        lock(&self.inner.state)
            .replay
            .last_head
            .map(|(tree_size, root)| super::TreeHead { tree_size, root })
    }

    /// Appends `event`; returns once it is on disk. A background task closes the batch (signs
    /// a checkpoint) when it is full or old enough; appenders never wait for the TPM.
    pub async fn append_event(&self, event: SecurityEvent) -> Result<AuditReceipt, AuditError> {
        let stopped = || AuditError::Io {
            path: self.inner.path.clone(),
            reason: "the audit writer has stopped".into(),
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer
            .send(Pending { event, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
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
        head: Option<&super::TreeHead>,
    ) -> Result<super::VerifySummary, VerifyError> {
        let end = lock(&self.inner.state).file_len;
        super::verify::verify_prefix(&self.inner.path, verifier, head, end).await
    }

    /// The inclusion proof of entry `seq` in the latest signed tree head (`None` until it is
    /// signed). The log keeps only chunk roots in memory; the leaves of at most two chunks
    /// are read back from the file, on the blocking pool.
    pub async fn prove(&self, seq: u64) -> Result<Option<InclusionProof>, AuditError> {
        let (size, head, plan) = {
            let state = lock(&self.inner.state);
            let size = state.replay.signed;
            let Some((head_size, head)) = state.replay.last_head else {
                return Ok(None);
            };
            if seq >= size || head_size != size {
                return Ok(None);
            }
            (size, head, state.chunks.plan(seq, size))
        };
        let path = self.inner.path.clone();
        let file = path.clone();
        let io = move |reason: String| AuditError::Io {
            path: file.clone(),
            reason,
        };
        tokio::task::spawn_blocking(move || {
            let mut loaded = BTreeMap::new();
            let mut entry = None;
            for read in &plan.reads {
                let (leaves, line) = read_leaves(&path, read, seq)
                    .map_err(|e| io(format!("cannot read entries back for a proof: {e}")))?;
                entry = entry.or(line);
                loaded.insert(read.chunk, leaves);
            }
            let leaf = loaded
                .get(&(seq / CHUNK))
                .and_then(|l| l.get((seq % CHUNK) as usize))
                .copied();
            let (Some(entry), Some(leaf)) = (entry, leaf) else {
                return Err(io(format!(
                    "entry {seq} was not found where the index put it"
                )));
            };
            let (root, proof) = plan
                .prove(seq, size, &loaded)
                .map_err(|m| io(format!("proof needs chunk {} that was not read", m.0)))?;
            if root != head {
                return Err(io(format!(
                    "the entries on disk no longer match the signed tree head of {size} entries"
                )));
            }
            Ok(Some(InclusionProof {
                seq,
                entry,
                leaf: hex::encode(&leaf),
                tree_size: size,
                root: hex::encode(&root),
                proof: proof.iter().map(|h| hex::encode(h)).collect(),
            }))
        })
        .await
        .map_err(|e| AuditError::Io {
            path: self.inner.path.clone(),
            reason: format!("the proof task failed: {e}"),
        })?
    }
}

impl Inner {
    fn io(&self, reason: impl std::fmt::Display) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// Appends `text` (whole lines) with one write and one `fsync`; on failure cuts the file
    /// back so no partial line stays.
    fn write_text(&self, state: &mut State, text: &[u8]) -> Result<(), AuditError> {
        let written = state
            .file
            .write_all(text)
            .and_then(|()| state.file.sync_data());
        if let Err(e) = written {
            if let Err(cut) = state.file.set_len(state.file_len) {
                tracing::error!(error = %cut, "cannot cut a failed audit write off the file");
            }
            return Err(self.io(e));
        }
        state.file_len += text.len() as u64;
        Ok(())
    }

    fn write_line(&self, state: &mut State, line: &Line) -> Result<(), AuditError> {
        let mut text = serde_json::to_vec(line).map_err(|e| self.io(e))?;
        text.push(b'\n');
        self.write_text(state, &text)
    }

    /// The writer thread: group-commits whatever is waiting until every sender is gone.
    fn serve(self: Arc<Self>, mut queue: tokio::sync::mpsc::Receiver<Pending>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while let Some(first) = queue.blocking_recv() {
            group.push(first);
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(p) => group.push(p),
                    Err(_) => break,
                }
            }
            let (events, replies): (Vec<_>, Vec<_>) =
                group.drain(..).map(|p| (p.event, p.reply)).unzip();
            match self.write_group(events) {
                Ok(receipts) => {
                    for (reply, r) in replies.into_iter().zip(receipts) {
                        let _ = reply.send(Ok(r));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Chains, writes and syncs a group; all or nothing. Wakes the closer when the batch is
    /// full.
    fn write_group(&self, events: Vec<SecurityEvent>) -> Result<Vec<AuditReceipt>, AuditError> {
        let mut state = lock(&self.state);
        let first = state.replay.entries;
        let mut prev = state.replay.prev;
        let mut text = Vec::with_capacity(events.len() * 512);
        let mut chained = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            let body = EntryBody {
                seq: first + i as u64,
                time: Utc::now(),
                event,
            };
            let bytes = body_bytes(&body);
            let hash: Hash = chain_hash(&prev, &bytes);
            let offset = state.file_len + text.len() as u64;
            entry_line(&bytes, &prev, &hash, &mut text);
            text.push(b'\n');
            chained.push((hash, entry_leaf(&bytes), offset));
            prev = hash;
        }
        self.write_text(&mut state, &text)?;
        let mut receipts = Vec::with_capacity(chained.len());
        for (i, (hash, leaf, offset)) in chained.into_iter().enumerate() {
            state.replay.push_leaf(leaf);
            let completed = state.replay.completed_chunk;
            state.chunks.push(offset, completed);
            receipts.push(AuditReceipt {
                sequence: first + i as u64,
                entry_hash: hex::encode(&hash),
            });
        }
        state.replay.prev = prev;
        state.unsigned_since.get_or_insert_with(Instant::now);
        if state.replay.entries - state.replay.signed >= self.config.batch_entries.max(1) {
            self.batch_full.notify_one();
        }
        Ok(receipts)
    }
}

async fn checkpoint(inner: &Arc<Inner>) -> Result<(), AuditError> {
    let _one = inner.signing.lock().await;
    let (previous, size, root_hash) = {
        let state = lock(&inner.state);
        let size = state.replay.entries;
        if size == state.replay.signed {
            return Ok(());
        }
        (state.replay.signed, size, state.replay.frontier.root())
    };
    let time = Utc::now();
    let signature = inner
        .signer
        .sign(&checkpoint_message(
            previous,
            size,
            &root_hash,
            &time,
            &inner.signer.key_name(),
        ))
        .await
        .map_err(|e| AuditError::Signing(e.to_string()))?;
    let line = Line::Checkpoint(Checkpoint {
        previous_size: previous,
        tree_size: size,
        root: hex::encode(&root_hash),
        time,
        signature,
    });
    let this = Arc::clone(inner);
    tokio::task::spawn_blocking(move || {
        let mut state = lock(&this.state);
        this.write_line(&mut state, &line)?;
        let at = state.replay.frontier_at(size);
        debug_assert_eq!(at.root(), root_hash);
        state.replay.mark_signed(size, at);
        state.unsigned_since = (size < state.replay.entries).then(Instant::now);
        state.last_checkpoint = Some(Instant::now());
        Ok::<(), AuditError>(())
    })
    .await
    .map_err(|e| AuditError::Io {
        path: inner.path.clone(),
        reason: e.to_string(),
    })?
}

/// How long until the open batch must be closed (`None`: nothing unsigned).
fn due_in(state: &State, config: &AuditConfig) -> Option<Duration> {
    let unsigned = state.replay.entries - state.replay.signed;
    let since = state.unsigned_since?;
    if unsigned == 0 {
        return None;
    }
    let by_age = config.batch_interval.saturating_sub(since.elapsed());
    let earliest = state.last_checkpoint.map_or(Duration::ZERO, |t| {
        config.min_checkpoint_interval.saturating_sub(t.elapsed())
    });
    if unsigned >= config.batch_entries.max(1) {
        Some(earliest)
    } else {
        Some(by_age.max(earliest))
    }
}

/// Closes batches when they fill (no sooner than `min_checkpoint_interval` after the last) or
/// when their oldest entry waited `batch_interval`; retries failed signatures.
async fn close_batches(inner: std::sync::Weak<Inner>, full: Arc<tokio::sync::Notify>) {
    let mut wait = Duration::from_millis(10);
    loop {
        let Some(this) = inner.upgrade() else { return };
        let due = due_in(&lock(&this.state), &this.config);
        wait = match due {
            Some(d) if d.is_zero() => match checkpoint(&this).await {
                Ok(()) => Duration::ZERO,
                Err(e) => {
                    tracing::error!(error = %e, "closing an audit batch failed; will retry");
                    (wait * 2).clamp(Duration::from_millis(10), Duration::from_secs(1))
                }
            },
            Some(d) => d,
            None => this.config.batch_interval,
        };
        drop(this);
        if !wait.is_zero() {
            tokio::select! {
                () = full.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

#[async_trait]
impl AuditSink for AuditLog {
    async fn append(&self, event: SecurityEvent) -> Result<AuditReceipt, PortError> {
        self.append_event(event)
            .await
            .map_err(|e| PortError::Backend(e.to_string()))
    }
}
