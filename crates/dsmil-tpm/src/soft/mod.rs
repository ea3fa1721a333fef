//! The software TPM: the embedded default for machines without a TPM. Same observable
//! semantics as a TPM 2.0 — a SHA-256 bank of 24 PCRs reset at start (17–22 to all-ones, as
//! the PC client profile does), keys wrapped under a root key kept in the state directory,
//! seals bound to real policy digests, NV indices with the TPM's checks, quotes marshalled as
//! `TPMS_ATTEST` + `TPMT_SIGNATURE` — but NOT hardware-rooted: whoever reads the state
//! directory's `root.key` can unwrap every key.

mod crypto;
pub(crate) mod files;
mod nv;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::values::{
    Digest, EncryptionScheme, HashAlgorithm, KeyTemplate, PCR_COUNT, PcrSelection, TpmAlgorithm,
};
use dsmil_core::SignatureScheme;
use dsmil_core::tpm::TpmResultCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use nv::NV_CAPACITY;

use crate::backend::{BackendResult, TpmBackend};
use crate::error::BackendError;
use crate::quote::Quote;
use crate::types::{
    Capabilities, KeyBlob, KeyPublic, MAX_NV_INDEX_SIZE, NvSpec, SealPolicy, SealedBlob,
};
use crate::wire::{self, ClockInfo, PolicyDigest, QuoteAttest, TpmtSignature};

/// Firmware version the software TPM reports (the crate version, one 16-bit word each).
const FIRMWARE: u64 = 0x0002_0000_0000_0000;
/// TPM_RC_LOCALITY: PCRs 17–22 are not extendable from locality 0.
const RC_LOCALITY: u32 = 0x907;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counters {
    reset_count: u32,
}

/// The software TPM over a state directory.
pub struct SoftTpm {
    dir: PathBuf,
    root: crypto::RootKey,
    keys: crypto::KeyCache,
    pcrs: [[u8; 32]; PCR_COUNT as usize],
    nv: nv::NvStore,
    started: Instant,
    reset_count: u32,
}

impl std::fmt::Debug for SoftTpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftTpm").field("dir", &self.dir).finish()
    }
}

/// The sealed payload: the password's hash (or zeros) and the data.
#[derive(Serialize, Deserialize)]
struct SealedPayload {
    #[serde(with = "dsmil_core::hex::serde_bytes")]
    auth_hash: Vec<u8>,
    #[serde(with = "dsmil_core::hex::serde_bytes")]
    data: Vec<u8>,
}

fn seal_aad(policy_digest: &[u8], pcrs: &Option<PcrSelection>, password: bool) -> Vec<u8> {
    let mut aad = b"dsmil-soft-tpm seal ".to_vec();
    aad.extend_from_slice(policy_digest);
    aad.extend_from_slice(&serde_json::to_vec(pcrs).unwrap_or_default());
    aad.push(u8::from(password));
    aad
}

fn sha256_only(sel: &PcrSelection) -> BackendResult<()> {
    if sel.bank != HashAlgorithm::Sha256 {
        return Err(BackendError::tpm(
            TpmResultCode::Value,
            format!(
                "the software TPM has a SHA-256 PCR bank only, not {:?}",
                sel.bank
            ),
        ));
    }
    Ok(())
}

impl SoftTpm {
    /// Opens (creating) the state in `dir`: `root.key` (0600), `nv.json`, `counters.json`.
    /// Each open is a TPM reset: PCRs start fresh and the reset counter goes up.
    pub fn open(dir: &Path) -> BackendResult<Self> {
        files::ensure_dir(dir)?;
        let root = crypto::RootKey::new(&files::load_or_create_root_key(&dir.join("root.key"))?)?;
        let counters_path = dir.join("counters.json");
        let mut counters: Counters = match std::fs::read(&counters_path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(_) => Counters::default(),
        };
        counters.reset_count = counters.reset_count.wrapping_add(1);
        files::write_atomic(
            &counters_path,
            &serde_json::to_vec(&counters).unwrap_or_default(),
        )?;
        let mut pcrs = [[0u8; 32]; PCR_COUNT as usize];
        for pcr in pcrs.iter_mut().take(23).skip(17) {
            *pcr = [0xFF; 32];
        }
        Ok(Self {
            dir: dir.to_owned(),
            root,
            keys: crypto::KeyCache::default(),
            pcrs,
            nv: nv::NvStore::open(&dir.join("nv.json"))?,
            started: Instant::now(),
            reset_count: counters.reset_count,
        })
    }

