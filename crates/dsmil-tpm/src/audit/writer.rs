//! The writing side of the audit log: recovering a log at open, the writer thread's group
//! commits, checkpoints, and the task that closes batches.
//!
//! Two kinds of state. The file, its hash chain and Merkle frontier ([`State`]) are behind a
//! lock held across `write` + `fsync` — by the writer thread, and by checkpoint writes on the
//! blocking pool, never by async code. What readers need ([`Published`]: sizes, the roots,
//! the intact length of the file, the batch timers) is republished through a `watch` channel
//! after every group commit and checkpoint, while the lock is still held (so publications
//! follow the file's order); the chunk index for proofs has a lock of its own, taken only to
//! push a group's offsets or to copy out a proof plan. So `len()`, `signed()`, `tree_head()`,
//! proofs and the batch closer never wait for an `fsync`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use dsmil_core::hex;
use dsmil_core::monitoring::SecurityEvent;
use dsmil_core::ports::{AuditReceipt, SignedTreeHead, Signer};
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

use super::chunks::ChunkIndex;
use super::lines::LineReader;
use super::log::{AuditConfig, AuditError};
use super::merkle::Hash;
use super::record::{
    Checkpoint, EntryBody, Line, body_bytes, chain_hash, checkpoint_message, entry_leaf,
    entry_line, parse_hash,
};
use super::verify::{Replay, TreeHead, VerifyError, replay_line, utf8_line};

/// Most events written by one `write` + `fsync`.
pub const MAX_GROUP: usize = 4096;

/// The file and what was rebuilt from it; only the writer side touches it.
pub(super) struct State {
    file: File,
    /// Bytes of intact lines in the file.
    file_len: u64,
    replay: Replay,
}

/// What readers see of the log, as of the last group commit or checkpoint.
#[derive(Debug, Clone, Copy)]
pub(super) struct Published {
    /// Entries on disk.
    pub entries: u64,
    /// Merkle root over all of them (what the next checkpoint signs).
    pub root: Hash,
    /// Entries covered by the latest checkpoint.
    pub signed: u64,
    /// The latest signed tree head.
    pub head: Option<TreeHead>,
    /// Bytes of complete, synced lines.
    pub file_len: u64,
    /// When the oldest unsigned entry was appended.
    pub unsigned_since: Option<Instant>,
    /// When the last checkpoint was written.
    pub last_checkpoint: Option<Instant>,
}

/// Shared by the log handle, the writer thread and the batch closer.
pub(super) struct Inner {
    pub path: PathBuf,
    signer: Arc<dyn Signer>,
    pub config: AuditConfig,
    /// Held across write + fsync; never taken by async code.
    state: Mutex<State>,
    /// Chunk roots and offsets, for inclusion proofs (held only briefly).
    pub chunks: Mutex<ChunkIndex>,
    /// Republished after every group commit and checkpoint.
    pub published: watch::Sender<Published>,
    /// One checkpoint at a time.
    signing: tokio::sync::Mutex<()>,
    /// Wakes the closer when a batch fills.
    pub batch_full: Arc<Notify>,
    /// The latest checkpoint as a signed tree head (its `public_key` left empty: the log
    /// does not know its signer's public half), for witnesses.
    pub heads: watch::Sender<Option<SignedTreeHead>>,
}

/// A checkpoint line as a signed tree head (`public_key` empty).
pub(super) fn signed_head(c: &Checkpoint) -> Option<SignedTreeHead> {
    Some(SignedTreeHead {
        previous_size: c.previous_size,
        tree_size: c.tree_size,
        root: parse_hash(&c.root)?,
        time: c.time,
        signature: c.signature.clone(),
        public_key: String::new(),
    })
}

