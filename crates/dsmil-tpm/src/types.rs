//! Values that cross the TPM API: key descriptions and public keys, seal policies and sealed
//! blobs, NV index definitions, capabilities.

use crate::values::{HashAlgorithm, KeyTemplate, NvAttributes, PcrSelection, TpmAlgorithm};
use dsmil_core::SignatureScheme;
use serde::{Deserialize, Serialize};

use crate::der;

/// The public half of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KeyPublic {
    /// An ECC P-256 key: the uncompressed SEC1 point (65 bytes, `04 || x || y`).
    EccP256 {
        /// The point.
        #[serde(with = "dsmil_core::hex::serde_bytes")]
        point: Vec<u8>,
    },
    /// An RSA-2048 key.
    Rsa {
        /// Big-endian modulus.
        #[serde(with = "dsmil_core::hex::serde_bytes")]
        modulus: Vec<u8>,
        /// Public exponent.
        exponent: u32,
    },
    /// A symmetric key has no public half.
    Symmetric,
}

impl KeyPublic {
    /// DER `SubjectPublicKeyInfo`, or `None` for symmetric keys.
    pub fn spki_der(&self) -> Option<Vec<u8>> {
        match self {
            KeyPublic::EccP256 { point } => Some(der::ecc_p256_spki(point)),
            KeyPublic::Rsa { modulus, exponent } => Some(der::rsa_spki(modulus, *exponent)),
            KeyPublic::Symmetric => None,
        }
    }

    /// PEM `PUBLIC KEY`, as `tpm2_readpublic -f pem` writes and `tpm2_checkquote -u` reads.
    pub fn pem(&self) -> Option<String> {
        self.spki_der().map(|d| der::pem("PUBLIC KEY", &d))
    }

    /// The P-256 or RSA key in a DER `SubjectPublicKeyInfo`, exactly as
    /// [`KeyPublic::spki_der`] writes it; `None` for anything else (another algorithm or curve,
    /// a point that is not uncompressed, a non-canonical encoding).
    pub fn from_spki_der(spki: &[u8]) -> Option<Self> {
        let key = match der::spki_key(spki)? {
            der::SpkiKey::EccP256(point) if point.len() == 65 && point[0] == 4 => {
                KeyPublic::EccP256 { point }
            }
            der::SpkiKey::EccP256(_) => return None,
            der::SpkiKey::Rsa(pkcs1) => {
                let (modulus, exponent) = der::rsa_public_key_parts(&pkcs1)?;
                KeyPublic::Rsa { modulus, exponent }
            }
        };
        // One encoding per key: what does not re-encode to the same bytes was not ours.
        (key.spki_der().as_deref() == Some(spki)).then_some(key)
    }

    /// The key in a PEM `PUBLIC KEY` block, as [`KeyPublic::pem`] writes it (see
    /// [`KeyPublic::from_spki_der`]).
    pub fn from_pem(text: &str) -> Option<Self> {
        Self::from_spki_der(&der::pem_decode("PUBLIC KEY", text)?)
    }

    /// Checks `signature` over `message` with this public key alone: ECDSA P-256 / SHA-256
    /// (DER signatures) for P-256 keys, RSASSA-PKCS1-v1_5 or RSA-PSS with SHA-256 for RSA keys.
    /// `None` when this key cannot make signatures of `scheme` (HMAC, a symmetric key, an RSA
    /// scheme for an EC key).
    pub fn verify(
        &self,
        scheme: SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> Option<bool> {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
            UnparsedPublicKey,
        };
        let ok = match (self, scheme) {
            (KeyPublic::EccP256 { point }, SignatureScheme::EcdsaP256Sha256) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                    .verify(message, signature)
                    .is_ok()
            }
            (KeyPublic::Rsa { modulus, exponent }, SignatureScheme::RsassaSha256) => {
                UnparsedPublicKey::new(
                    &RSA_PKCS1_2048_8192_SHA256,
                    der::rsa_public_key(modulus, *exponent),
                )
                .verify(message, signature)
                .is_ok()
            }
            (KeyPublic::Rsa { modulus, exponent }, SignatureScheme::RsapssSha256) => {
                UnparsedPublicKey::new(
                    &RSA_PSS_2048_8192_SHA256,
                    der::rsa_public_key(modulus, *exponent),
                )
                .verify(message, signature)
                .is_ok()
            }
            _ => return None,
        };
        Some(ok)
    }

    /// The 65-byte point of an ECC key.
    pub fn ecc_point(&self) -> Option<[u8; 65]> {
        match self {
            KeyPublic::EccP256 { point } => point.as_slice().try_into().ok(),
            _ => None,
        }
    }
}

