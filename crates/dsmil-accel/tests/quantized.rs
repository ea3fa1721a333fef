//! The int8 index with exact re-ranking against exact search: exact values, and recall@10 on
//! uniform random and clustered 256-d data, for every metric, each test once per forced path.

use std::collections::HashSet;

use dsmil_accel::quantized::{QuantizedIndex, default_candidates};
use dsmil_accel::{AccelVectorKernel, Platform};
use dsmil_core::ports::{Similarity, VectorKernel};

const DIM: usize = 256;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn uniform(rows: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed | 1);
    (0..rows * DIM).map(|_| r.next()).collect()
}

/// Rows around 50 random centres (drawn from `centre_seed`), like embeddings of related tasks.
fn clustered(rows: usize, centre_seed: u64, noise_seed: u64) -> Vec<f32> {
    let mut centres_rng = Rng(centre_seed | 1);
    let centres: Vec<f32> = (0..50 * DIM).map(|_| centres_rng.next()).collect();
    let mut noise = Rng(noise_seed | 1);
    let mut out = Vec::with_capacity(rows * DIM);
    for i in 0..rows {
        let c = (i * 7) % 50;
        for d in 0..DIM {
            out.push(centres[c * DIM + d] + 0.35 * noise.next());
        }
    }
    out
}

fn recall(matrix: &[f32], queries: &[f32], metric: Similarity, p: Platform) -> f64 {
    let index = QuantizedIndex::build(p, matrix, DIM, metric).unwrap();
    let exact = AccelVectorKernel::new(p);
    let (mut found, mut total) = (0usize, 0usize);
    for q in queries.chunks_exact(DIM) {
        let want = exact.top_k(q, matrix, DIM, 10, metric).unwrap();
        let got = index
            .search(p, q, matrix, 10, default_candidates(10))
            .unwrap();
        assert_eq!(got.len(), want.len());
        // Values of returned rows are exact scores.
        for h in &got {
            let single = exact
                .top_k(
                    q,
                    &matrix[h.index * DIM..(h.index + 1) * DIM],
                    DIM,
                    1,
                    metric,
                )
                .unwrap();
            assert_eq!(single[0].value, h.value);
        }
        let want: HashSet<usize> = want.iter().map(|h| h.index).collect();
        found += got.iter().filter(|h| want.contains(&h.index)).count();
        total += want.len();
    }
    found as f64 / total as f64
}

per_path!(
    recall_at_10_on_clustered_and_uniform_data,
    [portable, avx2, avx512],
    |p| {
        let clustered_rows = clustered(10_000, 11, 12);
        let clustered_queries = clustered(40, 11, 13);
        let uniform_rows = uniform(10_000, 14);
        let uniform_queries = uniform(40, 15);
        for metric in [Similarity::Cosine, Similarity::Dot, Similarity::L2] {
            let rc = recall(&clustered_rows, &clustered_queries, metric, p);
            let ru = recall(&uniform_rows, &uniform_queries, metric, p);
            eprintln!("{p} {metric:?}: recall@10 clustered {rc:.4}, uniform {ru:.4}");
            assert!(rc >= 0.999, "{p} {metric:?} clustered recall {rc}");
            assert!(ru >= 0.999, "{p} {metric:?} uniform recall {ru}");
        }
    }
);

per_path!(
    accel_index_grown_in_pieces_matches_the_flat_reference,
    [portable, avx2, avx512],
    |p| {
        use dsmil_accel::AccelIndex;
        use dsmil_accel::index::QUANTIZED_FROM_ROWS;
        use dsmil_core::ports::{FlatIndex, ScalarVectorKernel, VectorIndex};
        use std::sync::Arc;

        let rows = clustered(QUANTIZED_FROM_ROWS + 1500, 21, 22);
        let queries = clustered(20, 21, 23);
        let mut accel = AccelIndex::new(p, DIM, Similarity::Cosine).unwrap();
        let mut flat = FlatIndex::new(Arc::new(ScalarVectorKernel), DIM, Similarity::Cosine);
        // Uneven pieces, searched after each, so both the exact and the int8 regime are hit.
        let mut start = 0;
        for piece in [1usize, 999, 3000, 1596] {
            let chunk = &rows[start * DIM..(start + piece) * DIM];
            accel.add(chunk).unwrap();
            flat.add(chunk).unwrap();
            start += piece;
            assert_eq!(accel.len(), flat.len());
            for q in queries.chunks_exact(DIM) {
                let got: Vec<usize> = accel
                    .search(q, 10)
                    .unwrap()
                    .iter()
                    .map(|h| h.index)
                    .collect();
                let want: Vec<usize> = flat
                    .search(q, 10)
                    .unwrap()
                    .iter()
                    .map(|h| h.index)
                    .collect();
                assert_eq!(got, want, "{p} after {start} rows");
            }
        }
        assert!(accel.len() >= QUANTIZED_FROM_ROWS);
        let mut bad = vec![0.5f32; DIM];
        bad[3] = f32::INFINITY;
        assert!(accel.add(&bad).is_err());
        assert_eq!(accel.len(), start, "a refused row is not appended");
    }
);
