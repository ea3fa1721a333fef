//! Key material of the software TPM (aws-lc-rs): generation, wrapping under the root key
//! (AES-256-GCM, the key's template and public half as associated data), and the operations
//! on unwrapped keys.

use std::collections::HashMap;
use std::sync::Arc;

use crate::values::KeyTemplate;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    AES_256, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    RsaKeyPair,
};
use dsmil_core::SignatureScheme;
use dsmil_core::tpm::TpmResultCode;

use crate::der;
use crate::error::{BackendError, Cause};
use crate::types::{KeyBlob, KeyPublic};

/// A software TPM operation failed (`TPM_RC_FAILURE`) because aws-lc-rs failed.
fn failed(what: &str, source: impl Into<Cause>) -> BackendError {
    BackendError::tpm_caused(
        TpmResultCode::Failure,
        format!("software TPM: {what} failed"),
        source,
    )
}

/// A software TPM operation failed (`TPM_RC_FAILURE`) on a check of its own.
fn failure(what: &str) -> BackendError {
    BackendError::tpm(
        TpmResultCode::Failure,
        format!("software TPM: {what} failed"),
    )
}

/// Random bytes from the OS.
pub fn random(len: usize) -> Result<Vec<u8>, BackendError> {
    let mut out = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut out).map_err(|e| failed("the system RNG", e))?;
    Ok(out)
}

/// The root key: wraps keys and sealed data.
pub struct RootKey(LessSafeKey);

impl RootKey {
    /// From the 32 key bytes.
    pub fn new(bytes: &[u8; 32]) -> Result<Self, BackendError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|e| failed("root key", e))?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// `nonce || ciphertext || tag`.
    pub fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BackendError> {
        let nonce_bytes: [u8; NONCE_LEN] = random(NONCE_LEN)?
            .try_into()
            .map_err(|_| failure("nonce"))?;
        let mut buf = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|e| failed("wrapping", e))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Reverses `wrap`; a blob from another root key, or altered, fails with `Integrity`.
    pub fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<Vec<u8>, BackendError> {
        const INTEGRITY: &str =
            "wrapped object does not belong to this software TPM or was altered";
        // TPM_RC_INTEGRITY.
        let integrity = || BackendError::tpm(TpmResultCode::Other(0x09F), INTEGRITY);
        if wrapped.len() < NONCE_LEN + 16 {
            return Err(integrity());
        }
        let (nonce, body) = wrapped.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|e| BackendError::tpm_caused(TpmResultCode::Other(0x09F), INTEGRITY, e))?;
        let mut buf = body.to_vec();
        let plain = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|e| BackendError::tpm_caused(TpmResultCode::Other(0x09F), INTEGRITY, e))?;
        Ok(plain.to_vec())
    }
}

/// Associated data binding a wrapped key to its template and public half.
fn key_aad(template: KeyTemplate, public: &KeyPublic) -> Vec<u8> {
    let mut aad = format!("dsmil-soft-tpm key {template:?} ").into_bytes();
    aad.extend_from_slice(&serde_json::to_vec(public).unwrap_or_default());
    aad
}

/// Generates a key and wraps its private part under the root key.
pub fn generate(root: &RootKey, template: KeyTemplate) -> Result<KeyBlob, BackendError> {
    let (public, private) = match template {
        KeyTemplate::EccP256Signing => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
                .map_err(|e| failed("ECC key generation", e))?;
            let pkcs8 = pair.to_pkcs8v1().map_err(|e| failed("ECC key export", e))?;
            (
                KeyPublic::EccP256 {
                    point: pair.public_key().as_ref().to_vec(),
                },
                pkcs8.as_ref().to_vec(),
            )
        }
        KeyTemplate::Rsa2048Signing | KeyTemplate::Rsa2048Decryption => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(|e| failed("RSA key generation", e))?;
            let (modulus, exponent) = der::rsa_public_key_parts(pair.public_key().as_ref())
                .ok_or_else(|| failure("RSA public key export"))?;
            let pkcs8 = pair.as_der().map_err(|e| failed("RSA key export", e))?;
            (
                KeyPublic::Rsa { modulus, exponent },
                pkcs8.as_ref().to_vec(),
            )
        }
        KeyTemplate::Aes256 | KeyTemplate::StorageParent => (KeyPublic::Symmetric, random(32)?),
    };
    let wrapped = root.wrap(&key_aad(template, &public), &private)?;
    Ok(KeyBlob {
        template,
        public,
        wrapped,
    })
}

