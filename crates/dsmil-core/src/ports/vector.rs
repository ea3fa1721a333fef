//! The vector-kernel port (provided by the accelerator layer) and its scalar reference.

use serde::{Deserialize, Serialize};

use super::PortError;

/// How rows are compared with the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    /// Inner product; larger is closer.
    Dot,
    /// Cosine similarity; larger is closer (a zero row or query scores 0).
    Cosine,
    /// Squared Euclidean distance; smaller is closer.
    L2,
}

/// One result of a top-k search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Row index in the matrix.
    pub index: usize,
    /// Similarity (dot, cosine) or squared distance (L2).
    pub value: f32,
}

/// Batched similarity search over a row-major matrix of embeddings.
///
/// Results are ordered best first (largest value for dot and cosine, smallest for L2); equal
/// values keep the lower row index first, so every implementation returns the same order.
pub trait VectorKernel: Send + Sync {
    /// Name of the implementation and path (`scalar`, `avx512`, …), for status and logs.
    fn name(&self) -> String;

    /// The `k` best rows of `matrix` (`rows × dim`, row-major) for `query` (`dim` values).
    fn top_k(
        &self,
        query: &[f32],
        matrix: &[f32],
        dim: usize,
        k: usize,
        metric: Similarity,
    ) -> Result<Vec<Hit>, PortError>;

    /// [`VectorKernel::top_k`] for each of several queries (`queries` is `n × dim`, row-major).
    fn top_k_batch(
        &self,
        queries: &[f32],
        matrix: &[f32],
        dim: usize,
        k: usize,
        metric: Similarity,
    ) -> Result<Vec<Vec<Hit>>, PortError> {
        check_shape("queries", queries, dim)?;
        queries
            .chunks_exact(dim)
            .map(|q| self.top_k(q, matrix, dim, k, metric))
            .collect()
    }
}

/// Checks that `data` is a whole number of `dim`-wide rows.
pub(crate) fn check_shape(what: &str, data: &[f32], dim: usize) -> Result<(), PortError> {
    if dim == 0 {
        return Err(PortError::InvalidInput(
            "dimension must be at least 1".into(),
        ));
    }
    if !data.len().is_multiple_of(dim) {
        return Err(PortError::InvalidInput(format!(
            "{what} has {} values, which is not a multiple of the dimension {dim}",
            data.len()
        )));
    }
    Ok(())
}

/// Checks the arguments every [`VectorKernel::top_k`] implementation receives: `dim` ≥ 1, a
/// query of exactly `dim` finite values, and a matrix of whole `dim`-wide rows. Implementations
/// call it first so they reject the same inputs with the same messages.
pub fn check_top_k_input(query: &[f32], matrix: &[f32], dim: usize) -> Result<(), PortError> {
    check_shape("matrix", matrix, dim)?;
    if query.len() != dim {
        return Err(PortError::InvalidInput(format!(
            "query has {} values; expected the dimension {dim}",
            query.len()
        )));
    }
    if let Some(i) = query.iter().position(|v| !v.is_finite()) {
        return Err(PortError::InvalidInput(format!(
            "query value {i} is not finite"
        )));
    }
    Ok(())
}

/// Cosine similarity from its parts: `dot = q·r`, `query_norm = ‖q‖`, `row_norm_sq = ‖r‖²`.
/// A zero query or row scores 0 (every implementation must agree on this edge).
pub fn cosine_from_parts(dot: f32, query_norm: f32, row_norm_sq: f32) -> f32 {
    let row_norm = row_norm_sq.sqrt();
    if query_norm == 0.0 || row_norm == 0.0 {
        0.0
    } else {
        dot / (query_norm * row_norm)
    }
}

/// Plain-Rust reference implementation (exact, no SIMD).
#[derive(Debug, Clone, Copy, Default)]
pub struct ScalarVectorKernel;

