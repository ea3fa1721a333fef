//! AVX-512 kernels: four 16-lane FMA accumulators (64 floats per iteration) to hide FMA
//! latency, and a masked load for the tail so no element is read past the end.

use std::arch::x86_64::*;

/// Elements per 512-bit register.
const W: usize = 16;

/// Number of trailing elements as a load mask.
#[inline]
fn tail_mask(n: usize) -> __mmask16 {
    debug_assert!(n < W);
    ((1u32 << n) - 1) as __mmask16
}

/// Inner product.
///
/// # Safety
/// The CPU must support AVX-512 F (the caller holds an Avx512 `Platform`).
#[target_feature(enable = "avx512f")]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 4 * W <= n {
        for (k, a_k) in acc.iter_mut().enumerate() {
            // SAFETY: i + (k+1)*W <= n, so both 16-float loads are in bounds.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i + k * W)),
                    _mm512_loadu_ps(pb.add(i + k * W)),
                )
            };
            *a_k = _mm512_fmadd_ps(x, y, *a_k);
        }
        i += 4 * W;
    }
    while i + W <= n {
        // SAFETY: i + W <= n.
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
        i += W;
    }
    if i < n {
        let m = tail_mask(n - i);
        // SAFETY: masked loads touch only the n - i elements that exist.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
            )
        };
        acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(sum)
}

/// Squared Euclidean distance.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
pub unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 4 * W <= n {
        for (k, a_k) in acc.iter_mut().enumerate() {
            // SAFETY: i + (k+1)*W <= n.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i + k * W)),
                    _mm512_loadu_ps(pb.add(i + k * W)),
                )
            };
            let d = _mm512_sub_ps(x, y);
            *a_k = _mm512_fmadd_ps(d, d, *a_k);
        }
        i += 4 * W;
    }
    while i + W <= n {
        // SAFETY: i + W <= n.
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
        let d = _mm512_sub_ps(x, y);
        acc[0] = _mm512_fmadd_ps(d, d, acc[0]);
        i += W;
    }
    if i < n {
        let m = tail_mask(n - i);
        // SAFETY: masked loads touch only existing elements; masked-off lanes are zero in both.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
            )
        };
        let d = _mm512_sub_ps(x, y);
        acc[1] = _mm512_fmadd_ps(d, d, acc[1]);
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(sum)
}

/// `(a·b, b·b)` in one pass.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
pub unsafe fn dot_and_norm_squared(a: &[f32], b: &[f32]) -> (f32, f32) {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut ab0, mut ab1, mut bb0, mut bb1) = (
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
    );
    let mut i = 0;
    while i + 2 * W <= n {
        // SAFETY: i + 2W <= n.
        let (x0, y0, x1, y1) = unsafe {
            (
                _mm512_loadu_ps(pa.add(i)),
                _mm512_loadu_ps(pb.add(i)),
                _mm512_loadu_ps(pa.add(i + W)),
                _mm512_loadu_ps(pb.add(i + W)),
            )
        };
        ab0 = _mm512_fmadd_ps(x0, y0, ab0);
        bb0 = _mm512_fmadd_ps(y0, y0, bb0);
        ab1 = _mm512_fmadd_ps(x1, y1, ab1);
        bb1 = _mm512_fmadd_ps(y1, y1, bb1);
        i += 2 * W;
    }
    if i + W <= n {
        // SAFETY: i + W <= n.
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
        ab0 = _mm512_fmadd_ps(x, y, ab0);
        bb0 = _mm512_fmadd_ps(y, y, bb0);
        i += W;
    }
    if i < n {
        let m = tail_mask(n - i);
        // SAFETY: the mask covers only the n - i elements that exist.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
            )
        };
        ab1 = _mm512_fmadd_ps(x, y, ab1);
        bb1 = _mm512_fmadd_ps(y, y, bb1);
    }
    (
        _mm512_reduce_add_ps(_mm512_add_ps(ab0, ab1)),
        _mm512_reduce_add_ps(_mm512_add_ps(bb0, bb1)),
    )
}
