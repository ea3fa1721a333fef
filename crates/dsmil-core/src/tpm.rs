//! TPM vocabulary (seed layer 1): algorithms, PCR selections, digests, signatures, key
//! templates, NV attributes, result codes and the performance-monitor counters.
//!
//! These are plain data shared by the TPM layer and its users; only `dsmil-tpm` talks to a TPM.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Number of PCRs in a bank (TPM 2.0 PC client profile).
pub const PCR_COUNT: u8 = 24;

/// Hash algorithms of PCR banks, digests and signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    /// SHA-1 (legacy PCR bank only).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// Digest size in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// The TPM_ALG_ID.
    pub fn tpm_alg_id(self) -> u16 {
        match self {
            HashAlgorithm::Sha1 => 0x0004,
            HashAlgorithm::Sha256 => 0x000B,
            HashAlgorithm::Sha384 => 0x000C,
            HashAlgorithm::Sha512 => 0x000D,
        }
    }
}

/// Algorithms a TPM reports in its capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // TPM algorithm names.
pub enum TpmAlgorithm {
    Rsa,
    Ecc,
    Aes,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
    Hmac,
    Ecdsa,
    Rsassa,
    Rsapss,
    Oaep,
    Cfb,
    Ctr,
    Keyedhash,
}

/// Why a TPM value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TpmValueError {
    /// A PCR index ≥ 24.
    #[error("PCR index {0} is out of range; PCRs are numbered 0-23")]
    PcrOutOfRange(u32),
    /// A digest whose length does not match its algorithm.
    #[error("{algorithm:?} digest must be {expected} bytes, got {actual}")]
    DigestLength {
        /// The algorithm.
        algorithm: HashAlgorithm,
        /// Its digest size.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// An empty PCR selection.
    #[error("PCR selection is empty; select at least one PCR")]
    EmptySelection,
    /// Text that is not a PCR list.
    #[error("PCR list {0:?} is not a comma-separated list of numbers 0-23 (e.g. \"0,1,7\")")]
    BadPcrList(String),
    /// Text that is not hexadecimal.
    #[error("{0:?} is not hexadecimal")]
    BadHex(String),
}

/// A set of PCRs in one bank.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPcrSelection")]
pub struct PcrSelection {
    /// The bank.
    pub bank: HashAlgorithm,
    /// The PCR indexes, each 0–23.
    pcrs: BTreeSet<u8>,
}

#[derive(Deserialize)]
struct RawPcrSelection {
    bank: HashAlgorithm,
    pcrs: Vec<u32>,
}

impl TryFrom<RawPcrSelection> for PcrSelection {
    type Error = TpmValueError;
    fn try_from(raw: RawPcrSelection) -> Result<Self, Self::Error> {
        PcrSelection::new(raw.bank, raw.pcrs)
    }
}

impl PcrSelection {
    /// Validates indexes (0–23, at least one) and builds the selection.
    pub fn new(
        bank: HashAlgorithm,
        pcrs: impl IntoIterator<Item = u32>,
    ) -> Result<Self, TpmValueError> {
        let mut set = BTreeSet::new();
        for p in pcrs {
            match u8::try_from(p) {
                Ok(i) if i < PCR_COUNT => {
                    set.insert(i);
                }
                _ => return Err(TpmValueError::PcrOutOfRange(p)),
            }
        }
        if set.is_empty() {
            return Err(TpmValueError::EmptySelection);
        }
        Ok(Self { bank, pcrs: set })
    }

    /// Parses `"0,1,7"` into a selection of the given bank.
    pub fn parse_list(bank: HashAlgorithm, text: &str) -> Result<Self, TpmValueError> {
        let parsed: Result<Vec<u32>, _> =
            text.split(',').map(|p| p.trim().parse::<u32>()).collect();
        let pcrs = parsed.map_err(|_| TpmValueError::BadPcrList(text.to_owned()))?;
        Self::new(bank, pcrs)
    }

    /// The selected indexes in ascending order.
    pub fn pcrs(&self) -> impl Iterator<Item = u8> + '_ {
        self.pcrs.iter().copied()
    }

    /// The 3-byte `pcrSelect` bitmap of `TPMS_PCR_SELECTION`.
    pub fn bitmap(&self) -> [u8; 3] {
        let mut map = [0u8; 3];
        for &p in &self.pcrs {
            map[usize::from(p / 8)] |= 1 << (p % 8);
        }
        map
    }
}

