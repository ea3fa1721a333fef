//! Composes the TPM layer: the backend `--tpm` names, the key the daemon signs its audit log
//! with, and the DSMIL bridge (its audit, bus and throttle wired).

use std::path::Path;
use std::sync::Arc;

use dsmil_core::EventBus;
use dsmil_core::ports::{AuditSink, Throttle};
use dsmil_tpm::bridge::{BridgeConfig, DsmilBridge, MemoryDevices};
use dsmil_tpm::{Tpm, TpmOptions, TpmSigner};

use crate::config::DaemonConfig;
use crate::error::{Context, Result};

/// Label of the audit log's checkpoint key.
pub const AUDIT_KEY: &str = "dsmil-audit";

/// Opens the configured TPM.
pub fn start(config: &DaemonConfig, data_dir: &Path, bus: &EventBus) -> Result<Tpm> {
    let tpm = Tpm::open(
        &config.tpm.tpm,
        data_dir,
        TpmOptions {
            bus: Some(bus.clone()),
            ..TpmOptions::default()
        },
    )
    .with_context(|| format!("cannot open the TPM ({})", config.tpm.tpm))?;
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
