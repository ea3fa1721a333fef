//! Math kernels beside their references, in one run:
//! - `stats_1m`: count/mean/variance/min/max of 1M f32 — our stable single pass against the
//!   textbook 32-accumulator Σx/Σx² loop (fast, not numerically stable);
//! - `vector_add_1m`: element-wise add against the plain iterator loop;
//! - `sgemm` / `dgemm` 256–2048, one thread: `dsmil-faer` (our API, dispatching to faer)
//!   against `faer` called directly, `gemm` (with its x86-v4 kernels) and `matrixmultiply`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsmil_accel::{Platform, kernels, matmul, stats};
use ndarray::Array2;

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

/// The textbook single pass: 32 accumulators each of Σx, Σx², min and max.
fn loop32_stats(x: &[f32]) -> (f32, f32, f32, f32) {
    let (mut s, mut q) = ([0f32; 32], [0f32; 32]);
    let (mut lo, mut hi) = ([f32::INFINITY; 32], [f32::NEG_INFINITY; 32]);
    let chunks = x.chunks_exact(32);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..32 {
            s[i] += c[i];
            q[i] += c[i] * c[i];
            lo[i] = lo[i].min(c[i]);
            hi[i] = hi[i].max(c[i]);
        }
    }
    let n = x.len() as f32;
    let sum: f32 = s.iter().sum::<f32>() + tail.iter().sum::<f32>();
    let sq: f32 = q.iter().sum::<f32>() + tail.iter().map(|v| v * v).sum::<f32>();
    let min = lo.iter().chain(tail).fold(f32::INFINITY, |a, b| a.min(*b));
    let max = hi
        .iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |a, b| a.max(*b));
    let mean = sum / n;
    (mean, sq / n - mean * mean, min, max)
}

fn statistics(c: &mut Criterion) {
    let x = data(1 << 20, 1);
    let mut g = c.benchmark_group("stats_1m");
    g.throughput(Throughput::Bytes((x.len() * 4) as u64));
    for p in Platform::available()
        .into_iter()
        .filter(|p| p.path() != dsmil_core::KernelPath::Avx2)
    {
        g.bench_function(BenchmarkId::new(format!("dsmil-{}", p.path()), "1M"), |b| {
            b.iter(|| stats::statistics(p, black_box(&x)))
        });
    }
    g.bench_function(BenchmarkId::new("loop32", "1M"), |b| {
        b.iter(|| loop32_stats(black_box(&x)))
    });
    g.finish();
}

fn vector_add(c: &mut Criterion) {
    let (a, b2) = (data(1 << 20, 2), data(1 << 20, 3));
    let mut out = vec![0f32; a.len()];
    let mut g = c.benchmark_group("vector_add_1m");
    g.throughput(Throughput::Bytes((a.len() * 12) as u64));
    for p in Platform::available()
        .into_iter()
        .filter(|p| p.path() != dsmil_core::KernelPath::Avx2)
    {
        g.bench_function(BenchmarkId::new(format!("dsmil-{}", p.path()), "1M"), |b| {
            b.iter(|| kernels::add(p, black_box(&mut out), black_box(&a), black_box(&b2)))
        });
    }
    g.bench_function(BenchmarkId::new("iterator", "1M"), |b| {
        b.iter(|| {
            for ((o, x), y) in black_box(&mut out).iter_mut().zip(&a).zip(&b2) {
                *o = x + y;
            }
        })
    });
    g.finish();
}

macro_rules! gemm_group {
    ($fn_name:ident, $group:literal, $t:ty, $ours:path, $mm:path) => {
        fn $fn_name(c: &mut Criterion) {
            let mut g = c.benchmark_group($group);
            g.sample_size(10);
            for n in [256usize, 1024, 2048] {
                let a = Array2::<$t>::from_shape_fn((n, n), |(i, j)| {
                    ((i * 7 + j * 3) % 17) as $t - 8.0
                });
                let b = Array2::<$t>::from_shape_fn((n, n), |(i, j)| {
                    ((i * 5 + j * 11) % 13) as $t - 6.0
                });
                let mut out = Array2::<$t>::zeros((n, n));
                g.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
                let case = n.to_string();
                g.bench_function(BenchmarkId::new("dsmil-faer", &case), |bch| {
                    bch.iter(|| $ours(black_box(a.view()), black_box(b.view())))
                });
                g.bench_function(BenchmarkId::new("faer", &case), |bch| {
                    let (sa, sb) = (a.as_slice().unwrap(), b.as_slice().unwrap());
                    bch.iter(|| {
                        let so = out.as_slice_mut().unwrap();
                        faer::linalg::matmul::matmul(
                            faer::MatMut::from_row_major_slice_mut(so, n, n),
                            faer::Accum::Replace,
                            faer::MatRef::from_row_major_slice(sa, n, n),
                            faer::MatRef::from_row_major_slice(sb, n, n),
                            1.0,
                            faer::Par::Seq,
                        )
                    })
                });
                g.bench_function(BenchmarkId::new("gemm", &case), |bch| {
                    bch.iter(|| {
                        let (pa, pb, po) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr());
                        let n = n as isize;
                        // SAFETY: all three are n×n row-major arrays (column stride 1, row
                        // stride n) that live for the call; `out` is not aliased.
                        unsafe {
                            gemm::gemm(
                                n as usize,
                                n as usize,
                                n as usize,
                                po,
                                1,
                                n,
                                false,
                                pa,
                                1,
                                n,
                                pb,
                                1,
                                n,
                                0.0,
                                1.0,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            )
                        }
                    })
                });
                g.bench_function(BenchmarkId::new("matrixmultiply", &case), |bch| {
                    bch.iter(|| {
                        let (pa, pb, po) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr());
                        let n = n as isize;
                        // SAFETY: as above: n×n row-major arrays, `out` not aliased.
                        unsafe {
                            $mm(
                                n as usize, n as usize, n as usize, 1.0, pa, n, 1, pb, n, 1, 0.0,
                                po, n, 1,
                            )
                        }
                    })
                });
            }
            g.finish();
        }
    };
}

gemm_group!(
    sgemm,
    "sgemm",
    f32,
    matmul::matmul_f32,
    matrixmultiply::sgemm
);
gemm_group!(
    dgemm,
    "dgemm",
    f64,
    matmul::matmul_f64,
    matrixmultiply::dgemm
);

criterion_group!(benches, statistics, vector_add, sgemm, dgemm);
criterion_main!(benches);
