//! Similarity kernels beside their references, in one run (`cargo xtask bench`):
//! - `dot_256` / `cosine_256`: one 256-d pair; references `simsimd` and a 16-accumulator loop;
//! - `l2_256`: squared L2; references `simsimd` and the loop;
//! - `topk10_scan`: top-10 cosine over 100k×256 rows — exact f32 on every path, and the int8
//!   index with exact re-ranking; reference `simsimd` per row + a heap.
//!
//! Project implementations are named `dsmil-<path>` for every path this machine supports.

use std::collections::BinaryHeap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsmil_accel::quantized::{QuantizedIndex, default_candidates};
use dsmil_accel::{AccelVectorKernel, Platform, kernels};
use dsmil_core::ports::{Similarity, VectorKernel};
use simsimd::SpatialSimilarity;

const DIM: usize = 256;

/// Deterministic pseudo-random floats in [-1, 1).
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// The reference a careful Rust programmer writes by hand: 16 independent accumulators.
fn loop16_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum()
}

fn loop16_l2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        for i in 0..16 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum()
}

fn pairs(c: &mut Criterion) {
    let a = data(DIM, 1);
    let b = data(DIM, 2);
    let bytes = (2 * DIM * 4) as u64;

    let mut g = c.benchmark_group("dot_256");
    g.throughput(Throughput::Bytes(bytes));
    for p in Platform::available() {
        g.bench_function(
            BenchmarkId::new(format!("dsmil-{}", p.path()), "256"),
            |bench| bench.iter(|| kernels::dot(p, black_box(&a), black_box(&b))),
        );
    }
    g.bench_function(BenchmarkId::new("simsimd", "256"), |bench| {
        bench.iter(|| f32::dot(black_box(&a), black_box(&b)))
    });
    g.bench_function(BenchmarkId::new("loop16", "256"), |bench| {
        bench.iter(|| loop16_dot(black_box(&a), black_box(&b)))
    });
    g.finish();

    let mut g = c.benchmark_group("l2_256");
    g.throughput(Throughput::Bytes(bytes));
    for p in Platform::available() {
        g.bench_function(
            BenchmarkId::new(format!("dsmil-{}", p.path()), "256"),
            |bench| bench.iter(|| kernels::l2_squared(p, black_box(&a), black_box(&b))),
        );
    }
    g.bench_function(BenchmarkId::new("simsimd", "256"), |bench| {
        bench.iter(|| f32::sqeuclidean(black_box(&a), black_box(&b)))
    });
    g.bench_function(BenchmarkId::new("loop16", "256"), |bench| {
        bench.iter(|| loop16_l2(black_box(&a), black_box(&b)))
    });
    g.finish();
}

/// Reference top-k: simsimd's cosine distance per row and a bounded heap.
fn simsimd_topk(query: &[f32], matrix: &[f32], k: usize) -> Vec<usize> {
    #[derive(PartialEq)]
    struct D(f64, usize);
    impl Eq for D {}
    impl PartialOrd for D {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for D {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
        }
    }
    let mut heap = BinaryHeap::with_capacity(k + 1);
    for (i, row) in matrix.chunks_exact(DIM).enumerate() {
        let d = f32::cosine(query, row).unwrap_or(f64::MAX);
        heap.push(D(d, i));
        if heap.len() > k {
            heap.pop();
        }
    }
    heap.into_sorted_vec().into_iter().map(|d| d.1).collect()
}

fn scan(c: &mut Criterion) {
    const ROWS: usize = 100_000;
    let matrix = data(ROWS * DIM, 3);
    let query = data(DIM, 4);
    let mut g = c.benchmark_group("topk10_scan");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.sample_size(10);
    for p in Platform::available() {
        let kernel = AccelVectorKernel::new(p);
        g.bench_function(
            BenchmarkId::new(format!("dsmil-{}", p.path()), "100kx256"),
            |bench| {
                bench.iter(|| kernel.top_k(black_box(&query), &matrix, DIM, 10, Similarity::Cosine))
            },
        );
    }
    // The int8 index with exact re-ranking of the best `default_candidates(10)` rows.
    let p = Platform::best();
    let index = QuantizedIndex::build(p, &matrix, DIM, Similarity::Cosine)
        .unwrap_or_else(|e| panic!("{e}"));
    g.bench_function(
        BenchmarkId::new(format!("dsmil-int8-{p}"), "100kx256"),
        |bench| {
            bench.iter(|| index.search(p, black_box(&query), &matrix, 10, default_candidates(10)))
        },
    );
    g.bench_function(BenchmarkId::new("simsimd", "100kx256"), |bench| {
        bench.iter(|| simsimd_topk(black_box(&query), &matrix, 10))
    });
    g.finish();
}

criterion_group!(benches, pairs, scan);
criterion_main!(benches);
