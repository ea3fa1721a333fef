#![allow(clippy::unwrap_used)]
//! Tests against a real swtpm: each test starts its own ([`crate::swtpm`]; swtpm has three
//! object slots and no resource manager, so tests sharing one would collide). Without the
//! `swtpm` binary a test is skipped, unless `DSMIL_REQUIRE_SERVICES=1`.
//!
//! Here: capabilities, keys, signatures, encryption and sealing; [`state`]: PCRs, quotes, NV
//! indices, random bytes and the TPM's object slots.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::values::{
    Digest, EncryptionScheme, HashAlgorithm, KeyTemplate, NvAttributes, PcrSelection, TpmAlgorithm,
};
use dsmil_core::SignatureScheme;
use dsmil_core::testenv::REQUIRE_VAR;
use dsmil_core::tpm::TpmResultCode;
use sha2::{Digest as _, Sha256};

use super::TssBackend;
use crate::backend::TpmBackend;
use crate::error::BackendError;
use crate::quote::QuoteError;
use crate::swtpm::{self, Swtpm};
use crate::types::{KeyPublic, NvSpec, SealPolicy};
use crate::{der, wire};

fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v.trim() == "1")
}

fn binary_present(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A private swtpm (with its state directory) for one test.
struct Tpm {
    swtpm: Swtpm,
    _dir: tempfile::TempDir,
}

impl Tpm {
    /// Starts a swtpm, or returns `None` (test skipped) when the binary is missing.
    fn start() -> Option<Tpm> {
        if !swtpm::available() {
            assert!(
                !required(),
                "swtpm is not installed but {REQUIRE_VAR}=1; run `cargo xtask services up`"
            );
            eprintln!("skipped: swtpm is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let swtpm = Swtpm::spawn(&dir.path().join("swtpm")).unwrap();
        Some(Tpm { swtpm, _dir: dir })
    }

    fn tcti(&self) -> String {
        self.swtpm.tcti()
    }

    fn backend(&self) -> TssBackend {
        TssBackend::connect(&self.tcti()).unwrap()
    }
}

macro_rules! swtpm {
    () => {
        match Tpm::start() {
            Some(tpm) => tpm,
            None => return,
        }
    };
}

fn sel(pcrs: &[u32]) -> PcrSelection {
    PcrSelection::new(HashAlgorithm::Sha256, pcrs.iter().copied()).unwrap()
}

fn rc(err: &BackendError) -> TpmResultCode {
    match err {
        BackendError::Tpm { rc, .. } => *rc,
        other => panic!("expected a TPM error, got {other:?}"),
    }
}

#[test]
fn capabilities_describe_the_swtpm() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    assert_eq!(b.name(), "tss");
    let caps = b.capabilities().unwrap();
    assert_eq!(caps.backend, "tss");
    assert!(!caps.hardware_rooted);
    assert_eq!(caps.location, tpm.tcti());
    assert_eq!(caps.manufacturer.len(), 4);
    assert!(caps.manufacturer.starts_with("IBM"), "{caps:?}");
    assert!(
        !caps.vendor.is_empty() && !caps.vendor.contains('\0'),
        "{caps:?}"
    );
    assert_eq!(caps.firmware_version.split('.').count(), 4, "{caps:?}");
    for alg in [
        TpmAlgorithm::Rsa,
        TpmAlgorithm::Ecc,
        TpmAlgorithm::Aes,
        TpmAlgorithm::Sha256,
        TpmAlgorithm::Ecdsa,
        TpmAlgorithm::Oaep,
        TpmAlgorithm::Cfb,
        TpmAlgorithm::Keyedhash,
    ] {
        assert!(caps.algorithms.contains(&alg), "{alg:?} missing: {caps:?}");
    }
    assert!(caps.pcr_banks.contains(&HashAlgorithm::Sha256), "{caps:?}");
    assert!(caps.max_nv_buffer >= 512, "{caps:?}");
    assert!(caps.max_nv_index_size >= 1024, "{caps:?}");
}

#[test]
fn connect_rejects_what_is_not_a_tcti() {
    let err = TssBackend::connect("carrier-pigeon:fast").unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)), "{err:?}");
    // Nothing listens on port 1.
    let err = TssBackend::connect("swtpm:host=127.0.0.1,port=1").unwrap_err();
    assert!(matches!(err, BackendError::Transport { .. }), "{err:?}");
}

