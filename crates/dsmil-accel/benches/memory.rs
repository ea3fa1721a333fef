//! Memory kernels beside the C library (glibc's AVX-512 memmove/memset/memcmp) in one run:
//! `copy` 8 MiB and 256 MiB, `set` 256 MiB with a non-zero pattern, `compare` 8 MiB of equal
//! buffers (the worst case: every byte is read).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsmil_accel::{Platform, memory};

const MIB: usize = 1 << 20;

fn copy(c: &mut Criterion) {
    let mut g = c.benchmark_group("copy");
    for (case, size) in [("8MiB", 8 * MIB), ("256MiB", 256 * MIB)] {
        let src = vec![0x5Au8; size];
        let mut dst = vec![0u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        if size > 64 * MIB {
            g.sample_size(10);
        }
        for p in Platform::available()
            .into_iter()
            .filter(|p| p.path() != dsmil_core::KernelPath::Avx2)
        {
            g.bench_function(BenchmarkId::new(format!("dsmil-{}", p.path()), case), |b| {
                b.iter(|| memory::copy(p, black_box(&mut dst), black_box(&src)))
            });
        }
        g.bench_function(BenchmarkId::new("copy_from_slice", case), |b| {
            b.iter(|| black_box(&mut dst).copy_from_slice(black_box(&src)))
        });
    }
    g.finish();
}

fn set(c: &mut Criterion) {
    let mut g = c.benchmark_group("set");
    let size = 256 * MIB;
    let mut dst = vec![0u8; size];
    g.throughput(Throughput::Bytes(size as u64));
    g.sample_size(10);
    let best = Platform::best();
    g.bench_function(
        BenchmarkId::new(format!("dsmil-{}", best.path()), "256MiB"),
        |b| b.iter(|| memory::fill_pattern(best, black_box(&mut dst), 0xA5A5_A5A5_A5A5_A5A5)),
    );
    g.bench_function(BenchmarkId::new("dsmil-portable", "256MiB"), |b| {
        b.iter(|| {
            memory::fill_pattern(
                Platform::portable(),
                black_box(&mut dst),
                0xA5A5_A5A5_A5A5_A5A5,
            )
        })
    });
    g.bench_function(BenchmarkId::new("fill", "256MiB"), |b| {
        b.iter(|| black_box(&mut dst).fill(0xA5))
    });
    g.finish();
}

fn compare(c: &mut Criterion) {
    let mut g = c.benchmark_group("compare");
    let size = 8 * MIB;
    let a = vec![0x33u8; size];
    let b2 = a.clone();
    g.throughput(Throughput::Bytes(size as u64));
    for p in Platform::available()
        .into_iter()
        .filter(|p| p.path() != dsmil_core::KernelPath::Avx2)
    {
        g.bench_function(
            BenchmarkId::new(format!("dsmil-{}", p.path()), "8MiB"),
            |b| b.iter(|| memory::first_difference(p, black_box(&a), black_box(&b2))),
        );
    }
    g.bench_function(BenchmarkId::new("slice_eq", "8MiB"), |b| {
        b.iter(|| black_box(&a) == black_box(&b2))
    });
    g.finish();
}

criterion_group!(benches, copy, set, compare);
criterion_main!(benches);
