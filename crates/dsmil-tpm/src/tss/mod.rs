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

mod errors;
mod raw;
mod templates;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Once;

use dsmil_core::tpm::{
    Digest, EncryptionScheme, HashAlgorithm, KeyTemplate, NvAttributes, PcrSelection,
    SignatureScheme, TpmAlgorithm, TpmResultCode,
};
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
        let conf = TctiNameConf::from_str(tcti).map_err(|_| {
            BackendError::InvalidInput(format!(
                "{tcti:?} is not a TCTI; use e.g. swtpm:host=127.0.0.1,port=2321 or device:/dev/tpmrm0"
            ))
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
                BackendError::Transport(format!(
                    "reconnecting to the TPM at {} failed: {e}",
                    self.tcti
                ))
            })?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| BackendError::Transport("the TPM connection is closed".into()))
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

/// A live connection: the `tss-esapi` context, the storage primary and the cached key.
struct Conn {
    ctx: Context,
    primary: KeyHandle,
    /// The storage primary's qualified name: the parent part of every key's qualified name,
    /// and so of the `qualifiedSigner` of quotes.
    primary_qualified_name: Vec<u8>,
    /// The last key loaded, by its wrapped bytes.
    cached: Option<(Vec<u8>, KeyHandle)>,
}

/// Flushes a loaded object or session, logging (not failing) when the TPM refuses.
fn flush(ctx: &mut Context, handle: ObjectHandle) {
    if let Err(e) = ctx.execute_without_session(|c| c.flush_context(handle)) {
        tracing::warn!(error = %e, "flushing a TPM handle failed");
    }
}

fn password<T>(
    ctx: &mut Context,
    f: impl FnOnce(&mut Context) -> tss_esapi::Result<T>,
) -> tss_esapi::Result<T> {
    ctx.execute_with_session(Some(AuthSession::Password), f)
}

fn hashing(bank: HashAlgorithm) -> HashingAlgorithm {
    match bank {
        HashAlgorithm::Sha1 => HashingAlgorithm::Sha1,
        HashAlgorithm::Sha256 => HashingAlgorithm::Sha256,
        HashAlgorithm::Sha384 => HashingAlgorithm::Sha384,
        HashAlgorithm::Sha512 => HashingAlgorithm::Sha512,
    }
}

fn bank_of(alg: HashingAlgorithm) -> Option<HashAlgorithm> {
    match alg {
        HashingAlgorithm::Sha1 => Some(HashAlgorithm::Sha1),
        HashingAlgorithm::Sha256 => Some(HashAlgorithm::Sha256),
        HashingAlgorithm::Sha384 => Some(HashAlgorithm::Sha384),
        HashingAlgorithm::Sha512 => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}

fn pcr_index(slot: PcrSlot) -> u8 {
    u32::from(slot).trailing_zeros() as u8
}

fn tss_selection(bank: HashAlgorithm, pcrs: &[u8]) -> BackendResult<PcrSelectionList> {
    let slots = pcrs
        .iter()
        .map(|&i| {
            1u32.checked_shl(u32::from(i))
                .and_then(|bit| PcrSlot::try_from(bit).ok())
                .ok_or_else(|| BackendError::InvalidInput(format!("PCR index {i} is out of range")))
        })
        .collect::<BackendResult<Vec<_>>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(hashing(bank), &slots)
        .build()
        .map_err(|e| tss_err(e, "building the PCR selection"))
}

fn sha256(data: &[u8]) -> BackendResult<TssDigest> {
    TssDigest::try_from(Sha256::digest(data).to_vec()).map_err(|e| tss_err(e, "hashing"))
}

fn auth_value(value: &[u8], what: &str) -> BackendResult<Auth> {
    if value.len() > MAX_AUTH {
        return Err(BackendError::InvalidInput(format!(
            "{what} is {} bytes; the TPM takes at most {MAX_AUTH}",
            value.len()
        )));
    }
    Auth::try_from(value.to_vec()).map_err(|e| tss_err(e, what))
}

fn check_nv_index(index: u32) -> BackendResult<NvIndexTpmHandle> {
    if !(NV_INDEX_FIRST..=NV_INDEX_LAST).contains(&index) {
        return Err(BackendError::InvalidInput(format!(
            "NV index {index:#010x} is outside the owner range {NV_INDEX_FIRST:#010x}-{NV_INDEX_LAST:#010x}"
        )));
    }
    NvIndexTpmHandle::new(index).map_err(|e| tss_err(e, "naming the NV index"))
}

fn check_scheme_for_signing(template: KeyTemplate, scheme: SignatureScheme) -> BackendResult<()> {
    let ok = matches!(
        (template, scheme),
        (
            KeyTemplate::EccP256Signing,
            SignatureScheme::EcdsaP256Sha256
        ) | (
            KeyTemplate::Rsa2048Signing,
            SignatureScheme::RsassaSha256 | SignatureScheme::RsapssSha256
        )
    );
    if ok {
        Ok(())
    } else if scheme == SignatureScheme::HmacSha256 {
        Err(BackendError::InvalidInput(
            "HMAC-SHA-256 signatures are not offered by the tss backend; use ECDSA or RSA".into(),
        ))
    } else {
        Err(BackendError::InvalidInput(format!(
            "signature scheme {scheme:?} does not fit a {template:?} key"
        )))
    }
}

fn check_scheme_for_encryption(
    template: KeyTemplate,
    scheme: EncryptionScheme,
) -> BackendResult<()> {
    match (template, scheme) {
        (KeyTemplate::Aes256, EncryptionScheme::Aes256Cfb)
        | (KeyTemplate::Rsa2048Decryption, EncryptionScheme::RsaOaepSha256) => Ok(()),
        _ => Err(BackendError::InvalidInput(format!(
            "encryption scheme {scheme:?} does not fit a {template:?} key"
        ))),
    }
}

fn oaep() -> RsaDecryptionScheme {
    RsaDecryptionScheme::Oaep(HashScheme::new(HashingAlgorithm::Sha256))
}

fn ascii_word(value: u32) -> String {
    value
        .to_be_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                ' '
            }
        })
        .collect()
}

