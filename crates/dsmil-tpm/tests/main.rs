//! The integration tests of `dsmil-tpm`, in one harness (one binary to build and link):
//!
//! - [`audit`]: the audit log — batches, checkpoints, proofs, tamper detection, group commit,
//!   and that readers never wait for the writer's `fsync`;
//! - [`bridge`]: the DSMIL device bridge on the software TPM;
//! - [`ops`]: one suite of TPM operations, run per backend by its `suite!` macro — the
//!   software TPM, and (feature `tss`) tss-esapi on a private swtpm per test.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

mod audit;
mod bridge;
mod ops;
