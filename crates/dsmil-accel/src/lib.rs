//! `dsmil-accel`: CPU feature and topology detection, and vector kernels dispatched at run
//! time to AVX-512, AVX2 or portable code (DSMIL layer 4).
//!
//! The best path is chosen once ([`Platform::detect`]); `DSMIL_ACCEL_FORCE=portable|avx2|avx512`
//! or the explicit constructors force one. Every SIMD path is tested against the portable
//! reference and an independent implementation. [`AccelVectorKernel`] implements core's
//! `VectorKernel` port: exact top-k by dot product, cosine similarity or squared L2 distance.
//!
//! ```
//! use dsmil_accel::{AccelVectorKernel, Platform};
//! use dsmil_core::ports::{Similarity, VectorKernel};
//!
//! let caps = dsmil_accel::capabilities();
//! let topology = dsmil_accel::topology::detect(caps.has_avx512_core());
//! assert!(topology.total_cores >= 1);
//!
//! // Three 4-d rows; which two are most similar to the query?
//! let matrix = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0];
//! let kernel = AccelVectorKernel::new(Platform::detect()?);
//! let hits = kernel.top_k(&[1.0, 0.0, 0.0, 0.0], &matrix, 4, 2, Similarity::Cosine)?;
//! assert_eq!(hits[0].index, 0);
//! assert_eq!(hits[1].index, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What is here, by module:
//!
//! - [`detect`], [`topology`], [`Platform`]: what the CPU can do and which path runs;
//! - [`kernels`]: dot, squared L2, fused dot+norm and batched vector add;
//! - [`memory`]: streaming copy, 64-bit pattern fill, compare with first difference,
//!   gather/scatter;
//! - [`stats`]: numerically stable single-pass statistics of many datasets;
//! - [`matmul`]: f32/f64 products of `ndarray` views (dispatched to faer, the fastest library
//!   measured here);
//! - [`AccelVectorKernel`] and [`quantized`]: exact top-k, and an int8 index with exact
//!   re-ranking;
//! - [`crypto`]: multi-buffer SHA-256 and SHA-512, multi-key AES-256 (ECB, CTR) and ChaCha20,
//!   one message or stream per SIMD lane;
//! - [`engine`]: the async compute pool — bounded queue, per-operation counters on the event
//!   bus, performance scaling and thermal throttling.
//!
//! Speed is measured beside the best libraries by `cargo xtask bench` (see docs/benchmarks.md).

pub mod crypto;
pub mod detect;
pub mod engine;
pub mod features;
pub mod index;
pub mod kernels;
pub mod matmul;
pub mod memory;
mod platform;
pub mod quantized;
mod similarity;
pub mod stats;
pub mod topology;

pub use detect::capabilities;
pub use engine::{
    AccelError, AccelErrorCode, AlignedBytes, AlignedVec, Completed, Engine, EngineConfig,
    JobHandle, Meter, OpCounters, OpKind,
};
pub use features::{CapabilitySet, CpuFeature};
pub use index::AccelIndex;
pub use platform::{FORCE_VAR, Platform, PlatformError};
pub use similarity::AccelVectorKernel;
pub use topology::CpuTopology;
