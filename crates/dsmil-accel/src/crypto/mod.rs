//! Multi-buffer cryptography kernels: many independent messages or streams at once, one per
//! SIMD lane (the seed's `avx512_crypto_operations`).
//!
//! Every kernel has a portable reference path and is dispatched per [`Platform`](crate::Platform)
//! like the other kernels; all are checked against official vectors and RustCrypto crates.

pub mod aes;
pub mod chacha20;
pub mod lanes;
mod padding;
pub mod sha256;
pub mod sha512;
