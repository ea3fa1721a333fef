//! Signing, verification and encryption with loaded keys.

use super::*;

pub(super) fn check_scheme_for_signing(
    template: KeyTemplate,
    scheme: SignatureScheme,
) -> BackendResult<()> {
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
        Err(BackendError::invalid(
            "HMAC-SHA-256 signatures are not offered by the tss backend; use ECDSA or RSA",
        ))
    } else {
        Err(BackendError::invalid(format!(
            "signature scheme {scheme:?} does not fit a {template:?} key"
        )))
    }
}

pub(super) fn check_scheme_for_encryption(
    template: KeyTemplate,
    scheme: EncryptionScheme,
) -> BackendResult<()> {
    match (template, scheme) {
        (KeyTemplate::Aes256, EncryptionScheme::Aes256Cfb)
        | (KeyTemplate::Rsa2048Decryption, EncryptionScheme::RsaOaepSha256) => Ok(()),
        _ => Err(BackendError::invalid(format!(
            "encryption scheme {scheme:?} does not fit a {template:?} key"
        ))),
    }
}

pub(super) fn oaep() -> RsaDecryptionScheme {
    RsaDecryptionScheme::Oaep(HashScheme::new(HashingAlgorithm::Sha256))
}

/// The NULL hashcheck ticket (`TPM_ST_HASHCHECK`, `TPM_RH_NULL`) for signing with an
/// unrestricted key.
pub(super) fn null_ticket() -> BackendResult<HashcheckTicket> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .map_err(|e| tss_err(e, "the NULL hashcheck ticket"))
}

impl Conn {
    pub(super) fn sign(
        &mut self,
        key: &KeyBlob,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> BackendResult<Vec<u8>> {
        check_scheme_for_signing(key.template, scheme)?;
        let (public, _) = templates::unwrap_blob(&key.wrapped)?;
        if public.object_attributes().restricted() {
            return Err(BackendError::invalid(
                "the key is a restricted (attestation) key; it signs quotes only",
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

    pub(super) fn verify(
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

    pub(super) fn aes_cfb(
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

    pub(super) fn encrypt(
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
                    return Err(BackendError::invalid(format!(
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

    pub(super) fn decrypt(
        &mut self,
        key: &KeyBlob,
        scheme: EncryptionScheme,
        ciphertext: &[u8],
    ) -> BackendResult<Vec<u8>> {
        check_scheme_for_encryption(key.template, scheme)?;
        match scheme {
            EncryptionScheme::Aes256Cfb => {
                if ciphertext.len() < 16 {
                    return Err(BackendError::invalid(format!(
                        "AES-CFB ciphertext is iv || data; {} bytes is shorter than the 16-byte IV",
                        ciphertext.len()
                    )));
                }
                let (iv, body) = ciphertext.split_at(16);
                self.aes_cfb(key, true, iv, body)
            }
            EncryptionScheme::RsaOaepSha256 => {
                if ciphertext.len() != 256 {
                    return Err(BackendError::invalid(format!(
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
}
