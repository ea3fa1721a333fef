//! One suite of TPM operation tests, run on the software TPM and (with the `tss` feature) on
//! tss-esapi against a private swtpm per test.

use std::path::Path;
use std::time::Duration;

use dsmil_core::SignatureScheme;
use dsmil_core::ports::Verifier;
use dsmil_core::tpm::TpmResultCode;
use dsmil_tpm::soft_key::P256Verifier;
use dsmil_tpm::values::{Digest, HashAlgorithm, KeyTemplate, NvAttributes, PcrSelection};
use dsmil_tpm::{
    BackendError, KeyPublic, NvSpec, QuoteError, SealPolicy, Tpm, TpmError, TpmOptions,
};
use sha2::{Digest as _, Sha256};

struct Fixture {
    tpm: Tpm,
    dir: tempfile::TempDir,
    #[cfg(feature = "tss")]
    _swtpm: Option<dsmil_tpm::swtpm::Swtpm>,
}

fn soft() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tpm = Tpm::open_soft(&dir.path().join("soft-tpm"), TpmOptions::default()).unwrap();
    Fixture {
        tpm,
        dir,
        #[cfg(feature = "tss")]
        _swtpm: None,
    }
}

/// A tss-esapi TPM on a fresh swtpm, or `None` (skip) when swtpm is not installed and
/// services are not required.
#[cfg(feature = "tss")]
fn tss() -> Option<Fixture> {
    if !dsmil_tpm::swtpm::available() {
        assert!(
            std::env::var(dsmil_core::testenv::REQUIRE_VAR).as_deref() != Ok("1"),
            "swtpm is not installed but {}=1; run `cargo xtask services up`",
            dsmil_core::testenv::REQUIRE_VAR
        );
        eprintln!("skipped: swtpm is not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let swtpm = dsmil_tpm::swtpm::Swtpm::spawn(&dir.path().join("swtpm")).unwrap();
    let tpm = Tpm::open_tss(
        &swtpm.tcti(),
        &dir.path().join("keys"),
        TpmOptions::default(),
    )
    .unwrap();
    Some(Fixture {
        tpm,
        dir,
        _swtpm: Some(swtpm),
    })
}

/// Generates one test per backend for each suite function.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod soft_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let f = super::soft();
                    super::$name(&f).await;
                }
            )*
        }
        #[cfg(feature = "tss")]
        mod tss_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(f) = super::tss() else { return };
                    super::$name(&f).await;
                }
            )*
        }
    };
}

suite!(
    capabilities_describe_the_tpm,
    ecdsa_signatures_verify_on_and_off_the_tpm,
    rsa_signatures_verify_in_both_schemes,
    aes_cfb_round_trips_long_messages,
    rsa_oaep_round_trips,
    seal_then_extend_then_unseal_fails,
    sealed_password_is_checked,
    pcr_extend_is_hash_chaining,
    quotes_verify_offline_and_reject_tampering,
    quotes_verify_with_tpm2_checkquote,
    nv_round_trip_with_offsets_and_typed_errors,
    nv_write_once_and_own_authorisation,
    random_of_any_length,
    keys_are_labelled_and_typed,
    operations_are_measured,
    concurrent_callers_are_served,
);

fn rc(err: &TpmError) -> TpmResultCode {
    err.result_code()
}

fn sel(pcrs: &[u32]) -> PcrSelection {
    PcrSelection::new(HashAlgorithm::Sha256, pcrs.iter().copied()).unwrap()
}

async fn capabilities_describe_the_tpm(f: &Fixture) {
    let caps = f.tpm.query_capabilities().await.unwrap().value;
    assert_eq!(caps.backend, f.tpm.backend_name());
    assert!(
        !caps.hardware_rooted,
        "neither the soft TPM nor swtpm is hardware"
    );
    assert!(caps.pcr_banks.contains(&HashAlgorithm::Sha256));
    for alg in [
        dsmil_tpm::values::TpmAlgorithm::Ecc,
        dsmil_tpm::values::TpmAlgorithm::Rsa,
        dsmil_tpm::values::TpmAlgorithm::Aes,
        dsmil_tpm::values::TpmAlgorithm::Ecdsa,
    ] {
        assert!(caps.algorithms.contains(&alg), "{alg:?} missing: {caps:?}");
    }
    assert!(caps.max_nv_buffer > 0 && caps.max_nv_index_size >= 1024);
    assert_eq!(caps.manufacturer.len(), 4);
}

