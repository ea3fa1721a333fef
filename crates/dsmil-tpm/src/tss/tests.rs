#![allow(clippy::unwrap_used)]
//! Tests against a real swtpm: each test starts its own ([`crate::swtpm`]; swtpm has three
//! object slots and no resource manager, so tests sharing one would collide). Without the
//! `swtpm` binary a test is skipped, unless `DSMIL_REQUIRE_SERVICES=1`.

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
    assert!(matches!(err, BackendError::Transport(_)), "{err:?}");
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
        matches!(err, BackendError::InvalidInput(ref m) if m.contains("RsassaSha256")),
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

#[test]
fn pcr_extend_hashes_the_old_value_with_the_digest() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let before = b.pcr_read(&sel(&[16])).unwrap();
    assert_eq!(before.len(), 1);
    let d = Digest::new(HashAlgorithm::Sha256, Sha256::digest(b"event").to_vec()).unwrap();
    b.pcr_extend(16, &d).unwrap();
    let after = b.pcr_read(&sel(&[16])).unwrap();
    let mut h = Sha256::new();
    h.update(before[0].1.as_bytes());
    h.update(d.as_bytes());
    assert_eq!(after[0].1.as_bytes(), h.finalize().as_slice());
    assert!(matches!(
        b.pcr_extend(24, &d),
        Err(BackendError::InvalidInput(_))
    ));

    // More than 8 PCRs take several TPM2_PCR_Read calls.
    let all: Vec<u32> = (0..24).collect();
    let values = b.pcr_read(&sel(&all)).unwrap();
    assert_eq!(
        values
            .iter()
            .map(|(i, _)| u32::from(*i))
            .collect::<Vec<_>>(),
        all
    );
    assert_eq!(values[16], after[0]);
}

#[test]
fn quotes_verify_offline_and_with_tpm2_checkquote() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let ak = b.create_attestation_key().unwrap();
    let d = Digest::new(HashAlgorithm::Sha256, vec![7; 32]).unwrap();
    b.pcr_extend(16, &d).unwrap();
    let selection = sel(&[0, 1, 7, 16]);
    let nonce = b.get_random(20).unwrap();
    let quote = b.quote(&ak, &selection, &nonce).unwrap();
    assert_eq!(quote.pcr_values, b.pcr_read(&selection).unwrap());

    // What Quote::verify checks, with the signer compared to the AK's *qualified* name.
    let attest = wire::QuoteAttest::parse(&quote.attest).unwrap();
    let point = ak.public.ecc_point().unwrap();
    let wire::TpmtSignature::Ecdsa { r, s } = wire::TpmtSignature::parse(&quote.signature).unwrap()
    else {
        panic!("not ECDSA");
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(&quote.attest, &[r, s].concat())
        .unwrap();
    let name = wire::object_name(&wire::ecc_p256_public(wire::AK_ATTRIBUTES, &point));
    let parent = b.parent_qualified_name().unwrap();
    assert_eq!(
        attest.qualified_signer,
        crate::wire::qualified_name(&parent, &name)
    );
    assert_eq!(attest.extra_data, nonce);
    assert_eq!(
        attest.selection,
        vec![(wire::ALG_SHA256, vec![0x83, 0, 0x01])]
    );
    assert_eq!(attest.pcr_digest, wire::pcr_digest(&quote.pcr_values));

    // Qualifying data is at most 64 bytes.
    let err = b.quote(&ak, &selection, &[0; 65]).unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)), "{err:?}");
    // The AK does not sign arbitrary data.
    let err = b
        .sign(&ak, SignatureScheme::EcdsaP256Sha256, b"x")
        .unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)), "{err:?}");

    if !binary_present("tpm2_checkquote") {
        assert!(
            !required(),
            "tpm2_checkquote is not installed but {REQUIRE_VAR}=1"
        );
        eprintln!("skipping the tpm2_checkquote part: tpm2-tools is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    quote.write_tpm2_tools_files(dir.path()).unwrap();
    let check = |dir: &Path, nonce: &[u8]| {
        Command::new("tpm2_checkquote")
            .current_dir(dir)
            .args(["-u", "ak.pub.pem", "-m", "quote.msg", "-s", "quote.sig"])
            .args(["-f", "quote.pcrs", "-g", "sha256", "-q"])
            .arg(dsmil_core::hex::encode(nonce))
            .output()
            .unwrap()
    };
    let out = check(dir.path(), &nonce);
    assert!(
        out.status.success(),
        "tpm2_checkquote failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!check(dir.path(), b"other").status.success());
}

#[test]
fn nv_indexes_define_write_read_and_undefine() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let index = 0x0150_0001;
    let spec = NvSpec {
        index,
        size: 64,
        attributes: NvAttributes::owner_rw(),
        auth: None,
    };
    b.nv_define(&spec).unwrap();
    assert_eq!(
        rc(&b.nv_define(&spec).unwrap_err()),
        TpmResultCode::NvDefined
    );
    b.nv_write(index, 10, b"hello", None).unwrap();
    assert_eq!(b.nv_read(index, 10, 5, None).unwrap(), b"hello");
    assert_eq!(b.nv_read(index, 8, 4, None).unwrap(), b"\xff\xffhe");
    let err = b.nv_write(index, 60, b"too long", None).unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::NvRange, "{err}");
    let err = b.nv_read(index, 60, 8, None).unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::NvRange, "{err}");
    b.nv_undefine(index).unwrap();
    let err = b.nv_read(index, 0, 1, None).unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::Handle, "{err}");

    // Larger than one NV buffer: written and read in chunks.
    let big = NvSpec {
        index: index + 1,
        size: 2048,
        ..spec.clone()
    };
    b.nv_define(&big).unwrap();
    let data: Vec<u8> = (0..2048u32).map(|i| (i % 253) as u8).collect();
    b.nv_write(big.index, 0, &data, None).unwrap();
    assert_eq!(b.nv_read(big.index, 0, 2048, None).unwrap(), data);
    assert_eq!(
        b.nv_read(big.index, 1000, 100, None).unwrap(),
        &data[1000..1100]
    );
    b.nv_undefine(big.index).unwrap();

    let bad = NvSpec {
        index: 0x0200_0000,
        ..spec.clone()
    };
    assert!(matches!(
        b.nv_define(&bad),
        Err(BackendError::InvalidInput(_))
    ));
    assert!(matches!(
        b.nv_write(0x42, 0, b"x", None),
        Err(BackendError::InvalidInput(_))
    ));
}

