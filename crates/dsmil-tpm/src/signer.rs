//! [`TpmSigner`]: core's `Signer` and `Verifier` ports on a TPM key, so the audit log, the
//! learning store and the bridge sign with the TPM the daemon was started with.

use crate::values::KeyTemplate;
use async_trait::async_trait;
use dsmil_core::ports::{PortError, Signer, Verifier};
use dsmil_core::{Signature, SignatureScheme};
use sha2::{Digest as _, Sha256};

use crate::error::TpmError;
use crate::tpm::Tpm;
use crate::types::KeyPublic;

/// Signs with the TPM key `label` (ECC P-256, created on first use).
#[derive(Debug, Clone)]
pub struct TpmSigner {
    tpm: Tpm,
    label: String,
    name: String,
    public: KeyPublic,
}

/// Core's port error holds a message only: the TPM error's whole chain goes into it.
fn port(e: TpmError) -> PortError {
    PortError::Backend(crate::error::chain(&e))
}

impl TpmSigner {
    /// The signer for key `label`, creating an ECC P-256 signing key when missing.
    pub async fn ensure(tpm: Tpm, label: &str) -> Result<Self, TpmError> {
        let key = tpm.ensure_key(label, KeyTemplate::EccP256Signing).await?;
        let fingerprint = match key.public.spki_der() {
            Some(der) => dsmil_core::hex::encode(&Sha256::digest(der)[..8]),
            None => String::new(),
        };
        Ok(Self {
            name: format!("tpm-{}:{label}:{fingerprint}", tpm.backend_name()),
            label: label.to_owned(),
            public: key.public,
            tpm,
        })
    }

    /// The public key (what offline verifiers need).
    pub fn public_key(&self) -> &KeyPublic {
        &self.public
    }

    /// The TPM behind it.
    pub fn tpm(&self) -> &Tpm {
        &self.tpm
    }
}

#[async_trait]
impl Signer for TpmSigner {
    fn key_name(&self) -> String {
        self.name.clone()
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::EcdsaP256Sha256
    }

    async fn sign(&self, message: &[u8]) -> Result<Signature, PortError> {
        let mut sig = self
            .tpm
            .sign(&self.label, message)
            .await
            .map_err(port)?
            .value;
        sig.key_name = self.name.clone();
        Ok(sig)
    }
}

#[async_trait]
impl Verifier for TpmSigner {
    async fn verify(&self, message: &[u8], signature: &Signature) -> Result<bool, PortError> {
        if signature.scheme != SignatureScheme::EcdsaP256Sha256 {
            return Ok(false);
        }
        match &self.public {
            // Verification needs only the public key: no TPM round trip.
            KeyPublic::EccP256 { point } => {
                crate::soft_key::P256Verifier::new(point.clone())
                    .verify(message, signature)
                    .await
            }
            _ => Ok(false),
        }
    }
}
