//! The audit log in the data dir: `DATA_DIR/audit/audit.log`, checkpoints signed with the TPM
//! key `dsmil-audit` (ECC P-256) whose public half is `DATA_DIR/audit/signer.pub` (PEM), so
//! `dsmilctl audit verify DATA_DIR/audit` works offline.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Context, DaemonError, Result};
use dsmil_tpm::TpmSigner;
use dsmil_tpm::audit::{AuditConfig, AuditLog, WitnessedLog};

/// Directory of the log, in the data dir.
pub const AUDIT_DIR: &str = "audit";
/// The log file.
pub const LOG_FILE: &str = "audit.log";
/// The signer's public key, PEM `PUBLIC KEY` (SPKI): `openssl pkey -pubin` reads it.
pub const PUBLIC_KEY_FILE: &str = "signer.pub";
/// The audit log as composed: the log, and the log as its witnesses see it (heads naming the
/// signer's public key; consistency proofs).
pub struct Audit {
    /// The log.
    pub log: Arc<AuditLog>,
    /// Its heads and proofs, for witnesses and `GET /api/audit/consistency`.
    pub heads: Arc<WitnessedLog>,
}

/// Opens (creating) the audit log, checkpoints signed by `signer`.
pub async fn start(data_dir: &Path, signer: Arc<TpmSigner>) -> Result<Audit> {
    let dir = data_dir.join(AUDIT_DIR);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let point = signer.public_key().ecc_point().ok_or_else(|| {
        DaemonError::Refused("the audit signing key is not an ECC P-256 key".into())
    })?;
    fs::write(
        dir.join(PUBLIC_KEY_FILE),
        dsmil_tpm::der::ecc_p256_pem(&point),
    )
    .with_context(|| format!("cannot write {}", dir.join(PUBLIC_KEY_FILE).display()))?;
    let (log, report) = AuditLog::open(&dir.join(LOG_FILE), signer.clone(), AuditConfig::default())
        .await
        .context("cannot open the audit log")?;
    if report.torn_bytes > 0 {
        tracing::warn!(
            torn_bytes = report.torn_bytes,
            "the audit log ended in a torn write; it was cut off"
        );
    }
    tracing::info!(entries = report.entries, path = %log.path().display(), "audit log open");
    let log = Arc::new(log);
    let heads = Arc::new(WitnessedLog::new(Arc::clone(&log), &point));
    Ok(Audit { log, heads })
}

/// SHA-256 (hex) of the effective configuration — the file merged with flags, environment and
/// defaults — as JSON, so an audit entry pins what the daemon ran with without holding it (a
/// database URL may carry a password).
pub fn config_sha256(config: &crate::config::DaemonConfig) -> String {
    use sha2::Digest as _;
    let json = serde_json::to_vec(config).unwrap_or_default();
    dsmil_core::hex::encode(&sha2::Sha256::digest(&json))
}

/// Appends the daemon's own `event_type` entry (`daemon_started`, `daemon_stopped`); a
/// failure is logged, since the daemon's start and stop cannot wait on it.
pub async fn record_lifecycle(
    log: &AuditLog,
    event_type: &str,
    description: String,
    details: Vec<String>,
) {
    let mut event = dsmil_core::monitoring::SecurityEvent::new(
        event_type,
        dsmil_core::monitoring::AlertLevel::Info,
        "dsmild",
        description,
    );
    event.response_actions = details;
    if let Err(e) = log.append_event(event).await {
        tracing::error!(event_type, error = %dsmil_core::report::chain(&e), "could not audit the daemon's {event_type}");
    }
}
