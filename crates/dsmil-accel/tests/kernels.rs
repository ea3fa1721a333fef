//! Every kernel path (each test once per forced path) against an f64 reference and against
//! `simsimd`, over random
//! lengths including 0, 1, odd sizes, lane boundaries ±1, unaligned slices and 256-d embeddings;
//! top-k against core's scalar reference.

use dsmil_accel::{AccelVectorKernel, kernels};
use dsmil_core::ports::{ScalarVectorKernel, Similarity, VectorKernel};
use proptest::prelude::*;
use simsimd::SpatialSimilarity;

/// f64 reference of the inner product and its error scale (sum of |a_i b_i|).
fn dot64(a: &[f32], b: &[f32]) -> (f64, f64) {
    a.iter().zip(b).fold((0.0, 0.0), |(s, m), (x, y)| {
        let p = f64::from(*x) * f64::from(*y);
        (s + p, m + p.abs())
    })
}

fn l2_64(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum()
}

fn close(got: f32, want: f64, scale: f64) -> bool {
    (f64::from(got) - want).abs() <= 1e-5 * scale.max(1e-30) + 1e-30
}

/// Lengths that stress loop and mask boundaries for 8- and 16-lane paths.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        (0usize..8).prop_map(|k| [7, 8, 9, 15, 16, 17, 31, 32][k]),
        (0usize..6).prop_map(|k| [33, 63, 64, 65, 127, 128][k]),
        Just(255),
        Just(256),
        Just(257),
        0usize..600,
    ]
}

fn vectors() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, usize)> {
    (length(), 0usize..4).prop_flat_map(|(n, offset)| {
        (
            proptest::collection::vec(-100f32..100.0, n + offset),
            proptest::collection::vec(-100f32..100.0, n + offset),
            Just(offset),
        )
    })
}

per_path!(
    dot_l2_and_norm_match_the_f64_reference,
    [portable, avx2, avx512],
    |p| {
        proptest!(ProptestConfig::with_cases(400), |((a, b, off) in vectors())| {
            // Offsets make the slices start off 64-byte boundaries.
            let (a, b) = (&a[off..], &b[off..]);
            let (want_dot, scale) = dot64(a, b);
            let want_l2 = l2_64(a, b);
            let (want_bb, _) = dot64(b, b);
            let got = kernels::dot(p, a, b);
            prop_assert!(close(got, want_dot, scale), "{} dot {} vs {}", p, got, want_dot);
            let got = kernels::l2_squared(p, a, b);
            prop_assert!(close(got, want_l2, want_l2), "{} l2 {} vs {}", p, got, want_l2);
            let (d, bb) = kernels::dot_and_norm_squared(p, a, b);
            prop_assert!(close(d, want_dot, scale), "{} fused dot {} vs {}", p, d, want_dot);
            prop_assert!(close(bb, want_bb, want_bb), "{} norm {} vs {}", p, bb, want_bb);
        });
    }
);

per_path!(
    agrees_with_simsimd_on_embeddings,
    [portable, avx2, avx512],
    |p| {
        proptest!(ProptestConfig::with_cases(400), |(a in proptest::collection::vec(-1f32..1.0, 256), b in proptest::collection::vec(-1f32..1.0, 256))| {
            let theirs_dot = f32::dot(&a, &b).unwrap();
            let theirs_l2 = f32::sqeuclidean(&a, &b).unwrap();
            let (_, scale) = dot64(&a, &b);
            prop_assert!(close(kernels::dot(p, &a, &b), theirs_dot, scale * 4.0), "{}", p);
            prop_assert!(close(kernels::l2_squared(p, &a, &b), theirs_l2, theirs_l2 * 4.0), "{}", p);
        });
    }
);

per_path!(
    top_k_matches_the_scalar_reference,
    [portable, avx2, avx512],
    |p| {
        proptest!(ProptestConfig::with_cases(400), |(
            rows in proptest::collection::vec(proptest::collection::vec(-1f32..1.0, 24), 0..120),
            query in proptest::collection::vec(-1f32..1.0, 24),
            k in 0usize..20,
        )| {
            let matrix: Vec<f32> = rows.iter().flatten().copied().collect();
            for metric in [Similarity::Dot, Similarity::Cosine, Similarity::L2] {
                let want = ScalarVectorKernel.top_k(&query, &matrix, 24, k, metric).unwrap();
                let got = AccelVectorKernel::new(p).top_k(&query, &matrix, 24, k, metric).unwrap();
                prop_assert_eq!(got.len(), want.len());
                // Values agree within float tolerance position by position; indexes agree
                // unless two rows are within that tolerance of each other (then either order
                // is correct — and at the cut-off either row may be the one kept).
                let tie = |a: f32, b: f32| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
                for (g, w) in got.iter().zip(&want) {
                    prop_assert!(tie(g.value, w.value), "{} {:?} {:?}", p, g, w);
                    if g.index != w.index {
                        let other = want.iter().find(|h| h.index == g.index);
                        let boundary = want.last().is_some_and(|last| tie(g.value, last.value));
                        prop_assert!(
                            other.is_some_and(|h| tie(h.value, w.value)) || (other.is_none() && boundary),
                            "{} {:?} vs {:?}", p, got, want
                        );
                    }
                }
            }
        });
    }
);