/// The private part of a stored key.
pub fn private(root: &RootKey, key: &KeyBlob) -> Result<Vec<u8>, BackendError> {
    root.unwrap(&key_aad(key.template, &key.public), &key.wrapped)
}

fn wrong_key(key: &KeyBlob, what: &str) -> BackendError {
    BackendError::invalid(format!("a {:?} key cannot {what}", key.template))
}

/// Most keys of one kind kept parsed.
const CACHED_KEYS: usize = 64;

/// Signing keys kept unwrapped and parsed, by their wrapped blob, so repeated signatures skip
/// the unwrap and the key validation (which costs as much as a signature).
#[derive(Default)]
pub struct KeyCache {
    ecdsa: HashMap<Vec<u8>, Arc<EcdsaKeyPair>>,
    ecdsa_fixed: HashMap<Vec<u8>, Arc<EcdsaKeyPair>>,
    rsa: HashMap<Vec<u8>, Arc<RsaKeyPair>>,
}

fn cached<K>(
    map: &mut HashMap<Vec<u8>, Arc<K>>,
    wrapped: &[u8],
    load: impl FnOnce() -> Result<K, BackendError>,
) -> Result<Arc<K>, BackendError> {
    if let Some(k) = map.get(wrapped) {
        return Ok(k.clone());
    }
    let k = Arc::new(load()?);
    if map.len() >= CACHED_KEYS {
        map.clear();
    }
    map.insert(wrapped.to_vec(), k.clone());
    Ok(k)
}

impl KeyCache {
    fn ecdsa(
        &mut self,
        root: &RootKey,
        key: &KeyBlob,
        fixed: bool,
    ) -> Result<Arc<EcdsaKeyPair>, BackendError> {
        let (map, alg) = if fixed {
            (&mut self.ecdsa_fixed, &ECDSA_P256_SHA256_FIXED_SIGNING)
        } else {
            (&mut self.ecdsa, &ECDSA_P256_SHA256_ASN1_SIGNING)
        };
        cached(map, &key.wrapped, || {
            EcdsaKeyPair::from_pkcs8(alg, &private(root, key)?)
                .map_err(|e| failed("ECC key load", e))
        })
    }

    fn rsa(&mut self, root: &RootKey, key: &KeyBlob) -> Result<Arc<RsaKeyPair>, BackendError> {
        cached(&mut self.rsa, &key.wrapped, || {
            RsaKeyPair::from_pkcs8(&private(root, key)?).map_err(|e| failed("RSA key load", e))
        })
    }
}