impl Conn {
    fn open(conf: &TctiNameConf, software: bool) -> BackendResult<Conn> {
        let mut ctx = Context::new(conf.clone())
            .map_err(|e| BackendError::Transport(format!("connecting to the TPM failed: {e}")))?;
        if software {
            flush_leftovers(&mut ctx);
        }
        let public = templates::to_public(&templates::storage_key())?;
        let primary = password(&mut ctx, |c| {
            c.create_primary(Hierarchy::Owner, public, None, None, None, None)
        })
        .map_err(|e| tss_err(e, "creating the storage primary (TPM2_CreatePrimary)"))?
        .key_handle;
        let name = match ctx.execute_without_session(|c| c.tr_get_name(primary.into())) {
            Ok(name) => name,
            Err(e) => {
                flush(&mut ctx, primary.into());
                return Err(tss_err(e, "reading the storage primary's name"));
            }
        };
        Ok(Conn {
            primary_qualified_name: wire::qualified_name(
                &TPM2_RH_OWNER.to_be_bytes(),
                name.value(),
            ),
            ctx,
            primary,
            cached: None,
        })
    }

    /// Loads a wrapped key into the cache slot (flushing the previous one) unless it is the
    /// key already cached.
    fn load(&mut self, wrapped: &[u8]) -> BackendResult<KeyHandle> {
        if let Some((blob, handle)) = &self.cached
            && blob.as_slice() == wrapped
        {
            return Ok(*handle);
        }
        if let Some((_, old)) = self.cached.take() {
            flush(&mut self.ctx, old.into());
        }
        let handle = self.load_temporary(wrapped)?;
        self.cached = Some((wrapped.to_vec(), handle));
        Ok(handle)
    }

    /// Loads a wrapped object; the caller flushes it.
    fn load_temporary(&mut self, wrapped: &[u8]) -> BackendResult<KeyHandle> {
        let (public, private) = templates::unwrap_blob(wrapped)?;
        let primary = self.primary;
        password(&mut self.ctx, |c| c.load(primary, private, public))
            .map_err(|e| tss_err(e, "loading the key (TPM2_Load)"))
    }

    fn create(
        &mut self,
        template: &[u8],
        what: &str,
    ) -> BackendResult<(Vec<u8>, KeyPublic, Vec<u8>)> {
        let public = templates::to_public(template)?;
        let primary = self.primary;
        let created = password(&mut self.ctx, |c| {
            c.create(primary, public, None, None, None, None)
        })
        .map_err(|e| tss_err(e, &format!("creating {what} (TPM2_Create)")))?;
        let wrapped = templates::wrap(&created.out_public, &created.out_private)?;
        let public_area = created
            .out_public
            .marshall()
            .map_err(|e| tss_err(e, "marshalling the public area"))?;
        Ok((
            wrapped,
            templates::key_public(&created.out_public),
            public_area,
        ))
    }

