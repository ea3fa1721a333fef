//! The `tss-esapi` backend: TPM 2.0 operations on a real TPM (`device:/dev/tpmrm0`) or a
//! simulator (`swtpm:host=127.0.0.1,port=2321`, `mssim:…`).
//!
//! Every key is a child of one storage primary (ECC P-256, restricted decryption, AES-128-CFB)
//! created in the owner hierarchy at connect; the template is fixed, so the owner seed always
//! yields the same primary and key blobs stay loadable across connections. Keys travel as
//! `TPM2B_PUBLIC || TPM2B_PRIVATE` ([`KeyBlob::wrapped`]), wrapped by that primary.
//!
//! Object slots are scarce (swtpm has three), so the backend keeps at most the primary, one
//! cached loaded key (the last one used) and one temporary object (a sealed object being
//! unsealed), and flushes everything it loads, on error paths too. Authorisation uses a
//! password session per command (empty owner and key auth values), policy sessions for
//! sealed objects bound to a policy.
//!
//! On a `swtpm:` or `mssim:` TCTI there is no resource manager: objects and sessions another
//! client left loaded stay in the TPM and eat its slots. [`TssBackend::connect`] therefore flushes
//! every loaded transient object and session there, which **assumes this backend is the TPM's
//! only user**. On `device:` TCTIs (use `/dev/tpmrm0`, the kernel resource manager) nothing is
//! flushed.

mod conn;
mod crypto;
mod errors;
mod nv;
mod pcr;
mod raw;
mod templates;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Once;

use crate::values::{
    Digest, EncryptionScheme, HashAlgorithm, KeyTemplate, NvAttributes, PcrSelection, TpmAlgorithm,
};
use dsmil_core::SignatureScheme;
use dsmil_core::tpm::TpmResultCode;
use sha2::{Digest as _, Sha256};
use tss_esapi::Context;
use tss_esapi::attributes::{NvIndexAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::tss::{
    TPM2_HR_HMAC_SESSION, TPM2_HR_TRANSIENT, TPM2_RH_NULL, TPM2_RH_OWNER, TPM2_ST_HASHCHECK,
};
use tss_esapi::constants::{AlgorithmIdentifier, CapabilityType, PropertyTag, SessionType};
use tss_esapi::handles::{
    KeyHandle, NvIndexHandle, NvIndexTpmHandle, ObjectHandle, PcrHandle, SessionHandle, TpmHandle,
};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, SymmetricMode};
use tss_esapi::interface_types::resource_handles::{Hierarchy, NvAuth, Provision};
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Auth, CapabilityData, Data, Digest as TssDigest, DigestValues, EccParameter, EccSignature,
    HashScheme, HashcheckTicket, InitialValue, MaxBuffer, MaxNvBuffer, NvPublicBuilder,
    PcrSelectionList, PcrSelectionListBuilder, PcrSlot, PublicKeyRsa, RsaDecryptionScheme,
    RsaSignature, SensitiveData, Signature, SignatureScheme as TssSignatureScheme,
    SymmetricDefinition,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::Marshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

use crate::backend::{BackendResult, TpmBackend};
use crate::der;
use crate::error::BackendError;
use crate::quote::Quote;
use crate::types::{
    Capabilities, KeyBlob, KeyPublic, NV_INDEX_FIRST, NV_INDEX_LAST, NvSpec, SealPolicy, SealedBlob,
};
use crate::wire::{self, PolicyDigest, QuoteAttest, TpmtSignature};

use errors::{base_code, tss_err};

/// Largest `TPM2B_MAX_BUFFER` (EncryptDecrypt2 input).
const MAX_BUFFER: usize = 1024;
/// Largest `TPM2B_MAX_NV_BUFFER` `tss-esapi` accepts.
const MAX_NV_BUFFER: usize = 2048;
/// Most bytes one `TPM2_GetRandom` returns (the size of a SHA-256 digest on most TPMs).
const RANDOM_CHUNK: usize = 32;
/// Quote attempts when PCRs change between the read and the quote.
const QUOTE_ATTEMPTS: usize = 3;
/// Longest auth value (the SHA-256 name algorithm's digest size).
const MAX_AUTH: usize = 32;
/// Longest RSA-2048 OAEP-SHA256 plaintext.
const MAX_OAEP_PLAINTEXT: usize = 256 - 2 * 32 - 2;
/// `TPM_RC_SIGNATURE`, `TPM_RC_VALUE`, `TPM_RC_SIZE`: a signature the TPM will not accept.
const BAD_SIGNATURE_CODES: [u32; 3] = [0x09B, 0x084, 0x095];

