//! Multi-key AES-256, each test once per forced path (portable, AES-NI, VAES, and the AVX2 and
//! AVX-512 constructors' choices): the backend each path selects, FIPS 197 C.3 and SP 800-38A
//! F.5.5/F.5.6 vectors, property tests against the portable backend and RustCrypto's `aes`
//! (ECB) and `aes` + `ctr` (`Ctr128BE`) over random keys, counter blocks (carries across 64 and
//! 128 bits included) and per-stream lengths, and the count and length errors.

use aes::Aes256;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use dsmil_accel::crypto::aes::{Aes256x16, AesBackend, AesError, Block, CtrStream, MAX_KEYS};
use dsmil_accel::{CryptoExtension, Platform};
use proptest::prelude::*;

use crate::common::{bytes, hex, key_of, paths};

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

fn block_of(seed: u64) -> Block {
    bytes(16, seed ^ 0x5555).try_into().unwrap()
}

/// The expected backend for `p` on this machine, worked out from the CPU's features and the
/// extensions `p` was given.
#[cfg(target_arch = "x86_64")]
fn expected_backend(p: Platform) -> AesBackend {
    use dsmil_core::KernelPath;
    let aesni = p.has(CryptoExtension::AesNi) && std::arch::is_x86_feature_detected!("aes");
    let vaes = aesni
        && p.has(CryptoExtension::Vaes)
        && p.path() == KernelPath::Avx512
        && std::arch::is_x86_feature_detected!("vaes")
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw");
    if vaes {
        AesBackend::Vaes
    } else if aesni {
        AesBackend::AesNi
    } else {
        AesBackend::Portable
    }
}

#[cfg(target_arch = "x86_64")]
per_path!(
    each_path_runs_the_expected_backend,
    [portable, aes_ni, avx2, avx512, vaes],
    |p| {
        let aes = Aes256x16::new(p, &[[0; 32]]).unwrap();
        assert_eq!(aes.backend(), expected_backend(p), "{p}");
        assert_eq!(aes.keys(), 1);
        assert!(
            !format!("{aes:?}").contains("enc"),
            "Debug must not show keys"
        );
    }
);

/// The named paths reach the backend they are named after, and turning an extension off
/// really turns it off.
#[test]
fn forced_paths_reach_their_backends() {
    assert_eq!(
        AesBackend::select(paths::portable().unwrap()),
        AesBackend::Portable
    );
    if let Some(p) = paths::aes_ni() {
        assert_eq!(AesBackend::select(p), AesBackend::AesNi);
        assert_eq!(
            AesBackend::select(p.without(CryptoExtension::AesNi)),
            AesBackend::Portable
        );
    }
    if let Some(p) = paths::vaes() {
        assert_eq!(AesBackend::select(p), AesBackend::Vaes);
        assert_eq!(
            AesBackend::select(p.without(CryptoExtension::Vaes)),
            AesBackend::AesNi
        );
        assert_eq!(
            AesBackend::select(p.without(CryptoExtension::AesNi)),
            AesBackend::Portable
        );
    }
}

per_path!(
    fips197_c3_in_every_lane,
    [portable, aes_ni, avx2, avx512, vaes],
    |p| {
        let key: [u8; 32] = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .try_into()
            .unwrap();
        let plain: Block = hex("00112233445566778899aabbccddeeff").try_into().unwrap();
        let cipher: Block = hex("8ea2b7ca516745bfeafc49904b496089").try_into().unwrap();
        let one = Aes256x16::new(p, &[key]).unwrap();
        let mut b = [plain];
        one.encrypt_blocks(&mut b).unwrap();
        assert_eq!(b, [cipher], "{p} encrypt");
        one.decrypt_blocks(&mut b).unwrap();
        assert_eq!(b, [plain], "{p} decrypt");
        // The vector's key in lane `lane` of 16, random keys and blocks elsewhere.
        for lane in 0..MAX_KEYS {
            let keys: Vec<[u8; 32]> = (0..MAX_KEYS)
                .map(|i| if i == lane { key } else { key_of(i as u64) })
                .collect();
            let aes = Aes256x16::new(p, &keys).unwrap();
            let mut blocks: Vec<Block> = (0..MAX_KEYS).map(|i| block_of(i as u64)).collect();
            blocks[lane] = plain;
            aes.encrypt_blocks(&mut blocks).unwrap();
            assert_eq!(blocks[lane], cipher, "{p} lane {lane} encrypt");
            blocks[lane] = cipher;
            aes.decrypt_blocks(&mut blocks).unwrap();
            assert_eq!(blocks[lane], plain, "{p} lane {lane} decrypt");
        }
    }
);

