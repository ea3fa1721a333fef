//! Portable lane-parallel Welford: 64 scalar lanes, the reference for the SIMD path.

use super::{LANES, Moments, fold_tail};

/// Welford state of each lane over `data` (value `i` goes to lane `i % 64` for the full blocks;
/// the tail is folded into the first lanes).
pub fn lane_moments(data: &[f32]) -> [Moments; LANES] {
    let mut mean = [0.0f32; LANES];
    let mut m2 = [0.0f32; LANES];
    let mut min = [f32::INFINITY; LANES];
    let mut max = [f32::NEG_INFINITY; LANES];
    let blocks = data.chunks_exact(LANES);
    let tail = blocks.remainder();
    let mut k = 0u32;
    for block in blocks {
        k += 1;
        let inv = 1.0 / k as f32;
        for j in 0..LANES {
            let x = block[j];
            let delta = x - mean[j];
            mean[j] += delta * inv;
            m2[j] += delta * (x - mean[j]);
            min[j] = min[j].min(x);
            max[j] = max[j].max(x);
        }
    }
    let mut lanes = [Moments::EMPTY; LANES];
    if k > 0 {
        for j in 0..LANES {
            lanes[j] = Moments {
                n: f64::from(k),
                mean: f64::from(mean[j]),
                m2: f64::from(m2[j]),
                min: f64::from(min[j]),
                max: f64::from(max[j]),
            };
        }
    }
    fold_tail(&mut lanes, tail);
    lanes
}