/// A digest tagged with its algorithm; the length always matches.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawDigest", into = "RawDigest")]
pub struct Digest {
    algorithm: HashAlgorithm,
    bytes: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct RawDigest {
    algorithm: HashAlgorithm,
    hex: String,
}

impl TryFrom<RawDigest> for Digest {
    type Error = TpmValueError;
    fn try_from(raw: RawDigest) -> Result<Self, Self::Error> {
        Digest::new(
            raw.algorithm,
            crate::hex::decode(&raw.hex).map_err(|_| TpmValueError::BadHex(raw.hex))?,
        )
    }
}

impl From<Digest> for RawDigest {
    fn from(d: Digest) -> Self {
        RawDigest {
            algorithm: d.algorithm,
            hex: crate::hex::encode(&d.bytes),
        }
    }
}

impl Digest {
    /// Checks the length against the algorithm.
    pub fn new(algorithm: HashAlgorithm, bytes: Vec<u8>) -> Result<Self, TpmValueError> {
        if bytes.len() != algorithm.digest_len() {
            return Err(TpmValueError::DigestLength {
                algorithm,
                expected: algorithm.digest_len(),
                actual: bytes.len(),
            });
        }
        Ok(Self { algorithm, bytes })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}:{}",
            self.algorithm,
            crate::hex::encode(&self.bytes)
        )
    }
}

/// Signature schemes the TPM layer supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    /// ECDSA on NIST P-256 with SHA-256.
    EcdsaP256Sha256,
    /// RSASSA-PKCS1-v1_5, 2048-bit, SHA-256.
    RsassaSha256,
    /// RSA-PSS, 2048-bit, SHA-256.
    RsapssSha256,
    /// HMAC-SHA-256 (symmetric; for tests and single-process deployments).
    HmacSha256,
}

/// A signature with its scheme and the name of the key that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// How it was made.
    pub scheme: SignatureScheme,
    /// Name of the signing key (its fingerprint or label).
    pub key_name: String,
    /// The signature bytes (DER for ECDSA, raw for RSA and HMAC).
    #[serde(with = "crate::hex::serde_bytes")]
    pub bytes: Vec<u8>,
}

/// Symmetric and asymmetric encryption schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncryptionScheme {
    /// AES-256 in CFB mode (TPM2_EncryptDecrypt2).
    Aes256Cfb,
    /// RSA-OAEP with SHA-256, 2048-bit.
    RsaOaepSha256,
}

/// What kind of key to create (seed `tpm_key_template_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyTemplate {
    /// ECC P-256 signing key (ECDSA).
    EccP256Signing,
    /// RSA-2048 signing key (RSASSA or RSA-PSS).
    Rsa2048Signing,
    /// RSA-2048 decryption key (OAEP).
    Rsa2048Decryption,
    /// AES-256 symmetric key (CFB).
    Aes256,
    /// Storage parent (restricted decryption key) for other keys and sealed objects.
    StorageParent,
}

/// NV index attributes that matter to users (a subset of `TPMA_NV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NvAttributes {
    /// Writable with the owner's authorisation.
    pub owner_write: bool,
    /// Readable with the owner's authorisation.
    pub owner_read: bool,
    /// Writable with the index's own authorisation.
    pub auth_write: bool,
    /// Readable with the index's own authorisation.
    pub auth_read: bool,
    /// Can be written only once.
    pub write_once: bool,
    /// Locked for writing until the next TPM reset after a write lock.
    pub write_locked: bool,
    /// Must not be deleted without policy.
    pub no_da: bool,
}

impl NvAttributes {
    /// Read and write with owner authorisation, the usual choice for data indices.
    pub fn owner_rw() -> Self {
        Self {
            owner_write: true,
            owner_read: true,
            ..Self::default()
        }
    }
}

