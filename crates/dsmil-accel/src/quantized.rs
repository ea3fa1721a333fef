//! An int8-quantised index for fast approximate top-k, with exact f32 re-ranking.
//!
//! Every row is stored as 8-bit codes with one f32 scale (symmetric, `max|x| / 127`); for cosine
//! the rows are normalised first. A search scans the codes (a quarter of the f32 bytes, integer
//! multiply-adds), keeps the best `candidates` rows by approximate score, and re-ranks those with
//! the exact f32 kernels, so the answer's values are exact and only its recall is approximate.

use std::collections::BinaryHeap;

use dsmil_core::KernelPath;
use dsmil_core::ports::{Hit, PortError, Similarity, check_rows, check_top_k_input};

use crate::similarity::{Ranked, exact_score};
use crate::{Platform, kernels};

/// Candidates re-ranked per search unless the caller says otherwise: `max(10·k, 100)`.
pub fn default_candidates(k: usize) -> usize {
    (10 * k).max(100)
}

/// Rows of a matrix as int8 codes plus per-row scales.
#[derive(Debug, Clone)]
pub struct QuantizedIndex {
    dim: usize,
    metric: Similarity,
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// Exact squared norms of the rows (for L2's ‖r‖² term).
    norms_sq: Vec<f32>,
}

