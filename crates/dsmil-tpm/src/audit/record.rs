//! The lines of an audit log file and what is hashed and signed.

use chrono::{DateTime, Utc};
use dsmil_core::Signature;
use dsmil_core::monitoring::SecurityEvent;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::merkle::{Hash, leaf_hash};

/// One line of the log file (NDJSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    /// An audited event.
    Entry(Entry),
    /// A signed tree head over the first `tree_size` entries.
    Checkpoint(Checkpoint),
}

/// The hashed part of an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryBody {
    /// Position, from 0.
    pub seq: u64,
    /// When it was appended.
    pub time: DateTime<Utc>,
    /// The event.
    pub event: SecurityEvent,
}

/// An entry with its chain links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The hashed content.
    #[serde(flatten)]
    pub body: EntryBody,
    /// Hex chain hash of the previous entry (64 zeros for the first).
    pub prev: String,
    /// Hex `SHA-256(prev ‖ body)`.
    pub hash: String,
}

/// A signed tree head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Entries the previous checkpoint covered (0 for the first): links checkpoints so that
    /// removing one is caught.
    pub previous_size: u64,
    /// Entries covered (the first `tree_size`).
    pub tree_size: u64,
    /// Hex Merkle root over their leaves.
    pub root: String,
    /// When it was signed.
    pub time: DateTime<Utc>,
    /// The signature over [`checkpoint_message`].
    pub signature: Signature,
}

/// The line of an entry (without the newline), built around its already serialized body —
/// byte for byte what serializing [`Line::Entry`] gives, without serializing the event twice.
pub fn entry_line(body: &[u8], prev: &Hash, hash: &Hash, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"type":"entry","#);
    // `body` is `{...}`: its fields go inline (the entry flattens its body).
    out.extend_from_slice(&body[1..body.len().saturating_sub(1)]);
    out.extend_from_slice(br#","prev":""#);
    out.extend_from_slice(dsmil_core::hex::encode(prev).as_bytes());
    out.extend_from_slice(br#"","hash":""#);
    out.extend_from_slice(dsmil_core::hex::encode(hash).as_bytes());
    out.extend_from_slice(br#""}"#);
}

/// The bytes an entry's body contributes: its compact JSON.
pub fn body_bytes(body: &EntryBody) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_default()
}

/// `SHA-256(prev ‖ body)`.
pub fn chain_hash(prev: &Hash, body: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(body);
    h.finalize().into()
}

/// The Merkle leaf of an entry.
pub fn entry_leaf(body: &[u8]) -> Hash {
    leaf_hash(body)
}

/// What a checkpoint's signature covers.
pub fn checkpoint_message(
    previous_size: u64,
    tree_size: u64,
    root: &Hash,
    time: &DateTime<Utc>,
    key_name: &str,
) -> Vec<u8> {
    let mut m = b"dsmil-audit-checkpoint/v2\n".to_vec();
    m.extend_from_slice(&previous_size.to_be_bytes());
    m.extend_from_slice(&tree_size.to_be_bytes());
    m.extend_from_slice(root);
    m.extend_from_slice(
        time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            .as_bytes(),
    );
    m.push(b'\n');
    m.extend_from_slice(key_name.as_bytes());
    m
}

/// Parses 64 hex digits.
pub fn parse_hash(text: &str) -> Option<Hash> {
    // Lower case only: one spelling per hash, so no byte of a line can change unnoticed.
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    dsmil_core::hex::decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use dsmil_core::monitoring::AlertLevel;

    #[test]
    fn entry_lines_are_what_serde_writes() {
        let mut event = SecurityEvent::new("t\"q", AlertLevel::Critical, "c", "d\n\u{1F600}");
        event.affected_resources = vec!["r".into()];
        event.tpm_signature = Some("ab".into());
        let body = EntryBody {
            seq: 7,
            time: Utc::now(),
            event,
        };
        let bytes = body_bytes(&body);
        let (prev, hash) = ([1u8; 32], [2u8; 32]);
        let mut line = Vec::new();
        entry_line(&bytes, &prev, &hash, &mut line);
        let serde = serde_json::to_vec(&Line::Entry(Entry {
            body,
            prev: dsmil_core::hex::encode(&prev),
            hash: dsmil_core::hex::encode(&hash),
        }))
        .unwrap();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            String::from_utf8(serde).unwrap()
        );
    }
}
