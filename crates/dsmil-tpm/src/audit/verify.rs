//! Offline verification of an audit log file: chain, sequence, Merkle roots and signatures.
//!
//! The file is read and replayed on the blocking pool; the checkpoints it finds are sent to
//! the calling task, which checks their signatures with the (async) verifier in file order,
//! so the first problem in the file is the one reported and no async worker reads the file.

use std::path::Path;

use dsmil_core::Signature;
use dsmil_core::ports::Verifier;
use serde::Serialize;
use thiserror::Error;

use super::chunks::CHUNK_HEIGHT;
use super::lines::LineReader;
use super::merkle::{Frontier, Hash};
use super::record::{
    EntryBody, Line, body_bytes, chain_hash, checkpoint_message, entry_leaf, parse_hash,
};

/// The first problem found, with where.
#[derive(Debug, Error)]
#[error("line {line}{}: {reason}", .entry.map(|e| format!(" (entry {e})")).unwrap_or_default())]
pub struct VerifyError {
    /// Line number in the file, from 1.
    pub line: usize,
    /// The entry's sequence number, when the line is (or should be) an entry.
    pub entry: Option<u64>,
    /// What is wrong.
    pub reason: String,
    /// The error that found it, when there is one: reading the file, parsing a line, or the
    /// verifier failing to check a signature.
    #[source]
    pub source: Option<crate::error::Cause>,
}

impl VerifyError {
    /// A problem on `line` (entry `entry`) that this crate's checks found.
    fn new(line: usize, entry: Option<u64>, reason: impl Into<String>) -> Self {
        Self {
            line,
            entry,
            reason: reason.into(),
            source: None,
        }
    }

    /// A problem `source` found.
    fn caused(
        line: usize,
        entry: Option<u64>,
        reason: impl Into<String>,
        source: impl Into<crate::error::Cause>,
    ) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(line, entry, reason)
        }
    }
}

/// What an intact log holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifySummary {
    /// Entries.
    pub entries: u64,
    /// Checkpoints.
    pub checkpoints: u64,
    /// Entries covered by the last checkpoint's signature.
    pub signed_entries: u64,
    /// Key named by the last checkpoint.
    pub key_name: Option<String>,
}

/// State rebuilt while reading a log (also used to reopen one for appending). Memory stays
/// bounded by the unsigned tail, not the log: no leaf before the last checkpoint is kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replay {
    /// Entries read.
    pub entries: u64,
    /// Root tracker over every entry.
    pub frontier: Frontier,
    /// The tracker at the last checkpoint's size, and the leaves since. A checkpoint signed
    /// while more entries were being appended covers fewer entries than precede it; its root
    /// is rebuilt from these in time proportional to the batch, not to the log.
    pub at_signed: Frontier,
    pub unsigned: Vec<Hash>,
    pub prev: Hash,
    pub checkpoints: u64,
    pub signed: u64,
    pub key_name: Option<String>,
    /// (size, root) of the last checkpoint read.
    pub last_head: Option<(u64, Hash)>,
    /// The root of the proof chunk the last leaf completed, if it completed one.
    pub completed_chunk: Option<Hash>,
}

impl Replay {
    /// Adds the leaf of the next entry.
    pub fn push_leaf(&mut self, leaf: Hash) {
        self.entries += 1;
        let mut completed = None;
        self.frontier.push_observing(leaf, |height, node| {
            if height == CHUNK_HEIGHT {
                completed = Some(*node);
            }
        });
        self.completed_chunk = completed;
        self.unsigned.push(leaf);
    }

    /// The root tracker over the first `size` entries (`signed <= size <= entries`).
    pub fn frontier_at(&self, size: u64) -> Frontier {
        if size == self.entries {
            return self.frontier.clone();
        }
        let mut f = self.at_signed.clone();
        let take = size.saturating_sub(self.signed) as usize;
        for leaf in &self.unsigned[..take.min(self.unsigned.len())] {
            f.push(*leaf);
        }
        f
    }

