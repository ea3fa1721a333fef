//! Anchoring an audit log in TPM NV: the latest signed tree head is kept in an NV index, so a
//! log cut back or rewritten while its owner was down is noticed at the next start.
//!
//! NV has limited write endurance, so the anchor is refreshed on an interval
//! ([`ANCHOR_INTERVAL`]) and at shutdown, not for every batch. [`spawn_anchor_task`] first
//! verifies the whole log against the anchored head (reporting a mismatch as a critical
//! `audit_log_tampered` security event, on the bus and in the log itself), then keeps the
//! anchor fresh.

use std::sync::Arc;
use std::time::Duration;

use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
use dsmil_core::ports::Verifier;
use dsmil_core::tpm::TpmResultCode;
use dsmil_core::{Event, EventBus};

use super::{AuditLog, TreeHead};
use crate::error::TpmError;
use crate::tpm::Tpm;
use crate::types::NvSpec;
use crate::values::NvAttributes;

/// NV index holding the latest anchored audit tree head (size ‖ root, 40 bytes).
pub const ANCHOR_INDEX: u32 = 0x01D5_A0D1;
/// How often the anchor is refreshed while running.
pub const ANCHOR_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Bytes of an anchored head: the tree size (big-endian u64) and the root.
const ANCHOR_LEN: u16 = 40;

fn encode(head: &TreeHead) -> Vec<u8> {
    let mut out = head.tree_size.to_be_bytes().to_vec();
    out.extend_from_slice(&head.root);
    out
}

fn decode(bytes: &[u8]) -> Option<TreeHead> {
    let size: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let root: [u8; 32] = bytes.get(8..40)?.try_into().ok()?;
    let tree_size = u64::from_be_bytes(size);
    (tree_size > 0).then_some(TreeHead { tree_size, root })
}

/// The anchored tree head, if one was ever written (an undefined or unreadable index reads as
/// none).
pub async fn read_anchor(tpm: &Tpm) -> Option<TreeHead> {
    let bytes = tpm
        .nv_read(ANCHOR_INDEX, 0, ANCHOR_LEN, None)
        .await
        .ok()?
        .value;
    decode(&bytes)
}

/// Stores `log`'s latest signed tree head in NV, defining the index on first use. Returns the
/// head anchored (none while nothing is signed).
pub async fn anchor(tpm: &Tpm, log: &AuditLog) -> Result<Option<TreeHead>, TpmError> {
    let Some(head) = log.tree_head() else {
        return Ok(None);
    };
    if read_anchor(tpm).await == Some(head) {
        return Ok(Some(head));
    }
    if let Err(e) = tpm.nv_write(ANCHOR_INDEX, 0, &encode(&head), None).await {
        if e.result_code() != TpmResultCode::Handle {
            return Err(e);
        }
        tpm.nv_define(NvSpec {
            index: ANCHOR_INDEX,
            size: ANCHOR_LEN,
            attributes: NvAttributes::owner_rw(),
            auth: None,
        })
        .await?;
        tpm.nv_write(ANCHOR_INDEX, 0, &encode(&head), None).await?;
    }
    Ok(Some(head))
}

/// Checks `log` against the anchor in the background (a full verification with `verifier`),
/// reporting a log cut back or rewritten as a critical security event; then signs the open
/// batch and refreshes the anchor every [`ANCHOR_INTERVAL`].
pub fn spawn_anchor_task(
    tpm: Tpm,
    log: Arc<AuditLog>,
    verifier: Arc<dyn Verifier>,
    bus: EventBus,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Some(head) = read_anchor(&tpm).await {
            match log.verify_against(verifier.as_ref(), Some(&head)).await {
                Ok(summary) => tracing::info!(
                    entries = summary.entries,
                    anchored = head.tree_size,
                    "audit log verified against its TPM anchor"
                ),
                Err(e) => {
                    let e = crate::error::chain(&e);
                    tracing::error!(error = %e, anchored = %head, "the audit log does not match its TPM anchor");
                    let mut event = SecurityEvent::new(
                        "audit_log_tampered",
                        AlertLevel::Critical,
                        "tpm",
                        format!(
                            "the audit log does not contain the signed tree head anchored in the TPM ({} entries): {e}",
                            head.tree_size
                        ),
                    );
                    event.affected_resources = vec![log.path().display().to_string()];
                    bus.publish(Event::Security(event.clone()));
                    if let Err(e) = log.append_event(event).await {
                        let e = crate::error::chain(&e);
                        tracing::error!(error = %e, "cannot record the audit anchor mismatch");
                    }
                }
            }
        }
        loop {
            if let Err(e) = log.checkpoint().await {
                let e = crate::error::chain(&e);
                tracing::warn!(error = %e, "cannot sign the audit batch before anchoring");
            }
            match anchor(&tpm, &log).await {
                Ok(Some(head)) => tracing::debug!(%head, "audit tree head anchored in the TPM"),
                Ok(None) => {}
                Err(e) => {
                    let e = crate::error::chain(&e);
                    tracing::warn!(error = %e, "cannot anchor the audit log");
                }
            }
            tokio::time::sleep(ANCHOR_INTERVAL).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_through_the_nv_encoding() {
        let head = TreeHead {
            tree_size: 1234,
            root: [7; 32],
        };
        assert_eq!(encode(&head).len(), usize::from(ANCHOR_LEN));
        assert_eq!(decode(&encode(&head)), Some(head));
        assert_eq!(decode(&[0; 40]), None, "size 0 is no anchor");
        assert_eq!(decode(&[1; 12]), None);
    }
}