/// A key as the backend returns it: template, public half, and the backend's wrapped private
/// blob (encrypted by the TPM's storage key or the software TPM's root key; useless elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBlob {
    /// What kind of key.
    pub template: KeyTemplate,
    /// The public half.
    pub public: KeyPublic,
    /// Backend-specific wrapped key.
    #[serde(with = "dsmil_core::hex::serde_bytes")]
    pub wrapped: Vec<u8>,
}

/// A stored key as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The caller's label.
    pub label: String,
    /// What kind of key.
    pub template: KeyTemplate,
    /// The public half.
    pub public: KeyPublic,
    /// Which backend holds it ("soft" or "tss").
    pub backend: String,
}

/// When a sealed secret may be unsealed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SealPolicy {
    /// PCRs whose current values the secret is bound to (`None`: no PCR binding).
    pub pcrs: Option<PcrSelection>,
    /// A password required as well (`None`: none).
    #[serde(skip_serializing)]
    pub password: Option<Vec<u8>>,
}

/// The most a TPM seals in one object (`MAX_SYM_DATA`); seal a key for larger data.
pub const MAX_SEALED_BYTES: usize = 128;

/// A sealed secret: opaque, safe to store anywhere, openable only by the TPM that sealed it
/// while its policy holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBlob {
    /// The backend that sealed it.
    pub backend: String,
    /// The PCRs it is bound to.
    pub pcrs: Option<PcrSelection>,
    /// Whether a password is needed.
    pub password_required: bool,
    /// The policy digest (TPM policy-session construction).
    #[serde(with = "dsmil_core::hex::serde_bytes")]
    pub policy_digest: Vec<u8>,
    /// Backend-specific bytes.
    #[serde(with = "dsmil_core::hex::serde_bytes")]
    pub blob: Vec<u8>,
}

/// First index of the owner NV range (`TPM_HT_NV_INDEX`, owner-defined).
pub const NV_INDEX_FIRST: u32 = 0x0100_0000;
/// Last index of the NV range.
pub const NV_INDEX_LAST: u32 = 0x01FF_FFFF;
/// Largest NV index DSMIL defines (the reference TPM's `MAX_NV_INDEX_SIZE`).
pub const MAX_NV_INDEX_SIZE: u16 = 2048;

/// A new NV index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvSpec {
    /// The index, `0x01000000`–`0x01FFFFFF`.
    pub index: u32,
    /// Size in bytes, 1–2048.
    pub size: u16,
    /// Access attributes.
    pub attributes: NvAttributes,
    /// The index's own authorisation value (for `auth_read`/`auth_write`).
    #[serde(skip_serializing, default)]
    pub auth: Option<Vec<u8>>,
}

impl NvSpec {
    /// Checks the index range, size and that someone can read and write it.
    pub fn validate(&self) -> Result<(), String> {
        if !(NV_INDEX_FIRST..=NV_INDEX_LAST).contains(&self.index) {
            return Err(format!(
                "NV index {:#010x} is outside the owner range {NV_INDEX_FIRST:#010x}-{NV_INDEX_LAST:#010x}",
                self.index
            ));
        }
        if self.size == 0 || self.size > MAX_NV_INDEX_SIZE {
            return Err(format!(
                "NV index size {} is outside 1-{MAX_NV_INDEX_SIZE} bytes",
                self.size
            ));
        }
        let a = &self.attributes;
        if !(a.owner_write || a.auth_write) {
            return Err("NV attributes allow no writer; set owner_write or auth_write".into());
        }
        if !(a.owner_read || a.auth_read) {
            return Err("NV attributes allow no reader; set owner_read or auth_read".into());
        }
        Ok(())
    }
}

/// What the TPM says about itself (seed `get_capabilities`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// "soft" or "tss".
    pub backend: String,
    /// Whether keys live in hardware (false for the software TPM and for swtpm).
    pub hardware_rooted: bool,
    /// Manufacturer id as four ASCII characters (e.g. "IBM ", "STM ", "DSML").
    pub manufacturer: String,
    /// Vendor strings joined.
    pub vendor: String,
    /// Firmware version, `major.minor` words as the TPM reports them.
    pub firmware_version: String,
    /// Algorithms implemented.
    pub algorithms: Vec<TpmAlgorithm>,
    /// PCR banks with at least one PCR allocated.
    pub pcr_banks: Vec<HashAlgorithm>,
    /// Largest NV index (bytes).
    pub max_nv_index_size: u32,
    /// Largest buffer per NV read/write command (bytes).
    pub max_nv_buffer: u32,
    /// Total NV space for indices, when the TPM reports it.
    pub nv_space_bytes: Option<u32>,
    /// The transport (TCTI) or the state directory.
    pub location: String,
}