    fn get_random(&mut self, len: usize) -> BackendResult<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        let mut empty_answers = 0;
        while out.len() < len {
            let want = (len - out.len()).min(RANDOM_CHUNK);
            let got = self
                .ctx
                .execute_without_session(|c| c.get_random(want))
                .map_err(|e| tss_err(e, "TPM2_GetRandom"))?;
            if got.value().is_empty() {
                empty_answers += 1;
                if empty_answers > 3 {
                    return Err(BackendError::tpm(
                        TpmResultCode::Failure,
                        "TPM2_GetRandom keeps returning no bytes",
                    ));
                }
            }
            let take = got.value().len().min(len - out.len());
            out.extend_from_slice(&got.value()[..take]);
        }
        Ok(out)
    }

    fn pcr_read(&mut self, selection: &PcrSelection) -> BackendResult<Vec<(u8, Digest)>> {
        let bank = selection.bank;
        let mut remaining: Vec<u8> = selection.pcrs().collect();
        let mut values = Vec::with_capacity(remaining.len());
        while !remaining.is_empty() {
            let list = tss_selection(bank, &remaining)?;
            let (_, read, digests) = self
                .ctx
                .execute_without_session(|c| c.pcr_read(list))
                .map_err(|e| tss_err(e, "TPM2_PCR_Read"))?;
            let mut indexes = Vec::new();
            for sel in read.get_selections() {
                if sel.hashing_algorithm() == hashing(bank) {
                    indexes.extend(sel.selected().into_iter().map(pcr_index));
                }
            }
            indexes.sort_unstable();
            if indexes.is_empty() || indexes.len() != digests.len() {
                return Err(BackendError::tpm(
                    TpmResultCode::Value,
                    format!(
                        "the TPM returned no values for PCRs {remaining:?} of the {bank:?} bank (is the bank allocated?)"
                    ),
                ));
            }
            for (index, digest) in indexes.into_iter().zip(digests.value()) {
                let digest = Digest::new(bank, digest.value().to_vec()).map_err(|e| {
                    BackendError::tpm(TpmResultCode::Size, format!("PCR {index}: {e}"))
                })?;
                if let Some(pos) = remaining.iter().position(|&i| i == index) {
                    remaining.remove(pos);
                    values.push((index, digest));
                }
            }
        }
        values.sort_by_key(|(i, _)| *i);
        Ok(values)
    }

    fn sign(
        &mut self,
        key: &KeyBlob,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> BackendResult<Vec<u8>> {
        check_scheme_for_signing(key.template, scheme)?;
        let (public, _) = templates::unwrap_blob(&key.wrapped)?;
        if public.object_attributes().restricted() {
            return Err(BackendError::InvalidInput(
                "the key is a restricted (attestation) key; it signs quotes only".into(),
            ));
        }
        let hash_scheme = HashScheme::new(HashingAlgorithm::Sha256);
        let tss_scheme = match scheme {
            SignatureScheme::EcdsaP256Sha256 => TssSignatureScheme::EcDsa { hash_scheme },
            SignatureScheme::RsassaSha256 => TssSignatureScheme::RsaSsa { hash_scheme },
            _ => TssSignatureScheme::RsaPss { hash_scheme },
        };
        let digest = sha256(message)?;
        let ticket = null_ticket()?;
        let handle = self.load(&key.wrapped)?;
        let signature = password(&mut self.ctx, |c| {
            c.sign(handle, digest, tss_scheme, ticket)
        })
        .map_err(|e| tss_err(e, "TPM2_Sign"))?;
        match signature {
            Signature::EcDsa(sig) => Ok(der::ecdsa_der(
                &templates::pad(sig.signature_r().value(), 32),
                &templates::pad(sig.signature_s().value(), 32),
            )),
            Signature::RsaSsa(sig) | Signature::RsaPss(sig) => Ok(sig.signature().value().to_vec()),
            other => Err(BackendError::tpm(
                TpmResultCode::Value,
                format!("TPM2_Sign returned a {:?} signature", other.algorithm()),
            )),
        }
    }

    fn verify(
        &mut self,
        key: &KeyBlob,
        scheme: SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> BackendResult<bool> {
        check_scheme_for_signing(key.template, scheme)?;
        let sha = HashingAlgorithm::Sha256;
        let parsed = match scheme {
            SignatureScheme::EcdsaP256Sha256 => der::ecdsa_fixed(signature).and_then(|(r, s)| {
                let r = EccParameter::try_from(r.to_vec()).ok()?;
                let s = EccParameter::try_from(s.to_vec()).ok()?;
                EccSignature::create(sha, r, s).ok().map(Signature::EcDsa)
            }),
            _ => PublicKeyRsa::try_from(signature.to_vec())
                .ok()
                .and_then(|sig| RsaSignature::create(sha, sig).ok())
                .map(|sig| {
                    if scheme == SignatureScheme::RsassaSha256 {
                        Signature::RsaSsa(sig)
                    } else {
                        Signature::RsaPss(sig)
                    }
                }),
        };
        let Some(parsed) = parsed else {
            return Ok(false);
        };
        let digest = sha256(message)?;
        let handle = self.load(&key.wrapped)?;
        match self
            .ctx
            .execute_without_session(|c| c.verify_signature(handle, digest, parsed))
        {
            Ok(_) => Ok(true),
            Err(e) if base_code(&e).is_some_and(|c| BAD_SIGNATURE_CODES.contains(&c)) => Ok(false),
            Err(e) => Err(tss_err(e, "TPM2_VerifySignature")),
        }
    }

    fn aes_cfb(
        &mut self,
        key: &KeyBlob,
        decrypt: bool,
        iv: &[u8],
        data: &[u8],
    ) -> BackendResult<Vec<u8>> {
        let handle = self.load(&key.wrapped)?;
        let mut iv = InitialValue::try_from(iv.to_vec()).map_err(|e| tss_err(e, "the IV"))?;
        let mut out = Vec::with_capacity(data.len());
        for chunk in data.chunks(MAX_BUFFER) {
            let input = MaxBuffer::try_from(chunk.to_vec()).map_err(|e| tss_err(e, "a chunk"))?;
            let (output, next_iv) = password(&mut self.ctx, |c| {
                c.encrypt_decrypt_2(handle, decrypt, SymmetricMode::Cfb, input, iv.clone())
            })
            .map_err(|e| tss_err(e, "TPM2_EncryptDecrypt2"))?;
            out.extend_from_slice(output.value());
            iv = next_iv;
        }
        Ok(out)
    }

    fn encrypt(
        &mut self,
        key: &KeyBlob,
        scheme: EncryptionScheme,
        plaintext: &[u8],
    ) -> BackendResult<Vec<u8>> {
        check_scheme_for_encryption(key.template, scheme)?;
        match scheme {
            EncryptionScheme::Aes256Cfb => {
                let iv = self.get_random(16)?;
                let body = self.aes_cfb(key, false, &iv, plaintext)?;
                Ok([iv, body].concat())
            }
            EncryptionScheme::RsaOaepSha256 => {
                if plaintext.len() > MAX_OAEP_PLAINTEXT {
                    return Err(BackendError::InvalidInput(format!(
                        "RSA-2048 OAEP-SHA256 encrypts at most {MAX_OAEP_PLAINTEXT} bytes, got {}",
                        plaintext.len()
                    )));
                }
                let message = PublicKeyRsa::try_from(plaintext.to_vec())
                    .map_err(|e| tss_err(e, "the plaintext"))?;
                let handle = self.load(&key.wrapped)?;
                let out = self
                    .ctx
                    .execute_without_session(|c| {
                        c.rsa_encrypt(handle, message, oaep(), Data::default())
                    })
                    .map_err(|e| tss_err(e, "TPM2_RSA_Encrypt"))?;
                Ok(out.value().to_vec())
            }
        }
    }

    fn decrypt(
        &mut self,
        key: &KeyBlob,
        scheme: EncryptionScheme,
        ciphertext: &[u8],
    ) -> BackendResult<Vec<u8>> {
        check_scheme_for_encryption(key.template, scheme)?;
        match scheme {
            EncryptionScheme::Aes256Cfb => {
                if ciphertext.len() < 16 {
                    return Err(BackendError::InvalidInput(format!(
                        "AES-CFB ciphertext is iv || data; {} bytes is shorter than the 16-byte IV",
                        ciphertext.len()
                    )));
                }
                let (iv, body) = ciphertext.split_at(16);
                self.aes_cfb(key, true, iv, body)
            }
            EncryptionScheme::RsaOaepSha256 => {
                if ciphertext.len() != 256 {
                    return Err(BackendError::InvalidInput(format!(
                        "RSA-2048 ciphertexts are 256 bytes, got {}",
                        ciphertext.len()
                    )));
                }
                let message = PublicKeyRsa::try_from(ciphertext.to_vec())
                    .map_err(|e| tss_err(e, "the ciphertext"))?;
                let handle = self.load(&key.wrapped)?;
                let out = password(&mut self.ctx, |c| {
                    c.rsa_decrypt(handle, message, oaep(), Data::default())
                })
                .map_err(|e| tss_err(e, "TPM2_RSA_Decrypt"))?;
                Ok(out.value().to_vec())
            }
        }
    }

    fn seal(&mut self, data: &[u8], policy: &SealPolicy) -> BackendResult<SealedBlob> {
        crate::backend::check_seal_data(data)?;
        let auth = policy
            .password
            .as_deref()
            .map(|p| auth_value(p, "the seal password"))
            .transpose()?;
        let mut digest = PolicyDigest::default();
        if let Some(sel) = &policy.pcrs {
            let values = self.pcr_read(sel)?;
            digest = digest.pcr(sel, &wire::pcr_digest(&values));
        }
        if policy.password.is_some() {
            digest = digest.password();
        }
        let has_policy = policy.pcrs.is_some() || policy.password.is_some();
        let auth_policy: &[u8] = if has_policy { &digest.0 } else { &[] };
        let public = templates::to_public(&templates::sealed_object(auth_policy, !has_policy))?;
        let sensitive =
            SensitiveData::try_from(data.to_vec()).map_err(|e| tss_err(e, "the sealed data"))?;
        let primary = self.primary;
        let created = password(&mut self.ctx, |c| {
            c.create(primary, public, auth, Some(sensitive), None, None)
        })
        .map_err(|e| tss_err(e, "sealing (TPM2_Create)"))?;
        Ok(SealedBlob {
            backend: "tss".into(),
            pcrs: policy.pcrs.clone(),
            password_required: policy.password.is_some(),
            policy_digest: digest.0.to_vec(),
            blob: templates::wrap(&created.out_public, &created.out_private)?,
        })
    }

    fn unseal(
        &mut self,
        blob: &SealedBlob,
        password_value: Option<&[u8]>,
    ) -> BackendResult<Vec<u8>> {
        if blob.backend != "tss" {
            return Err(BackendError::InvalidInput(format!(
                "the blob was sealed by the {:?} backend, not by a TPM through tss",
                blob.backend
            )));
        }
        let auth = auth_value(password_value.unwrap_or_default(), "the password")?;
        let pcrs = blob
            .pcrs
            .as_ref()
            .map(|sel| tss_selection(sel.bank, &sel.pcrs().collect::<Vec<_>>()))
            .transpose()?;
        let handle = self.load_temporary(&blob.blob)?;
        let mut session = None;
        let result = self.unseal_loaded(handle, blob, pcrs, auth, &mut session);
        if let Some(session) = session {
            flush(&mut self.ctx, SessionHandle::from(session).into());
        }
        flush(&mut self.ctx, handle.into());
        result
    }

    /// Unseals a loaded sealed object; a policy session it starts is left in `session` for
    /// the caller to flush.
    fn unseal_loaded(
        &mut self,
        handle: KeyHandle,
        blob: &SealedBlob,
        pcrs: Option<PcrSelectionList>,
        auth: Auth,
        session: &mut Option<AuthSession>,
    ) -> BackendResult<Vec<u8>> {
        let ctx = &mut self.ctx;
        ctx.tr_set_auth(handle.into(), auth)
            .map_err(|e| tss_err(e, "setting the object's auth value"))?;
        if pcrs.is_none() && !blob.password_required {
            let data = password(ctx, |c| c.unseal(handle.into()))
                .map_err(|e| tss_err(e, "TPM2_Unseal"))?;
            return Ok(data.value().to_vec());
        }
        let started = ctx
            .execute_without_session(|c| {
                c.start_auth_session(
                    None,
                    None,
                    None,
                    SessionType::Policy,
                    SymmetricDefinition::Null,
                    HashingAlgorithm::Sha256,
                )
            })
            .map_err(|e| tss_err(e, "starting a policy session"))?
            .ok_or_else(|| BackendError::Transport("the TPM returned no policy session".into()))?;
        *session = Some(started);
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_continue_session(true)
            .build();
        ctx.tr_sess_set_attributes(started, attributes, mask)
            .map_err(|e| tss_err(e, "setting the session attributes"))?;
        let policy_session =
            PolicySession::try_from(started).map_err(|e| tss_err(e, "the policy session"))?;
        if let Some(list) = pcrs {
            ctx.execute_without_session(|c| {
                c.policy_pcr(policy_session, TssDigest::default(), list)
            })
            .map_err(|e| tss_err(e, "TPM2_PolicyPCR"))?;
        }
        if blob.password_required {
            ctx.execute_without_session(|c| c.policy_password(policy_session))
                .map_err(|e| tss_err(e, "TPM2_PolicyPassword"))?;
        }
        let data = ctx
            .execute_with_session(Some(started), |c| c.unseal(handle.into()))
            .map_err(|e| tss_err(e, "TPM2_Unseal"))?;
        Ok(data.value().to_vec())
    }

    fn pcr_extend(&mut self, index: u8, digest: &Digest) -> BackendResult<()> {
        let pcr = PcrHandle::try_from(u32::from(index))
            .ok()
            .filter(|_| index < dsmil_core::tpm::PCR_COUNT)
            .ok_or_else(|| {
                BackendError::InvalidInput(format!(
                    "PCR index {index} is out of range; PCRs are numbered 0-23"
                ))
            })?;
        let mut values = DigestValues::new();
        values.set(
            hashing(digest.algorithm()),
            TssDigest::try_from(digest.as_bytes().to_vec())
                .map_err(|e| tss_err(e, "the digest"))?,
        );
        password(&mut self.ctx, |c| c.pcr_extend(pcr, values))
            .map_err(|e| tss_err(e, &format!("TPM2_PCR_Extend of PCR {index}")))
    }

    fn quote(
        &mut self,
        ak: &KeyBlob,
        selection: &PcrSelection,
        qualifying_data: &[u8],
    ) -> BackendResult<Quote> {
        crate::backend::check_quote_args(ak, qualifying_data)?;
        let pcrs: Vec<u8> = selection.pcrs().collect();
        let handle = self.load(&ak.wrapped)?;
        for _ in 0..QUOTE_ATTEMPTS {
            let values = self.pcr_read(selection)?;
            let list = tss_selection(selection.bank, &pcrs)?;
            let data = Data::try_from(qualifying_data.to_vec())
                .map_err(|e| tss_err(e, "the qualifying data"))?;
            let (attest, signature) = password(&mut self.ctx, |c| {
                c.quote(handle, data, TssSignatureScheme::Null, list)
            })
            .map_err(|e| tss_err(e, "TPM2_Quote"))?;
            let attest = attest
                .marshall()
                .map_err(|e| tss_err(e, "marshalling the attestation"))?;
            let parsed = QuoteAttest::parse(&attest).map_err(|e| {
                BackendError::tpm(TpmResultCode::Value, format!("TPM2_Quote returned {e}"))
            })?;
            if parsed.pcr_digest != wire::pcr_digest(&values) {
                continue; // a PCR changed between the read and the quote
            }
            let Signature::EcDsa(sig) = signature else {
                return Err(BackendError::InvalidInput(format!(
                    "the attestation key signed with {:?}, not ECDSA",
                    signature.algorithm()
                )));
            };
            let signature = TpmtSignature::Ecdsa {
                r: templates::pad(sig.signature_r().value(), 32),
                s: templates::pad(sig.signature_s().value(), 32),
            };
            return Ok(Quote {
                bank: selection.bank,
                pcr_values: values,
                attest,
                signature: signature.marshal(),
                ak_public: ak.public.clone(),
                ak_parent_qualified_name: Some(self.primary_qualified_name.clone()),
            });
        }
        Err(BackendError::tpm(
            TpmResultCode::PcrChanged,
            format!("the quoted PCRs changed during each of {QUOTE_ATTEMPTS} attempts"),
        ))
    }

    /// Opens an ESAPI handle on an NV index; the caller closes it with [`Conn::close_nv`].
    fn open_nv(&mut self, index: u32) -> BackendResult<NvIndexHandle> {
        let tpm_handle = check_nv_index(index)?;
        let handle = self
            .ctx
            .execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::NvIndex(tpm_handle)))
            .map_err(|e| tss_err(e, &format!("opening NV index {index:#010x}")))?;
        Ok(NvIndexHandle::from(handle))
    }

    fn close_nv(&mut self, handle: NvIndexHandle) {
        let mut object = ObjectHandle::from(handle);
        if let Err(e) = self.ctx.tr_close(&mut object) {
            tracing::warn!(error = %e, "closing an NV index handle failed");
        }
    }

    fn nv_buffer_max(&mut self) -> usize {
        match self.ctx.get_tpm_property(PropertyTag::NvBufferMax) {
            Ok(Some(n)) if n > 0 => (n as usize).min(MAX_NV_BUFFER),
            _ => 1024,
        }
    }

    fn nv_define(&mut self, spec: &NvSpec) -> BackendResult<()> {
        spec.validate().map_err(BackendError::InvalidInput)?;
        let tpm_handle = check_nv_index(spec.index)?;
        let auth = spec
            .auth
            .as_deref()
            .map(|a| auth_value(a, "the NV index auth value"))
            .transpose()?;
        let NvAttributes {
            owner_write,
            owner_read,
            auth_write,
            auth_read,
            write_once,
            write_locked,
            no_da,
        } = spec.attributes;
        let attributes = NvIndexAttributesBuilder::new()
            .with_owner_write(owner_write)
            .with_owner_read(owner_read)
            .with_auth_write(auth_write)
            .with_auth_read(auth_read)
            .with_write_define(write_once)
            .with_write_stclear(write_locked)
            .with_no_da(no_da)
            .build()
            .map_err(|e| tss_err(e, "the NV attributes"))?;
        let public = NvPublicBuilder::new()
            .with_nv_index(tpm_handle)
            .with_index_name_algorithm(HashingAlgorithm::Sha256)
            .with_index_attributes(attributes)
            .with_data_area_size(usize::from(spec.size))
            .build()
            .map_err(|e| tss_err(e, "the NV public area"))?;
        let handle = password(&mut self.ctx, |c| {
            c.nv_define_space(Provision::Owner, auth, public)
        })
        .map_err(|e| tss_err(e, &format!("TPM2_NV_DefineSpace of {:#010x}", spec.index)))?;
        self.close_nv(handle);
        Ok(())
    }

    /// Writes and reports whether the index must now be write-locked (write-once indexes).
    fn nv_write(
        &mut self,
        index: u32,
        offset: u16,
        data: &[u8],
        auth: Option<&[u8]>,
    ) -> BackendResult<bool> {
        if usize::from(offset) + data.len() > usize::from(u16::MAX) {
            return Err(BackendError::InvalidInput(format!(
                "{} bytes at offset {offset} run past the largest NV offset",
                data.len()
            )));
        }
        let auth = auth
            .map(|a| auth_value(a, "the NV index auth value"))
            .transpose()?;
        let chunk = self.nv_buffer_max();
        let handle = self.open_nv(index)?;
        let result = (|| {
            let (public, _) = self
                .ctx
                .execute_without_session(|c| c.nv_read_public(handle))
                .map_err(|e| tss_err(e, "TPM2_NV_ReadPublic"))?;
            let auth_handle = match auth {
                Some(auth) => {
                    self.ctx
                        .tr_set_auth(handle.into(), auth)
                        .map_err(|e| tss_err(e, "setting the NV index auth value"))?;
                    NvAuth::NvIndex(handle)
                }
                None => NvAuth::Owner,
            };
            let mut pieces: Vec<&[u8]> = data.chunks(chunk).collect();
            if pieces.is_empty() {
                pieces.push(&[]);
            }
            let mut at = offset;
            for piece in pieces {
                let buffer =
                    MaxNvBuffer::try_from(piece.to_vec()).map_err(|e| tss_err(e, "an NV chunk"))?;
                password(&mut self.ctx, |c| {
                    c.nv_write(auth_handle, handle, buffer, at)
                })
                .map_err(|e| {
                    tss_err(e, &format!("TPM2_NV_Write of {index:#010x} at offset {at}"))
                })?;
                at += piece.len() as u16; // bounded by the check above
            }
            Ok(public.attributes().write_define())
        })();
        self.close_nv(handle);
        result
    }

    fn nv_read(
        &mut self,
        index: u32,
        offset: u16,
        len: u16,
        auth: Option<&[u8]>,
    ) -> BackendResult<Vec<u8>> {
        let auth = auth
            .map(|a| auth_value(a, "the NV index auth value"))
            .transpose()?;
        let chunk = self.nv_buffer_max();
        let handle = self.open_nv(index)?;
        let result = (|| {
            let auth_handle = match auth {
                Some(auth) => {
                    self.ctx
                        .tr_set_auth(handle.into(), auth)
                        .map_err(|e| tss_err(e, "setting the NV index auth value"))?;
                    NvAuth::NvIndex(handle)
                }
                None => NvAuth::Owner,
            };
            let mut out = Vec::with_capacity(usize::from(len));
            while out.len() < usize::from(len) {
                let at = usize::from(offset) + out.len();
                let at = u16::try_from(at).map_err(|_| {
                    BackendError::InvalidInput(format!(
                        "{len} bytes at offset {offset} run past the largest NV offset"
                    ))
                })?;
                let size = (usize::from(len) - out.len()).min(chunk) as u16;
                let data = password(&mut self.ctx, |c| c.nv_read(auth_handle, handle, size, at))
                    .map_err(|e| {
                        tss_err(e, &format!("TPM2_NV_Read of {index:#010x} at offset {at}"))
                    })?;
                if data.value().is_empty() {
                    return Err(BackendError::tpm(
                        TpmResultCode::Size,
                        "TPM2_NV_Read returned no bytes",
                    ));
                }
                out.extend_from_slice(data.value());
            }
            out.truncate(usize::from(len));
            Ok(out)
        })();
        self.close_nv(handle);
        result
    }

    fn nv_undefine(&mut self, index: u32) -> BackendResult<()> {
        let handle = self.open_nv(index)?;
        match password(&mut self.ctx, |c| {
            c.nv_undefine_space(Provision::Owner, handle)
        }) {
            Ok(()) => Ok(()), // the handle is closed with the index
            Err(e) => {
                self.close_nv(handle);
                Err(tss_err(
                    e,
                    &format!("TPM2_NV_UndefineSpace of {index:#010x}"),
                ))
            }
        }
    }

    fn capabilities(&mut self, tcti: &str, software: bool) -> BackendResult<Capabilities> {
        let prop = |ctx: &mut Context, tag: PropertyTag| -> BackendResult<u32> {
            ctx.get_tpm_property(tag)
                .map(|v| v.unwrap_or(0))
                .map_err(|e| tss_err(e, &format!("TPM2_GetCapability({tag:?})")))
        };
        let ctx = &mut self.ctx;
        let manufacturer = ascii_word(prop(ctx, PropertyTag::Manufacturer)?);
        let mut vendor = String::new();
        for tag in [
            PropertyTag::VendorString1,
            PropertyTag::VendorString2,
            PropertyTag::VendorString3,
            PropertyTag::VendorString4,
        ] {
            let word = prop(ctx, tag)?;
            vendor.extend(
                word.to_be_bytes()
                    .iter()
                    .filter(|&&b| b != 0)
                    .map(|&b| char::from(b)),
            );
        }
        let fw1 = prop(ctx, PropertyTag::FirmwareVersion1)?;
        let fw2 = prop(ctx, PropertyTag::FirmwareVersion2)?;
        let firmware_version = format!(
            "{}.{}.{}.{}",
            fw1 >> 16,
            fw1 & 0xFFFF,
            fw2 >> 16,
            fw2 & 0xFFFF
        );
        let max_nv_index_size = prop(ctx, PropertyTag::NvIndexMax)?;
        let max_nv_buffer = prop(ctx, PropertyTag::NvBufferMax)?;

        let mut algorithms = Vec::new();
        let mut next = u32::from(tss_esapi::constants::tss::TPM2_ALG_FIRST);
        for _ in 0..16 {
            let (data, more) = ctx
                .execute_without_session(|c| c.get_capability(CapabilityType::Algorithms, next, 64))
                .map_err(|e| tss_err(e, "TPM2_GetCapability(TPM_CAP_ALGS)"))?;
            let CapabilityData::Algorithms(list) = data else {
                break;
            };
            let mut last = None;
            for alg in list.iter() {
                last = Some(u16::from(alg.algorithm_identifier()));
                if let Some(a) = tpm_algorithm(alg.algorithm_identifier()) {
                    algorithms.push(a);
                }
            }
            match (more, last) {
                (true, Some(last)) => next = u32::from(last) + 1,
                _ => break,
            }
        }
        algorithms.sort_unstable();
        algorithms.dedup();

        let (data, _) = ctx
            .execute_without_session(|c| c.get_capability(CapabilityType::AssignedPcr, 0, 16))
            .map_err(|e| tss_err(e, "TPM2_GetCapability(TPM_CAP_PCRS)"))?;
        let mut pcr_banks = Vec::new();
        if let CapabilityData::AssignedPcr(list) = data {
            for sel in list.get_selections() {
                if !sel.is_empty()
                    && let Some(bank) = bank_of(sel.hashing_algorithm())
                {
                    pcr_banks.push(bank);
                }
            }
        }
        pcr_banks.sort_unstable();
        pcr_banks.dedup();

        Ok(Capabilities {
            backend: "tss".into(),
            hardware_rooted: !software,
            manufacturer,
            vendor: vendor.trim().to_owned(),
            firmware_version,
            algorithms,
            pcr_banks,
            max_nv_index_size,
            max_nv_buffer,
            nv_space_bytes: None,
            location: tcti.to_owned(),
        })
    }
}