/// TPM response codes the project distinguishes (seed `tpm_result_code_t`), with their values
/// from the TPM 2.0 specification (Part 2, 6.6). Unknown codes keep their raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TpmResultCode {
    /// TPM_RC_SUCCESS.
    Success,
    /// TPM_RC_FAILURE: the TPM is in failure mode.
    Failure,
    /// TPM_RC_AUTH_FAIL: wrong authorisation value.
    AuthFail,
    /// TPM_RC_BAD_AUTH: authorisation failure without DA implications.
    BadAuth,
    /// TPM_RC_POLICY_FAIL: a policy check failed.
    PolicyFail,
    /// TPM_RC_PCR_CHANGED: PCRs changed since the policy was evaluated.
    PcrChanged,
    /// TPM_RC_OBJECT_MEMORY: out of object slots (flush transient objects).
    ObjectMemory,
    /// TPM_RC_SESSION_MEMORY: out of session slots.
    SessionMemory,
    /// TPM_RC_RETRY: the TPM was busy; try again.
    Retry,
    /// TPM_RC_CANCELED: the command was cancelled.
    Canceled,
    /// TPM_RC_NV_RANGE: offset/size outside the NV index.
    NvRange,
    /// TPM_RC_NV_LOCKED: the NV index is write- or read-locked.
    NvLocked,
    /// TPM_RC_NV_UNINITIALIZED: the NV index has never been written.
    NvUninitialized,
    /// TPM_RC_NV_DEFINED: the NV index already exists.
    NvDefined,
    /// TPM_RC_HANDLE: the handle is not loaded/defined.
    Handle,
    /// TPM_RC_VALUE: a parameter value is out of range.
    Value,
    /// TPM_RC_SIZE: a parameter size is wrong.
    Size,
    /// No answer in time (not a TPM code; reported by the driver).
    Timeout,
    /// Any other code, raw.
    Other(u32),
}

impl TpmResultCode {
    const TABLE: [(TpmResultCode, u32); 17] = [
        (TpmResultCode::Success, 0x000),
        (TpmResultCode::Failure, 0x101),
        (TpmResultCode::AuthFail, 0x08E),
        (TpmResultCode::BadAuth, 0x0A2),
        (TpmResultCode::PolicyFail, 0x09D),
        (TpmResultCode::PcrChanged, 0x128),
        (TpmResultCode::ObjectMemory, 0x902),
        (TpmResultCode::SessionMemory, 0x903),
        (TpmResultCode::Retry, 0x922),
        (TpmResultCode::Canceled, 0x909),
        (TpmResultCode::NvRange, 0x146),
        (TpmResultCode::NvLocked, 0x148),
        (TpmResultCode::NvUninitialized, 0x14A),
        (TpmResultCode::NvDefined, 0x14C),
        (TpmResultCode::Handle, 0x08B),
        (TpmResultCode::Value, 0x084),
        (TpmResultCode::Size, 0x095),
    ];

    /// Classifies a raw response code. Format-one codes (bit 7 set) carry a parameter, handle
    /// or session number in bits 8–11; those bits are masked off before matching.
    pub fn from_raw(raw: u32) -> Self {
        let base = if raw & 0x080 != 0 { raw & 0x0BF } else { raw };
        Self::TABLE
            .iter()
            .find(|(_, code)| *code == base)
            .map(|(rc, _)| *rc)
            .unwrap_or(TpmResultCode::Other(raw))
    }

    /// The base numeric code (the raw value for `Other`; `u32::MAX` for `Timeout`).
    pub fn raw(self) -> u32 {
        match self {
            TpmResultCode::Other(raw) => raw,
            TpmResultCode::Timeout => u32::MAX,
            rc => Self::TABLE
                .iter()
                .find(|(r, _)| *r == rc)
                .map(|(_, code)| *code)
                .unwrap_or(u32::MAX),
        }
    }

    /// Whether the command succeeded.
    pub fn is_success(self) -> bool {
        self == TpmResultCode::Success
    }
}

/// TPM operations that get their own latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // Operation names.
pub enum TpmOperation {
    CreateKey,
    LoadKey,
    Seal,
    Unseal,
    SignEcc256,
    SignRsa2048,
    Verify,
    EncryptAes256,
    DecryptAes256,
    EncryptRsa,
    DecryptRsa,
    PcrExtend,
    PcrRead,
    Quote,
    NvDefine,
    NvWrite,
    NvRead,
    GetRandom,
    Capabilities,
}

/// Counters of the seed's `tpm_performance_monitor` (latency percentiles come from the
/// TPM layer's histograms).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TpmPerfCounters {
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

