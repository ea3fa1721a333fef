//! Multi-buffer hashing beside the libraries users would otherwise pick, in one run, each
//! reference hashing the same messages one after another:
//! - `sha256_x16`: 16 × 4 KiB and 16 × 64 B — `sha2` (SHA-NI where present), `ring`, `aws-lc-rs`;
//!   our rows are every SHA-256 engine this machine has (portable, interleaved SHA-NI ×4,
//!   AVX-512 ×16), each forced through the `Platform` that selects it;
//! - `sha512_x8`: 8 × 4 KiB — `sha2`, `ring`, `aws-lc-rs`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsmil_accel::crypto::sha256::{Sha256Engine, sha256_many};
use dsmil_accel::crypto::sha512::sha512_many;
use dsmil_accel::{CryptoExtension, Platform};
use sha2::Digest as _;

fn messages(count: usize, len: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| (0..len).map(|j| (i * 131 + j * 7) as u8).collect())
        .collect()
}

/// One platform per SHA-256 engine this machine has, with the engine's row name.
fn sha256_engines() -> Vec<(&'static str, Platform)> {
    [
        Some(Platform::portable()),
        Platform::portable().with(CryptoExtension::ShaNi),
        Platform::avx512(),
    ]
    .into_iter()
    .flatten()
    .map(|p| {
        let name = match Sha256Engine::select(p) {
            Sha256Engine::Portable => "dsmil-portable",
            Sha256Engine::ShaNi4 => "dsmil-shani-x4",
            Sha256Engine::Avx512x16 => "dsmil-avx512-x16",
        };
        (name, p)
    })
    .collect()
}

fn sha256(c: &mut Criterion) {
    let mut g = c.benchmark_group("sha256_x16");
    for (case, len) in [("4KiB", 4096usize), ("64B", 64)] {
        let msgs = messages(16, len);
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        g.throughput(Throughput::Bytes((16 * len) as u64));
        for (name, p) in sha256_engines() {
            g.bench_function(BenchmarkId::new(name, case), |b| {
                b.iter(|| sha256_many(p, black_box(&refs)))
            });
        }
        g.bench_function(BenchmarkId::new("sha2", case), |b| {
            b.iter(|| {
                refs.iter()
                    .map(|m| sha2::Sha256::digest(black_box(m)))
                    .collect::<Vec<_>>()
            })
        });
        g.bench_function(BenchmarkId::new("ring", case), |b| {
            b.iter(|| {
                refs.iter()
                    .map(|m| ring::digest::digest(&ring::digest::SHA256, black_box(m)))
                    .collect::<Vec<_>>()
            })
        });
        g.bench_function(BenchmarkId::new("aws-lc-rs", case), |b| {
            b.iter(|| {
                refs.iter()
                    .map(|m| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(m)))
                    .collect::<Vec<_>>()
            })
        });
    }
    g.finish();
}

fn sha512(c: &mut Criterion) {
    let mut g = c.benchmark_group("sha512_x8");
    let msgs = messages(8, 4096);
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    g.throughput(Throughput::Bytes(8 * 4096));
    for p in Platform::available()
        .into_iter()
        .filter(|p| p.path() != dsmil_core::KernelPath::Avx2)
    {
        g.bench_function(
            BenchmarkId::new(format!("dsmil-{}", p.path()), "4KiB"),
            |b| b.iter(|| sha512_many(p, black_box(&refs))),
        );
    }
    g.bench_function(BenchmarkId::new("sha2", "4KiB"), |b| {
        b.iter(|| {
            refs.iter()
                .map(|m| sha2::Sha512::digest(black_box(m)))
                .collect::<Vec<_>>()
        })
    });
    g.bench_function(BenchmarkId::new("aws-lc-rs", "4KiB"), |b| {
        b.iter(|| {
            refs.iter()
                .map(|m| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, black_box(m)))
                .collect::<Vec<_>>()
        })
    });
    g.bench_function(BenchmarkId::new("ring", "4KiB"), |b| {
        b.iter(|| {
            refs.iter()
                .map(|m| ring::digest::digest(&ring::digest::SHA512, black_box(m)))
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

criterion_group!(benches, sha256, sha512);
criterion_main!(benches);
