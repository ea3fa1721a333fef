//! swtpm tests of the TPM's state: PCRs, quotes, NV indices, random bytes, and that keys,
//! reconnections and other clients' leftovers do not exhaust the object slots.

use super::*;

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
