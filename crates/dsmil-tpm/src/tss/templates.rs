//! `TPMT_PUBLIC` templates written byte for byte (so the attestation key's public area is
//! exactly [`wire::ecc_p256_public`]), the wrapped-key format (`TPM2B_PUBLIC || TPM2B_PRIVATE`)
//! and the public halves DSMIL reports.

use crate::values::KeyTemplate;
use tss_esapi::structures::{Private, Public};
use tss_esapi::traits::{Marshall, UnMarshall};

use crate::error::BackendError;
use crate::types::KeyPublic;
use crate::wire::{self, Reader, Writer};

use super::errors::tss_err;

/// `TPM_ALG_RSA`.
const ALG_RSA: u16 = 0x0001;
/// `TPM_ALG_AES`.
const ALG_AES: u16 = 0x0006;
/// `TPM_ALG_KEYEDHASH`.
const ALG_KEYEDHASH: u16 = 0x0008;
/// `TPM_ALG_SYMCIPHER`.
const ALG_SYMCIPHER: u16 = 0x0025;
/// `TPM_ALG_CFB`.
const ALG_CFB: u16 = 0x0043;

/// `TPMA_OBJECT` bits.
pub(crate) mod attr {
    /// fixedTPM.
    pub const FIXED_TPM: u32 = 0x0000_0002;
    /// fixedParent.
    pub const FIXED_PARENT: u32 = 0x0000_0010;
    /// sensitiveDataOrigin.
    pub const SENSITIVE_DATA_ORIGIN: u32 = 0x0000_0020;
    /// userWithAuth.
    pub const USER_WITH_AUTH: u32 = 0x0000_0040;
    /// restricted.
    pub const RESTRICTED: u32 = 0x0001_0000;
    /// decrypt.
    pub const DECRYPT: u32 = 0x0002_0000;
    /// sign / encrypt.
    pub const SIGN: u32 = 0x0004_0000;
    /// The usual attributes of a TPM-generated, non-duplicable key used with its auth value.
    pub const KEY: u32 = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | USER_WITH_AUTH;
}

/// Writes the common head of a `TPMT_PUBLIC`.
fn head(w: &mut Writer, alg: u16, attributes: u32, policy: &[u8]) {
    w.u16(alg)
        .u16(wire::ALG_SHA256)
        .u32(attributes)
        .tpm2b(policy);
}

/// An ECC P-256 key: `symmetric` is `Some(AES-128-CFB)` for storage keys, NULL otherwise;
/// `ecdsa` selects the ECDSA-SHA256 scheme (else NULL).
fn ecc_p256(attributes: u32, storage: bool, ecdsa: bool) -> Vec<u8> {
    let mut w = Writer::new();
    head(&mut w, wire::ALG_ECC, attributes, &[]);
    if storage {
        w.u16(ALG_AES).u16(128).u16(ALG_CFB);
    } else {
        w.u16(wire::ALG_NULL);
    }
    if ecdsa {
        w.u16(wire::ALG_ECDSA).u16(wire::ALG_SHA256);
    } else {
        w.u16(wire::ALG_NULL);
    }
    w.u16(wire::ECC_NIST_P256) // curve
        .u16(wire::ALG_NULL) // kdf
        .tpm2b(&[]) // unique.x
        .tpm2b(&[]); // unique.y
    w.finish()
}

/// An RSA-2048 key with scheme NULL (the scheme is chosen per command) and exponent 65537.
fn rsa_2048(attributes: u32) -> Vec<u8> {
    let mut w = Writer::new();
    head(&mut w, ALG_RSA, attributes, &[]);
    w.u16(wire::ALG_NULL) // symmetric
        .u16(wire::ALG_NULL) // scheme
        .u16(2048)
        .u32(0) // exponent: default (65537)
        .tpm2b(&[]);
    w.finish()
}

/// An AES-256-CFB symmetric cipher key usable with `TPM2_EncryptDecrypt2`.
fn aes_256() -> Vec<u8> {
    let mut w = Writer::new();
    head(
        &mut w,
        ALG_SYMCIPHER,
        attr::KEY | attr::DECRYPT | attr::SIGN,
        &[],
    );
    w.u16(ALG_AES).u16(256).u16(ALG_CFB).tpm2b(&[]);
    w.finish()
}

/// The storage primary (and [`KeyTemplate::StorageParent`] children): ECC P-256, restricted
/// decryption, AES-128-CFB for its children. Deterministic, so the owner seed always yields
/// the same primary.
pub(crate) fn storage_key() -> Vec<u8> {
    ecc_p256(attr::KEY | attr::RESTRICTED | attr::DECRYPT, true, false)
}

/// The template of a key kind.
pub(crate) fn key_template(template: KeyTemplate) -> Vec<u8> {
    match template {
        KeyTemplate::EccP256Signing => ecc_p256(attr::KEY | attr::SIGN, false, true),
        KeyTemplate::Rsa2048Signing => rsa_2048(attr::KEY | attr::SIGN),
        KeyTemplate::Rsa2048Decryption => rsa_2048(attr::KEY | attr::DECRYPT),
        KeyTemplate::Aes256 => aes_256(),
        KeyTemplate::StorageParent => storage_key(),
    }
}

/// The attestation key: exactly [`wire::ecc_p256_public`] with [`wire::AK_ATTRIBUTES`]
/// (restricted ECDSA-SHA256 signing, symmetric NULL), before the TPM fills in the point.
pub(crate) fn attestation_key() -> Vec<u8> {
    ecc_p256(wire::AK_ATTRIBUTES, false, true)
}

