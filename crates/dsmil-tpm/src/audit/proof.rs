//! Inclusion proofs of entries in the latest signed tree head: built from the chunk roots in
//! memory and the leaves of at most two chunks read back from the file, and checked offline;
//! consistency proofs between two tree sizes, built the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use dsmil_core::hex;
use dsmil_core::ports::ConsistencyProof;
use serde::Serialize;

use super::chunks::CHUNK;
use super::lines::read_leaves;
use super::log::AuditError;
use super::merkle::Hash;
use super::record::{Line, body_bytes, entry_leaf, parse_hash};
use super::writer::{Inner, lock};

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

impl InclusionProof {
    /// Checks the proof on its own: `entry` is entry `seq`, its leaf hash is `leaf`, and the
    /// sibling hashes lead from that leaf to `root` in a tree of `tree_size` entries. Whether
    /// `tree_size` and `root` are a tree head to trust — a signed checkpoint's, the TPM
    /// anchor's — is the caller's to compare (the pair is what a checkpoint signs; the proof
    /// alone does not bind the size). The error says which check failed.
    pub fn verify(&self) -> Result<(), String> {
        let entry = match serde_json::from_str(&self.entry) {
            Ok(Line::Entry(entry)) => entry,
            Ok(Line::Checkpoint(_)) => {
                return Err("`entry` is a checkpoint line, not an audit log entry line".into());
            }
            Err(e) => return Err(format!("`entry` is not an audit log entry line: {e}")),
        };
        if entry.body.seq != self.seq {
            return Err(format!(
                "`entry` is entry {}, not entry {}",
                entry.body.seq, self.seq
            ));
        }
        let leaf = entry_leaf(&body_bytes(&entry.body));
        if parse_hash(&self.leaf) != Some(leaf) {
            return Err("`leaf` is not the leaf hash of `entry`".into());
        }
        let root = parse_hash(&self.root).ok_or("`root` is not 64 lower-case hex digits")?;
        let proof = self
            .proof
            .iter()
            .map(|h| parse_hash(h))
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

/// The proof of entry `seq` in the latest signed tree head, from the published head and a
/// plan copied out of the chunk index; the file is read on the blocking pool.
pub(super) async fn prove(
    inner: &Arc<Inner>,
    seq: u64,
) -> Result<Option<InclusionProof>, AuditError> {
    let now = *inner.published.borrow();
    let size = now.signed;
    let Some(head) = now.head else {
        return Ok(None);
    };
    if seq >= size || head.tree_size != size {
        return Ok(None);
    }
    // The writer indexes a group's entries before publishing them, so the index covers
    // every signed entry.
    let plan = lock(&inner.chunks).plan(seq, size);
    let path = inner.path.clone();
    let failed = proof_failure(&path);
    tokio::task::spawn_blocking(move || {
        let mut loaded = BTreeMap::new();
        let mut entry = None;
        for read in &plan.reads {
            let (leaves, line) = read_leaves(&path, read, seq).map_err(|e| {
                failed(
                    "cannot read entries back for a proof".into(),
                    Some(e.into()),
                )
            })?;
            entry = entry.or(line);
            loaded.insert(read.chunk, leaves);
        }
        let leaf = loaded
            .get(&(seq / CHUNK))
            .and_then(|l| l.get((seq % CHUNK) as usize))
            .copied();
        let (Some(entry), Some(leaf)) = (entry, leaf) else {
            return Err(failed(
                format!("entry {seq} was not found where the index put it"),
                None,
            ));
        };
        let (root, proof) = plan.prove(seq, size, &loaded).map_err(|m| {
            failed(
                format!("the proof needs chunk {} that was not read", m.0),
                None,
            )
        })?;
        if root != head.root {
            return Err(failed(
                format!(
                    "the entries on disk no longer match the signed tree head of {size} entries"
                ),
                None,
            ));
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
    .map_err(|source| AuditError::Task {
        path: inner.path.clone(),
        what: "building a proof",
        source,
    })?
}

/// The consistency proof (RFC 9162 §2.1.4) between the trees of the first `from` and `to`
/// entries, `to` at most the latest signed tree head's size; `None` when `from > to` or `to`
/// is not signed yet. Like [`prove`], only chunk roots and at most two chunks' leaves are used.
pub(super) async fn consistency(
    inner: &Arc<Inner>,
    from: u64,
    to: u64,
) -> Result<Option<ConsistencyProof>, AuditError> {
    let now = *inner.published.borrow();
    let Some(head) = now.head else {
        return Ok(None);
    };
    if from > to || to > now.signed || head.tree_size != now.signed {
        return Ok(None);
    }
    let plan = lock(&inner.chunks).consistency_plan(from, to);
    let path = inner.path.clone();
    let failed = proof_failure(&path);
    tokio::task::spawn_blocking(move || {
        let mut loaded = BTreeMap::new();
        for read in &plan.reads {
            let (leaves, _) = read_leaves(&path, read, u64::MAX).map_err(|e| {
                failed(
                    "cannot read entries back for a consistency proof".into(),
                    Some(e.into()),
                )
            })?;
            loaded.insert(read.chunk, leaves);
        }
        let (from_root, to_root, proof) = plan.consistency(from, to, &loaded).map_err(|m| {
            failed(
                format!("the proof needs chunk {} that was not read", m.0),
                None,
            )
        })?;
        if to == head.tree_size && to_root != head.root {
            return Err(failed(
                format!("the entries on disk no longer match the signed tree head of {to} entries"),
                None,
            ));
        }
        Ok(Some(ConsistencyProof {
            from_size: from,
            to_size: to,
            from_root,
            to_root,
            proof,
        }))
    })
    .await
    .map_err(|source| AuditError::Task {
        path: inner.path.clone(),
        what: "building a consistency proof",
        source,
    })?
}

/// How a proof of the log at `path` fails: the reason, and the cause when there is one.
fn proof_failure(
    path: &std::path::Path,
) -> impl Fn(String, Option<crate::error::Cause>) -> AuditError + Send + 'static {
    let path = path.to_owned();
    move |reason, source| AuditError::Proof {
        path: path.clone(),
        reason,
        source,
    }
}