/// An event waiting for the writer, and where its receipt goes.
pub(super) struct Pending {
    pub event: SecurityEvent,
    pub reply: oneshot::Sender<Result<AuditReceipt, AuditError>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An I/O failure of the log at `path`, while doing `action`.
pub(super) fn io_error(path: &Path, action: impl Into<String>, e: std::io::Error) -> AuditError {
    AuditError::Io {
        path: path.to_owned(),
        action: action.into(),
        source: Arc::new(e),
    }
}

/// Reads an existing log (blocking: it streams the whole file), cuts off a torn last line and
/// opens the file for appending.
pub(super) fn recover(
    path: &Path,
    signer: Arc<dyn Signer>,
    config: AuditConfig,
) -> Result<(Inner, u64), AuditError> {
    let io = |action: &str, e: std::io::Error| io_error(path, action, e);
    let damaged = |error: VerifyError| AuditError::Damaged {
        path: path.to_owned(),
        error,
    };
    let mut replay = Replay::default();
    let mut last_checkpoint = None;
    let mut chunks = ChunkIndex::default();
    let (mut good_len, mut torn) = (0u64, 0u64);
    match File::open(path) {
        Ok(existing) => {
            let mut lines = LineReader::new(existing, 0, 1).map_err(|e| io("read", e))?;
            while let Some(raw) = lines.next_line().map_err(|e| io("read", e))? {
                if !raw.complete {
                    torn = raw.bytes.len() as u64;
                    break;
                }
                let text = utf8_line(raw.bytes, raw.number, replay.entries).map_err(damaged)?;
                let before = replay.entries;
                if let Some(c) = replay_line(&mut replay, text, raw.number).map_err(damaged)? {
                    last_checkpoint = Some(c);
                }
                if replay.entries > before {
                    chunks.push(raw.offset, replay.completed_chunk);
                }
                good_len = raw.offset + raw.bytes.len() as u64 + 1;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("open", e)),
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io("open for appending", e))?;
    if torn > 0 {
        tracing::warn!(path = %path.display(), torn_bytes = torn, "audit log ended in a torn write; cutting it off");
        file.set_len(good_len)
            .map_err(|e| io("cut off a torn write", e))?;
        file.sync_all().map_err(|e| io("sync", e))?;
    }
    let published = Published {
        entries: replay.entries,
        root: replay.frontier.root(),
        signed: replay.signed,
        head: replay
            .last_head
            .map(|(tree_size, root)| TreeHead { tree_size, root }),
        file_len: good_len,
        unsigned_since: (replay.signed < replay.entries).then(Instant::now),
        last_checkpoint: None,
    };
    let inner = Inner {
        path: path.to_owned(),
        signer,
        config,
        state: Mutex::new(State {
            file,
            file_len: good_len,
            replay,
        }),
        chunks: Mutex::new(chunks),
        published: watch::channel(published).0,
        signing: tokio::sync::Mutex::new(()),
        batch_full: Arc::new(Notify::new()),
        heads: watch::channel(last_checkpoint.as_ref().and_then(signed_head)).0,
    };
    Ok((inner, torn))
}

impl Inner {
    /// `fsync` (of the data) of the log file, after the test and fault-injection hook.
    fn sync(&self, file: &File) -> std::io::Result<()> {
        if let Some(hook) = &self.config.before_sync {
            hook.call()?;
        }
        file.sync_data()
    }

    /// Appends `text` (whole lines) with one write and one `fsync`; on failure cuts the file
    /// back so no partial line stays.
    fn write_text(&self, state: &mut State, text: &[u8]) -> std::io::Result<()> {
        let written = state
            .file
            .write_all(text)
            .and_then(|()| self.sync(&state.file));
        if let Err(e) = written {
            if let Err(cut) = state.file.set_len(state.file_len) {
                tracing::error!(error = %cut, "cannot cut a failed audit write off the file");
            }
            return Err(e);
        }
        state.file_len += text.len() as u64;
        Ok(())
    }

    /// The writer thread: group-commits whatever is waiting until every sender is gone.
    pub(super) fn serve(self: Arc<Self>, mut queue: tokio::sync::mpsc::Receiver<Pending>) {
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
            let action = match events.len() {
                1 => "append an entry".to_owned(),
                n => format!("append a group of {n} entries"),
            };
            match self.write_group(events) {
                Ok(receipts) => {
                    for (reply, r) in replies.into_iter().zip(receipts) {
                        let _ = reply.send(Ok(r));
                    }
                }
                Err(e) => {
                    // Every appender of the group gets the same I/O error as its source.
                    let source = Arc::new(e);
                    for reply in replies {
                        let _ = reply.send(Err(AuditError::Io {
                            path: self.path.clone(),
                            action: action.clone(),
                            source: Arc::clone(&source),
                        }));
                    }
                }
            }
        }
    }

    /// Chains, writes and syncs a group; all or nothing. Publishes the new size and root,
    /// and wakes the closer when the batch is full.
    fn write_group(&self, events: Vec<SecurityEvent>) -> std::io::Result<Vec<AuditReceipt>> {
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
        {
            let mut chunks = lock(&self.chunks);
            for (i, (hash, leaf, offset)) in chained.into_iter().enumerate() {
                state.replay.push_leaf(leaf);
                chunks.push(offset, state.replay.completed_chunk);
                receipts.push(AuditReceipt {
                    sequence: first + i as u64,
                    entry_hash: hex::encode(&hash),
                });
            }
        }
        state.replay.prev = prev;
        let (entries, signed) = (state.replay.entries, state.replay.signed);
        let (root, file_len) = (state.replay.frontier.root(), state.file_len);
        self.published.send_modify(|p| {
            p.entries = entries;
            p.root = root;
            p.file_len = file_len;
            p.unsigned_since.get_or_insert_with(Instant::now);
        });
        drop(state);
        if entries - signed >= self.config.batch_entries.max(1) {
            self.batch_full.notify_one();
        }
        Ok(receipts)
    }

    /// Writes a signed checkpoint line over the first `size` entries and publishes the new
    /// tree head (on the blocking pool: it waits for the writer's lock and syncs).
    fn write_checkpoint(&self, line: &Line, size: u64, root: Hash) -> Result<(), AuditError> {
        let mut text = serde_json::to_vec(line).map_err(|source| AuditError::Encode {
            path: self.path.clone(),
            source,
        })?;
        text.push(b'\n');
        let mut state = lock(&self.state);
        self.write_text(&mut state, &text)
            .map_err(|e| io_error(&self.path, "write a checkpoint", e))?;
        let at = state.replay.frontier_at(size);
        debug_assert_eq!(at.root(), root);
        state.replay.mark_signed(size, at);
        let head = state
            .replay
            .last_head
            .map(|(tree_size, root)| TreeHead { tree_size, root });
        let (entries, file_len) = (state.replay.entries, state.file_len);
        self.published.send_modify(|p| {
            p.signed = size;
            p.head = head;
            p.file_len = file_len;
            p.unsigned_since = (size < entries).then(Instant::now);
            p.last_checkpoint = Some(Instant::now());
        });
        drop(state);
        if let Line::Checkpoint(c) = line {
            self.heads.send_replace(signed_head(c));
        }
        Ok(())
    }
}

/// Signs a checkpoint over every entry on disk now (no-op when all are signed). Reads the
/// size and root from the published state; only the line's write waits for the writer.
pub(super) async fn checkpoint(inner: &Arc<Inner>) -> Result<(), AuditError> {
    let _one = inner.signing.lock().await;
    // `signed` changes only here, under `signing`: the published value is the log's.
    let now = *inner.published.borrow();
    if now.entries == now.signed {
        return Ok(());
    }
    let (previous, size, root_hash) = (now.signed, now.entries, now.root);
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
        .map_err(AuditError::Signing)?;
    let line = Line::Checkpoint(Checkpoint {
        previous_size: previous,
        tree_size: size,
        root: hex::encode(&root_hash),
        time,
        signature,
    });
    let this = Arc::clone(inner);
    tokio::task::spawn_blocking(move || this.write_checkpoint(&line, size, root_hash))
        .await
        .map_err(|source| AuditError::Task {
            path: inner.path.clone(),
            what: "writing a checkpoint",
            source,
        })?
}

/// How long until the open batch must be closed (`None`: nothing unsigned).
fn due_in(now: &Published, config: &AuditConfig) -> Option<Duration> {
    let unsigned = now.entries - now.signed;
    let since = now.unsigned_since?;
    if unsigned == 0 {
        return None;
    }
    let by_age = config.batch_interval.saturating_sub(since.elapsed());
    let earliest = now.last_checkpoint.map_or(Duration::ZERO, |t| {
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
pub(super) async fn close_batches(inner: std::sync::Weak<Inner>, full: Arc<Notify>) {
    let mut wait = Duration::from_millis(10);
    loop {
        let Some(this) = inner.upgrade() else { return };
        let now = *this.published.borrow();
        wait = match due_in(&now, &this.config) {
            Some(d) if d.is_zero() => match checkpoint(&this).await {
                Ok(()) => Duration::ZERO,
                Err(e) => {
                    let error = crate::error::chain(&e);
                    tracing::error!(%error, "closing an audit batch failed; will retry");
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
