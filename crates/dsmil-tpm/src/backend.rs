//! The one trait both TPM backends implement. A backend is driven by a single thread (the TPM
//! is a serial device and `tss-esapi`'s context is not shareable), so methods take `&mut self`
//! and block; [`crate::Tpm`] puts the async, queued, measured API on top.

use crate::values::{Digest, EncryptionScheme, KeyTemplate, PcrSelection};
use dsmil_core::SignatureScheme;

use crate::error::BackendError;
use crate::quote::Quote;
use crate::types::{Capabilities, KeyBlob, MAX_SEALED_BYTES, NvSpec, SealPolicy, SealedBlob};

/// Result of a backend call.
pub type BackendResult<T> = Result<T, BackendError>;

/// Longest qualifying data (nonce) a quote takes (`TPM2B_DATA` of SHA-512 size).
pub const MAX_QUALIFYING_DATA: usize = 64;

/// What every backend checks before quoting: the nonce length, and an ECC P-256 attestation
/// key (returning its point).
pub fn check_quote_args(ak: &KeyBlob, qualifying_data: &[u8]) -> BackendResult<[u8; 65]> {
    if qualifying_data.len() > MAX_QUALIFYING_DATA {
        return Err(BackendError::invalid(format!(
            "qualifying data is at most {MAX_QUALIFYING_DATA} bytes, got {}",
            qualifying_data.len()
        )));
    }
    ak.public
        .ecc_point()
        .filter(|_| ak.template == KeyTemplate::EccP256Signing)
        .ok_or_else(|| {
            BackendError::invalid(
                "quotes are signed with ECC P-256 attestation keys; create one with create_attestation_key"
                    ,
            )
        })
}

/// What every backend checks before sealing: at most [`MAX_SEALED_BYTES`].
pub fn check_seal_data(data: &[u8]) -> BackendResult<()> {
    if data.len() > MAX_SEALED_BYTES {
        return Err(BackendError::invalid(format!(
            "a TPM seals at most {MAX_SEALED_BYTES} bytes, got {}; seal a key and encrypt the data with it",
            data.len()
        )));
    }
    Ok(())
}

/// TPM 2.0 operations, implemented by the software TPM and by `tss-esapi`.
pub trait TpmBackend {
    /// "soft" or "tss".
    fn name(&self) -> &'static str;

    /// Vendor, firmware, algorithms, PCR banks, NV limits.
    fn capabilities(&mut self) -> BackendResult<Capabilities>;

    /// Creates a key under the storage hierarchy and returns it wrapped for storage.
    fn create_key(&mut self, template: KeyTemplate) -> BackendResult<KeyBlob>;

    /// Signs `message` (hashed with SHA-256 by the backend). ECDSA signatures are DER,
    /// RSA signatures raw.
    fn sign(
        &mut self,
        key: &KeyBlob,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> BackendResult<Vec<u8>>;

    /// Verifies a signature made by `sign` with the same key.
    fn verify(
        &mut self,
        key: &KeyBlob,
        scheme: SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> BackendResult<bool>;

    /// Encrypts: AES-256-CFB returns `iv || ciphertext`, RSA-OAEP the ciphertext.
    fn encrypt(
        &mut self,
        key: &KeyBlob,
        scheme: EncryptionScheme,
        plaintext: &[u8],
    ) -> BackendResult<Vec<u8>>;

    /// Reverses `encrypt`.
    fn decrypt(
        &mut self,
        key: &KeyBlob,
        scheme: EncryptionScheme,
        ciphertext: &[u8],
    ) -> BackendResult<Vec<u8>>;

    /// Seals at most [`crate::types::MAX_SEALED_BYTES`] under `policy`.
    fn seal(&mut self, data: &[u8], policy: &SealPolicy) -> BackendResult<SealedBlob>;

    /// Unseals; fails with `PolicyFail` when bound PCRs changed and `AuthFail`/`BadAuth`
    /// for a wrong password.
    fn unseal(&mut self, blob: &SealedBlob, password: Option<&[u8]>) -> BackendResult<Vec<u8>>;

    /// Extends PCR `index` of the digest's bank.
    fn pcr_extend(&mut self, index: u8, digest: &Digest) -> BackendResult<()>;

    /// Reads the selected PCRs.
    fn pcr_read(&mut self, selection: &PcrSelection) -> BackendResult<Vec<(u8, Digest)>>;

    /// Quotes the selected PCRs with an attestation key (an ECC P-256 signing key created by
    /// [`TpmBackend::create_attestation_key`]), binding `qualifying_data`.
    fn quote(
        &mut self,
        ak: &KeyBlob,
        selection: &PcrSelection,
        qualifying_data: &[u8],
    ) -> BackendResult<Quote>;

    /// Creates a restricted ECC P-256 signing key for quotes.
    fn create_attestation_key(&mut self) -> BackendResult<KeyBlob>;

    /// Defines an NV index.
    fn nv_define(&mut self, spec: &NvSpec) -> BackendResult<()>;

    /// Writes at `offset` (with the owner's or the index's authorisation).
    fn nv_write(
        &mut self,
        index: u32,
        offset: u16,
        data: &[u8],
        auth: Option<&[u8]>,
    ) -> BackendResult<()>;

    /// Reads `len` bytes at `offset`.
    fn nv_read(
        &mut self,
        index: u32,
        offset: u16,
        len: u16,
        auth: Option<&[u8]>,
    ) -> BackendResult<Vec<u8>>;

    /// Deletes an NV index.
    fn nv_undefine(&mut self, index: u32) -> BackendResult<()>;

    /// `len` random bytes (looping over the TPM's 32-byte-per-command limit).
    fn get_random(&mut self, len: usize) -> BackendResult<Vec<u8>>;
}
