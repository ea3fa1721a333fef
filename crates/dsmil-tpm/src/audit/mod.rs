//! The tamper-evident audit log: an append-only file of hash-chained entries, grouped into
//! Merkle batches closed by signed tree heads, with inclusion proofs and an offline verifier.

pub mod anchor;
mod chunks;
mod lines;
mod log;
pub mod merkle;
pub mod record;
mod verify;

pub use log::{AuditConfig, AuditError, AuditLog, InclusionProof, OpenReport};
pub use verify::{TreeHead, VerifyError, VerifySummary, verify_file, verify_file_against};
