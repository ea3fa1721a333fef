//! TPM values: hash algorithms, PCR selections, digests, key templates, NV attributes and the
//! algorithms a TPM reports. Plain data, validated at construction (serde goes through the same
//! constructors).

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
            dsmil_core::hex::decode(&raw.hex).map_err(|_| TpmValueError::BadHex(raw.hex))?,
        )
    }
}

impl From<Digest> for RawDigest {
    fn from(d: Digest) -> Self {
        RawDigest {
            algorithm: d.algorithm,
            hex: dsmil_core::hex::encode(&d.bytes),
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
            dsmil_core::hex::encode(&self.bytes)
        )
    }
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

    proptest! {
        #[test]
        fn selections_round_trip(pcrs in proptest::collection::btree_set(0u32..24, 1..24)) {
            let s = PcrSelection::new(HashAlgorithm::Sha256, pcrs.iter().copied()).unwrap();
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(&serde_json::from_str::<PcrSelection>(&json).unwrap(), &s);
            let bits: u32 = s.bitmap().iter().enumerate().map(|(i, b)| u32::from(*b) << (8 * i)).sum();
            prop_assert_eq!(bits.count_ones() as usize, pcrs.len());
        }
    }
}