static QUIET_TSS_LOG: Once = Once::new();

/// Keeps libtss2 from logging expected failures (a rejected signature, a failed policy) to
/// stderr, unless the user chose a log level.
fn quiet_tss_log() {
    QUIET_TSS_LOG.call_once(|| {
        if std::env::var_os("TSS2_LOG").is_none() {
            // SAFETY: runs once, before this process's first libtss2 call (every path into
            // libtss2 goes through `TssBackend::connect`, which waits on this `Once`); Rust
            // readers of the environment are serialised with it by std's lock. The remaining
            // hazard — C code in another thread calling `getenv` at this very moment — is
            // accepted: backends are connected at startup by the TPM thread.
            unsafe { std::env::set_var("TSS2_LOG", "all+none") };
        }
    });
}

/// The backend for a TPM reached through a TCTI.
pub struct TssBackend {
    /// The TCTI string given to [`TssBackend::connect`].
    tcti: String,
    /// The parsed TCTI.
    conf: TctiNameConf,
    /// Whether the TPM is a simulator (swtpm, mssim) without a resource manager.
    software: bool,
    /// The connection; `None` only while it is being replaced or after replacing it failed.
    conn: Option<Conn>,
}

impl std::fmt::Debug for TssBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TssBackend")
            .field("tcti", &self.tcti)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl TssBackend {
    /// Connects to the TPM behind `tcti` (e.g. `swtpm:host=127.0.0.1,port=2321` or
    /// `device:/dev/tpmrm0`) and creates the storage primary. On `swtpm:`/`mssim:` TCTIs it
    /// first flushes every transient object and session left loaded, assuming exclusive use.
    pub fn connect(tcti: &str) -> Result<TssBackend, BackendError> {
        quiet_tss_log();
        let conf = TctiNameConf::from_str(tcti).map_err(|e| {
            BackendError::invalid_caused(
                format!(
                    "{tcti:?} is not a TCTI; use e.g. swtpm:host=127.0.0.1,port=2321 or device:/dev/tpmrm0"
                ),
                e,
            )
        })?;
        let software = matches!(conf, TctiNameConf::Swtpm(_) | TctiNameConf::Mssim(_));
        let conn = Conn::open(&conf, software)?;
        Ok(TssBackend {
            tcti: tcti.to_owned(),
            conf,
            software,
            conn: Some(conn),
        })
    }

    /// The TCTI string this backend was connected with.
    pub fn tcti(&self) -> &str {
        &self.tcti
    }

    /// The qualified name of the storage primary, the parent of every key this backend
    /// creates. A quote's `qualifiedSigner` is the attestation key's *qualified* name,
    /// `SHA-256(this || AK name)` (see [`wire::object_name`] for the name), not its name.
    pub fn parent_qualified_name(&mut self) -> BackendResult<Vec<u8>> {
        Ok(self.conn()?.primary_qualified_name.clone())
    }

    fn conn(&mut self) -> Result<&mut Conn, BackendError> {
        if self.conn.is_none() {
            let conn = Conn::open(&self.conf, self.software).map_err(|e| {
                BackendError::transport(format!("reconnecting to the TPM at {}", self.tcti), e)
            })?;
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| BackendError::Transport {
            detail: "the TPM connection is closed".into(),
            source: None,
        })
    }

    /// `TPM2_NV_WriteLock`, which `tss-esapi` does not wrap: closes the connection, locks on a
    /// connection of its own and reconnects.
    fn nv_write_lock(&mut self, index: u32, auth: Option<&[u8]>) -> BackendResult<()> {
        // Dropping the context flushes the primary and the cached key.
        self.conn = None;
        let locked = raw::nv_write_lock(&self.conf, index, auth);
        let reconnected = self.conn().map(|_| ());
        locked.and(reconnected)
    }
}

use conn::*;
use pcr::*;

