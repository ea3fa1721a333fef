//! The audit port (provided by the TPM layer's signed log) and an in-memory hash chain.

use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::PortError;
use crate::monitoring::SecurityEvent;

/// Proof that an event was appended: its position and the chained hash of the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReceipt {
    /// Position in the log, from 0.
    pub sequence: u64,
    /// Hex SHA-256 of the entry chained to its predecessor.
    pub entry_hash: String,
}

/// Appends security and audit events to a tamper-evident log.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Appends `event`; returns once the entry is durable in the sink's terms.
    async fn append(&self, event: SecurityEvent) -> Result<AuditReceipt, PortError>;
}

/// An in-memory hash chain: each entry hash is SHA-256(previous hash ‖ JSON of the event).
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    entries: Mutex<Vec<(SecurityEvent, [u8; 32])>>,
}

impl MemoryAuditSink {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events appended so far, in order.
    pub fn events(&self) -> Vec<SecurityEvent> {
        self.lock().iter().map(|(e, _)| e.clone()).collect()
    }

    /// Recomputes the chain; `Err(i)` names the first entry whose hash does not match.
    pub fn verify_chain(&self) -> Result<(), u64> {
        let entries = self.lock();
        let mut prev = [0u8; 32];
        for (i, (event, hash)) in entries.iter().enumerate() {
            let expected = chain_hash(&prev, event).map_err(|_| i as u64)?;
            if &expected != hash {
                return Err(i as u64);
            }
            prev = *hash;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(SecurityEvent, [u8; 32])>> {
        // A poisoned lock only means another thread panicked mid-push; the Vec is still valid.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn chain_hash(prev: &[u8; 32], event: &SecurityEvent) -> Result<[u8; 32], PortError> {
    let json = serde_json::to_vec(event).map_err(|e| PortError::InvalidInput(e.to_string()))?;
    let mut h = Sha256::new();
    h.update(prev);
    h.update(&json);
    Ok(h.finalize().into())
}

#[async_trait]
impl AuditSink for MemoryAuditSink {
    async fn append(&self, event: SecurityEvent) -> Result<AuditReceipt, PortError> {
        let mut entries = self.lock();
        let prev = entries.last().map(|(_, h)| *h).unwrap_or([0u8; 32]);
        let hash = chain_hash(&prev, &event)?;
        entries.push((event, hash));
        Ok(AuditReceipt {
            sequence: entries.len() as u64 - 1,
            entry_hash: crate::hex::encode(&hash),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::AlertLevel;

    #[tokio::test]
    async fn chain_links_entries_and_detects_edits() {
        let sink = MemoryAuditSink::new();
        for i in 0..3 {
            let r = sink
                .append(SecurityEvent::new(
                    "test",
                    AlertLevel::Info,
                    "core",
                    format!("event {i}"),
                ))
                .await
                .unwrap();
            assert_eq!(r.sequence, i);
            assert_eq!(r.entry_hash.len(), 64);
        }
        assert_eq!(sink.verify_chain(), Ok(()));
        sink.lock()[1].0.description = "edited".into();
        assert_eq!(sink.verify_chain(), Err(1));
    }
}
