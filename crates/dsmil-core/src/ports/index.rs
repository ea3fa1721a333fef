//! The growable vector index port: rows are appended as they arrive and searched for the
//! nearest ones.
//!
//! [`VectorKernel`] scores a matrix the caller owns; a [`VectorIndex`] owns its rows, so a
//! provider can keep whatever extra structure makes search fast (dsmil-accel keeps int8 codes
//! beside the f32 rows). [`FlatIndex`] is the exact reference: a plain f32 scan through any
//! kernel.

use std::sync::Arc;

use super::PortError;
use super::vector::{Hit, Similarity, VectorKernel, check_shape};

/// A growable set of `dim`-dimensional rows searched by one metric.
///
/// Row numbers are positions in insertion order, starting at 0; they never change.
pub trait VectorIndex: Send + Sync {
    /// Which implementation answers (for status pages and benchmark labels).
    fn name(&self) -> String;

    /// Dimension of every row.
    fn dim(&self) -> usize;

    /// The metric searches rank by.
    fn metric(&self) -> Similarity;

    /// Number of rows.
    fn len(&self) -> usize;

    /// Whether the index holds no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `rows` (a multiple of `dim` finite values). On error nothing is appended.
    fn add(&mut self, rows: &[f32]) -> Result<(), PortError>;

    /// The `k` best rows for `query`, best first, ties by row number; values are exact scores.
    /// An index may find them approximately (its recall is documented by the implementation).
    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, PortError>;

    /// Like [`VectorIndex::search`], but always by comparing every row: the true top `k`.
    /// Default: `search` (right for indexes that are exact anyway).
    fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, PortError> {
        self.search(query, k)
    }
}

/// Checks rows about to be appended: shape and finiteness, naming the first bad row.
pub fn check_rows(rows: &[f32], dim: usize) -> Result<(), PortError> {
    check_shape("rows", rows, dim)?;
    if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
        return Err(PortError::InvalidInput(format!(
            "new row {} holds a value that is not finite",
            i / dim
        )));
    }
    Ok(())
}

/// Exact search: every query scans all f32 rows with a [`VectorKernel`].
pub struct FlatIndex {
    kernel: Arc<dyn VectorKernel>,
    dim: usize,
    metric: Similarity,
    rows: Vec<f32>,
}

impl FlatIndex {
    /// An empty index of `dim`-dimensional rows searched by `kernel` under `metric`.
    pub fn new(kernel: Arc<dyn VectorKernel>, dim: usize, metric: Similarity) -> Self {
        Self {
            kernel,
            dim,
            metric,
            rows: Vec::new(),
        }
    }
}

impl std::fmt::Debug for FlatIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatIndex")
            .field("kernel", &self.kernel.name())
            .field("dim", &self.dim)
            .field("rows", &self.len())
            .finish()
    }
}

impl VectorIndex for FlatIndex {
    fn name(&self) -> String {
        format!("flat/{}", self.kernel.name())
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn metric(&self) -> Similarity {
        self.metric
    }

    fn len(&self) -> usize {
        self.rows.len().checked_div(self.dim).unwrap_or(0)
    }

    fn add(&mut self, rows: &[f32]) -> Result<(), PortError> {
        check_rows(rows, self.dim)?;
        self.rows.extend_from_slice(rows);
        Ok(())
    }

    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, PortError> {
        self.kernel
            .top_k(query, &self.rows, self.dim, k, self.metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ScalarVectorKernel;

    #[test]
    fn flat_index_grows_and_finds_rows_by_insertion_number() {
        let mut index = FlatIndex::new(Arc::new(ScalarVectorKernel), 2, Similarity::Cosine);
        assert!(index.is_empty());
        index.add(&[1.0, 0.0, 0.0, 1.0]).unwrap();
        index.add(&[0.7, 0.7]).unwrap();
        assert_eq!(index.len(), 3);
        let hits = index.search(&[0.0, 2.0], 2).unwrap();
        assert_eq!(hits[0].index, 1);
        assert_eq!(hits[1].index, 2);
        assert!(index.name().starts_with("flat/"));
    }

    #[test]
    fn bad_rows_are_refused_and_nothing_is_appended() {
        let mut index = FlatIndex::new(Arc::new(ScalarVectorKernel), 2, Similarity::Dot);
        index.add(&[1.0, 0.0]).unwrap();
        let err = index.add(&[1.0, 2.0, f32::NAN, 0.0]).unwrap_err();
        assert!(err.to_string().contains("new row 1"), "{err}");
        assert!(index.add(&[1.0, 2.0, 3.0]).is_err());
        assert_eq!(index.len(), 1);
        assert!(index.search(&[1.0], 1).is_err());
    }
}