/// Signs with the key's scheme; ECDSA DER, RSA raw.
pub fn sign(
    root: &RootKey,
    cache: &mut KeyCache,
    key: &KeyBlob,
    scheme: SignatureScheme,
    message: &[u8],
) -> Result<Vec<u8>, BackendError> {
    let rng = SystemRandom::new();
    match (key.template, scheme) {
        (KeyTemplate::EccP256Signing, SignatureScheme::EcdsaP256Sha256) => {
            let pair = cache.ecdsa(root, key, false)?;
            let sig = pair.sign(&rng, message).map_err(|e| failed("ECDSA", e))?;
            Ok(sig.as_ref().to_vec())
        }
        (
            KeyTemplate::Rsa2048Signing,
            SignatureScheme::RsassaSha256 | SignatureScheme::RsapssSha256,
        ) => {
            let pair = cache.rsa(root, key)?;
            let padding: &'static dyn signature::RsaEncoding =
                if scheme == SignatureScheme::RsassaSha256 {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
            let mut out = vec![0u8; pair.public_modulus_len()];
            pair.sign(padding, &rng, message, &mut out)
                .map_err(|e| failed("RSA signing", e))?;
            Ok(out)
        }
        _ => Err(wrong_key(key, &format!("sign with {scheme:?}"))),
    }
}

/// Signs with fixed-width `r || s` (for quotes).
pub fn sign_ecdsa_fixed(
    root: &RootKey,
    cache: &mut KeyCache,
    key: &KeyBlob,
    message: &[u8],
) -> Result<[u8; 64], BackendError> {
    let pair = cache.ecdsa(root, key, true)?;
    let sig = pair
        .sign(&SystemRandom::new(), message)
        .map_err(|e| failed("ECDSA", e))?;
    sig.as_ref().try_into().map_err(|e| failed("ECDSA", e))
}

/// Verifies with the public half only.
pub fn verify(
    key: &KeyBlob,
    scheme: SignatureScheme,
    message: &[u8],
    sig: &[u8],
) -> Result<bool, BackendError> {
    key.public
        .verify(scheme, message, sig)
        .ok_or_else(|| wrong_key(key, &format!("verify {scheme:?} signatures")))
}

/// AES-256-CFB encryption with a fresh IV: `iv || ciphertext`.
pub fn aes_cfb_encrypt(
    root: &RootKey,
    key: &KeyBlob,
    plaintext: &[u8],
) -> Result<Vec<u8>, BackendError> {
    if key.template != KeyTemplate::Aes256 {
        return Err(wrong_key(key, "encrypt with AES"));
    }
    let private = private(root, key)?;
    let iv: [u8; 16] = random(16)?.try_into().map_err(|_| failure("IV"))?;
    let unbound = UnboundCipherKey::new(&AES_256, &private).map_err(|e| failed("AES key", e))?;
    let enc = EncryptingKey::cfb128(unbound).map_err(|e| failed("AES key", e))?;
    let mut buf = plaintext.to_vec();
    enc.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(iv.into()))
        .map_err(|e| failed("AES-CFB", e))?;
    let mut out = iv.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Reverses `aes_cfb_encrypt`.
pub fn aes_cfb_decrypt(
    root: &RootKey,
    key: &KeyBlob,
    data: &[u8],
) -> Result<Vec<u8>, BackendError> {
    if key.template != KeyTemplate::Aes256 {
        return Err(wrong_key(key, "decrypt with AES"));
    }
    if data.len() < 16 {
        return Err(BackendError::invalid(format!(
            "AES-CFB ciphertext must start with a 16-byte IV; got {} bytes",
            data.len()
        )));
    }
    let private = private(root, key)?;
    let (iv, body) = data.split_at(16);
    let iv: [u8; 16] = iv.try_into().map_err(|e| failed("IV", e))?;
    let unbound = UnboundCipherKey::new(&AES_256, &private).map_err(|e| failed("AES key", e))?;
    let dec = DecryptingKey::cfb128(unbound).map_err(|e| failed("AES key", e))?;
    let mut buf = body.to_vec();
    let plain = dec
        .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
        .map_err(|e| failed("AES-CFB", e))?;
    Ok(plain.to_vec())
}

/// RSA-OAEP (SHA-256, empty label) with the public half.
pub fn rsa_oaep_encrypt(key: &KeyBlob, plaintext: &[u8]) -> Result<Vec<u8>, BackendError> {
    let (KeyTemplate::Rsa2048Decryption, KeyPublic::Rsa { modulus, exponent }) =
        (key.template, &key.public)
    else {
        return Err(wrong_key(key, "encrypt with RSA-OAEP"));
    };
    let public = PublicEncryptingKey::from_der(&der::rsa_spki(modulus, *exponent))
        .map_err(|e| failed("RSA public key", e))?;
    let oaep = OaepPublicEncryptingKey::new(public).map_err(|e| failed("RSA public key", e))?;
    let max = oaep.max_plaintext_size(&OAEP_SHA256_MGF1SHA256);
    if plaintext.len() > max {
        return Err(BackendError::tpm(
            TpmResultCode::Value,
            format!(
                "RSA-OAEP plaintext of {} bytes exceeds {max}",
                plaintext.len()
            ),
        ));
    }
    let mut out = vec![0u8; oaep.ciphertext_size()];
    let n = oaep
        .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
        .map_err(|e| failed("RSA-OAEP", e))?
        .len();
    out.truncate(n);
    Ok(out)
}

/// RSA-OAEP decryption.
pub fn rsa_oaep_decrypt(
    root: &RootKey,
    key: &KeyBlob,
    ciphertext: &[u8],
) -> Result<Vec<u8>, BackendError> {
    if key.template != KeyTemplate::Rsa2048Decryption {
        return Err(wrong_key(key, "decrypt with RSA-OAEP"));
    }
    let private = private(root, key)?;
    let pk = PrivateDecryptingKey::from_pkcs8(&private).map_err(|e| failed("RSA key load", e))?;
    let oaep = OaepPrivateDecryptingKey::new(pk).map_err(|e| failed("RSA key load", e))?;
    let mut out = vec![0u8; oaep.min_output_size()];
    let n = oaep
        .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, None)
        .map_err(|e| {
            BackendError::tpm_caused(
                TpmResultCode::Value,
                "RSA-OAEP ciphertext does not decrypt with this key",
                e,
            )
        })?
        .len();
    out.truncate(n);
    Ok(out)
}