#[test]
fn nv_write_once_index_locks_after_the_first_write() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let key = b.create_key(KeyTemplate::EccP256Signing).unwrap();
    let index = 0x0150_0010;
    b.nv_define(&NvSpec {
        index,
        size: 16,
        attributes: NvAttributes {
            write_once: true,
            ..NvAttributes::owner_rw()
        },
        auth: None,
    })
    .unwrap();
    b.nv_write(index, 0, b"serial-0001", None).unwrap();
    let err = b.nv_write(index, 0, b"serial-0002", None).unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::NvLocked, "{err}");
    assert_eq!(b.nv_read(index, 0, 11, None).unwrap(), b"serial-0001");
    // The reconnect behind the write lock kept the backend usable, keys included.
    let sig = b
        .sign(&key, SignatureScheme::EcdsaP256Sha256, b"m")
        .unwrap();
    assert!(
        b.verify(&key, SignatureScheme::EcdsaP256Sha256, b"m", &sig)
            .unwrap()
    );
    b.nv_undefine(index).unwrap();
}

#[test]
fn nv_index_auth_guards_its_own_reads_and_writes() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let index = 0x0150_0020;
    b.nv_define(&NvSpec {
        index,
        size: 32,
        attributes: NvAttributes {
            auth_write: true,
            auth_read: true,
            no_da: true,
            ..NvAttributes::default()
        },
        auth: Some(b"nv-secret".to_vec()),
    })
    .unwrap();
    b.nv_write(index, 0, b"guarded", Some(b"nv-secret"))
        .unwrap();
    assert_eq!(
        b.nv_read(index, 0, 7, Some(b"nv-secret")).unwrap(),
        b"guarded"
    );
    let err = b.nv_read(index, 0, 7, Some(b"wrong")).unwrap_err();
    assert!(
        matches!(rc(&err), TpmResultCode::AuthFail | TpmResultCode::BadAuth),
        "{err}"
    );
    // Owner authorisation is not enough for an index without owner_read.
    assert!(b.nv_read(index, 0, 7, None).is_err());
    b.nv_undefine(index).unwrap();
}

