//! A software ECDSA P-256 signing key kept in a file — for embedding the audit log without any
//! TPM — and [`P256Verifier`], what an offline auditor verifies signatures with. Not
//! hardware-rooted.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use dsmil_core::ports::{PortError, Signer, Verifier};
use dsmil_core::{Signature, SignatureScheme};
use sha2::{Digest, Sha256};

/// An ECDSA P-256 key pair stored as PKCS#8 in a file of mode 0600.
pub struct SoftEcdsaKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    name: String,
}

impl std::fmt::Debug for SoftEcdsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftEcdsaKey")
            .field("name", &self.name)
            .finish()
    }
}

fn err(e: impl std::fmt::Display) -> PortError {
    PortError::Backend(e.to_string())
}

impl SoftEcdsaKey {
    /// Loads the key at `path`, creating it (0600) when missing.
    pub fn load_or_create(path: &Path) -> Result<Self, PortError> {
        let rng = SystemRandom::new();
        let pkcs8 = if path.exists() {
            let meta = std::fs::metadata(path).map_err(err)?;
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(err)?;
            }
            std::fs::read(path)
                .map_err(|e| PortError::Backend(format!("cannot read {}: {e}", path.display())))?
        } else {
            let doc =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(err)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    PortError::Backend(format!("cannot create {}: {e}", path.display()))
                })?;
            f.write_all(doc.as_ref()).map_err(err)?;
            f.sync_all().map_err(err)?;
            doc.as_ref().to_vec()
        };
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8).map_err(|e| {
                PortError::Backend(format!("{} is not a P-256 PKCS#8 key: {e}", path.display()))
            })?;
        let fingerprint = Sha256::digest(pair.public_key().as_ref());
        let name = format!("soft-p256:{}", dsmil_core::hex::encode(&fingerprint[..8]));
        Ok(Self { pair, rng, name })
    }

    /// The public key (uncompressed SEC1 point, 65 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

#[async_trait]
impl Signer for SoftEcdsaKey {
    fn key_name(&self) -> String {
        self.name.clone()
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::EcdsaP256Sha256
    }

    async fn sign(&self, message: &[u8]) -> Result<Signature, PortError> {
        let sig = self.pair.sign(&self.rng, message).map_err(err)?;
        Ok(Signature {
            scheme: SignatureScheme::EcdsaP256Sha256,
            key_name: self.name.clone(),
            bytes: sig.as_ref().to_vec(),
        })
    }
}

/// Verifies ECDSA P-256 / SHA-256 signatures (DER) with a public key alone — what an offline
/// auditor has.
#[derive(Debug, Clone)]
pub struct P256Verifier {
    public_key: Vec<u8>,
}

impl P256Verifier {
    /// A verifier for `public_key` (uncompressed SEC1 point).
    pub fn new(public_key: Vec<u8>) -> Self {
        Self { public_key }
    }
}

#[async_trait]
impl Verifier for P256Verifier {
    async fn verify(&self, message: &[u8], signature: &Signature) -> Result<bool, PortError> {
        if signature.scheme != SignatureScheme::EcdsaP256Sha256 {
            return Ok(false);
        }
        Ok(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.public_key)
                .verify(message, &signature.bytes)
                .is_ok(),
        )
    }
}

#[async_trait]
impl Verifier for SoftEcdsaKey {
    async fn verify(&self, message: &[u8], signature: &Signature) -> Result<bool, PortError> {
        P256Verifier::new(self.public_key())
            .verify(message, signature)
            .await
    }
}