/// A sealed data object (keyed hash, scheme NULL). `policy` is the authPolicy (empty for none);
/// `user_with_auth` lets the auth value alone authorise it.
pub(crate) fn sealed_object(policy: &[u8], user_with_auth: bool) -> Vec<u8> {
    let mut attributes = attr::FIXED_TPM | attr::FIXED_PARENT;
    if user_with_auth {
        attributes |= attr::USER_WITH_AUTH;
    }
    let mut w = Writer::new();
    head(&mut w, ALG_KEYEDHASH, attributes, policy);
    w.u16(wire::ALG_NULL).tpm2b(&[]);
    w.finish()
}

/// Parses template bytes into the `tss-esapi` structure.
pub(crate) fn to_public(template: &[u8]) -> Result<Public, BackendError> {
    Public::unmarshall(template).map_err(|e| tss_err(e, "building the key template"))
}

/// `TPM2B_PUBLIC || TPM2B_PRIVATE`, the wrapped form of a loadable object.
pub(crate) fn wrap(public: &Public, private: &Private) -> Result<Vec<u8>, BackendError> {
    let public = public
        .marshall()
        .map_err(|e| tss_err(e, "marshalling the public area"))?;
    let too_long =
        |what: &str| BackendError::invalid(format!("the TPM returned a {what} too long to wrap"));
    let mut w = Writer::new();
    w.u16(u16::try_from(public.len()).map_err(|_| too_long("public area"))?)
        .bytes(&public);
    let private = private.value();
    w.u16(u16::try_from(private.len()).map_err(|_| too_long("private area"))?)
        .bytes(private);
    Ok(w.finish())
}

/// Reverses [`wrap`].
pub(crate) fn unwrap_blob(blob: &[u8]) -> Result<(Public, Private), BackendError> {
    let bad = |e: wire::WireError| {
        BackendError::invalid_caused("the wrapped key is not a tss key blob", e)
    };
    let mut r = Reader::new("wrapped key", blob);
    let public = r.tpm2b("TPM2B_PUBLIC").map_err(bad)?;
    let private = r.tpm2b("TPM2B_PRIVATE").map_err(bad)?;
    r.end().map_err(bad)?;
    let public = Public::unmarshall(public).map_err(|e| {
        BackendError::invalid_caused("the wrapped key's public area does not parse", e)
    })?;
    let private = Private::try_from(private.to_vec()).map_err(|e| {
        BackendError::invalid_caused("the wrapped key's private area is too long", e)
    })?;
    Ok((public, private))
}

/// Left-pads a big-endian integer to `n` bytes (longer inputs keep their last `n` bytes, which
/// for a TPM value only drops leading zeros).
pub(crate) fn pad(bytes: &[u8], n: usize) -> Vec<u8> {
    if bytes.len() >= n {
        return bytes[bytes.len() - n..].to_vec();
    }
    let mut out = vec![0u8; n - bytes.len()];
    out.extend_from_slice(bytes);
    out
}

/// The public half DSMIL reports for a TPM public area.
pub(crate) fn key_public(public: &Public) -> KeyPublic {
    match public {
        Public::Ecc { unique, .. } => {
            let mut point = vec![0x04];
            point.extend(pad(unique.x().value(), 32));
            point.extend(pad(unique.y().value(), 32));
            KeyPublic::EccP256 { point }
        }
        Public::Rsa {
            parameters, unique, ..
        } => {
            let exponent = match parameters.exponent().value() {
                0 => 65537,
                e => e,
            };
            KeyPublic::Rsa {
                modulus: unique.value().to_vec(),
                exponent,
            }
        }
        Public::KeyedHash { .. } | Public::SymCipher { .. } => KeyPublic::Symmetric,
    }
}

#[cfg(test)]
mod unit {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn attestation_template_is_the_wire_public_area_without_a_point() {
        let mut expected = wire::ecc_p256_public(wire::AK_ATTRIBUTES, &[4; 65]);
        // Replace the two 32-byte coordinates by empty TPM2Bs.
        expected.truncate(expected.len() - 68);
        expected.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(attestation_key(), expected);
    }

    #[test]
    fn every_template_parses() {
        for t in [
            KeyTemplate::EccP256Signing,
            KeyTemplate::Rsa2048Signing,
            KeyTemplate::Rsa2048Decryption,
            KeyTemplate::Aes256,
            KeyTemplate::StorageParent,
        ] {
            let public = to_public(&key_template(t)).unwrap();
            // tss-esapi marshals it back to the same bytes.
            assert_eq!(public.marshall().unwrap(), key_template(t), "{t:?}");
        }
        to_public(&attestation_key()).unwrap();
        to_public(&sealed_object(&[7; 32], false)).unwrap();
        to_public(&sealed_object(&[], true)).unwrap();
    }

    #[test]
    fn wrapped_blobs_round_trip_and_reject_garbage() {
        let public = to_public(&key_template(KeyTemplate::EccP256Signing)).unwrap();
        let private = Private::try_from(vec![1, 2, 3]).unwrap();
        let blob = wrap(&public, &private).unwrap();
        let (p, q) = unwrap_blob(&blob).unwrap();
        assert_eq!((p, q.value()), (public, &[1u8, 2, 3][..]));
        assert!(unwrap_blob(&blob[..blob.len() - 1]).is_err());
        assert!(unwrap_blob(&[blob.clone(), vec![0]].concat()).is_err());
        assert!(unwrap_blob(&[0, 2, 0xff, 0xff, 0, 0]).is_err());
    }

    #[test]
    fn pad_left_pads_and_trims() {
        assert_eq!(pad(&[1, 2], 4), vec![0, 0, 1, 2]);
        assert_eq!(pad(&[0, 1, 2], 2), vec![1, 2]);
    }
}