fn tpm_algorithm(alg: AlgorithmIdentifier) -> Option<TpmAlgorithm> {
    Some(match alg {
        AlgorithmIdentifier::Rsa => TpmAlgorithm::Rsa,
        AlgorithmIdentifier::Ecc => TpmAlgorithm::Ecc,
        AlgorithmIdentifier::Aes => TpmAlgorithm::Aes,
        AlgorithmIdentifier::Sha1 => TpmAlgorithm::Sha1,
        AlgorithmIdentifier::Sha256 => TpmAlgorithm::Sha256,
        AlgorithmIdentifier::Sha384 => TpmAlgorithm::Sha384,
        AlgorithmIdentifier::Sha512 => TpmAlgorithm::Sha512,
        AlgorithmIdentifier::Hmac => TpmAlgorithm::Hmac,
        AlgorithmIdentifier::EcDsa => TpmAlgorithm::Ecdsa,
        AlgorithmIdentifier::RsaSsa => TpmAlgorithm::Rsassa,
        AlgorithmIdentifier::RsaPss => TpmAlgorithm::Rsapss,
        AlgorithmIdentifier::Oaep => TpmAlgorithm::Oaep,
        AlgorithmIdentifier::Cfb => TpmAlgorithm::Cfb,
        AlgorithmIdentifier::Ctr => TpmAlgorithm::Ctr,
        AlgorithmIdentifier::KeyedHash => TpmAlgorithm::Keyedhash,
        _ => return None,
    })
}