    /// Records a checkpoint over the first `size` entries whose tracker is `at`.
    pub fn mark_signed(&mut self, size: u64, at: Frontier) {
        let covered = size.saturating_sub(self.signed) as usize;
        self.unsigned.drain(..covered.min(self.unsigned.len()));
        self.last_head = Some((size, at.root()));
        self.at_signed = at;
        self.signed = size;
        self.checkpoints += 1;
    }
}

/// A log line as text; a line that is not UTF-8 was not written by the log.
pub(crate) fn utf8_line(bytes: &[u8], line: usize, entry: u64) -> Result<&str, VerifyError> {
    std::str::from_utf8(bytes).map_err(|e| {
        VerifyError::caused(
            line,
            Some(entry),
            "the line is not UTF-8 text (edited or corrupted)",
            e,
        )
    })
}

/// The writer's entry line: `{"type":"entry",` + the body's fields + this tail.
const ENTRY_HEAD: &str = r#"{"type":"entry","#;
/// `,"prev":"<64 hex>","hash":"<64 hex>"}`.
const ENTRY_TAIL_LEN: usize = 9 + 64 + 10 + 64 + 2;

/// An entry line as the writer builds it ([`super::record::entry_line`]).
struct CanonicalEntry<'a> {
    seq: u64,
    /// The body's bytes as hashed.
    body: Vec<u8>,
    prev: &'a str,
    hash: &'a str,
}

