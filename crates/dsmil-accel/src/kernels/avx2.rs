//! AVX2 + FMA kernels: four 8-lane accumulators (32 floats per iteration), scalar tail.

use std::arch::x86_64::*;

/// Elements per 256-bit register.
const W: usize = 8;

#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps::<1>(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

/// Inner product.
///
/// # Safety
/// The CPU must support AVX2 and FMA (the caller holds an Avx2 `Platform`).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 4 * W <= n {
        for (k, a_k) in acc.iter_mut().enumerate() {
            // SAFETY: i + (k+1)*W <= n.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i + k * W)),
                    _mm256_loadu_ps(pb.add(i + k * W)),
                )
            };
            *a_k = _mm256_fmadd_ps(x, y, *a_k);
        }
        i += 4 * W;
    }
    while i + W <= n {
        // SAFETY: i + W <= n.
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
        i += W;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let tail: f32 = a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum();
    hsum(sum) + tail
}

/// Squared Euclidean distance.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 4 * W <= n {
        for (k, a_k) in acc.iter_mut().enumerate() {
            // SAFETY: i + (k+1)*W <= n.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i + k * W)),
                    _mm256_loadu_ps(pb.add(i + k * W)),
                )
            };
            let d = _mm256_sub_ps(x, y);
            *a_k = _mm256_fmadd_ps(d, d, *a_k);
        }
        i += 4 * W;
    }
    while i + W <= n {
        // SAFETY: i + W <= n.
        let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
        let d = _mm256_sub_ps(x, y);
        acc[0] = _mm256_fmadd_ps(d, d, acc[0]);
        i += W;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let tail: f32 = a[i..n]
        .iter()
        .zip(&b[i..n])
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    hsum(sum) + tail
}

/// `(a·b, b·b)` in one pass.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_and_norm_squared(a: &[f32], b: &[f32]) -> (f32, f32) {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut ab0, mut ab1, mut bb0, mut bb1) = (
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
    );
    let mut i = 0;
    while i + 2 * W <= n {
        // SAFETY: i + 2W <= n.
        let (x0, y0, x1, y1) = unsafe {
            (
                _mm256_loadu_ps(pa.add(i)),
                _mm256_loadu_ps(pb.add(i)),
                _mm256_loadu_ps(pa.add(i + W)),
                _mm256_loadu_ps(pb.add(i + W)),
            )
        };
        ab0 = _mm256_fmadd_ps(x0, y0, ab0);
        bb0 = _mm256_fmadd_ps(y0, y0, bb0);
        ab1 = _mm256_fmadd_ps(x1, y1, ab1);
        bb1 = _mm256_fmadd_ps(y1, y1, bb1);
        i += 2 * W;
    }
    let (mut tab, mut tbb) = (0.0f32, 0.0f32);
    for (x, y) in a[i..n].iter().zip(&b[i..n]) {
        tab += x * y;
        tbb += y * y;
    }
    (
        hsum(_mm256_add_ps(ab0, ab1)) + tab,
        hsum(_mm256_add_ps(bb0, bb1)) + tbb,
    )
}