/// The NULL hashcheck ticket (`TPM_ST_HASHCHECK`, `TPM_RH_NULL`) for signing with an
/// unrestricted key.
fn null_ticket() -> BackendResult<HashcheckTicket> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .map_err(|e| tss_err(e, "the NULL hashcheck ticket"))
}

/// Flushes every transient object and loaded session in the TPM. Only for TPMs without a
/// resource manager that this process uses exclusively (see the module docs).
fn flush_leftovers(ctx: &mut Context) {
    for kind in [TPM2_HR_TRANSIENT, TPM2_HR_HMAC_SESSION] {
        for _ in 0..8 {
            let handles = match ctx
                .execute_without_session(|c| c.get_capability(CapabilityType::Handles, kind, 64))
            {
                Ok((CapabilityData::Handles(list), _)) => list.into_inner(),
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "listing leftover TPM handles failed");
                    break;
                }
            };
            if handles.is_empty() {
                break;
            }
            let mut flushed = 0;
            for handle in handles {
                match ctx.execute_without_session(|c| c.tr_from_tpm_public(handle)) {
                    Ok(object) => {
                        // tss-esapi registers a policy session to be closed, not flushed, and
                        // reports an error after the TPM flushed it: what counts is the TPM.
                        let _ = ctx.execute_without_session(|c| c.flush_context(object));
                        flushed += 1;
                    }
                    Err(e) => {
                        tracing::warn!(?handle, error = %e, "leftover TPM handle not flushable")
                    }
                }
            }
            tracing::info!(flushed, "flushed TPM handles left by an earlier client");
            if flushed == 0 {
                break;
            }
        }
    }
}

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
                    BackendError::Tpm { rc, detail, .. } => {
                        BackendError::tpm(rc, format!("{context}: {detail}"))
                    }
                    BackendError::Transport(m) => {
                        BackendError::Transport(format!("{context}: {m}"))
                    }
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
