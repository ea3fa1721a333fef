//! `dsmil-tpm`: DSMIL layer 1.
//!
//! Built so far: the [`audit`] log — an append-only, hash-chained file of security events,
//! grouped into Merkle batches (RFC 9162 trees) whose signed tree heads are made through core's
//! `Signer` port, with inclusion proofs, torn-write recovery and an offline verifier — and
//! [`soft_key`], a software ECDSA P-256 key (not hardware-rooted) that signs them until the TPM
//! backends land; and the [`perf`] monitor (counters by result, per-operation latency
//! histograms) that the backends will report to. TPM 2.0 operations (software and `tss-esapi`
//! backends) and the DSMIL device bridge are to come.
//!
//! ```
//! use std::sync::Arc;
//! use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
//! use dsmil_tpm::audit::{AuditConfig, AuditLog, verify_file};
//! use dsmil_tpm::soft_key::{P256Verifier, SoftEcdsaKey};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let key = Arc::new(SoftEcdsaKey::load_or_create(&dir.path().join("audit-key.p8"))?);
//! let (log, _) = AuditLog::open(&dir.path().join("audit.log"), key.clone(), AuditConfig::default()).await?;
//! log.append_event(SecurityEvent {
//!     timestamp: chrono::Utc::now(),
//!     event_type: "login".into(),
//!     severity: AlertLevel::Info,
//!     source_component: "example".into(),
//!     description: "operator logged in".into(),
//!     tpm_signature: None,
//!     affected_resources: vec![],
//!     response_actions: vec![],
//! })
//! .await?;
//! log.checkpoint().await?; // sign the batch now
//! let summary = verify_file(log.path(), &P256Verifier::new(key.public_key())).await?;
//! assert_eq!((summary.entries, summary.signed_entries), (1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod audit;
pub mod backend;
pub mod bridge;
pub mod der;
pub mod error;
pub mod keystore;
pub mod perf;
pub mod quote;
pub mod signer;
pub mod soft;
pub mod soft_key;
pub mod swtpm;
pub mod tpm;
#[cfg(feature = "tss")]
pub mod tss;
pub mod types;
pub mod wire;

pub use backend::{BackendResult, TpmBackend};
pub use error::{BackendError, TpmError};
pub use quote::{Quote, QuoteError};
pub use signer::TpmSigner;
pub use tpm::{Completed, Tpm, TpmOptions};
pub use types::{Capabilities, KeyBlob, KeyInfo, KeyPublic, NvSpec, SealPolicy, SealedBlob};