async fn ecdsa_signatures_verify_on_and_off_the_tpm(f: &Fixture) {
    let key = f
        .tpm
        .create_key("ecc", KeyTemplate::EccP256Signing)
        .await
        .unwrap()
        .value;
    let sig = f.tpm.sign("ecc", b"the message").await.unwrap().value;
    assert_eq!(sig.scheme, SignatureScheme::EcdsaP256Sha256);
    assert!(
        f.tpm
            .verify("ecc", b"the message", &sig)
            .await
            .unwrap()
            .value
    );
    assert!(
        !f.tpm
            .verify("ecc", b"the messagE", &sig)
            .await
            .unwrap()
            .value
    );
    // Offline, with the public key alone.
    let KeyPublic::EccP256 { point } = key.public else {
        panic!("not ECC: {key:?}")
    };
    let offline = P256Verifier::new(point);
    assert!(offline.verify(b"the message", &sig).await.unwrap());
    assert!(!offline.verify(b"other", &sig).await.unwrap());
}

async fn rsa_signatures_verify_in_both_schemes(f: &Fixture) {
    let key = f
        .tpm
        .create_key("rsa", KeyTemplate::Rsa2048Signing)
        .await
        .unwrap()
        .value;
    let KeyPublic::Rsa { modulus, exponent } = &key.public else {
        panic!("not RSA")
    };
    assert_eq!(modulus.len(), 256);
    let pkcs1 =
        dsmil_tpm::der::rsa_public_key(modulus, if *exponent == 0 { 65537 } else { *exponent });
    for (scheme, alg) in [
        (
            SignatureScheme::RsassaSha256,
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        ),
        (
            SignatureScheme::RsapssSha256,
            &ring::signature::RSA_PSS_2048_8192_SHA256,
        ),
    ] {
        let sig = f
            .tpm
            .sign_with("rsa", Some(scheme), b"payload")
            .await
            .unwrap()
            .value;
        assert_eq!(sig.scheme, scheme);
        assert!(
            f.tpm.verify("rsa", b"payload", &sig).await.unwrap().value,
            "{scheme:?}"
        );
        assert!(!f.tpm.verify("rsa", b"payloaD", &sig).await.unwrap().value);
        ring::signature::UnparsedPublicKey::new(alg, &pkcs1)
            .verify(b"payload", &sig.bytes)
            .unwrap_or_else(|_| panic!("{scheme:?} signature does not verify offline"));
    }
    // ECDSA with an RSA key is refused before reaching the TPM.
    let err = f
        .tpm
        .sign_with("rsa", Some(SignatureScheme::EcdsaP256Sha256), b"x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TpmError::Failed {
                source: BackendError::InvalidInput(_),
                ..
            }
        ),
        "{err}"
    );
}

async fn aes_cfb_round_trips_long_messages(f: &Fixture) {
    f.tpm.create_key("aes", KeyTemplate::Aes256).await.unwrap();
    let plain: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let a = f.tpm.encrypt("aes", &plain).await.unwrap().value;
    let b = f.tpm.encrypt("aes", &plain).await.unwrap().value;
    assert_eq!(a.len(), 16 + plain.len());
    assert_ne!(a, b, "a fresh IV per encryption");
    assert_ne!(&a[16..], &plain[..]);
    assert_eq!(f.tpm.decrypt("aes", &a).await.unwrap().value, plain);
    assert_eq!(f.tpm.decrypt("aes", &b).await.unwrap().value, plain);
    assert!(f.tpm.decrypt("aes", &a[..8]).await.is_err(), "no IV");
}

async fn rsa_oaep_round_trips(f: &Fixture) {
    f.tpm
        .create_key("oaep", KeyTemplate::Rsa2048Decryption)
        .await
        .unwrap();
    let c = f
        .tpm
        .encrypt("oaep", b"session key 0123")
        .await
        .unwrap()
        .value;
    assert_eq!(c.len(), 256);
    assert_eq!(
        f.tpm.decrypt("oaep", &c).await.unwrap().value,
        b"session key 0123"
    );
    let mut bad = c.clone();
    bad[100] ^= 1;
    assert!(f.tpm.decrypt("oaep", &bad).await.is_err());
    // An ECC key cannot encrypt.
    f.tpm
        .create_key("ecc", KeyTemplate::EccP256Signing)
        .await
        .unwrap();
    assert!(f.tpm.encrypt("ecc", b"x").await.is_err());
}