#[test]
fn every_template_creates_a_key() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    for template in [
        KeyTemplate::EccP256Signing,
        KeyTemplate::Rsa2048Signing,
        KeyTemplate::Rsa2048Decryption,
        KeyTemplate::Aes256,
        KeyTemplate::StorageParent,
    ] {
        let key = b.create_key(template).unwrap();
        assert_eq!(key.template, template);
        match (&template, &key.public) {
            (
                KeyTemplate::EccP256Signing | KeyTemplate::StorageParent,
                KeyPublic::EccP256 { point },
            ) => {
                assert_eq!(point.len(), 65);
                assert_eq!(point[0], 4);
            }
            (
                KeyTemplate::Rsa2048Signing | KeyTemplate::Rsa2048Decryption,
                KeyPublic::Rsa { modulus, exponent },
            ) => {
                assert_eq!(modulus.len(), 256);
                assert_eq!(*exponent, 65537);
            }
            (KeyTemplate::Aes256, KeyPublic::Symmetric) => {}
            other => panic!("unexpected public half {other:?}"),
        }
        assert!(!key.wrapped.is_empty());
    }
}

#[test]
fn ecdsa_signatures_verify_on_the_tpm_and_with_ring() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let key = b.create_key(KeyTemplate::EccP256Signing).unwrap();
    let scheme = SignatureScheme::EcdsaP256Sha256;
    let sig = b.sign(&key, scheme, b"attack at dawn").unwrap();
    assert!(der::ecdsa_fixed(&sig).is_some());
    assert!(b.verify(&key, scheme, b"attack at dawn", &sig).unwrap());
    assert!(!b.verify(&key, scheme, b"attack at dusk", &sig).unwrap());
    assert!(
        !b.verify(&key, scheme, b"attack at dawn", b"not DER")
            .unwrap()
    );
    let (r, mut s) = der::ecdsa_fixed(&sig).unwrap();
    s[31] ^= 1;
    assert!(
        !b.verify(&key, scheme, b"attack at dawn", &der::ecdsa_der(&r, &s))
            .unwrap()
    );

    let point = key.public.ecc_point().unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(b"attack at dawn", &sig)
        .unwrap();

    let err = b
        .sign(&key, SignatureScheme::RsassaSha256, b"x")
        .unwrap_err();
    assert!(
        matches!(err, BackendError::InvalidInput(ref m) if m.message().contains("RsassaSha256")),
        "{err:?}"
    );
    let err = b.sign(&key, SignatureScheme::HmacSha256, b"x").unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)), "{err:?}");
}

#[test]
fn rsa_signatures_verify_on_the_tpm_and_with_ring() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let key = b.create_key(KeyTemplate::Rsa2048Signing).unwrap();
    let KeyPublic::Rsa { modulus, exponent } = &key.public else {
        panic!("not RSA");
    };
    let pkcs1 = der::rsa_public_key(modulus, *exponent);
    for (scheme, ring_alg) in [
        (
            SignatureScheme::RsassaSha256,
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        ),
        (
            SignatureScheme::RsapssSha256,
            &ring::signature::RSA_PSS_2048_8192_SHA256,
        ),
    ] {
        let sig = b.sign(&key, scheme, b"hello").unwrap();
        assert_eq!(sig.len(), 256);
        assert!(
            b.verify(&key, scheme, b"hello", &sig).unwrap(),
            "{scheme:?}"
        );
        assert!(
            !b.verify(&key, scheme, b"hellO", &sig).unwrap(),
            "{scheme:?}"
        );
        assert!(
            !b.verify(&key, scheme, b"hello", &sig[1..]).unwrap(),
            "{scheme:?}"
        );
        ring::signature::UnparsedPublicKey::new(ring_alg, &pkcs1)
            .verify(b"hello", &sig)
            .unwrap();
    }
    let err = b
        .sign(&key, SignatureScheme::EcdsaP256Sha256, b"x")
        .unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)), "{err:?}");
}

#[test]
fn aes_cfb_round_trips_in_chunks() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let key = b.create_key(KeyTemplate::Aes256).unwrap();
    let scheme = EncryptionScheme::Aes256Cfb;
    let plaintext: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let c1 = b.encrypt(&key, scheme, &plaintext).unwrap();
    let c2 = b.encrypt(&key, scheme, &plaintext).unwrap();
    assert_eq!(c1.len(), 16 + plaintext.len());
    assert_ne!(c1, c2, "fresh IVs");
    assert_ne!(&c1[16..], &plaintext[..]);
    assert_eq!(b.decrypt(&key, scheme, &c1).unwrap(), plaintext);
    assert_eq!(b.decrypt(&key, scheme, &c2).unwrap(), plaintext);
    // CFB is a stream mode: a prefix of the ciphertext decrypts to a prefix of the plaintext,
    // which holds only if the IV was chained across the 1,024-byte chunks the same way.
    assert_eq!(
        b.decrypt(&key, scheme, &c1[..16 + 2000]).unwrap(),
        &plaintext[..2000]
    );
    assert_eq!(b.encrypt(&key, scheme, b"").unwrap().len(), 16);
    let err = b.decrypt(&key, scheme, &[0; 10]).unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)), "{err:?}");
    let err = b
        .encrypt(&key, EncryptionScheme::RsaOaepSha256, b"x")
        .unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)), "{err:?}");
}

