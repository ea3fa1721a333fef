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

/// Why a vector operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("vector {index}: lengths differ (out {out}, a {a}, b {b})")]
pub struct LengthMismatch {
    /// Which vector of the batch (0 for single calls).
    pub index: usize,
    /// Output length.
    pub out: usize,
    /// First input length.
    pub a: usize,
    /// Second input length.
    pub b: usize,
}

/// `out[i] = a[i] + b[i]`; all three must have the same length.
pub fn add(
    platform: Platform,
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
) -> Result<(), LengthMismatch> {
    if out.len() != a.len() || a.len() != b.len() {
        return Err(LengthMismatch {
            index: 0,
            out: out.len(),
            a: a.len(),
            b: b.len(),
        });
    }
    match platform.path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the platform proves AVX-512 F/BW/DQ/VL.
        KernelPath::Avx512 => unsafe { avx512::add(out, a, b) },
        _ => portable::add(out, a, b),
    }
    Ok(())
}

/// [`add`] over a batch of vectors: `outs[v] = a[v] + b[v]` for every `v`. Checks every
/// length before writing anything.
pub fn add_many(
    platform: Platform,
    outs: &mut [&mut [f32]],
    a: &[&[f32]],
    b: &[&[f32]],
) -> Result<(), LengthMismatch> {
    let batch = outs.len();
    if a.len() != batch || b.len() != batch {
        return Err(LengthMismatch {
            index: batch.min(a.len()).min(b.len()),
            out: batch,
            a: a.len(),
            b: b.len(),
        });
    }
    for (index, ((o, x), y)) in outs.iter().zip(a).zip(b).enumerate() {
        if o.len() != x.len() || x.len() != y.len() {
            return Err(LengthMismatch {
                index,
                out: o.len(),
                a: x.len(),
                b: y.len(),
            });
        }
    }
    for ((o, x), y) in outs.iter_mut().zip(a).zip(b) {
        add(platform, o, x, y)?;
    }
    Ok(())
}
