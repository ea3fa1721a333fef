//! `dsmil-accel`: CPU feature and topology detection, and vector kernels dispatched at run
//! time to AVX-512, AVX2 or portable code (DSMIL layer 4).
//!
//! # Dispatch
//!
//! Every kernel — vector, memory, statistics and crypto — takes a [`Platform`] and matches on
//! it. A `Platform` is a vector path (portable, AVX2, AVX-512) plus the crypto extensions in
//! use ([`CryptoExtension`]: SHA-NI, AES-NI, VAES), each only when this CPU and OS have it, so
//! holding one proves its instructions are available (the `// SAFETY:` argument of every
//! `#[target_feature]` call). [`Platform::detect`] picks the best once; the explicit
//! constructors ([`Platform::portable`], [`Platform::avx2`], [`Platform::avx512`],
//! [`Platform::with`], [`Platform::without`]) force a path for tests and benches. The crypto
//! kernels select from it: SHA-256 runs AVX-512 ×16 on the AVX-512 path, SHA-NI ×4 where the
//! platform carries SHA-NI, else portable ([`crypto::sha256::Sha256Engine::select`]); AES runs
//! VAES, else AES-NI, else portable ([`crypto::aes::AesBackend::select`]); SHA-512 and ChaCha20
//! run their AVX-512 kernels on the AVX-512 path.
//!
//! # Forcing
//!
//! `DSMIL_ACCEL_FORCE` ([`FORCE_VAR`]) forces what runs for the whole process: a
//! comma-separated list of at most one path (`portable`, `avx2`, `avx512`) and crypto
//! extensions turned off (`-sha_ni`, `-aes_ni`, `-vaes`) or on (`+sha_ni`, `+aes_ni`, `+vaes`);
//! with no path named, the best path. `avx2` and `avx512` carry every extension the CPU has that
//! they allow, `portable` none unless asked (`portable,+aes_ni`); `-aes_ni` also turns VAES
//! off. For example `DSMIL_ACCEL_FORCE=avx512,-vaes` runs AES on AES-NI, `avx2` SHA-256 on
//! SHA-NI, `avx2,-sha_ni,-aes_ni` AVX2 with portable crypto. Asking for what the machine lacks
//! is an error naming it ([`PlatformError::Unsupported`],
//! [`PlatformError::UnsupportedExtension`], the seed's `NotSupported`), never a fallback;
//! [`ForceSpec`] is the parser.
//!
//! Every SIMD path is tested against the portable reference and an independent
//! implementation, each crypto kernel once per forced path. [`AccelVectorKernel`] implements
//! core's `VectorKernel` port: exact top-k by dot product, cosine similarity or squared L2
//! distance.
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
//! - [`detect`], [`topology`], [`Platform`]: what the CPU can do and which path runs (the
//!   crate's only kernel feature probes are in [`Platform`] and [`CryptoExtension`]);
//! - [`kernels`]: dot, squared L2, fused dot+norm and batched vector add;
//! - [`memory`]: streaming copy, 64-bit pattern fill, compare with first difference,
//!   gather/scatter;
//! - [`stats`]: numerically stable single-pass statistics of many datasets;
//! - `matmul` (feature `matmul`, off by default): f32/f64 products of `ndarray` views
//!   (dispatched to faer, the fastest library measured here);
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
#[cfg(feature = "matmul")]
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
pub use platform::{
    CryptoExtension, FORCE_VAR, ForceSpec, ForceSpecError, Platform, PlatformError,
};
pub use similarity::AccelVectorKernel;
pub use topology::CpuTopology;
