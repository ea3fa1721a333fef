//! The tamper-evident audit log: an append-only file of hash-chained entries, grouped into
//! Merkle batches closed by signed tree heads, with inclusion proofs and an offline verifier.

pub mod anchor;
mod chunks;
mod lines;
mod log;
mod proof;
pub mod record;
mod verify;
mod witness;
mod writer;

/// The RFC 9162 Merkle tree (in core, so witnesses verify proofs without this crate).
pub use dsmil_core::merkle;
pub use log::{AuditConfig, AuditError, AuditLog, InclusionProof, LogStatus, OpenReport, SyncHook};
pub use verify::{TreeHead, VerifyError, VerifySummary, verify_file, verify_file_against};
pub use witness::{P256HeadVerifier, WitnessedLog};
