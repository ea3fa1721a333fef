//! Prints what dsmil-accel detects on this machine and runs a top-5 cosine search over 10,000
//! random 256-d rows on every available kernel path.
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
    println!("selected path: {}", Platform::detect()?);

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
    Ok(())
}

fn serde_list(caps: &dsmil_core::CapabilitySet) -> String {
    caps.0
        .iter()
        .map(|f| format!("{f:?}").to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}