/// Reads an entry line the way it was written — the body cut out of the line, parsed alone
/// and serialised back to the same bytes — instead of through serde's buffering of a tagged,
/// flattened record and two serialisations. `None` for anything else (checkpoints, edited
/// lines), which the general path parses and names.
fn canonical_entry(text: &str) -> Option<CanonicalEntry<'_>> {
    let rest = text.strip_prefix(ENTRY_HEAD)?;
    let split = rest.len().checked_sub(ENTRY_TAIL_LEN)?;
    let (fields, tail) = (rest.get(..split)?, rest.get(split..)?);
    let prev = tail.strip_prefix(r#","prev":""#)?.get(..64)?;
    let hash = tail.get(73..)?.strip_prefix(r#"","hash":""#)?.get(..64)?;
    if !tail.ends_with(r#""}"#) {
        return None;
    }
    let mut body = Vec::with_capacity(fields.len() + 2);
    body.push(b'{');
    body.extend_from_slice(fields.as_bytes());
    body.push(b'}');
    let parsed: EntryBody = serde_json::from_slice(&body).ok()?;
    // Canonical: the body serialises back to exactly these bytes, and the hashes are
    // lower-case hex (checked by the caller's `parse_hash`), so the line is what the writer
    // would write for these values.
    (body_bytes(&parsed) == body).then_some(CanonicalEntry {
        seq: parsed.seq,
        body,
        prev,
        hash,
    })
}

/// Checks an entry's sequence number, link and hash, and adds it.
fn replay_entry(
    state: &mut Replay,
    seq: u64,
    body: &[u8],
    prev: &str,
    hash_text: &str,
    fail: &impl Fn(Option<u64>, String) -> VerifyError,
) -> Result<Option<super::record::Checkpoint>, VerifyError> {
    let next = state.entries;
    if seq != next {
        return Err(fail(
            Some(next),
            format!("sequence number is {seq}, expected {next} (entries removed or reordered)"),
        ));
    }
    if parse_hash(prev) != Some(state.prev) {
        return Err(fail(
            Some(next),
            "does not link to the previous entry (the chain is broken)".into(),
        ));
    }
    let hash = chain_hash(&state.prev, body);
    if parse_hash(hash_text) != Some(hash) {
        return Err(fail(
            Some(next),
            "content does not match its hash (the entry was changed)".into(),
        ));
    }
    state.prev = hash;
    state.push_leaf(entry_leaf(body));
    Ok(None)
}

/// Checks one line against the state so far; signatures are checked by the caller.
pub(crate) fn replay_line(
    state: &mut Replay,
    text: &str,
    line: usize,
) -> Result<Option<super::record::Checkpoint>, VerifyError> {
    let next = state.entries;
    let fail = |entry: Option<u64>, reason: String| VerifyError::new(line, entry, reason);
    if let Some(entry) = canonical_entry(text) {
        return replay_entry(state, entry.seq, &entry.body, entry.prev, entry.hash, &fail);
    }
    let parsed: Line = serde_json::from_str(text)
        .map_err(|e| VerifyError::caused(line, Some(next), "not a log record", e))?;
    // The writer emits canonical JSON; any other spelling of the same values was edited.
    if serde_json::to_string(&parsed).ok().as_deref() != Some(text) {
        return Err(fail(
            Some(next),
            "the line is not as the log wrote it (edited)".into(),
        ));
    }
    match parsed {
        Line::Entry(e) => replay_entry(
            state,
            e.body.seq,
            &body_bytes(&e.body),
            &e.prev,
            &e.hash,
            &fail,
        ),
        Line::Checkpoint(c) => {
            if c.tree_size > next {
                return Err(fail(
                    None,
                    format!(
                        "checkpoint covers {} entries but only {next} precede it (entries removed)",
                        c.tree_size
                    ),
                ));
            }
            if c.previous_size != state.signed {
                return Err(fail(
                    None,
                    format!(
                        "checkpoint follows one of {} entries, but the last checkpoint read covers {} (a checkpoint was removed or moved)",
                        c.previous_size, state.signed
                    ),
                ));
            }
            if c.tree_size < state.signed {
                return Err(fail(
                    None,
                    format!(
                        "checkpoint covers {} entries, fewer than the previous one ({})",
                        c.tree_size, state.signed
                    ),
                ));
            }
            let at = state.frontier_at(c.tree_size);
            let expected = at.root();
            if parse_hash(&c.root) != Some(expected) {
                return Err(fail(
                    None,
                    format!(
                        "Merkle root over {} entries does not match (an entry was changed)",
                        c.tree_size
                    ),
                ));
            }
            state.mark_signed(c.tree_size, at);
            state.key_name = Some(c.signature.key_name.clone());
            Ok(Some(c))
        }
    }
}

/// Verifies the log at `path` with `verifier` (the signer's public key). Any change,
/// reordering, or truncation inside the signed part names the first bad line; a torn last line
/// is reported as such.
pub async fn verify_file(
    path: &Path,
    verifier: &dyn Verifier,
) -> Result<VerifySummary, VerifyError> {
    verify_file_against(path, verifier, None).await
}

/// A signed tree head an auditor trusts from elsewhere (the TPM anchor, an earlier audit):
/// the log must contain a checkpoint of exactly this size and root. This is what catches
/// a log cut back to an earlier checkpoint, which the file alone cannot show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TreeHead {
    /// Entries covered.
    pub tree_size: u64,
    /// Merkle root over them.
    #[serde(with = "hex32")]
    pub root: Hash,
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&dsmil_core::hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        super::parse_hash(&text)
            .ok_or_else(|| D::Error::custom("expected 64 lower-case hex digits"))
    }
}

impl TreeHead {
    /// Parses `SIZE:ROOT` (decimal size, 64 hex digits), as `dsmilctl audit verify --head` takes it.
    pub fn parse(text: &str) -> Option<Self> {
        let (size, root) = text.trim().split_once(':')?;
        Some(Self {
            tree_size: size.parse().ok()?,
            root: parse_hash(root)?,
        })
    }
}

impl std::fmt::Display for TreeHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}",
            self.tree_size,
            dsmil_core::hex::encode(&self.root)
        )
    }
}

/// [`verify_file`], and the log must contain the checkpoint `head` (when given).
pub async fn verify_file_against(
    path: &Path,
    verifier: &dyn Verifier,
    head: Option<&TreeHead>,
) -> Result<VerifySummary, VerifyError> {
    verify_prefix(path, verifier, head, u64::MAX).await
}