async fn seal_then_extend_then_unseal_fails(f: &Fixture) {
    let plain = f
        .tpm
        .seal(b"no policy", SealPolicy::default())
        .await
        .unwrap()
        .value;
    assert_eq!(
        f.tpm.unseal(&plain, None).await.unwrap().value,
        b"no policy"
    );

    let policy = SealPolicy {
        pcrs: Some(sel(&[16])),
        password: None,
    };
    let blob = f.tpm.seal(b"disk key", policy).await.unwrap().value;
    assert_eq!(blob.policy_digest.len(), 32);
    assert_eq!(f.tpm.unseal(&blob, None).await.unwrap().value, b"disk key");
    f.tpm.pcr_extend_data(16, b"intrusion").await.unwrap();
    let err = f.tpm.unseal(&blob, None).await.unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::PolicyFail, "{err}");
    assert_eq!(f.tpm.perf_snapshot().counters.policy_violations, 1);

    let too_long = vec![0u8; 129];
    assert!(f.tpm.seal(&too_long, SealPolicy::default()).await.is_err());
}

async fn sealed_password_is_checked(f: &Fixture) {
    let policy = SealPolicy {
        pcrs: Some(sel(&[0, 7])),
        password: Some(b"hunter2".to_vec()),
    };
    let blob = f.tpm.seal(b"secret", policy).await.unwrap().value;
    assert!(blob.password_required);
    assert_eq!(
        f.tpm.unseal(&blob, Some(b"hunter2")).await.unwrap().value,
        b"secret"
    );
    let err = f.tpm.unseal(&blob, Some(b"hunter3")).await.unwrap_err();
    assert!(
        matches!(rc(&err), TpmResultCode::AuthFail | TpmResultCode::BadAuth),
        "{err}"
    );
    // A blob serialised and read back still opens.
    let json = serde_json::to_string(&blob).unwrap();
    let back: dsmil_tpm::SealedBlob = serde_json::from_str(&json).unwrap();
    assert_eq!(
        f.tpm.unseal(&back, Some(b"hunter2")).await.unwrap().value,
        b"secret"
    );
    assert!(!json.contains("hunter2"));
}

async fn pcr_extend_is_hash_chaining(f: &Fixture) {
    let s = sel(&[16, 17, 23]);
    let before = f.tpm.pcr_read(&s).await.unwrap().value;
    assert_eq!(
        before.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![16, 17, 23]
    );
    assert_eq!(
        before[1].1.as_bytes(),
        &[0xFF; 32],
        "PCR 17 starts at all-ones"
    );
    let measurement = Sha256::digest(b"boot component");
    f.tpm
        .pcr_extend(
            16,
            Digest::new(HashAlgorithm::Sha256, measurement.to_vec()).unwrap(),
        )
        .await
        .unwrap();
    let after = f.tpm.pcr_read(&sel(&[16])).await.unwrap().value;
    let mut h = Sha256::new();
    h.update(before[0].1.as_bytes());
    h.update(measurement);
    assert_eq!(after[0].1.as_bytes(), h.finalize().as_slice());
    // PCR 17 belongs to locality 4 (DRTM).
    let digest = Digest::new(HashAlgorithm::Sha256, vec![1; 32]).unwrap();
    let err = f.tpm.pcr_extend(17, digest).await.unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::Other(0x907), "{err}");
}

async fn quotes_verify_offline_and_reject_tampering(f: &Fixture) {
    f.tpm.create_attestation_key("ak").await.unwrap();
    f.tpm.pcr_extend_data(10, b"measured").await.unwrap();
    let s = sel(&[0, 1, 10]);
    let quote = f.tpm.quote("ak", &s, b"nonce-123").await.unwrap().value;
    let attest = quote.verify(b"nonce-123").unwrap();
    assert_eq!(attest.extra_data, b"nonce-123");
    assert_eq!(
        quote.verify(b"nonce-124").unwrap_err(),
        QuoteError::NonceMismatch
    );
    let mut forged = quote.clone();
    forged.pcr_values[2].1 = Digest::new(HashAlgorithm::Sha256, vec![0; 32]).unwrap();
    assert_eq!(
        forged.verify(b"nonce-123").unwrap_err(),
        QuoteError::PcrDigestMismatch
    );
    let mut forged = quote.clone();
    let last = forged.attest.len() - 1;
    forged.attest[last] ^= 1;
    assert_eq!(
        forged.verify(b"nonce-123").unwrap_err(),
        QuoteError::BadSignature
    );
    // Another AK's public key does not verify it.
    f.tpm.create_attestation_key("ak2").await.unwrap();
    let mut forged = quote.clone();
    forged.ak_public = f.tpm.public_key("ak2").await.unwrap();
    assert_eq!(
        forged.verify(b"nonce-123").unwrap_err(),
        QuoteError::BadSignature
    );
    assert!(
        f.tpm.quote("ak", &s, &[0; 65]).await.is_err(),
        "nonce > 64 bytes"
    );
}

