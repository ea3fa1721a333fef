//! Matrix multiplication, f32 and f64, on `ndarray` views.
//!
//! This dispatches to `faer`, not to a hand-written kernel: measured side by side in
//! `cargo xtask bench matmul`, faer's AVX-512 kernels match or beat `gemm` (with its `x86-v4`
//! kernels) and `matrixmultiply` on this machine, and a micro-kernel of our own would only be
//! worth its `unsafe` if it beat them. The result is computed on the calling thread
//! (`Par::Seq`): callers who want parallelism submit several products to the engine.
//!
//! Views of any layout are accepted; non-row-major inputs are copied into row-major order once.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2};
use thiserror::Error;

/// Why a product was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "cannot multiply a {a_rows}×{a_cols} matrix by a {b_rows}×{b_cols} one: inner dimensions differ"
)]
pub struct ShapeMismatch {
    /// Rows of the left operand.
    pub a_rows: usize,
    /// Columns of the left operand.
    pub a_cols: usize,
    /// Rows of the right operand.
    pub b_rows: usize,
    /// Columns of the right operand.
    pub b_cols: usize,
}

macro_rules! matmul_impl {
    ($name:ident, $t:ty) => {
        /// `A (m×k) · B (k×n)` as a new row-major `m×n` matrix.
        pub fn $name(
            a: ArrayView2<'_, $t>,
            b: ArrayView2<'_, $t>,
        ) -> Result<Array2<$t>, ShapeMismatch> {
            let ((m, k), (k2, n)) = (a.dim(), b.dim());
            if k != k2 {
                return Err(ShapeMismatch {
                    a_rows: m,
                    a_cols: k,
                    b_rows: k2,
                    b_cols: n,
                });
            }
            let a = a.as_standard_layout();
            let b = b.as_standard_layout();
            let mut c = Array2::<$t>::zeros((m, n));
            // Row-major, contiguous after `as_standard_layout`; `zeros` is row-major too.
            if let (Some(sa), Some(sb), Some(sc)) = (a.as_slice(), b.as_slice(), c.as_slice_mut()) {
                let lhs = MatRef::from_row_major_slice(sa, m, k);
                let rhs = MatRef::from_row_major_slice(sb, k, n);
                let dst = MatMut::from_row_major_slice_mut(sc, m, n);
                matmul(dst, Accum::Replace, lhs, rhs, 1.0, Par::Seq);
            } else {
                // Unreachable: standard-layout arrays are contiguous. Stay correct regardless.
                for ((i, j), out) in c.indexed_iter_mut() {
                    *out = a.row(i).dot(&b.column(j));
                }
            }
            Ok(c)
        }
    };
}

matmul_impl!(matmul_f32, f32);
matmul_impl!(matmul_f64, f64);

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn small_products_and_shape_errors() {
        let a = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let b = array![[7.0f32, 8.0], [9.0, 10.0], [11.0, 12.0]];
        assert_eq!(
            matmul_f32(a.view(), b.view()).unwrap(),
            array![[58.0, 64.0], [139.0, 154.0]]
        );
        // A transposed (column-major) view is accepted.
        let at = array![[1.0f64, 4.0], [2.0, 5.0], [3.0, 6.0]];
        let bd = array![[7.0f64, 8.0], [9.0, 10.0], [11.0, 12.0]];
        assert_eq!(
            matmul_f64(at.t(), bd.view()).unwrap(),
            array![[58.0, 64.0], [139.0, 154.0]]
        );
        let err = matmul_f32(a.view(), a.view()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot multiply a 2×3 matrix by a 2×3 one: inner dimensions differ"
        );
        let empty = matmul_f32(Array2::zeros((0, 3)).view(), b.view()).unwrap();
        assert_eq!(empty.dim(), (0, 2));
    }
}
