//! AVX-512 lane-parallel Welford: four 16-lane registers of (mean, M2, min, max), so four
//! independent dependency chains hide the FMA latency.

use std::arch::x86_64::*;

use super::{LANES, Moments, fold_tail};

/// Welford state of each of the 64 lanes over `data`.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
pub unsafe fn lane_moments(data: &[f32]) -> [Moments; LANES] {
    let mut mean = [_mm512_setzero_ps(); 4];
    let mut m2 = [_mm512_setzero_ps(); 4];
    let mut min = [_mm512_set1_ps(f32::INFINITY); 4];
    let mut max = [_mm512_set1_ps(f32::NEG_INFINITY); 4];
    let blocks = data.len() / LANES;
    let p = data.as_ptr();
    for b in 0..blocks {
        let inv = _mm512_set1_ps(1.0 / (b + 1) as f32);
        for r in 0..4 {
            // SAFETY: block b spans b*64 .. b*64+64 <= data.len().
            let x = unsafe { _mm512_loadu_ps(p.add(b * LANES + r * 16)) };
            let delta = _mm512_sub_ps(x, mean[r]);
            mean[r] = _mm512_fmadd_ps(delta, inv, mean[r]);
            m2[r] = _mm512_fmadd_ps(delta, _mm512_sub_ps(x, mean[r]), m2[r]);
            min[r] = _mm512_min_ps(x, min[r]);
            max[r] = _mm512_max_ps(x, max[r]);
        }
    }
    let mut lanes = [Moments::EMPTY; LANES];
    if blocks > 0 {
        let (mut mn, mut mm, mut lo, mut hi) =
            ([0f32; LANES], [0f32; LANES], [0f32; LANES], [0f32; LANES]);
        for r in 0..4 {
            // SAFETY: each destination has 16 floats at offset r*16 < 64.
            unsafe {
                _mm512_storeu_ps(mn.as_mut_ptr().add(r * 16), mean[r]);
                _mm512_storeu_ps(mm.as_mut_ptr().add(r * 16), m2[r]);
                _mm512_storeu_ps(lo.as_mut_ptr().add(r * 16), min[r]);
                _mm512_storeu_ps(hi.as_mut_ptr().add(r * 16), max[r]);
            }
        }
        for j in 0..LANES {
            lanes[j] = Moments {
                n: blocks as f64,
                mean: f64::from(mn[j]),
                m2: f64::from(mm[j]),
                min: f64::from(lo[j]),
                max: f64::from(hi[j]),
            };
        }
    }
    fold_tail(&mut lanes, &data[blocks * LANES..]);
    lanes
}
