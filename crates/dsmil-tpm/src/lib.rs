//! `dsmil-tpm`: DSMIL layer 1 — a TPM 2.0 for every other layer to sign, seal and attest with.
//!
//! - [`Tpm`]: the async API over one of two backends with the same observable semantics —
//!   [`soft::SoftTpm`], an embedded software TPM (the default; **not hardware-rooted**), and
//!   `tss::TssBackend` (feature `tss`), real TPMs and swtpm through tss-esapi 7.7. One thread owns
//!   the backend behind a bounded queue; every operation has an id, a typed error keeping the TPM
//!   response code, and its latency in the [`perf`] monitor.
//! - [`Quote`]: PCR quotes as real `TPMS_ATTEST` + `TPMT_SIGNATURE`, verified offline and written
//!   in the files `tpm2_checkquote` reads.
//! - [`bridge`]: the DSMIL device bridge (devices 0x8000–0x806B, quarantine enforced).
//! - [`audit`]: the tamper-evident audit log — hash-chained, group-committed entries in Merkle
//!   batches closed by signed tree heads (signed through [`TpmSigner`] or any core `Signer`).
//!
//! ```
//! use dsmil_tpm::{HashAlgorithm, KeyTemplate, PcrSelection};
//! use dsmil_tpm::{SealPolicy, Tpm, TpmOptions};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let tpm = Tpm::open_soft(dir.path(), TpmOptions::default())?;
//! assert!(!tpm.hardware_rooted());
//!
//! // Sign with a TPM key.
//! tpm.create_key("signer", KeyTemplate::EccP256Signing).await?;
//! let sig = tpm.sign("signer", b"message").await?.value;
//! assert!(tpm.verify("signer", b"message", &sig).await?.value);
//!
//! // Seal a secret to PCR 16: extending the PCR makes it unavailable.
//! let pcr16 = PcrSelection::new(HashAlgorithm::Sha256, [16])?;
//! let blob = tpm.seal(b"disk key", SealPolicy { pcrs: Some(pcr16), password: None }).await?.value;
//! assert_eq!(tpm.unseal(&blob, None).await?.value, b"disk key");
//! tpm.pcr_extend_data(16, b"something changed").await?;
//! assert!(tpm.unseal(&blob, None).await.is_err());
//!
//! // Quote PCRs for a remote verifier, who checks it with the attestation key alone.
//! tpm.create_attestation_key("ak").await?;
//! let pcrs = PcrSelection::new(HashAlgorithm::Sha256, [0, 1, 7])?;
//! let quote = tpm.quote("ak", &pcrs, b"verifier nonce").await?.value;
//! quote.verify(b"verifier nonce")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod audit;
pub mod backend;
pub mod bridge;
pub mod config;
pub mod der;
pub mod error;
pub mod keystore;
pub mod metrics;
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
pub mod values;
pub mod wire;

pub use backend::{BackendResult, TpmBackend};
pub use config::{TpmBackendSpec, TpmConfig};
pub use error::{BackendError, TpmError};
pub use quote::{Quote, QuoteError};
pub use signer::TpmSigner;
pub use tpm::{Completed, Tpm, TpmOptions};
pub use types::{Capabilities, KeyBlob, KeyInfo, KeyPublic, NvSpec, SealPolicy, SealedBlob};
pub use values::{
    Digest, EncryptionScheme, HashAlgorithm, KeyTemplate, NvAttributes, PcrSelection, TpmAlgorithm,
    TpmValueError,
};
