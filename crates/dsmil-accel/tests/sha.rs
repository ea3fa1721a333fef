//! Multi-buffer SHA-256 and SHA-512, each test once per forced path (SHA-256: portable,
//! SHA-NI ×4, AVX-512 ×16, and AVX2's choice; SHA-512: portable, AVX2's choice, AVX-512 ×8):
//! the kernel each path selects, the NIST CAVP SHA-256 and SHA-512 Monte Carlo tests, and
//! property tests against the portable reference and the `sha2` crate with independent
//! per-lane lengths around the padding boundaries; the streaming manager equals one-shot.

use dsmil_accel::crypto::lanes::LaneHash;
use dsmil_accel::crypto::sha256::{Sha256, Sha256Engine, Sha256Lanes, sha256_many};
use dsmil_accel::crypto::sha512::{Sha512, Sha512Lanes, sha512_many};
use dsmil_accel::{CryptoExtension, Platform};
use dsmil_core::KernelPath;
use proptest::prelude::*;
use sha2::Digest as _;

use crate::common;

/// The engine `p` must select, worked out from the CPU's features directly.
fn expected_engine(p: Platform) -> Sha256Engine {
    #[cfg(target_arch = "x86_64")]
    let sha_ni = p.has(CryptoExtension::ShaNi)
        && std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3");
    #[cfg(not(target_arch = "x86_64"))]
    let sha_ni = false;
    match p.path() {
        KernelPath::Avx512 => Sha256Engine::Avx512x16,
        _ if sha_ni => Sha256Engine::ShaNi4,
        _ => Sha256Engine::Portable,
    }
}

per_path!(
    each_path_selects_its_sha256_kernel,
    [portable, sha_ni, avx2, avx512],
    |p| {
        let engine = Sha256Engine::select(p);
        assert_eq!(engine, expected_engine(p), "{p}");
        assert_eq!(Sha256::lanes(p), engine.lanes());
        assert_eq!(Sha256Lanes::<usize>::new(p).lane_count(), engine.lanes());
        assert_eq!(Sha512Lanes::<usize>::new(p).lane_count(), 8);
        if p.path() != KernelPath::Avx512 && p.has(CryptoExtension::ShaNi) {
            assert_eq!(engine, Sha256Engine::ShaNi4, "{p}");
            assert_eq!(
                Sha256Engine::select(p.without(CryptoExtension::ShaNi)),
                Sha256Engine::Portable
            );
        }
    }
);

// SHAVS §6.4 Monte Carlo test, seed and checkpoints from NIST's SHA256Monte.rsp.
per_path!(
    sha256_nist_monte_carlo,
    [portable, sha_ni, avx2, avx512],
    |p| {
        let checkpoints = [
            (
                0usize,
                "e93c330ae5447738c8aa85d71a6c80f2a58381d05872d26bdd39f1fcd4f2b788",
            ),
            (
                1,
                "2e78f8c8772ea7c9331d41ed3f9cdf27d8f514a99342ee766ee3b8b0d0b121c0",
            ),
            (
                2,
                "d6a23dff1b7f2eddc1a212f8a218397523a799b07386a30692fd6fe9d2bf0944",
            ),
            (
                3,
                "fb0099a964fad5a88cf12952f2991ce256a4ac3049f3d389c3b9e6c00e585db4",
            ),
            (
                4,
                "f9eba2a4cf6263826beaf6150057849eb975a9513c0b76ecad0f1c19ebbad89b",
            ),
            (
                99,
                "6a912ba4188391a78e6f13d88ed2d14e13afce9db6f7dcbf4a48c24f3db02778",
            ),
        ];
        common::monte_carlo(
            &format!("{p} ({:?})", Sha256Engine::select(p)),
            "6d1e72ad03ddeb5de891e572e2396f8da015d899ef0e79503152d6010a3fe691",
            &checkpoints,
            |m| sha256_many(p, &[m])[0],
        );
    }
);

// SHAVS §6.4 Monte Carlo test for SHA-512, seed and checkpoints from NIST's SHA512Monte.rsp.
per_path!(sha512_nist_monte_carlo, [portable, avx2, avx512], |p| {
    let checkpoints = [
        (
            0usize,
            "ada69add0071b794463c8806a177326735fa624b68ab7bcab2388b9276c036e4eaaff87333e83c81c0bca0359d4aeebcbcfd314c0630e0c2af68c1fb19cc470e",
        ),
        (
            1,
            "ef219b37c24ae507a2b2b26d1add51b31fb5327eb8c3b19b882fe38049433dbeccd63b3d5b99ba2398920bcefb8aca98cd28a1ee5d2aaf139ce58a15d71b06b4",
        ),
        (
            2,
            "c3d5087a62db0e5c6f5755c417f69037308cbce0e54519ea5be8171496cc6d18023ba15768153cfd74c7e7dc103227e9eed4b0f82233362b2a7b1a2cbcda9daf",
        ),
        (
            3,
            "bb3a58f71148116e377505461d65d6c89906481fedfbcfe481b7aa8ceb977d252b3fe21bfff6e7fbf7575ceecf5936bd635e1cf52698c36ef6908ddbd5b6ae05",
        ),
        (
            4,
            "b68f0cd2d63566b3934a50666dec6d62ca1db98e49d7733084c1f86d91a8a08c756fa7ece815e20930dd7cb66351bad8c087c2f94e8757cb98e7f4b86b21a8a8",
        ),
        (
            99,
            "4aa7dad74eb51d09a6ae7735c4b795b078f51c314f14f42a0d63071e13bdc5fd9f51612e77b36d44567502a3b5eb66c609ec017e51d8df93e58d1a44f3c1e375",
        ),
    ];
    common::monte_carlo(
        &format!("{p}"),
        "5c337de5caf35d18ed90b5cddfce001ca1b8ee8602f367e7c24ccca6f893802fb1aca7a3dae32dcd60800a59959bc540d63237876b799229ae71a2526fbc52cd",
        &checkpoints,
        |m| sha512_many(p, &[m])[0],
    );
});

