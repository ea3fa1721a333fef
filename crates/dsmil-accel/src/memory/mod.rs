//! Memory kernels: copy (non-temporal stores for large buffers), fill with a 64-bit pattern,
//! compare with the first differing offset, and gather/scatter of many buffers.
//!
//! Small and medium sizes go to the C library (`copy_from_slice`, slice `==`): glibc already
//! dispatches to AVX-512 there and nothing beats it. The AVX-512 paths take over where they
//! win: streaming stores once a copy or fill no longer fits in the last-level cache, 64-bit
//! patterns (the C library only fills bytes), and comparisons that must report *where* two
//! buffers differ.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

use dsmil_core::KernelPath;
use thiserror::Error;

use crate::Platform;

/// Buffers at least this large are copied and filled with non-temporal stores when the
/// last-level cache size is unknown. Measured here: streaming loses to the C library while
/// source and destination still fit in L3 (8 MiB: 0.87×) and wins well beyond it (256 MiB: 1.5×).
pub const NON_TEMPORAL_THRESHOLD: usize = 32 << 20;

/// The size from which copies and fills stream past the cache: the last-level cache size of
/// this machine (read once from sysfs), or [`NON_TEMPORAL_THRESHOLD`] when unknown.
pub fn non_temporal_threshold() -> usize {
    static THRESHOLD: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THRESHOLD.get_or_init(|| {
        let l3 = crate::topology::detect(false).l3_cache_bytes;
        usize::try_from(l3)
            .ok()
            .filter(|b| *b > 0)
            .unwrap_or(NON_TEMPORAL_THRESHOLD)
    })
}

/// Why a memory operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MemoryError {
    /// Source and destination lengths differ.
    #[error("length mismatch: destination holds {dst} bytes, source {src}")]
    LengthMismatch {
        /// Destination length.
        dst: usize,
        /// Source length.
        src: usize,
    },
    /// The destination cannot hold every source buffer.
    #[error("destination holds {capacity} bytes but the buffers need {needed}")]
    TooSmall {
        /// Destination capacity.
        capacity: usize,
        /// Bytes required.
        needed: usize,
    },
}

/// Copies `src` into `dst` (equal lengths).
pub fn copy(platform: Platform, dst: &mut [u8], src: &[u8]) -> Result<(), MemoryError> {
    if dst.len() != src.len() {
        return Err(MemoryError::LengthMismatch {
            dst: dst.len(),
            src: src.len(),
        });
    }
    match platform.path() {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512 if src.len() >= non_temporal_threshold() => {
            // SAFETY: an Avx512 `Platform` exists only when AVX-512 F/BW/DQ/VL were detected.
            unsafe { avx512::copy_streaming(dst, src) }
        }
        _ => dst.copy_from_slice(src),
    }
    Ok(())
}

/// Fills `dst` with the little-endian bytes of `pattern`, repeated from the first byte
/// (byte `i` of `dst` becomes byte `i % 8` of the pattern).
pub fn fill_pattern(platform: Platform, dst: &mut [u8], pattern: u64) {
    match platform.path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the platform proves AVX-512 F/BW/DQ/VL.
        KernelPath::Avx512 => unsafe { avx512::fill_pattern(dst, pattern) },
        _ => portable::fill_pattern(dst, pattern),
    }
}

/// The first offset at which `a` and `b` differ; `None` when they are equal. When one is a
/// prefix of the other, the shorter length is returned.
pub fn first_difference(platform: Platform, a: &[u8], b: &[u8]) -> Option<usize> {
    let n = a.len().min(b.len());
    let found = match platform.path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the platform proves AVX-512 F/BW/DQ/VL.
        KernelPath::Avx512 => unsafe { avx512::first_difference(&a[..n], &b[..n]) },
        _ => portable::first_difference(&a[..n], &b[..n]),
    };
    found.or((a.len() != b.len()).then_some(n))
}

/// Concatenates `sources` into the front of `dst`; returns the bytes written.
pub fn gather(platform: Platform, sources: &[&[u8]], dst: &mut [u8]) -> Result<usize, MemoryError> {
    let needed: usize = sources.iter().map(|s| s.len()).sum();
    if needed > dst.len() {
        return Err(MemoryError::TooSmall {
            capacity: dst.len(),
            needed,
        });
    }
    let mut at = 0;
    for s in sources {
        copy(platform, &mut dst[at..at + s.len()], s)?;
        at += s.len();
    }
    Ok(at)
}

/// Splits the front of `src` into `targets`, in order (the inverse of [`gather`]); returns the
/// bytes read.
pub fn scatter(
    platform: Platform,
    src: &[u8],
    targets: &mut [&mut [u8]],
) -> Result<usize, MemoryError> {
    let needed: usize = targets.iter().map(|t| t.len()).sum();
    if needed > src.len() {
        return Err(MemoryError::TooSmall {
            capacity: src.len(),
            needed,
        });
    }
    let mut at = 0;
    for t in targets.iter_mut() {
        let len = t.len();
        copy(platform, t, &src[at..at + len])?;
        at += len;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_sizes() {
        let p = Platform::best();
        let mut dst = [0u8; 4];
        assert_eq!(
            copy(p, &mut dst, &[1, 2]),
            Err(MemoryError::LengthMismatch { dst: 4, src: 2 })
        );
        assert_eq!(
            gather(p, &[&[1, 2, 3], &[4, 5]], &mut dst),
            Err(MemoryError::TooSmall {
                capacity: 4,
                needed: 5
            })
        );
    }

    #[test]
    fn gather_then_scatter_round_trips() {
        for p in Platform::available() {
            let parts: [&[u8]; 3] = [b"abc", b"", b"defgh"];
            let mut joined = [0u8; 10];
            assert_eq!(gather(p, &parts, &mut joined), Ok(8));
            assert_eq!(&joined[..8], b"abcdefgh");
            let (mut x, mut y) = ([0u8; 5], [0u8; 3]);
            assert_eq!(scatter(p, &joined, &mut [&mut x, &mut y]), Ok(8));
            assert_eq!((&x, &y), (b"abcde", b"fgh"));
        }
    }

    #[test]
    fn prefix_difference_is_the_shorter_length() {
        for p in Platform::available() {
            assert_eq!(first_difference(p, b"abc", b"abc"), None);
            assert_eq!(first_difference(p, b"abc", b"abcd"), Some(3));
            assert_eq!(first_difference(p, b"", b""), None);
        }
    }
}