fn quantize_into(values: &[f32], out: &mut [i8]) -> f32 {
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        out.fill(0);
        return 0.0;
    }
    let scale = max / 127.0;
    for (o, v) in out.iter_mut().zip(values) {
        *o = (v / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

impl QuantizedIndex {
    /// Quantises `matrix` (`rows × dim`, row-major, finite values) for searches by `metric`.
    pub fn build(
        platform: Platform,
        matrix: &[f32],
        dim: usize,
        metric: Similarity,
    ) -> Result<Self, PortError> {
        let mut index = Self::empty(dim, metric)?;
        index.append(platform, matrix)?;
        Ok(index)
    }

    /// An index without rows, to be grown by [`QuantizedIndex::append`].
    pub fn empty(dim: usize, metric: Similarity) -> Result<Self, PortError> {
        if dim == 0 {
            return Err(PortError::InvalidInput(
                "dimension must be at least 1".into(),
            ));
        }
        Ok(Self {
            dim,
            metric,
            codes: Vec::new(),
            scales: Vec::new(),
            norms_sq: Vec::new(),
        })
    }

    /// Quantises and appends `rows` (a multiple of `dim` finite values); on error nothing is
    /// appended.
    pub fn append(&mut self, platform: Platform, rows: &[f32]) -> Result<(), PortError> {
        check_rows(rows, self.dim)?;
        let dim = self.dim;
        let start = self.codes.len();
        self.codes.resize(start + rows.len(), 0);
        let mut unit = vec![0f32; dim];
        for (row, out) in rows
            .chunks_exact(dim)
            .zip(self.codes[start..].chunks_exact_mut(dim))
        {
            let norm_sq = kernels::dot(platform, row, row);
            self.norms_sq.push(norm_sq);
            let scale = if self.metric == Similarity::Cosine {
                let inv = if norm_sq > 0.0 {
                    1.0 / norm_sq.sqrt()
                } else {
                    0.0
                };
                for (u, v) in unit.iter_mut().zip(row) {
                    *u = v * inv;
                }
                quantize_into(&unit, out)
            } else {
                quantize_into(row, out)
            };
            self.scales.push(scale);
        }
        Ok(())
    }

    /// Dimension of the rows.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric the codes were built for.
    pub fn metric(&self) -> Similarity {
        self.metric
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.scales.len()
    }

    /// Bytes held by the codes (a quarter of the f32 matrix).
    pub fn code_bytes(&self) -> usize {
        self.codes.len()
    }

    /// The `k` best rows for `query`: approximate scan over the codes, then exact re-ranking of
    /// the best `candidates` rows against `matrix` — the same f32 matrix the index was built
    /// from. Values in the answer are exact.
    pub fn search(
        &self,
        platform: Platform,
        query: &[f32],
        matrix: &[f32],
        k: usize,
        candidates: usize,
    ) -> Result<Vec<Hit>, PortError> {
        check_top_k_input(query, matrix, self.dim)?;
        if matrix.len() != self.codes.len() {
            return Err(PortError::InvalidInput(format!(
                "matrix has {} rows but the index was built from {}",
                matrix.len() / self.dim,
                self.rows()
            )));
        }
        if k == 0 {
            return Ok(Vec::new());
        }
        let candidates = candidates.max(k);
        let query_norm_sq = kernels::dot(platform, query, query);
        let mut q_codes = vec![0i8; self.dim];
        let q_scale = if self.metric == Similarity::Cosine {
            let inv = if query_norm_sq > 0.0 {
                1.0 / query_norm_sq.sqrt()
            } else {
                0.0
            };
            let unit: Vec<f32> = query.iter().map(|v| v * inv).collect();
            quantize_into(&unit, &mut q_codes)
        } else {
            quantize_into(query, &mut q_codes)
        };
        // Approximate pass: larger is better for every metric (L2 is negated).
        let mut heap: BinaryHeap<Ranked> = BinaryHeap::with_capacity(candidates + 1);
        for (index, row) in self.codes.chunks_exact(self.dim).enumerate() {
            let dot = dot_i8(platform, &q_codes, row) as f32 * q_scale * self.scales[index];
            let value = match self.metric {
                Similarity::Dot | Similarity::Cosine => dot,
                Similarity::L2 => 2.0 * dot - self.norms_sq[index],
            };
            let candidate = Ranked::new(Hit { index, value }, false);
            if heap.len() < candidates {
                heap.push(candidate);
            } else if let Some(worst) = heap.peek()
                && candidate.is_better_than(worst)
            {
                heap.pop();
                heap.push(candidate);
            }
        }
        // Exact pass over the candidates.
        let query_norm = query_norm_sq.sqrt();
        let ascending = self.metric == Similarity::L2;
        let mut exact: Vec<Ranked> = heap
            .into_iter()
            .map(|r| {
                let i = r.hit().index;
                let row = &matrix[i * self.dim..(i + 1) * self.dim];
                let value = exact_score(platform, query, row, self.metric, query_norm);
                Ranked::new(Hit { index: i, value }, ascending)
            })
            .collect();
        exact.sort();
        exact.truncate(k);
        Ok(exact.into_iter().map(|r| r.hit()).collect())
    }
}

/// Integer inner product of two int8 code vectors.
pub fn dot_i8(platform: Platform, a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    match platform.path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an Avx512 `Platform` exists only when AVX-512 F/BW/DQ/VL were detected.
        KernelPath::Avx512 => unsafe { avx512_dot_i8(&a[..n], &b[..n]) },
        _ => a[..n]
            .iter()
            .zip(&b[..n])
            .map(|(x, y)| i32::from(*x) * i32::from(*y))
            .sum(),
    }
}

/// 32 codes per step: sign-extend to 16 bits, multiply-add pairs into 32-bit lanes.
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn avx512_dot_i8(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: i + 64 <= n: four 16-byte-wide halves of two 32-byte loads per operand.
        unsafe {
            let x0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pa.add(i).cast()));
            let y0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pb.add(i).cast()));
            let x1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pa.add(i + 32).cast()));
            let y1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pb.add(i + 32).cast()));
            acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(x0, y0));
            acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(x1, y1));
        }
        i += 64;
    }
    let mut sum = _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
    for j in i..n {
        sum += i32::from(a[j]) * i32::from(b[j]);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_dot_matches_on_every_path() {
        let a: Vec<i8> = (0..300).map(|i| ((i * 37) % 255 - 127) as i8).collect();
        let b: Vec<i8> = (0..300).map(|i| ((i * 91) % 255 - 127) as i8).collect();
        let want: i32 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| i32::from(*x) * i32::from(*y))
            .sum();
        for p in Platform::available() {
            for n in [0, 1, 63, 64, 65, 256, 300] {
                let w: i32 = a[..n]
                    .iter()
                    .zip(&b[..n])
                    .map(|(x, y)| i32::from(*x) * i32::from(*y))
                    .sum();
                assert_eq!(dot_i8(p, &a[..n], &b[..n]), w, "{p} n={n}");
            }
            assert_eq!(dot_i8(p, &a, &b), want);
        }
    }

    #[test]
    fn mismatched_matrix_is_refused() {
        let m = vec![1.0f32; 8];
        let idx = QuantizedIndex::build(Platform::best(), &m, 4, Similarity::Dot).unwrap();
        assert!(
            idx.search(Platform::best(), &[1.0; 4], &m[..4], 1, 10)
                .is_err()
        );
        assert!(
            QuantizedIndex::build(Platform::best(), &[f32::NAN; 4], 4, Similarity::Dot).is_err()
        );
    }
}
