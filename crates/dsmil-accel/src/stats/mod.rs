//! Per-dataset statistics — count, mean, variance, standard deviation, min, max — in one
//! numerically stable pass, for many datasets at once.
//!
//! Each of 64 lanes (four 16-lane AVX-512 registers, or 64 scalar lanes in the portable path)
//! runs Welford's update over every 64th element; all lanes see the same count, so the update
//! divides by a broadcast `1/k` instead of per element. The lane states are then merged with
//! Chan et al.'s parallel formula in f64. Unlike the textbook `Σx, Σx²` single pass, this does
//! not lose the variance of data with a large mean to cancellation.
//!
//! Non-finite inputs give non-finite results (a NaN makes every field NaN).

#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

use dsmil_core::KernelPath;
use serde::Serialize;

use crate::Platform;

/// Lanes that run Welford independently.
pub(crate) const LANES: usize = 64;

/// Summary of one dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Statistics {
    /// Number of values.
    pub count: u64,
    /// Arithmetic mean (NaN when empty).
    pub mean: f64,
    /// Population variance, Σ(x−mean)²/n (NaN when empty).
    pub variance: f64,
    /// Sample variance, Σ(x−mean)²/(n−1) (NaN when fewer than two values).
    pub sample_variance: f64,
    /// Population standard deviation.
    pub std_dev: f64,
    /// Smallest value (NaN when empty).
    pub min: f64,
    /// Largest value (NaN when empty).
    pub max: f64,
}

/// Welford state of one lane (or of a merged group of lanes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moments {
    pub n: f64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Moments {
    pub(crate) const EMPTY: Moments = Moments {
        n: 0.0,
        mean: 0.0,
        m2: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    /// Chan et al.'s merge of two partial results.
    pub(crate) fn merge(self, other: Moments) -> Moments {
        if other.n == 0.0 {
            return self;
        }
        if self.n == 0.0 {
            return other;
        }
        let n = self.n + other.n;
        let delta = other.mean - self.mean;
        Moments {
            n,
            mean: self.mean + delta * (other.n / n),
            m2: self.m2 + other.m2 + delta * delta * (self.n * other.n / n),
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    /// Welford's update with one more value.
    pub(crate) fn push(&mut self, x: f64) {
        self.n += 1.0;
        let delta = x - self.mean;
        self.mean += delta / self.n;
        self.m2 += delta * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn finish(self, saw_nan: bool) -> Statistics {
        let count = self.n as u64;
        if count == 0 || saw_nan {
            let nan = f64::NAN;
            return Statistics {
                count,
                mean: nan,
                variance: nan,
                sample_variance: nan,
                std_dev: nan,
                min: nan,
                max: nan,
            };
        }
        let variance = (self.m2 / self.n).max(0.0);
        Statistics {
            count,
            mean: self.mean,
            variance,
            sample_variance: if count > 1 {
                (self.m2 / (self.n - 1.0)).max(0.0)
            } else {
                f64::NAN
            },
            std_dev: variance.sqrt(),
            min: self.min,
            max: self.max,
        }
    }
}

/// Statistics of one dataset.
pub fn statistics(platform: Platform, data: &[f32]) -> Statistics {
    let lanes = match platform.path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an Avx512 `Platform` exists only when AVX-512 F/BW/DQ/VL were detected.
        KernelPath::Avx512 => unsafe { avx512::lane_moments(data) },
        _ => portable::lane_moments(data),
    };
    let merged = lanes.iter().fold(Moments::EMPTY, |acc, m| acc.merge(*m));
    // min/max SIMD instructions skip NaN; the mean does not, so it tells whether one was seen.
    merged.finish(merged.mean.is_nan())
}

/// Statistics of each dataset, in order.
pub fn statistics_many(platform: Platform, datasets: &[&[f32]]) -> Vec<Statistics> {
    datasets.iter().map(|d| statistics(platform, d)).collect()
}

/// Folds the `< LANES` trailing values into the lane states, value `j` into lane `j`.
pub(crate) fn fold_tail(lanes: &mut [Moments; LANES], tail: &[f32]) {
    for (lane, x) in lanes.iter_mut().zip(tail) {
        lane.push(f64::from(*x));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        for p in Platform::available() {
            let s = statistics(p, &[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
            assert_eq!(s.count, 8);
            assert!((s.mean - 5.0).abs() < 1e-12, "{p}");
            assert!((s.variance - 4.0).abs() < 1e-12, "{p}");
            assert!((s.std_dev - 2.0).abs() < 1e-12);
            assert!((s.sample_variance - 32.0 / 7.0).abs() < 1e-12);
            assert_eq!((s.min, s.max), (2.0, 9.0));
            let e = statistics(p, &[]);
            assert_eq!(e.count, 0);
            assert!(e.mean.is_nan() && e.min.is_nan());
            let one = statistics(p, &[3.5]);
            assert_eq!(
                (one.mean, one.variance, one.min, one.max),
                (3.5, 0.0, 3.5, 3.5)
            );
            assert!(one.sample_variance.is_nan());
        }
    }

    #[test]
    fn nan_poisons_every_field() {
        let mut data = vec![1.0f32; 1000];
        data[517] = f32::NAN;
        for p in Platform::available() {
            let s = statistics(p, &data);
            assert!(
                s.mean.is_nan() && s.variance.is_nan() && s.min.is_nan() && s.max.is_nan(),
                "{p}"
            );
        }
    }

    #[test]
    fn large_offset_does_not_cancel() {
        // Mean 1e4, spread ±0.5: Σx² in f32 would lose the variance completely.
        let data: Vec<f32> = (0..100_000)
            .map(|i| 10_000.0 + if i % 2 == 0 { 0.5 } else { -0.5 })
            .collect();
        for p in Platform::available() {
            let s = statistics(p, &data);
            assert!((s.variance - 0.25).abs() < 1e-3, "{p}: {}", s.variance);
        }
    }
}