impl ScalarVectorKernel {
    fn score(query: &[f32], row: &[f32], metric: Similarity, query_norm: f32) -> f32 {
        match metric {
            Similarity::Dot => query.iter().zip(row).map(|(a, b)| a * b).sum(),
            Similarity::L2 => query.iter().zip(row).map(|(a, b)| (a - b) * (a - b)).sum(),
            Similarity::Cosine => {
                let dot: f32 = query.iter().zip(row).map(|(a, b)| a * b).sum();
                cosine_from_parts(dot, query_norm, row.iter().map(|v| v * v).sum())
            }
        }
    }
}

impl VectorKernel for ScalarVectorKernel {
    fn name(&self) -> String {
        "scalar".into()
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
        if let Some(i) = matrix.iter().position(|v| !v.is_finite()) {
            return Err(PortError::InvalidInput(format!(
                "row {} holds a value that is not finite",
                i / dim
            )));
        }
        let query_norm = query.iter().map(|v| v * v).sum::<f32>().sqrt();
        let mut hits: Vec<Hit> = matrix
            .chunks_exact(dim)
            .enumerate()
            .map(|(index, row)| Hit {
                index,
                value: Self::score(query, row, metric, query_norm),
            })
            .collect();
        let better = |a: &Hit, b: &Hit| match metric {
            Similarity::L2 => a.value.total_cmp(&b.value),
            Similarity::Dot | Similarity::Cosine => b.value.total_cmp(&a.value),
        };
        hits.sort_by(|a, b| better(a, b).then(a.index.cmp(&b.index)));
        hits.truncate(k);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_the_nearest_rows() {
        let m = [1.0, 0.0, 0.0, 1.0, 0.7, 0.7, -1.0, 0.0];
        let k = ScalarVectorKernel;
        let hits = k.top_k(&[1.0, 0.1], &m, 2, 2, Similarity::Cosine).unwrap();
        assert_eq!(hits.iter().map(|h| h.index).collect::<Vec<_>>(), vec![0, 2]);
        let hits = k.top_k(&[0.0, 1.0], &m, 2, 1, Similarity::L2).unwrap();
        assert_eq!(hits[0].index, 1);
        assert_eq!(hits[0].value, 0.0);
        let hits = k.top_k(&[2.0, 0.0], &m, 2, 10, Similarity::Dot).unwrap();
        assert_eq!(hits.len(), 4);
        assert_eq!(hits[3].index, 3);
    }

    #[test]
    fn rejects_bad_shapes_and_values() {
        let k = ScalarVectorKernel;
        assert!(k.top_k(&[1.0], &[1.0, 2.0], 2, 1, Similarity::Dot).is_err());
        assert!(
            k.top_k(&[1.0, 2.0], &[1.0, 2.0, 3.0], 2, 1, Similarity::Dot)
                .is_err()
        );
        assert!(
            k.top_k(&[1.0, f32::NAN], &[1.0, 2.0], 2, 1, Similarity::Dot)
                .is_err()
        );
        assert!(k.top_k(&[], &[], 0, 1, Similarity::Dot).is_err());
    }

    proptest! {
        /// Top-k equals the first k of a full sort by brute force, for every metric and batch.
        #[test]
        fn top_k_matches_brute_force(
            rows in proptest::collection::vec(proptest::collection::vec(-10f32..10.0, 4), 1..40),
            query in proptest::collection::vec(-10f32..10.0, 4),
            k in 0usize..50,
        ) {
            let matrix: Vec<f32> = rows.iter().flatten().copied().collect();
            for metric in [Similarity::Dot, Similarity::Cosine, Similarity::L2] {
                let hits = ScalarVectorKernel.top_k(&query, &matrix, 4, k, metric).unwrap();
                prop_assert_eq!(hits.len(), k.min(rows.len()));
                for pair in hits.windows(2) {
                    match metric {
                        Similarity::L2 => prop_assert!(pair[0].value <= pair[1].value),
                        _ => prop_assert!(pair[0].value >= pair[1].value),
                    }
                }
                let batch = ScalarVectorKernel
                    .top_k_batch(&[query.clone(), query.clone()].concat(), &matrix, 4, k, metric)
                    .unwrap();
                prop_assert_eq!(&batch[0], &hits);
                prop_assert_eq!(&batch[1], &hits);
            }
        }
    }
}
