//! ChaCha20, each test once per forced path (portable, AVX2's choice, AVX-512 ×16): RFC 8439
//! vectors (§2.3.2 block, §2.4.2 encryption, A.2), property tests against the portable path and
//! RustCrypto's `chacha20` over random keys, nonces, counters and per-lane lengths (more than 16
//! streams included), the single-stream mode up to ~20 KiB, and the counter-overflow and length
//! errors.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use dsmil_accel::Platform;
use dsmil_accel::crypto::chacha20::{
    BLOCK_LEN, Chacha20Stream, ChachaError, chacha20_block, chacha20_xor, chacha20_xor_many,
};
use proptest::prelude::*;

use crate::common::{bytes, hex, key_of};

fn nonce_of(seed: u64) -> [u8; 12] {
    bytes(12, seed ^ 0x9e37_79b9_7f4a_7c15).try_into().unwrap()
}

/// RustCrypto's ChaCha20 from block `counter` on.
fn reference(key: &[u8; 32], nonce: &[u8; 12], counter: u32, data: &mut [u8]) {
    let mut c = ChaCha20::new(key.into(), nonce.into());
    c.seek(u64::from(counter) * BLOCK_LEN as u64);
    c.apply_keystream(data);
}

/// One test vector: key, nonce, counter, plaintext, ciphertext.
struct Vector {
    key: [u8; 32],
    nonce: [u8; 12],
    counter: u32,
    plain: Vec<u8>,
    cipher: Vec<u8>,
}

fn vector(key: &str, nonce: &str, counter: u32, plain: &[u8], cipher: &str) -> Vector {
    Vector {
        key: hex(key).try_into().unwrap(),
        nonce: hex(nonce).try_into().unwrap(),
        counter,
        plain: plain.to_vec(),
        cipher: hex(cipher),
    }
}

/// RFC 8439 §2.4.2 and Appendix A.2 #1–#3.
fn rfc_vectors() -> Vec<Vector> {
    let sunscreen = b"Ladies and Gentlemen of the class of '99: If I could offer you only one \
tip for the future, sunscreen would be it.";
    let ietf = b"Any submission to the IETF intended by the Contributor for publication as all \
or part of an IETF Internet-Draft or RFC and any statement made within the context of an IETF \
activity is considered an \"IETF Contribution\". Such statements include oral statements in IETF \
sessions, as well as written and electronic communications made at any time or place, which are \
addressed to";
    let jabberwocky = b"'Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\n\
All mimsy were the borogoves,\nAnd the mome raths outgrabe.";
    vec![
        vector(
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "000000000000004a00000000",
            1,
            sunscreen,
            "6e2e359a2568f98041ba0728dd0d6981 e97e7aec1d4360c20a27afccfd9fae0b
             f91b65c5524733ab8f593dabcd62b357 1639d624e65152ab8f530c359f0861d8
             07ca0dbf500d6a6156a38e088a22b65e 52bc514d16ccf806818ce91ab7793736
             5af90bbf74a35be6b40b8eedf2785e42 874d",
        ),
        vector(
            "0000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000",
            0,
            &[0u8; 64],
            "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7
             da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586",
        ),
        vector(
            "0000000000000000000000000000000000000000000000000000000000000001",
            "000000000000000000000002",
            1,
            ietf,
            "a3fbf07df3fa2fde4f376ca23e82737041605d9f4f4f57bd8cff2c1d4b7955ec
             2a97948bd3722915c8f3d337f7d370050e9e96d647b7c39f56e031ca5eb6250d
             4042e02785ececfa4b4bb5e8ead0440e20b6e8db09d881a7c6132f420e527950
             42bdfa7773d8a9051447b3291ce1411c680465552aa6c405b7764d5e87bea85a
             d00f8449ed8f72d0d662ab052691ca66424bc86d2df80ea41f43abf937d3259d
             c4b2d0dfb48a6c9139ddd7f76966e928e635553ba76c5c879d7b35d49eb2e62b
             0871cdac638939e25e8a1e0ef9d5280fa8ca328b351c3c765989cbcf3daa8b6c
             cc3aaf9f3979c92b3720fc88dc95ed84a1be059c6499b9fda236e7e818b04b0b
             c39c1e876b193bfe5569753f88128cc08aaa9b63d1a16f80ef2554d7189c411f
             5869ca52c5b83fa36ff216b9c1d30062bebcfd2dc5bce0911934fda79a86f6e6
             98ced759c3ff9b6477338f3da4f9cd8514ea9982ccafb341b2384dd902f3d1ab
             7ac61dd29c6f21ba5b862f3730e37cfdc4fd806c22f221",
        ),
        vector(
            "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0",
            "000000000000000000000002",
            42,
            jabberwocky,
            "62e6347f95ed87a45ffae7426f27a1df5fb69110044c0d73118effa95b01e5cf
             166d3df2d721caf9b21e5fb14c616871fd84c54f9d65b283196c7fe4f60553eb
             f39c6402c42234e32a356b3e764312a61a5532055716ead6962568f87d3f3f77
             04c6a8d1bcd1bf4d50d6154b6da731b187b58dfd728afa36757a797ac188d1",
        ),
    ]
}

