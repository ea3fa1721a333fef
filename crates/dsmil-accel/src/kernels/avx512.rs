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

/// `out = a + b` element-wise: a masked head until `out` is 64-byte aligned (unaligned 512-bit
/// stores split cache lines and halve store throughput), then 64 floats per iteration with
/// aligned stores, then a masked tail.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
pub unsafe fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    let n = out.len().min(a.len()).min(b.len());
    let (po, pa, pb) = (out.as_mut_ptr(), a.as_ptr(), b.as_ptr());
    let head = po.align_offset(64).min(n).min(W - 1);
    if head > 0 {
        let m = tail_mask(head);
        // SAFETY: the mask covers the first `head` < 16 elements, all below n.
        unsafe {
            let x = _mm512_maskz_loadu_ps(m, pa);
            let y = _mm512_maskz_loadu_ps(m, pb);
            _mm512_mask_storeu_ps(po, m, _mm512_add_ps(x, y));
        }
    }
    let mut i = head;
    let aligned = po.wrapping_add(head).align_offset(64) == 0;
    while i + 4 * W <= n {
        for k in 0..4 {
            // SAFETY: i + (k+1)*W <= n for all three slices; when `aligned`, po + i is 64-byte
            // aligned (i - head is a multiple of 16 floats).
            unsafe {
                let x = _mm512_loadu_ps(pa.add(i + k * W));
                let y = _mm512_loadu_ps(pb.add(i + k * W));
                let sum = _mm512_add_ps(x, y);
                if aligned {
                    _mm512_store_ps(po.add(i + k * W), sum);
                } else {
                    _mm512_storeu_ps(po.add(i + k * W), sum);
                }
            }
        }
        i += 4 * W;
    }
    while i < n {
        let m = if n - i >= W { 0xFFFF } else { tail_mask(n - i) };
        // SAFETY: the mask covers only elements below n.
        unsafe {
            let x = _mm512_maskz_loadu_ps(m, pa.add(i));
            let y = _mm512_maskz_loadu_ps(m, pb.add(i));
            _mm512_mask_storeu_ps(po.add(i), m, _mm512_add_ps(x, y));
        }
        i += W;
    }
}
