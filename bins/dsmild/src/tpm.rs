//! Composes the TPM layer: the backend `--tpm` names, the keys the daemon signs with, the DSMIL
//! bridge, and the anchor that keeps the audit log's latest signed tree head in TPM NV so a
//! log cut back while the daemon was down is noticed at the next start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
use dsmil_core::ports::{AuditSink, Throttle};
use dsmil_core::tpm::NvAttributes;
use dsmil_core::{DaemonConfig, Event, EventBus};
use dsmil_tpm::audit::{AuditLog, TreeHead};
use dsmil_tpm::bridge::{BridgeConfig, DsmilBridge, MemoryDevices};
use dsmil_tpm::{NvSpec, Tpm, TpmOptions, TpmSigner};

/// Label of the audit log's checkpoint key.
pub const AUDIT_KEY: &str = "dsmil-audit";
/// NV index holding the latest anchored audit tree head (size ‖ root, 40 bytes).
pub const ANCHOR_INDEX: u32 = 0x01D5_A0D1;
/// How often the anchor is refreshed while running (TPM NV has limited write endurance; the
/// final head is anchored at shutdown too).
pub const ANCHOR_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Opens the configured TPM.
pub fn start(config: &DaemonConfig, data_dir: &Path, bus: &EventBus) -> Result<Tpm> {
    let tpm = Tpm::open(
        &config.tpm,
        data_dir,
        TpmOptions {
            bus: Some(bus.clone()),
            ..TpmOptions::default()
        },
    )
    .with_context(|| format!("cannot open the TPM ({})", config.tpm))?;
    let caps = tpm.capabilities();
    if caps.hardware_rooted {
        tracing::info!(backend = %caps.backend, vendor = %caps.vendor, firmware = %caps.firmware_version, location = %caps.location, "TPM ready (hardware-rooted)");
    } else {
        tracing::warn!(backend = %caps.backend, vendor = %caps.vendor, location = %caps.location, "TPM ready, NOT hardware-rooted: keys are protected by software only");
    }
    Ok(tpm)
}

/// The signer of audit checkpoints.
pub async fn audit_signer(tpm: &Tpm) -> Result<Arc<TpmSigner>> {
    Ok(Arc::new(
        TpmSigner::ensure(tpm.clone(), AUDIT_KEY)
            .await
            .context("cannot create or load the audit signing key")?,
    ))
}

/// The bridge, with state in `DATA_DIR/bridge`. Device writes go to an in-memory device
/// model: this build has no DSMIL platform driver.
pub fn bridge(
    tpm: &Tpm,
    data_dir: &Path,
    audit: Arc<dyn AuditSink>,
    bus: &EventBus,
    throttle: Arc<dyn Throttle>,
) -> Result<Arc<DsmilBridge>> {
    let bridge = DsmilBridge::open(
        tpm.clone(),
        BridgeConfig::new(&data_dir.join("bridge")),
        Arc::new(MemoryDevices::new()),
    )
    .context("cannot open the DSMIL bridge")?
    .with_audit(audit)
    .with_bus(bus.clone())
    .with_throttle(throttle);
    Ok(Arc::new(bridge))
}

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

/// The anchored tree head, if any.
pub async fn read_anchor(tpm: &Tpm) -> Option<TreeHead> {
    let bytes = tpm.nv_read(ANCHOR_INDEX, 0, 40, None).await.ok()?.value;
    decode(&bytes)
}

/// Stores `log`'s latest signed tree head in NV (defining the index on first use).
pub async fn anchor(tpm: &Tpm, log: &AuditLog) -> Result<Option<TreeHead>> {
    let Some(head) = log.tree_head() else {
        return Ok(None);
    };
    if read_anchor(tpm).await == Some(head) {
        return Ok(Some(head));
    }
    if let Err(e) = tpm.nv_write(ANCHOR_INDEX, 0, &encode(&head), None).await {
        if e.result_code() != dsmil_core::tpm::TpmResultCode::Handle {
            return Err(e).context("cannot write the audit anchor");
        }
        tpm.nv_define(NvSpec {
            index: ANCHOR_INDEX,
            size: 40,
            attributes: NvAttributes::owner_rw(),
            auth: None,
        })
        .await
        .context("cannot define the audit anchor NV index")?;
        tpm.nv_write(ANCHOR_INDEX, 0, &encode(&head), None)
            .await
            .context("cannot write the audit anchor")?;
    }
    Ok(Some(head))
}

/// Checks the log against the anchor in the background (a full verification), reporting a
/// log cut back or rewritten as a critical security event; then refreshes the anchor every
/// [`ANCHOR_INTERVAL`].
pub fn spawn_anchor_task(tpm: Tpm, log: Arc<AuditLog>, signer: Arc<TpmSigner>, bus: EventBus) {
    tokio::spawn(async move {
        if let Some(head) = read_anchor(&tpm).await {
            match log.verify_against(signer.as_ref(), Some(&head)).await {
                Ok(summary) => tracing::info!(
                    entries = summary.entries,
                    anchored = head.tree_size,
                    "audit log verified against its TPM anchor"
                ),
                Err(e) => {
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
                        tracing::error!(error = %e, "cannot record the audit anchor mismatch");
                    }
                }
            }
        }
        loop {
            if let Err(e) = log.checkpoint().await {
                tracing::warn!(error = %e, "cannot sign the audit batch before anchoring");
            }
            match anchor(&tpm, &log).await {
                Ok(Some(head)) => tracing::debug!(%head, "audit tree head anchored in the TPM"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot anchor the audit log"),
            }
            tokio::time::sleep(ANCHOR_INTERVAL).await;
        }
    });
}
