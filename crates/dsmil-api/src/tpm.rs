//! `/api/tpm/*`: what the TPM is, and quotes for remote attestation in the form tpm2-tools
//! checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/tpm/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TpmInfo {
    /// `soft` or `tss`.
    pub backend: String,
    /// Whether keys live in a hardware TPM.
    pub hardware_rooted: bool,
    /// Manufacturer id (`IBM`, `DSML`, …).
    pub manufacturer: String,
    /// Vendor string.
    pub vendor: String,
    /// Firmware version.
    pub firmware_version: String,
    /// Algorithms it implements (`rsa`, `ecc`, `aes`, `sha256`, …).
    pub algorithms: Vec<String>,
    /// PCR banks (`sha256`, …).
    pub pcr_banks: Vec<String>,
    /// Largest NV index, bytes.
    pub max_nv_index_size: u32,
    /// Largest NV read or write in one command, bytes.
    pub max_nv_buffer: u32,
    /// NV space in all, bytes (when the TPM says).
    pub nv_space_bytes: Option<u32>,
    /// Where it is (a state dir, a device, a socket).
    pub location: String,
    /// Keys the daemon keeps in it.
    pub keys: Vec<TpmKey>,
    /// Counters and latency per operation.
    pub performance: TpmPerformance,
    /// The audit log it signs.
    pub audit: AuditStatus,
    /// The tree head anchored in TPM NV, `SIZE:ROOT` (none before the first anchor).
    pub audit_anchor: Option<String>,
}

/// A key the daemon keeps in the TPM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TpmKey {
    /// Its label.
    pub label: String,
    /// Its template (`ecc_p256_signing`, `rsa2048_signing`, …).
    pub template: String,
    /// Its public half, PEM (none for symmetric keys).
    pub public_pem: Option<String>,
}

/// The seed's `tpm_performance_monitor`: counters by result, latency per operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TpmPerformance {
    /// Counters by result.
    pub counters: TpmCounters,
    /// Latency per operation.
    pub operations: Vec<OperationStats>,
}

/// TPM operations by result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TpmCounters {
    /// Operations started.
    pub total_operations: u64,
    /// Operations that returned success.
    pub successful_operations: u64,
    /// Operations that failed.
    pub failed_operations: u64,
    /// Failures because the TPM did not answer in time.
    pub timeout_errors: u64,
    /// Failures reported as TPM failure mode or transport errors.
    pub hardware_errors: u64,
    /// Policy check failures.
    pub policy_violations: u64,
    /// Authorisation failures.
    pub authentication_failures: u64,
}

/// Latency of one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OperationStats {
    /// The operation (`sign_ecc256`, `quote`, `nv_read`, …).
    pub operation: String,
    /// Times run.
    pub count: u64,
    /// Rate since start.
    pub ops_per_second: f64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: u64,
    /// 95th percentile, µs.
    pub p95_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Longest, µs.
    pub max_us: u64,
}

/// The audit log the TPM signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditStatus {
    /// Entries written.
    pub entries: u64,
    /// Entries covered by a signed checkpoint.
    pub signed: u64,
    /// The latest signed tree head, `SIZE:ROOT`.
    pub tree_head: Option<String>,
}

/// `POST /api/tpm/quote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// PCRs of the SHA-256 bank (0–23).
    pub pcrs: Vec<u32>,
    /// Qualifying data (the verifier's nonce), hex, at most 64 bytes.
    #[serde(default)]
    pub nonce: String,
}

/// A quote, verified by the daemon before it answers, in two forms: base64 of the files
/// `tpm2_checkquote` reads, and the structured quote `dsmilctl` verifies again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuoteResponse {
    /// `soft` or `tss`.
    pub backend: String,
    /// Whether the key that signed it lives in a hardware TPM.
    pub hardware_rooted: bool,
    /// The nonce, lowercase hex.
    pub nonce: String,
    /// The quoted PCR values.
    pub pcrs: QuotedPcrs,
    /// `TPMS_ATTEST`, base64 (`quote.msg`).
    pub message: String,
    /// `TPMT_SIGNATURE`, base64 (`quote.sig`).
    pub signature: String,
    /// The PCR values in tpm2-tools' layout, base64 (`quote.pcrs`).
    pub pcrs_file: String,
    /// The attestation key, PEM (`ak.pub.pem`).
    pub ak_pem: String,
    /// The quote as structured data.
    pub quote: Quote,
}

/// PCR values of one bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuotedPcrs {
    /// The bank (`sha256`).
    pub bank: String,
    /// Value per PCR index, hex.
    pub values: BTreeMap<String, String>,
}

/// A TPM quote: the attested message, its signature, the PCR values and the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    /// The PCR bank (`sha256`).
    pub bank: String,
    /// `[index, digest]` pairs.
    pub pcr_values: Vec<(u8, Digest)>,
    /// `TPMS_ATTEST`, hex.
    pub attest: String,
    /// `TPMT_SIGNATURE`, hex.
    pub signature: String,
    /// The attestation key's public half.
    pub ak_public: KeyPublic,
    /// The qualified name of the key's parent, hex (tss backend).
    pub ak_parent_qualified_name: Option<String>,
}

/// A digest with its algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Digest {
    /// `sha256`, …
    pub algorithm: String,
    /// The digest, hex.
    pub hex: String,
}

/// The public half of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KeyPublic {
    /// ECC P-256: the uncompressed point, hex.
    EccP256 {
        /// `04 || x || y`, hex.
        point: String,
    },
    /// RSA-2048.
    Rsa {
        /// Big-endian modulus, hex.
        modulus: String,
        /// Public exponent.
        exponent: u32,
    },
    /// A symmetric key has no public half.
    Symmetric,
}
