//! Exact top-k similarity search over a row-major matrix, on the dispatched kernels; the
//! implementation of core's [`VectorKernel`] port that dsmil-learn uses.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use dsmil_core::ports::{
    Hit, PortError, Similarity, VectorKernel, check_top_k_input, cosine_from_parts,
};

use crate::Platform;
use crate::kernels;

/// A heap entry ordered so that the *worst* kept hit is on top (and is evicted first).
/// Ties keep the lower row index, matching core's scalar reference.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ranked {
    hit: Hit,
    /// `true` when smaller values are better (L2).
    ascending: bool,
}

impl Ranked {
    /// Wraps a hit; `ascending` when smaller values are better (L2).
    pub(crate) fn new(hit: Hit, ascending: bool) -> Self {
        Self { hit, ascending }
    }

    /// The wrapped hit.
    pub(crate) fn hit(&self) -> Hit {
        self.hit
    }

    /// Whether `self` ranks strictly before `other`.
    pub(crate) fn is_better_than(&self, other: &Self) -> bool {
        self.quality(other) == Ordering::Greater
    }

    /// Ordering where `Greater` means "better".
    fn quality(&self, other: &Self) -> Ordering {
        let by_value = if self.ascending {
            other.hit.value.total_cmp(&self.hit.value)
        } else {
            self.hit.value.total_cmp(&other.hit.value)
        };
        by_value.then(other.hit.index.cmp(&self.hit.index))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.quality(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    /// Max-heap on "worse": the heap's top is the worst kept hit.
    fn cmp(&self, other: &Self) -> Ordering {
        other.quality(self)
    }
}

/// Top-k search on one kernel path.
#[derive(Debug, Clone, Copy)]
pub struct AccelVectorKernel {
    platform: Platform,
}

impl AccelVectorKernel {
    /// A kernel on `platform`.
    pub fn new(platform: Platform) -> Self {
        Self { platform }
    }

    /// The path it runs on.
    pub fn platform(&self) -> Platform {
        self.platform
    }
}

/// The exact score of `row` for `query` under `metric` (`query_norm` = ‖query‖, used by cosine).
pub(crate) fn exact_score(
    platform: Platform,
    query: &[f32],
    row: &[f32],
    metric: Similarity,
    query_norm: f32,
) -> f32 {
    match metric {
        Similarity::Dot => kernels::dot(platform, query, row),
        Similarity::L2 => kernels::l2_squared(platform, query, row),
        Similarity::Cosine => {
            let (dot, rr) = kernels::dot_and_norm_squared(platform, query, row);
            cosine_from_parts(dot, query_norm, rr)
        }
    }
}

impl VectorKernel for AccelVectorKernel {
    fn name(&self) -> String {
        format!("dsmil-accel/{}", self.platform.path())
    }

    fn top_k(
        &self,
        query: &[f32],
        matrix: &[f32],
        dim: usize,
        k: usize,
        metric: Similarity,
    ) -> Result<Vec<Hit>, PortError> {
        check_top_k_input(query, matrix, dim)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let ascending = metric == Similarity::L2;
        let query_norm = kernels::dot(self.platform, query, query).sqrt();
        let mut heap: BinaryHeap<Ranked> = BinaryHeap::with_capacity(k.min(matrix.len() / dim) + 1);
        for (index, row) in matrix.chunks_exact(dim).enumerate() {
            let value = exact_score(self.platform, query, row, metric, query_norm);
            if !value.is_finite() {
                return Err(PortError::InvalidInput(format!(
                    "row {index} scores {value}: it holds a non-finite value or one so large the score overflows"
                )));
            }
            let candidate = Ranked {
                hit: Hit { index, value },
                ascending,
            };
            if heap.len() < k {
                heap.push(candidate);
            } else if let Some(worst) = heap.peek()
                && candidate.is_better_than(worst)
            {
                heap.pop();
                heap.push(candidate);
            }
        }
        // into_sorted_vec is ascending by `Ord`, i.e. from best to worst.
        Ok(heap.into_sorted_vec().into_iter().map(|r| r.hit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_keep_the_lower_index_like_the_reference() {
        let m = [1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0];
        for p in Platform::available() {
            let hits = AccelVectorKernel::new(p)
                .top_k(&[1.0, 0.0], &m, 2, 2, Similarity::Dot)
                .unwrap();
            assert_eq!(
                hits.iter().map(|h| h.index).collect::<Vec<_>>(),
                vec![0, 1],
                "{p}"
            );
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let k = AccelVectorKernel::new(Platform::best());
        assert!(k.top_k(&[1.0], &[1.0, 2.0], 2, 1, Similarity::Dot).is_err());
        assert!(
            k.top_k(&[1.0, 2.0], &[1.0, 2.0, 3.0], 2, 1, Similarity::Dot)
                .is_err()
        );
        assert!(k.top_k(&[], &[], 0, 1, Similarity::Dot).is_err());
        assert!(
            k.top_k(&[1.0, 1.0], &[f32::NAN, 0.0], 2, 1, Similarity::Dot)
                .is_err()
        );
        assert!(
            k.top_k(&[1.0, 1.0], &[1.0, 0.0], 2, 0, Similarity::Dot)
                .unwrap()
                .is_empty()
        );
    }
}
