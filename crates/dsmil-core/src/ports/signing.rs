//! Signing ports (provided by the TPM layer) and an HMAC-SHA-256 implementation for tests and
//! single-process use.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

use serde::{Deserialize, Serialize};

use super::PortError;

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

/// Signs bytes with a key it names.
#[async_trait]
pub trait Signer: Send + Sync {
    /// Name of the signing key (fingerprint or label), recorded with every signature.
    fn key_name(&self) -> String;

    /// The scheme this signer produces.
    fn scheme(&self) -> SignatureScheme;

    /// Signs `message` (the implementation hashes it as its scheme requires).
    async fn sign(&self, message: &[u8]) -> Result<Signature, PortError>;
}

/// Checks signatures.
#[async_trait]
pub trait Verifier: Send + Sync {
    /// `Ok(true)` when `signature` is valid for `message`, `Ok(false)` when it is not,
    /// `Err` when the check could not be made (unknown key, scheme not supported).
    async fn verify(&self, message: &[u8], signature: &Signature) -> Result<bool, PortError>;
}

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA-256 signer and verifier with an in-memory key.
///
/// Symmetric: whoever can verify can also sign. Good for tests and for a single process
/// that only needs tamper evidence; the TPM layer provides asymmetric, hardware-rooted signers.
pub struct HmacSigner {
    key: Vec<u8>,
    name: String,
}

impl HmacSigner {
    /// A signer for `key`; its name is `hmac-sha256:` plus the first 8 bytes of SHA-256(key).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        let key = key.into();
        let fingerprint = Sha256::digest(&key);
        let name = format!("hmac-sha256:{}", crate::hex::encode(&fingerprint[..8]));
        Self { key, name }
    }

    fn mac(&self) -> Result<HmacSha256, PortError> {
        HmacSha256::new_from_slice(&self.key)
            .map_err(|e| PortError::InvalidInput(format!("HMAC key: {e}")))
    }
}

impl std::fmt::Debug for HmacSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("HmacSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Signer for HmacSigner {
    fn key_name(&self) -> String {
        self.name.clone()
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::HmacSha256
    }

    async fn sign(&self, message: &[u8]) -> Result<Signature, PortError> {
        let mut mac = self.mac()?;
        mac.update(message);
        Ok(Signature {
            scheme: SignatureScheme::HmacSha256,
            key_name: self.name.clone(),
            bytes: mac.finalize().into_bytes().to_vec(),
        })
    }
}

#[async_trait]
impl Verifier for HmacSigner {
    async fn verify(&self, message: &[u8], signature: &Signature) -> Result<bool, PortError> {
        if signature.scheme != SignatureScheme::HmacSha256 {
            return Err(PortError::InvalidInput(format!(
                "scheme {:?} cannot be verified by an HMAC-SHA-256 key",
                signature.scheme
            )));
        }
        if signature.key_name != self.name {
            return Err(PortError::InvalidInput(format!(
                "signature was made by key {:?}, this verifier holds {:?}",
                signature.key_name, self.name
            )));
        }
        let mut mac = self.mac()?;
        mac.update(message);
        // verify_slice compares in constant time.
        Ok(mac.verify_slice(&signature.bytes).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signatures_verify_and_tampering_is_detected() {
        let signer = HmacSigner::new(b"secret".to_vec());
        let sig = signer.sign(b"hello").await.unwrap();
        assert!(signer.verify(b"hello", &sig).await.unwrap());
        assert!(!signer.verify(b"hellO", &sig).await.unwrap());
        let mut bad = sig.clone();
        bad.bytes[0] ^= 1;
        assert!(!signer.verify(b"hello", &bad).await.unwrap());
        let other = HmacSigner::new(b"other".to_vec());
        assert!(other.verify(b"hello", &sig).await.is_err());
        assert!(!format!("{signer:?}").contains("secret"));
    }

    #[tokio::test]
    async fn rfc4231_test_case_2() {
        let signer = HmacSigner::new(b"Jefe".to_vec());
        let sig = signer.sign(b"what do ya want for nothing?").await.unwrap();
        assert_eq!(
            crate::hex::encode(&sig.bytes),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