per_path!(
    rfc8439_2_3_2_block_function,
    [portable, avx2, avx512],
    |p| {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let nonce: [u8; 12] = hex("000000090000004a00000000").try_into().unwrap();
        let want = hex(
            "10f1e7e4d13b5915500fdd1fa32071c4 c7d1f4c733c068030422aa9ac3d46c4e
         d2826446079faa0914c2d705d98b02a2 b5129cd1de164eb9cbd083e8a2503c4e",
        );
        assert_eq!(chacha20_block(&key, &nonce, 1).to_vec(), want);
        let mut single = [0u8; 64];
        chacha20_xor(p, &key, &nonce, 1, &mut single).unwrap();
        assert_eq!(single.to_vec(), want, "{p} single");
        let mut many = [0u8; 64];
        chacha20_xor_many(p, &mut [Chacha20Stream::new(&key, nonce, 1, &mut many)]).unwrap();
        assert_eq!(many.to_vec(), want, "{p} many");
    }
);

per_path!(
    rfc8439_2_4_2_and_a2_encryption_vectors,
    [portable, avx2, avx512],
    |p| {
        let vectors = rfc_vectors();
        for (i, v) in vectors.iter().enumerate() {
            let mut buf = v.plain.clone();
            chacha20_xor(p, &v.key, &v.nonce, v.counter, &mut buf).unwrap();
            assert_eq!(buf, v.cipher, "{p} vector {i} single");
            chacha20_xor(p, &v.key, &v.nonce, v.counter, &mut buf).unwrap();
            assert_eq!(buf, v.plain, "{p} vector {i} decrypts");
        }
        // All vectors at once, repeated to 20 streams so that lanes are refilled.
        let mut bufs: Vec<Vec<u8>> = (0..20).map(|i| vectors[i % 4].plain.clone()).collect();
        let mut streams: Vec<_> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| {
                let v = &vectors[i % 4];
                Chacha20Stream::new(&v.key, v.nonce, v.counter, b)
            })
            .collect();
        chacha20_xor_many(p, &mut streams).unwrap();
        drop(streams);
        for (i, b) in bufs.iter().enumerate() {
            assert_eq!(*b, vectors[i % 4].cipher, "{p} stream {i} of many");
        }
    }
);

#[test]
fn implementations_agree_with_rustcrypto_on_the_vectors() {
    for v in rfc_vectors() {
        let mut buf = v.plain.clone();
        reference(&v.key, &v.nonce, v.counter, &mut buf);
        assert_eq!(buf, v.cipher);
    }
}

const LENGTHS: [usize; 11] = [0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128];

/// Per-lane lengths: either every listed length plus 5–24 large ones (16–35 streams, shuffled),
/// or 0–40 streams drawn from the list and large lengths.
fn lane_lengths() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        prop::collection::vec(4000usize..6000, 5..=24)
            .prop_map(|large| LENGTHS.iter().copied().chain(large).collect::<Vec<_>>())
            .prop_shuffle(),
        prop::collection::vec(
            prop_oneof![prop::sample::select(LENGTHS.to_vec()), 4000usize..6000],
            0..=40,
        ),
    ]
}

/// Cases per property test and path.
const CASES: u32 = 64;