per_path!(
    sp800_38a_f5_5_and_f5_6_ctr_aes256,
    [portable, aes_ni, avx2, avx512, vaes],
    |p| {
        let key: [u8; 32] = hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
            .try_into()
            .unwrap();
        let counter: Block = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").try_into().unwrap();
        let plain = hex(
            "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
         30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
        );
        let cipher = hex(
            "601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5
         2b0930daa23de94ce87017ba2d84988d dfc9c58db67aada613c2dd08457941a6",
        );
        let aes = Aes256x16::new(p, &[key; 16]).unwrap();
        // F.5.5 (encrypt) in every lane, with prefixes of the message so lanes differ.
        let mut bufs: Vec<Vec<u8>> = (0..16).map(|i| plain[..64 - i].to_vec()).collect();
        let mut streams: Vec<_> = bufs
            .iter_mut()
            .map(|b| CtrStream::new(counter, b))
            .collect();
        aes.ctr_xor_many(&mut streams).unwrap();
        drop(streams);
        for (i, b) in bufs.iter_mut().enumerate() {
            assert_eq!(*b, cipher[..64 - i], "{p} F.5.5 lane {i}");
        }
        // F.5.6 (decrypt) is the same operation on the ciphertext.
        let mut streams: Vec<_> = bufs
            .iter_mut()
            .map(|b| CtrStream::new(counter, b))
            .collect();
        aes.ctr_xor_many(&mut streams).unwrap();
        drop(streams);
        for (i, b) in bufs.iter().enumerate() {
            assert_eq!(*b, plain[..64 - i], "{p} F.5.6 lane {i}");
        }
    }
);

const LENGTHS: [usize; 11] = [0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128];

/// 1–16 per-stream lengths: the listed ones plus large ones (4000–6000), shuffled.
fn stream_lengths() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        prop::collection::vec(4000usize..6000, 5)
            .prop_map(|large| LENGTHS.iter().copied().chain(large).collect::<Vec<_>>())
            .prop_shuffle(),
        prop::collection::vec(
            prop_oneof![
                prop::sample::select(LENGTHS.to_vec()),
                129usize..1100,
                4000usize..6000
            ],
            1..=16,
        ),
    ]
}

/// Counter blocks: random, or with the low 64 bits (or all 128) about to wrap.
fn counter_block() -> impl Strategy<Value = Block> {
    prop_oneof![
        any::<[u8; 16]>(),
        (any::<u64>(), 0u64..400).prop_map(|(hi, back)| {
            ((u128::from(hi) << 64) | u128::from(u64::MAX - back)).to_be_bytes()
        }),
        (0u128..400).prop_map(|back| (u128::MAX - back).to_be_bytes()),
    ]
}

/// Cases per property test and path.
const CASES: u32 = 64;

per_path!(
    ecb_matches_the_portable_backend_and_rustcrypto,
    [portable, aes_ni, avx2, avx512, vaes],
    |p| {
        proptest!(ProptestConfig::with_cases(CASES), |(n in 1usize..=16, seed in any::<u64>())| {
            let keys: Vec<[u8; 32]> = (0..n).map(|i| key_of(seed ^ (i as u64) << 40)).collect();
            let plain: Vec<Block> = (0..n).map(|i| block_of(seed.wrapping_add(i as u64))).collect();
            let mut want = plain.clone();
            for (k, b) in keys.iter().zip(&mut want) {
                Aes256::new(k.into()).encrypt_block(b.into());
            }
            let aes = Aes256x16::new(p, &keys).unwrap();
            let reference = Aes256x16::new(Platform::portable(), &keys).unwrap();
            let mut blocks = plain.clone();
            aes.encrypt_blocks(&mut blocks).unwrap();
            prop_assert_eq!(&blocks, &want, "{} encrypt, {} keys", p, n);
            let mut portable = plain.clone();
            reference.encrypt_blocks(&mut portable).unwrap();
            prop_assert_eq!(&blocks, &portable, "{} encrypt vs portable", p);
            aes.decrypt_blocks(&mut blocks).unwrap();
            prop_assert_eq!(&blocks, &plain, "{} decrypt, {} keys", p, n);
            // Decryption of random blocks against RustCrypto too (not only the round trip).
            let mut want_dec = plain.clone();
            for (k, b) in keys.iter().zip(&mut want_dec) {
                Aes256::new(k.into()).decrypt_block(b.into());
            }
            let mut blocks = plain.clone();
            aes.decrypt_blocks(&mut blocks).unwrap();
            prop_assert_eq!(&blocks, &want_dec, "{} decrypt vs aes", p);
        });
    }
);

