//! Prints what dsmil-accel detects on this machine, runs a top-5 cosine search over 10,000
//! random 256-d rows on every available kernel path, and computes statistics through the async
//! compute engine.
//!
//! `cargo run --release -p dsmil-accel --example detect`

use std::time::Instant;

use dsmil_accel::{AccelVectorKernel, Platform};
use dsmil_core::ports::{Similarity, VectorKernel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let caps = dsmil_accel::capabilities();
    println!("features: {}", serde_list(&caps));
    let topology = dsmil_accel::topology::detect(caps.has_avx512_core());
    println!(
        "cores: {} (P {:?}, E {:?}), AVX-512 on {:?}, NUMA nodes {}, L3 {} KiB, thermal zones {}",
        topology.total_cores,
        topology.p_cores,
        topology.e_cores,
        topology.avx512_cores,
        topology.numa_nodes,
        topology.l3_cache_bytes / 1024,
        topology.thermal_zones
    );
    let selected = Platform::detect()?;
    println!(
        "selected platform: {selected} (SHA-256 {:?}, AES {})",
        dsmil_accel::crypto::sha256::Sha256Engine::select(selected),
        dsmil_accel::crypto::aes::AesBackend::select(selected)
    );

    const DIM: usize = 256;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let matrix: Vec<f32> = (0..10_000 * DIM).map(|_| next()).collect();
    let query: Vec<f32> = matrix[42 * DIM..43 * DIM].to_vec();
    for platform in Platform::available() {
        let kernel = AccelVectorKernel::new(platform);
        let started = Instant::now();
        let hits = kernel.top_k(&query, &matrix, DIM, 5, Similarity::Cosine)?;
        println!(
            "{:<24} top-5 {:?} in {:?}",
            kernel.name(),
            hits.iter().map(|h| h.index).collect::<Vec<_>>(),
            started.elapsed()
        );
    }

    // The same data through the engine: submitted from async code, run on the pinned pool.
    let platform = Platform::detect()?;
    let engine = dsmil_accel::Engine::start(Default::default(), platform, &topology, None)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let bytes = (matrix.len() * 4) as u64;
    let done = runtime.block_on(
        engine.run(dsmil_accel::OpKind::Statistics, bytes, move |p| {
            dsmil_accel::stats::statistics(p, &matrix)
        }),
    )?;
    println!(
        "engine ({} workers on cores {:?}): mean {:.5}, std {:.5} in {:?} (op {})",
        engine.workers(),
        engine.cores(),
        done.value.mean,
        done.value.std_dev,
        done.elapsed,
        done.operation_id
    );
    engine.shutdown();
    Ok(())
}

fn serde_list(caps: &dsmil_accel::features::CapabilitySet) -> String {
    caps.0
        .iter()
        .map(|f| format!("{f:?}").to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}
