//! Statistics and vector addition, each test once per forced path, against plain-iterator
//! references:
//! two-pass f64 statistics, element-wise addition (bit-exact), over sizes 0, 1, lane
//! boundaries ±1, odd and large, with unaligned starts.

use dsmil_accel::{Platform, kernels, stats};
use proptest::prelude::*;

fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        (0usize..8).prop_map(|k| [15, 16, 17, 63, 64, 65, 127, 129][k]),
        0usize..3000,
        Just(100_003),
    ]
}

/// Two-pass reference in f64: (mean, population variance, min, max).
fn reference(data: &[f32]) -> (f64, f64, f64, f64) {
    let n = data.len() as f64;
    let mean = data.iter().map(|x| f64::from(*x)).sum::<f64>() / n;
    let var = data
        .iter()
        .map(|x| (f64::from(*x) - mean).powi(2))
        .sum::<f64>()
        / n;
    let min = data.iter().fold(f64::INFINITY, |m, x| m.min(f64::from(*x)));
    let max = data
        .iter()
        .fold(f64::NEG_INFINITY, |m, x| m.max(f64::from(*x)));
    (mean, var, min, max)
}

/// Cases per property test and path.
const CASES: u32 = 200;

per_path!(
    statistics_match_the_two_pass_reference,
    [portable, avx2, avx512],
    |p| {
        proptest!(ProptestConfig::with_cases(CASES), |(
            len in length(), off in 0usize..16, center in -1e3f32..1e3, spread in 1e-2f32..1e2, seed in any::<u64>(),
        )| {
            let mut x = seed | 1;
            let data: Vec<f32> = (0..len + off).map(|_| {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                center + spread * ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            }).collect();
            let data = &data[off..];
            let s = stats::statistics(p, data);
            prop_assert_eq!(s.count, len as u64);
            if len == 0 {
                prop_assert!(s.mean.is_nan());
            } else {
                let (mean, var, min, max) = reference(data);
                let scale = f64::from(center.abs() + spread);
                prop_assert!((s.mean - mean).abs() <= 1e-5 * scale, "{} mean {} vs {}", p, s.mean, mean);
                prop_assert!((s.variance - var).abs() <= 1e-3 * var + 1e-9 * scale * scale, "{} var {} vs {}", p, s.variance, var);
                prop_assert_eq!((s.min, s.max), (min, max));
            }
        });
    }
);

per_path!(vector_add_is_exact, [portable, avx2, avx512], |p| {
    proptest!(ProptestConfig::with_cases(CASES), |(len in length(), off in 0usize..16, seed in any::<u64>())| {
        let mut x = seed | 1;
        let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x >> 40) as f32 - 8e6 };
        let a: Vec<f32> = (0..len + off).map(|_| next()).collect();
        let b: Vec<f32> = (0..len + off).map(|_| next()).collect();
        let want: Vec<f32> = a[off..].iter().zip(&b[off..]).map(|(x, y)| x + y).collect();
        let mut out = vec![0f32; len + 1];
        kernels::add(p, &mut out[..len], &a[off..], &b[off..]).unwrap();
        prop_assert_eq!(&out[..len], &want[..]);
        prop_assert_eq!(out[len], 0.0, "{} wrote past the end", p);
    });
});

#[test]
fn batched_add_checks_every_length_before_writing() {
    let p = Platform::best();
    let (a0, a1) = ([1.0f32, 2.0], [3.0f32]);
    let (b0, b1) = ([10.0f32, 20.0], [30.0f32, 40.0]);
    let (mut o0, mut o1) = ([0f32; 2], [0f32; 1]);
    let err = kernels::add_many(p, &mut [&mut o0, &mut o1], &[&a0, &a1], &[&b0, &b1]).unwrap_err();
    assert_eq!(err.index, 1);
    assert_eq!(
        o0,
        [0.0, 0.0],
        "nothing may be written when any vector is wrong"
    );
    kernels::add_many(p, &mut [&mut o0, &mut o1], &[&a0, &a1], &[&b0, &b1[..1]]).unwrap();
    assert_eq!((o0, o1), ([11.0, 22.0], [33.0]));
}

#[test]
fn statistics_many_keeps_order() {
    let sets: [&[f32]; 3] = [&[1.0, 3.0], &[], &[5.0]];
    let all = stats::statistics_many(Platform::best(), &sets);
    assert_eq!(
        all.iter().map(|s| s.count).collect::<Vec<_>>(),
        vec![2, 0, 1]
    );
    assert_eq!(all[0].mean, 2.0);
}

/// Matmul against ndarray's own product (matrixmultiply underneath), for random shapes
/// including empty, 1, odd and kernel-block boundaries, and for transposed inputs.
#[cfg(feature = "matmul")]
mod matmul_vs_ndarray {
    use dsmil_accel::matmul::{matmul_f32, matmul_f64};
    use ndarray::Array2;
    use proptest::prelude::*;

    fn dim() -> impl Strategy<Value = usize> {
        prop_oneof![
            Just(0usize),
            Just(1),
            Just(7),
            Just(16),
            Just(17),
            Just(48),
            Just(65),
            0usize..40
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(60))]

        #[test]
        fn f64_products_match(m in dim(), k in dim(), n in dim(), seed in any::<u32>(), transpose in any::<bool>()) {
            let a = Array2::from_shape_fn((m, k), |(i, j)| f64::from((i as u32 * 31 + j as u32 * 17 + seed) % 23) - 11.0);
            let b = Array2::from_shape_fn((k, n), |(i, j)| f64::from((i as u32 * 13 + j as u32 * 7 + seed) % 19) - 9.0);
            let want = a.dot(&b);
            let got = if transpose {
                let at = a.t().to_owned();
                matmul_f64(at.t(), b.view()).unwrap()
            } else {
                matmul_f64(a.view(), b.view()).unwrap()
            };
            // Small integers: every partial sum is exact in f64.
            prop_assert_eq!(got, want);
        }

        #[test]
        fn f32_products_match(m in dim(), k in dim(), n in dim(), seed in any::<u32>()) {
            let a = Array2::from_shape_fn((m, k), |(i, j)| ((i as u32 * 31 + j as u32 * 17 + seed) % 23) as f32 - 11.0);
            let b = Array2::from_shape_fn((k, n), |(i, j)| ((i as u32 * 13 + j as u32 * 7 + seed) % 19) as f32 - 9.0);
            prop_assert_eq!(matmul_f32(a.view(), b.view()).unwrap(), a.dot(&b));
        }
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let a = Array2::<f32>::zeros((2, 3));
        assert!(matmul_f32(a.view(), a.view()).is_err());
    }
}