per_path!(
    ctr_matches_the_portable_backend_and_rustcrypto,
    [portable, aes_ni, avx2, avx512, vaes],
    |p| {
        proptest!(ProptestConfig::with_cases(CASES), |(
            lengths in stream_lengths(),
            counters in prop::collection::vec(counter_block(), 16),
            seed in any::<u64>(),
        )| {
            let n = lengths.len();
            let keys: Vec<[u8; 32]> = (0..n).map(|i| key_of(seed ^ (i as u64) << 40)).collect();
            let plain: Vec<Vec<u8>> =
                lengths.iter().enumerate().map(|(i, &l)| bytes(l, seed ^ i as u64)).collect();
            let mut want = plain.clone();
            for i in 0..n {
                Aes256Ctr::new((&keys[i]).into(), (&counters[i]).into()).apply_keystream(&mut want[i]);
            }
            let run = |platform: Platform| {
                let aes = Aes256x16::new(platform, &keys).unwrap();
                let mut bufs = plain.clone();
                let mut streams: Vec<_> = bufs
                    .iter_mut()
                    .enumerate()
                    .map(|(i, b)| CtrStream::new(counters[i], b))
                    .collect();
                aes.ctr_xor_many(&mut streams).unwrap();
                drop(streams);
                bufs
            };
            let got = run(p);
            let portable = run(Platform::portable());
            for i in 0..n {
                prop_assert_eq!(&got[i], &want[i], "{} stream {} of {} (len {})", p, i, n, lengths[i]);
                prop_assert_eq!(&got[i], &portable[i], "{} stream {} vs portable", p, i);
            }
        });
    }
);

per_path!(
    wrong_counts_and_lengths_are_refused,
    [portable, aes_ni, avx2, avx512, vaes],
    |p| {
        assert_eq!(Aes256x16::new(p, &[]).unwrap_err(), AesError::KeyCount(0));
        assert_eq!(
            Aes256x16::new(p, &[[0; 32]; 17]).unwrap_err(),
            AesError::KeyCount(17)
        );
        let short = [0u8; 31];
        let good = [0u8; 32];
        assert_eq!(
            Aes256x16::from_slices(p, &[&good, &short]).unwrap_err(),
            AesError::KeyLength { index: 1, len: 31 }
        );
        assert_eq!(
            Aes256x16::from_slices(p, &[]).unwrap_err(),
            AesError::KeyCount(0)
        );

        let aes = Aes256x16::from_slices(p, &[&good, &good, &good]).unwrap();
        assert_eq!(aes.keys(), 3);
        let mut blocks = [[1u8; 16]; 4];
        let err = aes.encrypt_blocks(&mut blocks).unwrap_err();
        assert_eq!(
            err,
            AesError::CountMismatch {
                what: "blocks",
                got: 4,
                keys: 3
            }
        );
        assert_eq!(
            aes.decrypt_blocks(&mut blocks[..2]).unwrap_err(),
            AesError::CountMismatch {
                what: "blocks",
                got: 2,
                keys: 3
            }
        );
        assert_eq!(blocks, [[1u8; 16]; 4], "{p}: refused call wrote");

        let mut data = [5u8; 40];
        let err = aes
            .ctr_xor_many(&mut [CtrStream::new([0; 16], &mut data)])
            .unwrap_err();
        assert_eq!(
            err,
            AesError::CountMismatch {
                what: "streams",
                got: 1,
                keys: 3
            }
        );
        assert!(err.to_string().contains("1 streams for 3 keys"), "{err}");
        assert_eq!(data, [5u8; 40]);
    }
);

per_path!(
    empty_streams_are_fine,
    [portable, aes_ni, avx2, avx512, vaes],
    |p| {
        let aes = Aes256x16::new(p, &[[3; 32]; 16]).unwrap();
        let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); 16];
        let mut streams: Vec<_> = bufs
            .iter_mut()
            .map(|b| CtrStream::new([0xff; 16], b))
            .collect();
        aes.ctr_xor_many(&mut streams).unwrap();
    }
);
