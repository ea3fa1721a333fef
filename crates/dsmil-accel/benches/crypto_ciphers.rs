//! Cipher kernels beside RustCrypto in one run (references in their default build: runtime
//! detection, no `target-cpu=native`, no opt-in cfg):
//!
//! - `aes256_ctr_x16`, `16x16KiB`: 16 keys, one 16 KiB CTR stream each; `aes+ctr` runs the
//!   16 streams one after another (`Ctr128BE<Aes256>` from pre-expanded keys, as ours are), and
//!   so does `aws-lc-rs` (its CTR `EncryptingKey`).
//! - `chacha20_x16`, `16x16KiB`: 16 independent (key, nonce, counter) streams; `chacha20`
//!   runs them one after another.
//! - `chacha20_single`, `256KiB`: one stream.
//!
//! Our rows are `dsmil-<path>`; the AVX2 path is left out of the ChaCha20 groups (it runs the
//! portable code there).

use std::hint::black_box;

use aes::Aes256;
use aes::cipher::{InnerIvInit, KeyInit, KeyIvInit, StreamCipher};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsmil_accel::Platform;
use dsmil_accel::crypto::aes::{Aes256x16, CtrStream};
use dsmil_accel::crypto::chacha20::{Chacha20Stream, chacha20_xor, chacha20_xor_many};
use dsmil_core::KernelPath;

const KIB: usize = 1024;
const STREAMS: usize = 16;

type Aes256Ctr = ctr::Ctr128BE<Aes256>;
type CtrCore = ctr::CtrCore<Aes256, ctr::flavors::Ctr128BE>;

fn keys() -> Vec<[u8; 32]> {
    (0..STREAMS)
        .map(|i| std::array::from_fn(|j| (i * 31 + j * 7) as u8))
        .collect()
}

fn aes256_ctr_x16(c: &mut Criterion) {
    let mut g = c.benchmark_group("aes256_ctr_x16");
    let case = "16x16KiB";
    let len = 16 * KIB;
    g.throughput(Throughput::Bytes((STREAMS * len) as u64));
    let keys = keys();
    let ivs: Vec<[u8; 16]> = (0..STREAMS)
        .map(|i| std::array::from_fn(|j| (i * 13 + j) as u8))
        .collect();
    let mut bufs: Vec<Vec<u8>> = (0..STREAMS).map(|i| vec![i as u8; len]).collect();
    for p in Platform::available() {
        let Ok(aes) = Aes256x16::new(p, &keys) else {
            continue;
        };
        g.bench_function(BenchmarkId::new(format!("dsmil-{}", p.path()), case), |b| {
            b.iter(|| {
                let mut streams: Vec<_> = bufs
                    .iter_mut()
                    .zip(&ivs)
                    .map(|(buf, iv)| CtrStream::new(*iv, buf))
                    .collect();
                aes.ctr_xor_many(black_box(&mut streams))
            })
        });
    }
    let ciphers: Vec<Aes256> = keys.iter().map(|k| Aes256::new(k.into())).collect();
    g.bench_function(BenchmarkId::new("aes+ctr", case), |b| {
        b.iter(|| {
            for ((buf, iv), cipher) in bufs.iter_mut().zip(&ivs).zip(&ciphers) {
                let core = CtrCore::inner_iv_init(cipher.clone(), iv.into());
                let mut ctr = Aes256Ctr::from_core(core);
                ctr.apply_keystream(black_box(buf));
            }
        })
    });
    let aws_keys: Vec<aws_lc_rs::cipher::EncryptingKey> = keys
        .iter()
        .map(|k| {
            let unbound = aws_lc_rs::cipher::UnboundCipherKey::new(&aws_lc_rs::cipher::AES_256, k)
                .unwrap_or_else(|e| panic!("aws-lc-rs key: {e}"));
            aws_lc_rs::cipher::EncryptingKey::ctr(unbound)
                .unwrap_or_else(|e| panic!("aws-lc-rs ctr: {e}"))
        })
        .collect();
    g.bench_function(BenchmarkId::new("aws-lc-rs", case), |b| {
        b.iter(|| {
            for ((buf, iv), key) in bufs.iter_mut().zip(&ivs).zip(&aws_keys) {
                let context = aws_lc_rs::cipher::EncryptionContext::Iv128((*iv).into());
                key.less_safe_encrypt(black_box(buf), context)
                    .unwrap_or_else(|e| panic!("aws-lc-rs encrypt: {e}"));
            }
        })
    });
    g.finish();
}

/// Paths whose ChaCha20 code differs (AVX2 runs the portable code).
fn chacha_paths() -> impl Iterator<Item = Platform> {
    Platform::available()
        .into_iter()
        .filter(|p| p.path() != KernelPath::Avx2)
}

fn chacha20_x16(c: &mut Criterion) {
    let mut g = c.benchmark_group("chacha20_x16");
    let case = "16x16KiB";
    let len = 16 * KIB;
    g.throughput(Throughput::Bytes((STREAMS * len) as u64));
    let keys = keys();
    let nonces: Vec<[u8; 12]> = (0..STREAMS)
        .map(|i| std::array::from_fn(|j| (i * 5 + j) as u8))
        .collect();
    let mut bufs: Vec<Vec<u8>> = (0..STREAMS).map(|i| vec![i as u8; len]).collect();
    for p in chacha_paths() {
        g.bench_function(BenchmarkId::new(format!("dsmil-{}", p.path()), case), |b| {
            b.iter(|| {
                let mut streams: Vec<_> = bufs
                    .iter_mut()
                    .enumerate()
                    .map(|(i, buf)| Chacha20Stream::new(&keys[i], nonces[i], 1, buf))
                    .collect();
                chacha20_xor_many(p, black_box(&mut streams))
            })
        });
    }
    g.bench_function(BenchmarkId::new("chacha20", case), |b| {
        b.iter(|| {
            for ((buf, key), nonce) in bufs.iter_mut().zip(&keys).zip(&nonces) {
                let mut cipher = chacha20::ChaCha20::new(key.into(), nonce.into());
                cipher.apply_keystream(black_box(buf));
            }
        })
    });
    g.finish();
}

fn chacha20_single(c: &mut Criterion) {
    let mut g = c.benchmark_group("chacha20_single");
    let case = "256KiB";
    let len = 256 * KIB;
    g.throughput(Throughput::Bytes(len as u64));
    let key = [0x42u8; 32];
    let nonce = [0x24u8; 12];
    let mut buf = vec![0x5Au8; len];
    for p in chacha_paths() {
        g.bench_function(BenchmarkId::new(format!("dsmil-{}", p.path()), case), |b| {
            b.iter(|| chacha20_xor(p, &key, &nonce, 1, black_box(&mut buf)))
        });
    }
    g.bench_function(BenchmarkId::new("chacha20", case), |b| {
        b.iter(|| {
            let mut cipher = chacha20::ChaCha20::new((&key).into(), (&nonce).into());
            cipher.apply_keystream(black_box(&mut buf));
        })
    });
    g.finish();
}

criterion_group!(benches, aes256_ctr_x16, chacha20_x16, chacha20_single);
criterion_main!(benches);