per_path!(
    many_streams_match_the_portable_path_and_rustcrypto,
    [portable, avx2, avx512],
    |p| {
        proptest!(ProptestConfig::with_cases(CASES), |(lengths in lane_lengths(), seed in any::<u64>())| {
            let n = lengths.len();
            let keys: Vec<[u8; 32]> = (0..n).map(|i| key_of(seed ^ (i as u64) << 32)).collect();
            let nonces: Vec<[u8; 12]> = (0..n).map(|i| nonce_of(seed.wrapping_add(i as u64))).collect();
            let counters: Vec<u32> =
                (0..n).map(|i| (seed as u32).wrapping_mul(2_654_435_761).wrapping_add(i as u32) >> 1).collect();
            let plain: Vec<Vec<u8>> = lengths.iter().enumerate().map(|(i, &l)| bytes(l, seed ^ i as u64)).collect();
            let mut want = plain.clone();
            for i in 0..n {
                reference(&keys[i], &nonces[i], counters[i], &mut want[i]);
            }
            let run = |platform: Platform| {
                let mut bufs = plain.clone();
                let mut streams: Vec<_> = bufs
                    .iter_mut()
                    .enumerate()
                    .map(|(i, b)| Chacha20Stream::new(&keys[i], nonces[i], counters[i], b))
                    .collect();
                chacha20_xor_many(platform, &mut streams).unwrap();
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
    single_stream_matches_the_portable_path_and_rustcrypto,
    [portable, avx2, avx512],
    |p| {
        proptest!(ProptestConfig::with_cases(CASES), |(
            len in prop_oneof![0usize..2100, 2100usize..20_500],
            counter in 1u32..(1 << 31),
            seed in any::<u64>(),
        )| {
            let (key, nonce) = (key_of(seed), nonce_of(seed));
            let plain = bytes(len, seed);
            let mut want = plain.clone();
            reference(&key, &nonce, counter, &mut want);
            let mut buf = plain.clone();
            chacha20_xor(p, &key, &nonce, counter, &mut buf).unwrap();
            prop_assert_eq!(&buf, &want, "{} len {} counter {}", p, len, counter);
            let mut portable = plain.clone();
            chacha20_xor(Platform::portable(), &key, &nonce, counter, &mut portable).unwrap();
            prop_assert_eq!(&buf, &portable, "{} vs portable", p);
        });
    }
);

per_path!(
    the_last_counter_values_are_usable_and_one_more_block_is_refused,
    [portable, avx2, avx512],
    |p| {
        let (key, nonce) = (key_of(1), nonce_of(2));
        for len in [1usize, 64, 65, 1000, 4096, 5000] {
            let blocks = len.div_ceil(64) as u32;
            let last_ok = 0u32.wrapping_sub(blocks); // 2^32 - blocks
            let plain = bytes(len, len as u64);
            let mut want = plain.clone();
            chacha20_xor(Platform::portable(), &key, &nonce, last_ok, &mut want).unwrap();
            let mut buf = plain.clone();
            chacha20_xor(p, &key, &nonce, last_ok, &mut buf).unwrap();
            assert_eq!(buf, want, "{p} len {len} single");
            let mut buf = plain.clone();
            chacha20_xor_many(
                p,
                &mut [Chacha20Stream::new(&key, nonce, last_ok, &mut buf)],
            )
            .unwrap();
            assert_eq!(buf, want, "{p} len {len} many");

            // One block more from the same counter needs block 2^32.
            let mut longer = bytes(len + 64, 5);
            let before = longer.clone();
            let err = chacha20_xor(p, &key, &nonce, last_ok, &mut longer).unwrap_err();
            assert_eq!(
                err,
                ChachaError::CounterOverflow {
                    stream: 0,
                    counter: last_ok,
                    len: len + 64
                }
            );
            assert_eq!(longer, before, "{p}: refused call wrote");
            if last_ok < u32::MAX {
                let mut buf = plain.clone();
                let err = chacha20_xor(p, &key, &nonce, last_ok + 1, &mut buf).unwrap_err();
                assert!(matches!(err, ChachaError::CounterOverflow { .. }), "{err}");
            }
        }
        // The block at counter 2^32 - 1 is the one RustCrypto gives there too.
        let mut one = [0u8; 64];
        chacha20_xor(p, &key, &nonce, u32::MAX, &mut one).unwrap();
        assert_eq!(one, chacha20_block(&key, &nonce, u32::MAX));
    }
);

per_path!(
    an_overflowing_stream_is_named_and_nothing_is_written,
    [portable, avx2, avx512],
    |p| {
        let key = key_of(3);
        let mut bufs: Vec<Vec<u8>> = (0..20).map(|i| vec![7u8; 100 + i]).collect();
        let mut streams: Vec<_> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| {
                let counter = if i == 17 { u32::MAX } else { i as u32 };
                Chacha20Stream::new(&key, nonce_of(i as u64), counter, b)
            })
            .collect();
        let err = chacha20_xor_many(p, &mut streams).unwrap_err();
        assert_eq!(
            err,
            ChachaError::CounterOverflow {
                stream: 17,
                counter: u32::MAX,
                len: 117
            }
        );
        assert!(err.to_string().contains("stream 17"), "{err}");
        drop(streams);
        assert!(bufs.iter().all(|b| b.iter().all(|x| *x == 7)), "{p} wrote");
    }
);

#[test]
fn slices_of_the_wrong_length_are_refused() {
    let mut data = [0u8; 8];
    assert_eq!(
        Chacha20Stream::from_slices(&[0; 31], &[0; 12], 0, &mut data).unwrap_err(),
        ChachaError::KeyLength(31)
    );
    assert_eq!(
        Chacha20Stream::from_slices(&[0; 32], &[0; 16], 0, &mut data).unwrap_err(),
        ChachaError::NonceLength(16)
    );
    let s = Chacha20Stream::from_slices(&[1; 32], &[2; 12], 5, &mut data).unwrap();
    assert_eq!((s.counter, s.nonce), (5, [2; 12]));
    assert!(
        !format!("{s:?}").contains("key"),
        "Debug must not show the key"
    );
}

per_path!(empty_calls_succeed, [portable, avx2, avx512], |p| {
    chacha20_xor_many(p, &mut []).unwrap();
    chacha20_xor(p, &[0; 32], &[0; 12], u32::MAX, &mut []).unwrap();
    let mut empty: Vec<Vec<u8>> = vec![Vec::new(); 40];
    let mut streams: Vec<_> = empty
        .iter_mut()
        .map(|b| Chacha20Stream::new(&[9; 32], [0; 12], u32::MAX, b))
        .collect();
    chacha20_xor_many(p, &mut streams).unwrap();
});

/// The engine's async ChaCha20 and AES-CTR equal the RustCrypto crates.
#[test]
fn engine_ciphers_match_rustcrypto() {
    use dsmil_accel::engine::OwnedChacha20Stream;
    use zeroize::Zeroizing;

    let platform = Platform::best();
    let topology = dsmil_accel::topology::detect(platform.path() == dsmil_core::KernelPath::Avx512);
    let engine = dsmil_accel::Engine::start(Default::default(), platform, &topology, None).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plain: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; i * 97]).collect();

    let streams = plain
        .iter()
        .enumerate()
        .map(|(i, p)| OwnedChacha20Stream {
            key: Zeroizing::new([i as u8; 32]),
            nonce: [7; 12],
            counter: 1,
            data: p.clone(),
        })
        .collect();
    let chacha = runtime.block_on(engine.chacha20_xor_many(streams)).unwrap();
    for (i, (p, c)) in plain.iter().zip(&chacha).enumerate() {
        let mut want = p.clone();
        let mut cipher = ChaCha20::new(&[i as u8; 32].into(), &[7; 12].into());
        cipher.seek(64u64);
        cipher.apply_keystream(&mut want);
        assert_eq!(c, &want, "stream {i}");
    }

    let keys: Vec<Zeroizing<[u8; 32]>> = (0..16)
        .map(|i| Zeroizing::new([i as u8 ^ 0x5a; 32]))
        .collect();
    let streams: Vec<([u8; 16], Vec<u8>)> = plain
        .iter()
        .take(16)
        .map(|p| ([3; 16], p.clone()))
        .collect();
    let aes_out = runtime
        .block_on(engine.aes256_ctr_xor_many(keys, streams))
        .unwrap();
    for (i, (p, c)) in plain.iter().zip(&aes_out).enumerate() {
        let mut want = p.clone();
        let mut cipher =
            ctr::Ctr128BE::<aes::Aes256>::new(&[i as u8 ^ 0x5a; 32].into(), &[3; 16].into());
        cipher.apply_keystream(&mut want);
        assert_eq!(c, &want, "aes stream {i}");
    }
    assert_eq!(engine.counters()["chacha20"].ops, 1);
    engine.shutdown();
}