impl TpmBackend for TssBackend {
    fn name(&self) -> &'static str {
        "tss"
    }

    fn capabilities(&mut self) -> BackendResult<Capabilities> {
        let (tcti, software) = (self.tcti.clone(), self.software);
        self.conn()?.capabilities(&tcti, software)
    }

    fn create_key(&mut self, template: KeyTemplate) -> BackendResult<KeyBlob> {
        let (wrapped, public, _) = self.conn()?.create(
            &templates::key_template(template),
            &format!("a {template:?} key"),
        )?;
        Ok(KeyBlob {
            template,
            public,
            wrapped,
        })
    }

    fn sign(
        &mut self,
        key: &KeyBlob,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> BackendResult<Vec<u8>> {
        self.conn()?.sign(key, scheme, message)
    }

    fn verify(
        &mut self,
        key: &KeyBlob,
        scheme: SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> BackendResult<bool> {
        self.conn()?.verify(key, scheme, message, signature)
    }

    fn encrypt(
        &mut self,
        key: &KeyBlob,
        scheme: EncryptionScheme,
        plaintext: &[u8],
    ) -> BackendResult<Vec<u8>> {
        self.conn()?.encrypt(key, scheme, plaintext)
    }

    fn decrypt(
        &mut self,
        key: &KeyBlob,
        scheme: EncryptionScheme,
        ciphertext: &[u8],
    ) -> BackendResult<Vec<u8>> {
        self.conn()?.decrypt(key, scheme, ciphertext)
    }

    fn seal(&mut self, data: &[u8], policy: &SealPolicy) -> BackendResult<SealedBlob> {
        self.conn()?.seal(data, policy)
    }

    fn unseal(&mut self, blob: &SealedBlob, password: Option<&[u8]>) -> BackendResult<Vec<u8>> {
        self.conn()?.unseal(blob, password)
    }

    fn pcr_extend(&mut self, index: u8, digest: &Digest) -> BackendResult<()> {
        self.conn()?.pcr_extend(index, digest)
    }

    fn pcr_read(&mut self, selection: &PcrSelection) -> BackendResult<Vec<(u8, Digest)>> {
        self.conn()?.pcr_read(selection)
    }

    fn quote(
        &mut self,
        ak: &KeyBlob,
        selection: &PcrSelection,
        qualifying_data: &[u8],
    ) -> BackendResult<Quote> {
        self.conn()?.quote(ak, selection, qualifying_data)
    }

    fn create_attestation_key(&mut self) -> BackendResult<KeyBlob> {
        let (wrapped, public, area) = self
            .conn()?
            .create(&templates::attestation_key(), "an attestation key")?;
        let expected = public
            .ecc_point()
            .map(|point| wire::ecc_p256_public(wire::AK_ATTRIBUTES, &point));
        if expected.as_deref() != Some(area.as_slice()) {
            return Err(BackendError::tpm(
                TpmResultCode::Value,
                "the TPM returned an attestation key whose public area differs from the DSMIL AK template",
            ));
        }
        Ok(KeyBlob {
            template: KeyTemplate::EccP256Signing,
            public,
            wrapped,
        })
    }

    fn nv_define(&mut self, spec: &NvSpec) -> BackendResult<()> {
        self.conn()?.nv_define(spec)
    }

    fn nv_write(
        &mut self,
        index: u32,
        offset: u16,
        data: &[u8],
        auth: Option<&[u8]>,
    ) -> BackendResult<()> {
        let lock = self.conn()?.nv_write(index, offset, data, auth)?;
        if lock {
            self.nv_write_lock(index, auth).map_err(|e| {
                let context = "the data was written, but write-locking the write-once index failed";
                match e {
                    BackendError::Tpm {
                        rc,
                        raw,
                        detail,
                        source,
                    } => BackendError::Tpm {
                        rc,
                        raw,
                        detail: format!("{context}: {detail}"),
                        source,
                    },
                    BackendError::Transport { detail, source } => BackendError::Transport {
                        detail: format!("{context}: {detail}"),
                        source,
                    },
                    other => other,
                }
            })?;
        }
        Ok(())
    }

    fn nv_read(
        &mut self,
        index: u32,
        offset: u16,
        len: u16,
        auth: Option<&[u8]>,
    ) -> BackendResult<Vec<u8>> {
        self.conn()?.nv_read(index, offset, len, auth)
    }

    fn nv_undefine(&mut self, index: u32) -> BackendResult<()> {
        self.conn()?.nv_undefine(index)
    }

    fn get_random(&mut self, len: usize) -> BackendResult<Vec<u8>> {
        self.conn()?.get_random(len)
    }
}