async fn quotes_verify_with_tpm2_checkquote(f: &Fixture) {
    if which("tpm2_checkquote").is_none() {
        assert!(
            std::env::var(dsmil_core::testenv::REQUIRE_VAR).as_deref() != Ok("1"),
            "tpm2-tools missing but services are required"
        );
        eprintln!("skipped: tpm2_checkquote is not installed");
        return;
    }
    f.tpm.ensure_attestation_key("ak").await.unwrap();
    f.tpm.pcr_extend_data(12, b"app").await.unwrap();
    let nonce = [0xab, 0xcd, 0xef, 0x01, 0x23];
    let quote = f
        .tpm
        .quote("ak", &sel(&[0, 1, 7, 12]), &nonce)
        .await
        .unwrap()
        .value;
    let out = f.dir.path().join("quote");
    quote.write_tpm2_tools_files(&out).unwrap();
    assert!(
        checkquote(&out, "abcdef0123"),
        "tpm2_checkquote refused the quote"
    );
    assert!(
        !checkquote(&out, "abcdef0124"),
        "tpm2_checkquote accepted a wrong nonce"
    );
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn checkquote(dir: &Path, nonce_hex: &str) -> bool {
    let out = std::process::Command::new("tpm2_checkquote")
        .current_dir(dir)
        .args([
            "-u",
            "ak.pub.pem",
            "-m",
            "quote.msg",
            "-s",
            "quote.sig",
            "-f",
            "quote.pcrs",
        ])
        .args(["-g", "sha256", "-q", nonce_hex])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("tpm2_checkquote: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

async fn nv_round_trip_with_offsets_and_typed_errors(f: &Fixture) {
    let index = 0x0150_0001;
    let spec = NvSpec {
        index,
        size: 64,
        attributes: NvAttributes::owner_rw(),
        auth: None,
    };
    f.tpm.nv_define(spec.clone()).await.unwrap();
    let err = f.tpm.nv_read(index, 0, 4, None).await.unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::NvUninitialized, "{err}");
    f.tpm.nv_write(index, 10, b"hello nv", None).await.unwrap();
    assert_eq!(
        f.tpm.nv_read(index, 10, 8, None).await.unwrap().value,
        b"hello nv"
    );
    f.tpm.nv_write(index, 0, &[7; 64], None).await.unwrap();
    assert_eq!(
        f.tpm.nv_read(index, 60, 4, None).await.unwrap().value,
        vec![7; 4]
    );
    let err = f
        .tpm
        .nv_write(index, 60, b"too long", None)
        .await
        .unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::NvRange, "{err}");
    let err = f.tpm.nv_read(index, 0, 65, None).await.unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::NvRange, "{err}");
    let err = f.tpm.nv_define(spec).await.unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::NvDefined, "{err}");
    f.tpm.nv_undefine(index).await.unwrap();
    let err = f.tpm.nv_read(index, 0, 1, None).await.unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::Handle, "{err}");
    // Out-of-range definitions are refused with a reason.
    let err = f
        .tpm
        .nv_define(NvSpec {
            index: 0x0200_0000,
            size: 8,
            attributes: NvAttributes::owner_rw(),
            auth: None,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("owner range"), "{err}");
    // A large index round-trips over several NV buffers.
    let big = 0x0150_0002;
    f.tpm
        .nv_define(NvSpec {
            index: big,
            size: 2048,
            attributes: NvAttributes::owner_rw(),
            auth: None,
        })
        .await
        .unwrap();
    let data: Vec<u8> = (0..2048u32).map(|i| (i % 253) as u8).collect();
    f.tpm.nv_write(big, 0, &data, None).await.unwrap();
    assert_eq!(f.tpm.nv_read(big, 0, 2048, None).await.unwrap().value, data);
    f.tpm.nv_undefine(big).await.unwrap();
}

