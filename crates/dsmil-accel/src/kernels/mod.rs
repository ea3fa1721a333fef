//! Vector kernels, one module per instruction set, and the dispatch over them.
//!
//! Every function here takes a [`Platform`], which can only exist when its instruction set is
//! available; that is what makes the `unsafe` calls into `#[target_feature]` code sound.
//! Results of the SIMD paths equal the portable reference up to float reassociation: the
//! tolerance is a relative 1e-5 of the sum of absolute products (tested by property tests).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

use dsmil_core::KernelPath;

use crate::Platform;

/// Inner product of two equally long slices (the shorter length is used if they differ).
pub fn dot(platform: Platform, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    match platform.path() {
        KernelPath::Portable => portable::dot(a, b),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Platform` with the Avx2 path exists only when AVX2 and FMA were detected.
        KernelPath::Avx2 => unsafe { avx2::dot(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Platform` with the Avx512 path exists only when AVX-512 F/BW/DQ/VL were
        // detected.
        KernelPath::Avx512 => unsafe { avx512::dot(a, b) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => portable::dot(a, b),
    }
}

/// Squared Euclidean distance of two equally long slices.
pub fn l2_squared(platform: Platform, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    match platform.path() {
        KernelPath::Portable => portable::l2_squared(a, b),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`: the platform proves AVX2 + FMA.
        KernelPath::Avx2 => unsafe { avx2::l2_squared(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`: the platform proves AVX-512 F/BW/DQ/VL.
        KernelPath::Avx512 => unsafe { avx512::l2_squared(a, b) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => portable::l2_squared(a, b),
    }
}

/// `(a·b, b·b)` in one pass — what cosine similarity against a fixed query needs per row.
pub fn dot_and_norm_squared(platform: Platform, a: &[f32], b: &[f32]) -> (f32, f32) {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    match platform.path() {
        KernelPath::Portable => portable::dot_and_norm_squared(a, b),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`: the platform proves AVX2 + FMA.
        KernelPath::Avx2 => unsafe { avx2::dot_and_norm_squared(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot`: the platform proves AVX-512 F/BW/DQ/VL.
        KernelPath::Avx512 => unsafe { avx512::dot_and_norm_squared(a, b) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => portable::dot_and_norm_squared(a, b),
    }
}