/// A checkpoint read from the file, for the calling task to check its signature.
struct Signed {
    line: usize,
    message: Vec<u8>,
    signature: Signature,
}

/// [`verify_file_against`] over the first `end` bytes of the file only (a live log's writer
/// may be in the middle of appending after them).
pub(crate) async fn verify_prefix(
    path: &Path,
    verifier: &dyn Verifier,
    head: Option<&TreeHead>,
    end: u64,
) -> Result<VerifySummary, VerifyError> {
    let (tx, mut checkpoints) = tokio::sync::mpsc::channel::<Signed>(64);
    let (file, trusted) = (path.to_owned(), head.copied());
    let reader = tokio::task::spawn_blocking(move || replay_file(&file, trusted, end, &tx));
    // Checkpoints arrive in file order, each before any problem the reader finds after it.
    while let Some(c) = checkpoints.recv().await {
        let key = &c.signature.key_name;
        let reason = format!("checkpoint signature by {key} does not verify");
        match verifier.verify(&c.message, &c.signature).await {
            Ok(true) => {}
            Ok(false) => return Err(VerifyError::new(c.line, None, reason)),
            Err(e) => return Err(VerifyError::caused(c.line, None, reason, e)),
        }
    }
    reader.await.map_err(|e| {
        VerifyError::caused(
            0,
            None,
            format!("reading {} did not finish", path.display()),
            e,
        )
    })?
}

/// Reads and replays the log at `path` up to byte `end` (blocking), sending every checkpoint
/// to `checkpoints`; stops early when the receiver is gone (a signature failed).
fn replay_file(
    path: &Path,
    head: Option<TreeHead>,
    end: u64,
    checkpoints: &tokio::sync::mpsc::Sender<Signed>,
) -> Result<VerifySummary, VerifyError> {
    let cannot_read = |line: usize, e: std::io::Error| {
        VerifyError::caused(line, None, format!("cannot read {}", path.display()), e)
    };
    let file = std::fs::File::open(path).map_err(|e| cannot_read(0, e))?;
    let mut lines = LineReader::up_to(file, 0, end, 1).map_err(|e| cannot_read(0, e))?;
    let mut state = Replay::default();
    let mut head_seen = false;
    let mut last_line = 0;
    loop {
        if checkpoints.is_closed() {
            // The caller stopped at a bad signature, an earlier problem than any here.
            break;
        }
        let raw = match lines.next_line() {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(e) => return Err(cannot_read(last_line + 1, e)),
        };
        let line = raw.number;
        last_line = line;
        if !raw.complete {
            return Err(VerifyError::new(
                line,
                Some(state.entries),
                "the last line is incomplete (a torn write, or the file was cut)",
            ));
        }
        let text = utf8_line(raw.bytes, line, state.entries)?;
        if let Some(c) = replay_line(&mut state, text, line)? {
            head_seen |= head.is_some_and(|h| state.last_head == Some((h.tree_size, h.root)));
            let root_hash = parse_hash(&c.root).unwrap_or_default();
            let message = checkpoint_message(
                c.previous_size,
                c.tree_size,
                &root_hash,
                &c.time,
                &c.signature.key_name,
            );
            let signed = Signed {
                line,
                message,
                signature: c.signature,
            };
            if checkpoints.blocking_send(signed).is_err() {
                // The caller stopped at a bad signature, an earlier problem than any here.
                break;
            }
        }
    }
    if let Some(head) = head
        && !head_seen
    {
        return Err(VerifyError::new(
            last_line,
            None,
            format!(
                "no checkpoint matches the trusted tree head of {} entries (the log was cut back or rewritten)",
                head.tree_size
            ),
        ));
    }
    Ok(VerifySummary {
        entries: state.entries,
        checkpoints: state.checkpoints,
        signed_entries: state.signed,
        key_name: state.key_name,
    })
}