async fn nv_write_once_and_own_authorisation(f: &Fixture) {
    let once = 0x0150_0010;
    f.tpm
        .nv_define(NvSpec {
            index: once,
            size: 16,
            attributes: NvAttributes {
                write_once: true,
                ..NvAttributes::owner_rw()
            },
            auth: None,
        })
        .await
        .unwrap();
    f.tpm.nv_write(once, 0, b"first", None).await.unwrap();
    let err = f.tpm.nv_write(once, 0, b"second", None).await.unwrap_err();
    assert_eq!(rc(&err), TpmResultCode::NvLocked, "{err}");
    assert_eq!(
        f.tpm.nv_read(once, 0, 5, None).await.unwrap().value,
        b"first"
    );
    f.tpm.nv_undefine(once).await.unwrap();

    let own = 0x0150_0011;
    f.tpm
        .nv_define(NvSpec {
            index: own,
            size: 16,
            attributes: NvAttributes {
                auth_write: true,
                auth_read: true,
                ..NvAttributes::default()
            },
            auth: Some(b"index-pw".to_vec()),
        })
        .await
        .unwrap();
    f.tpm
        .nv_write(own, 0, b"data", Some(b"index-pw"))
        .await
        .unwrap();
    assert_eq!(
        f.tpm
            .nv_read(own, 0, 4, Some(b"index-pw"))
            .await
            .unwrap()
            .value,
        b"data"
    );
    let err = f
        .tpm
        .nv_write(own, 0, b"evil", Some(b"wrong"))
        .await
        .unwrap_err();
    assert!(
        matches!(rc(&err), TpmResultCode::AuthFail | TpmResultCode::BadAuth),
        "{err}"
    );
    assert!(
        f.tpm.nv_write(own, 0, b"evil", None).await.is_err(),
        "owner may not write"
    );
    f.tpm.nv_undefine(own).await.unwrap();
}

async fn random_of_any_length(f: &Fixture) {
    let a = f.tpm.get_random(100).await.unwrap().value;
    let b = f.tpm.get_random(100).await.unwrap().value;
    assert_eq!(a.len(), 100);
    assert_ne!(a, b);
    assert!(f.tpm.get_random(0).await.unwrap().value.is_empty());
    assert_eq!(f.tpm.get_random(33).await.unwrap().value.len(), 33);
    assert!(f.tpm.get_random((1 << 20) + 1).await.is_err());
}