impl TpmPerfCounters {
    /// Counts one finished operation under its result code.
    pub fn record(&mut self, rc: TpmResultCode) {
        self.total_operations += 1;
        if rc.is_success() {
            self.successful_operations += 1;
            return;
        }
        self.failed_operations += 1;
        match rc {
            TpmResultCode::Timeout | TpmResultCode::Retry => self.timeout_errors += 1,
            TpmResultCode::Failure => self.hardware_errors += 1,
            TpmResultCode::PolicyFail | TpmResultCode::PcrChanged => self.policy_violations += 1,
            TpmResultCode::AuthFail | TpmResultCode::BadAuth => self.authentication_failures += 1,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pcr_selection_validates_and_builds_the_bitmap() {
        let s = PcrSelection::parse_list(HashAlgorithm::Sha256, "0, 1,7,23").unwrap();
        assert_eq!(s.bitmap(), [0b1000_0011, 0, 0b1000_0000]);
        assert_eq!(
            PcrSelection::new(HashAlgorithm::Sha256, [24]),
            Err(TpmValueError::PcrOutOfRange(24))
        );
        assert_eq!(
            PcrSelection::new(HashAlgorithm::Sha256, []),
            Err(TpmValueError::EmptySelection)
        );
        assert!(matches!(
            PcrSelection::parse_list(HashAlgorithm::Sha256, "0,x"),
            Err(TpmValueError::BadPcrList(_))
        ));
        let err =
            serde_json::from_str::<PcrSelection>(r#"{"bank":"sha256","pcrs":[99]}"#).unwrap_err();
        assert!(err.to_string().contains("PCR index 99"), "{err}");
    }

    #[test]
    fn digests_check_their_length() {
        assert!(Digest::new(HashAlgorithm::Sha256, vec![0; 32]).is_ok());
        let err = Digest::new(HashAlgorithm::Sha384, vec![0; 32]).unwrap_err();
        assert_eq!(err.to_string(), "Sha384 digest must be 48 bytes, got 32");
        let d = Digest::new(HashAlgorithm::Sha1, (0..20).collect()).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>(r#"{"algorithm":"sha1","hex":"zz"}"#).is_err());
    }

    #[test]
    fn result_codes_classify_format_one_codes() {
        assert_eq!(TpmResultCode::from_raw(0), TpmResultCode::Success);
        // TPM_RC_AUTH_FAIL on session 1: 0x98E.
        assert_eq!(TpmResultCode::from_raw(0x98E), TpmResultCode::AuthFail);
        // TPM_RC_POLICY_FAIL on session 1: 0x99D.
        assert_eq!(TpmResultCode::from_raw(0x99D), TpmResultCode::PolicyFail);
        assert_eq!(TpmResultCode::from_raw(0x902), TpmResultCode::ObjectMemory);
        assert_eq!(TpmResultCode::from_raw(0x14C), TpmResultCode::NvDefined);
        assert_eq!(
            TpmResultCode::from_raw(0x1234_5678 & 0x7F),
            TpmResultCode::Other(0x78)
        );
        assert_eq!(TpmResultCode::PolicyFail.raw(), 0x09D);
    }

    #[test]
    fn counters_sort_failures() {
        let mut c = TpmPerfCounters::default();
        for rc in [
            TpmResultCode::Success,
            TpmResultCode::AuthFail,
            TpmResultCode::PolicyFail,
            TpmResultCode::Timeout,
            TpmResultCode::Failure,
            TpmResultCode::NvRange,
        ] {
            c.record(rc);
        }
        assert_eq!(c.total_operations, 6);
        assert_eq!(c.successful_operations, 1);
        assert_eq!(c.failed_operations, 5);
        assert_eq!(
            (
                c.authentication_failures,
                c.policy_violations,
                c.timeout_errors,
                c.hardware_errors
            ),
            (1, 1, 1, 1)
        );
    }

    proptest! {
        #[test]
        fn selections_round_trip(pcrs in proptest::collection::btree_set(0u32..24, 1..24)) {
            let s = PcrSelection::new(HashAlgorithm::Sha256, pcrs.iter().copied()).unwrap();
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(&serde_json::from_str::<PcrSelection>(&json).unwrap(), &s);
            let bits: u32 = s.bitmap().iter().enumerate().map(|(i, b)| u32::from(*b) << (8 * i)).sum();
            prop_assert_eq!(bits.count_ones() as usize, pcrs.len());
        }

        #[test]
        fn known_codes_round_trip(i in 0usize..17) {
            let (rc, raw) = TpmResultCode::TABLE[i];
            prop_assert_eq!(TpmResultCode::from_raw(raw), rc);
            prop_assert_eq!(rc.raw(), raw);
        }
    }
}