/// Lengths around both padding boundaries and block edges.
fn lane_length() -> impl Strategy<Value = usize> {
    prop_oneof![
        (0usize..14).prop_map(|k| [0, 1, 55, 56, 63, 64, 65, 111, 112, 119, 120, 127, 128, 129][k]),
        0usize..700,
        Just(5000),
    ]
}

fn messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(
        (lane_length(), any::<u8>()).prop_map(|(len, seed)| {
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                .collect()
        }),
        0..40,
    )
}

/// Cases per property test and path.
const CASES: u32 = 64;

per_path!(
    sha256_many_matches_the_reference_and_sha2,
    [portable, sha_ni, avx2, avx512],
    |p| {
        proptest!(ProptestConfig::with_cases(CASES), |(msgs in messages())| {
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            let want: Vec<[u8; 32]> = refs.iter().map(|m| sha2::Sha256::digest(m).into()).collect();
            let got = sha256_many(p, &refs);
            prop_assert_eq!(&got, &want, "{} vs sha2", p);
            let portable: Vec<[u8; 32]> = refs.iter().map(|m| Sha256::hash(m)).collect();
            prop_assert_eq!(&got, &portable, "{} vs the portable reference", p);
        });
    }
);

per_path!(
    sha512_many_matches_the_reference_and_sha2,
    [portable, avx2, avx512],
    |p| {
        proptest!(ProptestConfig::with_cases(CASES), |(msgs in messages())| {
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            let want: Vec<[u8; 64]> = refs.iter().map(|m| sha2::Sha512::digest(m).into()).collect();
            let got = sha512_many(p, &refs);
            prop_assert_eq!(&got, &want, "{} vs sha2", p);
            let portable: Vec<[u8; 64]> = refs.iter().map(|m| Sha512::hash(m)).collect();
            prop_assert_eq!(&got, &portable, "{} vs the portable reference", p);
        });
    }
);

per_path!(
    streaming_equals_one_shot,
    [portable, sha_ni, avx2, avx512],
    |p| {
        proptest!(ProptestConfig::with_cases(CASES), |(msgs in messages(), take_every in 1usize..20)| {
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            let mut lanes = Sha256Lanes::new(p);
            let mut wide = Sha512Lanes::new(p);
            let (mut got, mut got_wide) = (Vec::new(), Vec::new());
            for (i, m) in refs.iter().enumerate() {
                lanes.push(i, m);
                wide.push(i, m);
                if i % take_every == 0 {
                    got.extend(lanes.take_finished());
                    got_wide.extend(wide.take_finished());
                }
            }
            got.extend(lanes.finish());
            got_wide.extend(wide.finish());
            got.sort_by_key(|(i, _)| *i);
            got_wide.sort_by_key(|(i, _)| *i);
            prop_assert_eq!(got.len(), refs.len());
            for ((i, d), (j, w)) in got.iter().zip(&got_wide) {
                prop_assert_eq!(i, j);
                prop_assert_eq!(d, &sha256_many(Platform::portable(), &[refs[*i]])[0], "{}", p);
                prop_assert_eq!(w, &sha512_many(Platform::portable(), &[refs[*i]])[0], "{}", p);
            }
        });
    }
);

/// The same digests through the engine's async API, counted under their operation kinds.
#[test]
fn engine_hashes_match_sha2() {
    let platform = Platform::best();
    let topology = dsmil_accel::topology::detect(platform.path() == dsmil_core::KernelPath::Avx512);
    let engine = dsmil_accel::Engine::start(Default::default(), platform, &topology, None).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let messages: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; i * 37]).collect();
    let (d256, d512) = runtime.block_on(async {
        (
            engine.sha256_many(messages.clone()).await.unwrap(),
            engine.sha512_many(messages.clone()).await.unwrap(),
        )
    });
    for (m, (a, b)) in messages.iter().zip(d256.iter().zip(&d512)) {
        assert_eq!(a[..], sha2::Sha256::digest(m)[..]);
        assert_eq!(b[..], sha2::Sha512::digest(m)[..]);
    }
    let counters = engine.counters();
    assert_eq!(counters["sha256"].ops, 1);
    assert_eq!(
        counters["sha512"].bytes,
        messages.iter().map(|m| m.len() as u64).sum::<u64>()
    );
    engine.shutdown();
}