#[test]
fn rsa_oaep_round_trips_and_accepts_host_ciphertexts() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let key = b.create_key(KeyTemplate::Rsa2048Decryption).unwrap();
    let scheme = EncryptionScheme::RsaOaepSha256;
    let c = b.encrypt(&key, scheme, b"session key").unwrap();
    assert_eq!(c.len(), 256);
    assert_eq!(b.decrypt(&key, scheme, &c).unwrap(), b"session key");

    // Encrypted on the host with aws-lc-rs (OAEP, SHA-256, MGF1-SHA-256, empty label).
    use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
    let public = OaepPublicEncryptingKey::new(
        PublicEncryptingKey::from_der(&key.public.spki_der().unwrap()).unwrap(),
    )
    .unwrap();
    let mut out = vec![0u8; public.ciphertext_size()];
    let host = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, b"from the host", &mut out, None)
        .unwrap()
        .to_vec();
    assert_eq!(b.decrypt(&key, scheme, &host).unwrap(), b"from the host");

    let err = b.encrypt(&key, scheme, &[0; 191]).unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)), "{err:?}");
    let err = b.decrypt(&key, scheme, &c[1..]).unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)), "{err:?}");
}

#[test]
fn seal_without_policy_round_trips() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let blob = b.seal(b"top secret", &SealPolicy::default()).unwrap();
    assert_eq!(blob.backend, "tss");
    assert!(!blob.password_required);
    assert_eq!(b.unseal(&blob, None).unwrap(), b"top secret");
    let err = b.seal(&[0; 129], &SealPolicy::default()).unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)), "{err:?}");
    let mut other = blob.clone();
    other.backend = "soft".into();
    assert!(matches!(
        b.unseal(&other, None),
        Err(BackendError::InvalidInput(_))
    ));
}

#[test]
fn sealed_to_a_pcr_unseals_until_the_pcr_changes() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let policy = SealPolicy {
        pcrs: Some(sel(&[16])),
        password: None,
    };
    let blob = b.seal(&[42; 128], &policy).unwrap();
    let values = b.pcr_read(&sel(&[16])).unwrap();
    let expected = wire::PolicyDigest::default().pcr(&sel(&[16]), &wire::pcr_digest(&values));
    assert_eq!(blob.policy_digest, expected.0.to_vec());
    assert_eq!(b.unseal(&blob, None).unwrap(), vec![42; 128]);

    let d = Digest::new(HashAlgorithm::Sha256, vec![1; 32]).unwrap();
    b.pcr_extend(16, &d).unwrap();
    let err = b.unseal(&blob, None).unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::PolicyFail, "{err}");
    // The failure left no object or session behind.
    assert_eq!(
        b.unseal(&blob, None).map_err(|e| rc(&e)),
        Err(TpmResultCode::PolicyFail)
    );
    let blob2 = b.seal(b"again", &policy).unwrap();
    assert_eq!(b.unseal(&blob2, None).unwrap(), b"again");
}

#[test]
fn sealed_with_a_password_needs_it() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    for pcrs in [None, Some(sel(&[16, 23]))] {
        let policy = SealPolicy {
            pcrs,
            password: Some(b"hunter2".to_vec()),
        };
        let blob = b.seal(b"pin", &policy).unwrap();
        assert!(blob.password_required);
        assert_eq!(b.unseal(&blob, Some(b"hunter2")).unwrap(), b"pin");
        let err = b.unseal(&blob, Some(b"hunter3")).unwrap_err();
        assert!(
            matches!(rc(&err), TpmResultCode::AuthFail | TpmResultCode::BadAuth),
            "{err}"
        );
    }
    let too_long = SealPolicy {
        pcrs: None,
        password: Some(vec![b'x'; 33]),
    };
    assert!(matches!(
        b.seal(b"x", &too_long),
        Err(BackendError::InvalidInput(_))
    ));
}

mod state;