#[test]
fn get_random_loops_past_the_per_command_limit() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let r = b.get_random(100).unwrap();
    assert_eq!(r.len(), 100);
    assert!(r.iter().any(|&x| x != 0));
    assert_ne!(r, b.get_random(100).unwrap());
    assert!(b.get_random(0).unwrap().is_empty());
}

#[test]
fn twenty_keys_do_not_exhaust_the_object_slots() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let scheme = SignatureScheme::EcdsaP256Sha256;
    let keys: Vec<_> = (0..20)
        .map(|_| b.create_key(KeyTemplate::EccP256Signing).unwrap())
        .collect();
    for round in 0..2 {
        for (i, key) in keys.iter().enumerate() {
            let msg = format!("message {round}/{i}");
            let sig = b.sign(key, scheme, msg.as_bytes()).unwrap();
            assert!(b.verify(key, scheme, msg.as_bytes(), &sig).unwrap());
        }
    }
    // Sealing (a temporary object) still has a slot next to the cached key.
    let blob = b.seal(b"s", &SealPolicy::default()).unwrap();
    assert_eq!(b.unseal(&blob, None).unwrap(), b"s");
}

#[test]
fn key_blobs_load_again_after_reconnecting() {
    let tpm = swtpm!();
    let key = {
        let mut b = tpm.backend();
        b.create_key(KeyTemplate::EccP256Signing).unwrap()
    };
    let mut b = tpm.backend();
    let sig = b
        .sign(&key, SignatureScheme::EcdsaP256Sha256, b"later")
        .unwrap();
    assert!(
        b.verify(&key, SignatureScheme::EcdsaP256Sha256, b"later", &sig)
            .unwrap()
    );
    let mut garbage = key.clone();
    garbage.wrapped.truncate(10);
    assert!(matches!(
        b.sign(&garbage, SignatureScheme::EcdsaP256Sha256, b"x"),
        Err(BackendError::InvalidInput(_))
    ));
}

#[test]
fn connect_flushes_objects_left_by_other_clients() {
    let tpm = swtpm!();
    if !binary_present("tpm2_createprimary") {
        assert!(
            !required(),
            "tpm2-tools is not installed but {REQUIRE_VAR}=1"
        );
        eprintln!("skipping: tpm2-tools is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Without a resource manager the primaries tpm2-tools creates stay loaded: fill all slots.
    for i in 0..3 {
        let out = Command::new("tpm2_createprimary")
            .args(["-C", "o", "-c"])
            .arg(dir.path().join(format!("p{i}.ctx")))
            .args(["-T", &tpm.tcti()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut b = tpm.backend();
    let key = b.create_key(KeyTemplate::EccP256Signing).unwrap();
    b.sign(&key, SignatureScheme::EcdsaP256Sha256, b"x")
        .unwrap();
}

/// `Quote::verify` compares `qualifiedSigner` with the AK's name, but a TPM writes the AK's
/// qualified name there (`SHA-256(parent qualified name || name)`, asserted in
/// `quotes_verify_offline_and_with_tpm2_checkquote`), so it answers `SignerMismatch` for every
/// real TPM quote until `Quote` carries the parent's qualified name (see
/// `TssBackend::parent_qualified_name`).
#[test]
fn quote_verify_accepts_tpm_quotes() {
    let tpm = swtpm!();
    let mut b = tpm.backend();
    let ak = b.create_attestation_key().unwrap();
    let selection = sel(&[0, 1, 7, 16]);
    let quote = b.quote(&ak, &selection, b"nonce").unwrap();
    let attest = quote.verify(b"nonce").unwrap();
    assert_eq!(attest.extra_data, b"nonce");
    assert_eq!(quote.verify(b"other nonce"), Err(QuoteError::NonceMismatch));
    let mut forged = quote.clone();
    forged.pcr_values[3].1 = Digest::new(HashAlgorithm::Sha256, vec![1; 32]).unwrap();
    assert_eq!(forged.verify(b"nonce"), Err(QuoteError::PcrDigestMismatch));
}