async fn keys_are_labelled_and_typed(f: &Fixture) {
    f.tpm
        .create_key("k1", KeyTemplate::EccP256Signing)
        .await
        .unwrap();
    let err = f
        .tpm
        .create_key("k1", KeyTemplate::EccP256Signing)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TpmError::Failed {
                source: BackendError::KeyExists(_),
                ..
            }
        ),
        "{err}"
    );
    let err = f.tpm.sign("missing", b"x").await.unwrap_err();
    assert!(
        matches!(
            err,
            TpmError::Failed {
                source: BackendError::UnknownKey(_),
                ..
            }
        ),
        "{err}"
    );
    let err = f
        .tpm
        .create_key("../evil", KeyTemplate::Aes256)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("key label"), "{err}");
    assert!(
        f.tpm.ensure_key("k1", KeyTemplate::Aes256).await.is_err(),
        "wrong template"
    );
    let same = f
        .tpm
        .ensure_key("k1", KeyTemplate::EccP256Signing)
        .await
        .unwrap();
    assert_eq!(same.label, "k1");
    f.tpm
        .create_key("parent", KeyTemplate::StorageParent)
        .await
        .unwrap();
    let labels: Vec<String> = f
        .tpm
        .keys()
        .await
        .unwrap()
        .value
        .into_iter()
        .map(|k| k.label)
        .collect();
    assert_eq!(labels, vec!["k1", "parent"]);
    // A key file holds no private key in the clear: only the wrapped blob.
    let dir = if f.tpm.backend_name() == "soft" {
        f.dir.path().join("soft-tpm/keys")
    } else {
        f.dir.path().join("keys")
    };
    let file = std::fs::read_to_string(dir.join("k1.json")).unwrap();
    assert!(file.contains("wrapped"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("k1.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "key file readable by others");
}

async fn operations_are_measured(f: &Fixture) {
    f.tpm
        .create_key("m", KeyTemplate::EccP256Signing)
        .await
        .unwrap();
    for _ in 0..5 {
        let done = f.tpm.sign("m", b"x").await.unwrap();
        assert!(done.execution_time > Duration::ZERO);
        assert_eq!(done.result_code, TpmResultCode::Success);
    }
    let _ = f
        .tpm
        .unseal(
            &dsmil_tpm::SealedBlob {
                backend: f.tpm.backend_name().into(),
                pcrs: None,
                password_required: false,
                policy_digest: vec![],
                blob: vec![1, 2, 3],
            },
            None,
        )
        .await
        .unwrap_err();
    let snap = f.tpm.perf_snapshot();
    let sign = snap
        .operations
        .iter()
        .find(|o| o.operation == dsmil_core::tpm::TpmOperation::SignEcc256)
        .unwrap();
    assert_eq!(sign.count, 5);
    assert!(sign.p99_us >= sign.p50_us && sign.p50_us > 0);
    assert!(snap.counters.failed_operations >= 1);
    assert_eq!(
        snap.counters.total_operations,
        snap.counters.successful_operations + snap.counters.failed_operations
    );
}

async fn concurrent_callers_are_served(f: &Fixture) {
    f.tpm
        .create_key("c", KeyTemplate::EccP256Signing)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let tpm = f.tpm.clone();
        tasks.push(tokio::spawn(async move {
            let msg = i.to_be_bytes();
            let sig = tpm.sign("c", &msg).await.unwrap().value;
            tpm.verify("c", &msg, &sig).await.unwrap().value
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
}

// Handle behaviour independent of the backend.

#[tokio::test]
async fn a_full_queue_and_a_timeout_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let tpm = Tpm::open_soft(
        dir.path(),
        TpmOptions {
            queue_depth: 1,
            timeout: Duration::from_millis(1),
            bus: None,
        },
    )
    .unwrap();
    // RSA key generation takes far longer than 1 ms.
    let err = tpm
        .create_key("slow", KeyTemplate::Rsa2048Signing)
        .await
        .unwrap_err();
    assert!(matches!(err, TpmError::Timeout { .. }), "{err}");
    assert_eq!(tpm.perf_snapshot().counters.timeout_errors, 1);
    // The worker is still busy with the first key: the queue of 1 fills.
    let mut full = false;
    for _ in 0..3 {
        if let Err(TpmError::QueueFull(1)) =
            tpm.create_key("slow2", KeyTemplate::Rsa2048Signing).await
        {
            full = true;
        }
    }
    assert!(full, "a queue of depth 1 never filled");
}

#[tokio::test]
async fn soft_keys_and_nv_survive_a_restart_but_pcrs_reset() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("soft-tpm");
    let index = 0x0150_0100;
    let (sig, blob) = {
        let tpm = Tpm::open_soft(&state, TpmOptions::default()).unwrap();
        tpm.create_key("persist", KeyTemplate::EccP256Signing)
            .await
            .unwrap();
        tpm.nv_define(NvSpec {
            index,
            size: 8,
            attributes: NvAttributes::owner_rw(),
            auth: None,
        })
        .await
        .unwrap();
        tpm.nv_write(index, 0, b"durable!", None).await.unwrap();
        let blob = tpm
            .seal(
                b"boot secret",
                SealPolicy {
                    pcrs: Some(sel(&[0])),
                    password: None,
                },
            )
            .await
            .unwrap()
            .value;
        tpm.pcr_extend_data(0, b"x").await.unwrap();
        (tpm.sign("persist", b"m").await.unwrap().value, blob)
    };
    let tpm = Tpm::open_soft(&state, TpmOptions::default()).unwrap();
    assert!(tpm.verify("persist", b"m", &sig).await.unwrap().value);
    assert_eq!(
        tpm.nv_read(index, 0, 8, None).await.unwrap().value,
        b"durable!"
    );
    let pcr0 = tpm.pcr_read(&sel(&[0])).await.unwrap().value;
    assert_eq!(pcr0[0].1.as_bytes(), &[0; 32], "PCRs reset like a reboot");
    assert_eq!(tpm.unseal(&blob, None).await.unwrap().value, b"boot secret");
    // Another software TPM (another root key) cannot open it.
    let other = Tpm::open_soft(&dir.path().join("other"), TpmOptions::default()).unwrap();
    assert!(other.unseal(&blob, None).await.is_err());
}
