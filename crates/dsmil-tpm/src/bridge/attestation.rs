//! Device attestation: a quote whose qualifying data binds the device id, a digest of the
//! state the device reported and the verifier's nonce — checked offline with the attestation
//! key's public half.

use dsmil_core::device::DeviceId;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::quote::{Quote, QuoteError};
use crate::types::KeyPublic;

const DOMAIN: &[u8] = b"DSMIL-DEVICE-ATTESTATION\0";

/// The qualifying data of a device attestation (32 bytes).
pub fn qualifying_data(device: DeviceId, state_digest: &[u8; 32], nonce: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(device.get().to_be_bytes());
    h.update(state_digest);
    h.update((nonce.len() as u32).to_be_bytes());
    h.update(nonce);
    h.finalize().into()
}

/// A device attestation, self-contained for offline checking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAttestation {
    /// The device.
    pub device: DeviceId,
    /// SHA-256 of the state the device reported.
    #[serde(with = "dsmil_core::hex::serde_bytes")]
    pub state_digest: Vec<u8>,
    /// The verifier's nonce.
    #[serde(with = "dsmil_core::hex::serde_bytes")]
    pub nonce: Vec<u8>,
    /// The TPM quote.
    pub quote: Quote,
}

/// Why an attestation is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AttestationError {
    /// Signed by another key than the one the verifier trusts.
    #[error("the attestation was signed by an untrusted attestation key")]
    UntrustedKey,
    /// The nonce is not the verifier's.
    #[error("the attestation answers another nonce (replay?)")]
    NonceMismatch,
    /// The state digest is not the state the verifier expects.
    #[error("the device reported another state than expected")]
    StateMismatch,
    /// The quote itself does not verify (binding, signature, PCRs).
    #[error("the quote does not verify: {0}")]
    Quote(#[from] QuoteError),
}

impl DeviceAttestation {
    /// Verifies offline: trusted key, the nonce, and the quote binding device, state digest
    /// and nonce. `expected_state`, when given, must hash to the attested digest.
    pub fn verify(
        &self,
        trusted_ak: &KeyPublic,
        nonce: &[u8],
        expected_state: Option<&[u8]>,
    ) -> Result<(), AttestationError> {
        if &self.quote.ak_public != trusted_ak {
            return Err(AttestationError::UntrustedKey);
        }
        if self.nonce != nonce {
            return Err(AttestationError::NonceMismatch);
        }
        let digest: [u8; 32] = self
            .state_digest
            .as_slice()
            .try_into()
            .map_err(|_| AttestationError::StateMismatch)?;
        if let Some(state) = expected_state
            && Sha256::digest(state).as_slice() != digest
        {
            return Err(AttestationError::StateMismatch);
        }
        self.quote
            .verify(&qualifying_data(self.device, &digest, nonce))?;
        Ok(())
    }
}