    fn values(&self, sel: &PcrSelection) -> BackendResult<Vec<(u8, Digest)>> {
        sha256_only(sel)?;
        sel.pcrs()
            .map(|i| {
                Digest::new(HashAlgorithm::Sha256, self.pcrs[usize::from(i)].to_vec())
                    .map(|d| (i, d))
                    .map_err(|e| {
                        BackendError::invalid_caused(format!("PCR {i} is no SHA-256 digest"), e)
                    })
            })
            .collect()
    }

    fn policy(&self, pcrs: &Option<PcrSelection>, password: bool) -> BackendResult<PolicyDigest> {
        let mut digest = PolicyDigest::default();
        if let Some(sel) = pcrs {
            digest = digest.pcr(sel, &wire::pcr_digest(&self.values(sel)?));
        }
        if password {
            digest = digest.password();
        }
        Ok(digest)
    }
}

impl TpmBackend for SoftTpm {
    fn name(&self) -> &'static str {
        "soft"
    }

    fn capabilities(&mut self) -> BackendResult<Capabilities> {
        use TpmAlgorithm::*;
        Ok(Capabilities {
            backend: "soft".into(),
            hardware_rooted: false,
            manufacturer: "DSML".into(),
            vendor: "DSMIL software TPM (not hardware-rooted)".into(),
            firmware_version: format!("{}.{}", FIRMWARE >> 48, (FIRMWARE >> 32) & 0xFFFF),
            algorithms: vec![
                Rsa, Ecc, Aes, Sha256, Hmac, Ecdsa, Rsassa, Rsapss, Oaep, Cfb, Keyedhash,
            ],
            pcr_banks: vec![HashAlgorithm::Sha256],
            max_nv_index_size: u32::from(MAX_NV_INDEX_SIZE),
            max_nv_buffer: u32::from(MAX_NV_INDEX_SIZE),
            nv_space_bytes: Some(NV_CAPACITY),
            location: self.dir.display().to_string(),
        })
    }

    fn create_key(&mut self, template: KeyTemplate) -> BackendResult<KeyBlob> {
        crypto::generate(&self.root, template)
    }

    fn sign(
        &mut self,
        key: &KeyBlob,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> BackendResult<Vec<u8>> {
        crypto::sign(&self.root, &mut self.keys, key, scheme, message)
    }

    fn verify(
        &mut self,
        key: &KeyBlob,
        scheme: SignatureScheme,
        message: &[u8],
        signature: &[u8],
    ) -> BackendResult<bool> {
        crypto::verify(key, scheme, message, signature)
    }

    fn encrypt(
        &mut self,
        key: &KeyBlob,
        scheme: EncryptionScheme,
        plaintext: &[u8],
    ) -> BackendResult<Vec<u8>> {
        match scheme {
            EncryptionScheme::Aes256Cfb => crypto::aes_cfb_encrypt(&self.root, key, plaintext),
            EncryptionScheme::RsaOaepSha256 => crypto::rsa_oaep_encrypt(key, plaintext),
        }
    }

    fn decrypt(
        &mut self,
        key: &KeyBlob,
        scheme: EncryptionScheme,
        ciphertext: &[u8],
    ) -> BackendResult<Vec<u8>> {
        match scheme {
            EncryptionScheme::Aes256Cfb => crypto::aes_cfb_decrypt(&self.root, key, ciphertext),
            EncryptionScheme::RsaOaepSha256 => {
                crypto::rsa_oaep_decrypt(&self.root, key, ciphertext)
            }
        }
    }

    fn seal(&mut self, data: &[u8], policy: &SealPolicy) -> BackendResult<SealedBlob> {
        crate::backend::check_seal_data(data)?;
        let password = policy.password.is_some();
        let digest = self.policy(&policy.pcrs, password)?;
        let payload = SealedPayload {
            auth_hash: policy
                .password
                .as_deref()
                .map(|p| Sha256::digest(p).to_vec())
                .unwrap_or_default(),
            data: data.to_vec(),
        };
        let plain = serde_json::to_vec(&payload)
            .map_err(|e| BackendError::storage("cannot encode sealed data", e))?;
        let blob = self
            .root
            .wrap(&seal_aad(&digest.0, &policy.pcrs, password), &plain)?;
        Ok(SealedBlob {
            backend: "soft".into(),
            pcrs: policy.pcrs.clone(),
            password_required: password,
            policy_digest: digest.0.to_vec(),
            blob,
        })
    }

    fn unseal(&mut self, blob: &SealedBlob, password: Option<&[u8]>) -> BackendResult<Vec<u8>> {
        if blob.backend != "soft" {
            return Err(BackendError::invalid(format!(
                "the blob was sealed by the {:?} backend, not the software TPM",
                blob.backend
            )));
        }
        let plain = self.root.unwrap(
            &seal_aad(&blob.policy_digest, &blob.pcrs, blob.password_required),
            &blob.blob,
        )?;
        let current = self.policy(&blob.pcrs, blob.password_required)?;
        if current.0.as_slice() != blob.policy_digest.as_slice() {
            return Err(BackendError::tpm(
                TpmResultCode::PolicyFail,
                "the PCR values differ from those the secret was sealed to",
            ));
        }
        let payload: SealedPayload = serde_json::from_slice(&plain)
            .map_err(|e| BackendError::storage("sealed payload unreadable", e))?;
        if blob.password_required {
            let given = Sha256::digest(password.unwrap_or_default());
            if aws_lc_rs::constant_time::verify_slices_are_equal(&given, &payload.auth_hash)
                .is_err()
            {
                return Err(BackendError::tpm(
                    TpmResultCode::AuthFail,
                    "wrong password for the sealed object",
                ));
            }
        }
        Ok(payload.data)
    }

    fn pcr_extend(&mut self, index: u8, digest: &Digest) -> BackendResult<()> {
        if index >= PCR_COUNT {
            return Err(BackendError::invalid(format!(
                "PCR index {index} is out of range; PCRs are numbered 0-23"
            )));
        }
        if (17..=22).contains(&index) {
            return Err(BackendError::tpm(
                TpmResultCode::Other(RC_LOCALITY),
                format!("PCR {index} cannot be extended from locality 0"),
            ));
        }
        if digest.algorithm() != HashAlgorithm::Sha256 {
            return Err(BackendError::tpm(
                TpmResultCode::Value,
                "the software TPM has a SHA-256 PCR bank only",
            ));
        }
        let pcr = &mut self.pcrs[usize::from(index)];
        let mut h = Sha256::new();
        h.update(*pcr);
        h.update(digest.as_bytes());
        *pcr = h.finalize().into();
        Ok(())
    }

    fn pcr_read(&mut self, selection: &PcrSelection) -> BackendResult<Vec<(u8, Digest)>> {
        self.values(selection)
    }

    fn quote(
        &mut self,
        ak: &KeyBlob,
        selection: &PcrSelection,
        qualifying_data: &[u8],
    ) -> BackendResult<Quote> {
        let point = crate::backend::check_quote_args(ak, qualifying_data)?;
        let values = self.values(selection)?;
        let attest = QuoteAttest {
            qualified_signer: wire::object_name(&wire::ecc_p256_public(
                wire::AK_ATTRIBUTES,
                &point,
            )),
            extra_data: qualifying_data.to_vec(),
            clock: ClockInfo {
                clock: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                reset_count: self.reset_count,
                restart_count: 0,
                safe: true,
            },
            firmware_version: FIRMWARE,
            selection: vec![(selection.bank.tpm_alg_id(), selection.bitmap().to_vec())],
            pcr_digest: wire::pcr_digest(&values).to_vec(),
        }
        .marshal();
        let rs = crypto::sign_ecdsa_fixed(&self.root, &mut self.keys, ak, &attest)?;
        let signature = TpmtSignature::Ecdsa {
            r: rs[..32].to_vec(),
            s: rs[32..].to_vec(),
        }
        .marshal();
        Ok(Quote {
            bank: selection.bank,
            pcr_values: values,
            attest,
            signature,
            ak_public: KeyPublic::EccP256 {
                point: point.to_vec(),
            },
            ak_parent_qualified_name: None,
        })
    }

    fn create_attestation_key(&mut self) -> BackendResult<KeyBlob> {
        crypto::generate(&self.root, KeyTemplate::EccP256Signing)
    }

    fn nv_define(&mut self, spec: &NvSpec) -> BackendResult<()> {
        self.nv.define(spec)
    }

    fn nv_write(
        &mut self,
        index: u32,
        offset: u16,
        data: &[u8],
        auth: Option<&[u8]>,
    ) -> BackendResult<()> {
        self.nv.write(index, offset, data, auth)
    }

    fn nv_read(
        &mut self,
        index: u32,
        offset: u16,
        len: u16,
        auth: Option<&[u8]>,
    ) -> BackendResult<Vec<u8>> {
        self.nv.read(index, offset, len, auth)
    }

    fn nv_undefine(&mut self, index: u32) -> BackendResult<()> {
        self.nv.undefine(index)
    }

    fn get_random(&mut self, len: usize) -> BackendResult<Vec<u8>> {
        crypto::random(len)
    }
}
