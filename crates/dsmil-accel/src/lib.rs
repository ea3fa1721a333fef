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
//! Status: detection, topology, dispatch and the similarity kernels exist; the memory, math,
//! statistics, matmul and crypto kernels and the async compute engine are still to come (see
//! the crate's issue).

pub mod detect;
pub mod kernels;
mod platform;
mod similarity;
pub mod topology;

pub use detect::capabilities;
pub use platform::{FORCE_VAR, Platform, PlatformError};
pub use similarity::AccelVectorKernel;
