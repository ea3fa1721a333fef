//! 64-byte aligned buffers for AVX-512 loads and stores, without `unsafe`.
//!
//! Storage is a `Vec` of 64-byte, 64-byte-aligned chunks; the element view is a
//! `bytemuck::cast_slice` of the chunks cut to the length, so the first element is always on a
//! cache-line (and ZMM register) boundary. Allocation uses `try_reserve_exact`, so running out
//! of memory is an [`AccelError::Allocation`] (keeping the allocator's error as its source), and a
//! size past the address space an [`AccelError::InsufficientMemory`], never an abort.

use std::fmt;
use std::ops::{Deref, DerefMut};

use super::error::AccelError;

/// The alignment of every [`AlignedVec`] and [`AlignedBytes`], in bytes.
pub const ALIGNMENT: usize = 64;

/// One cache line: the unit of storage.
#[repr(C, align(64))]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Chunk([u8; ALIGNMENT]);

const ZERO: Chunk = Chunk([0; ALIGNMENT]);

/// Enough zeroed chunks to hold `elements` elements of `element_size` bytes.
fn zeroed_chunks(elements: usize, element_size: usize) -> Result<Vec<Chunk>, AccelError> {
    let bytes = elements
        .checked_mul(element_size)
        .ok_or(AccelError::InsufficientMemory)?;
    let count = bytes.div_ceil(ALIGNMENT);
    let mut chunks = Vec::new();
    chunks
        .try_reserve_exact(count)
        .map_err(|source| AccelError::Allocation { bytes, source })?;
    chunks.resize(count, ZERO);
    Ok(chunks)
}

macro_rules! aligned_buffer {
    ($(#[$doc:meta])* $name:ident, $elem:ty) => {
        $(#[$doc])*
        #[derive(Clone, Default)]
        pub struct $name {
            chunks: Vec<Chunk>,
            len: usize,
        }

        impl $name {
            /// `len` zeroes.
            pub fn zeroed(len: usize) -> Result<Self, AccelError> {
                Ok(Self {
                    chunks: zeroed_chunks(len, size_of::<$elem>())?,
                    len,
                })
            }

            /// A copy of `values`.
            pub fn from_slice(values: &[$elem]) -> Result<Self, AccelError> {
                let mut buffer = Self::zeroed(values.len())?;
                buffer.as_mut_slice().copy_from_slice(values);
                Ok(buffer)
            }

            /// Number of elements.
            pub fn len(&self) -> usize {
                self.len
            }

            /// Whether there are no elements.
            pub fn is_empty(&self) -> bool {
                self.len == 0
            }

            /// The elements; the first is 64-byte aligned.
            pub fn as_slice(&self) -> &[$elem] {
                let all: &[$elem] = bytemuck::cast_slice(&self.chunks);
                &all[..self.len]
            }

            /// The elements, mutable; the first is 64-byte aligned.
            pub fn as_mut_slice(&mut self) -> &mut [$elem] {
                let all: &mut [$elem] = bytemuck::cast_slice_mut(&mut self.chunks);
                &mut all[..self.len]
            }
        }

        impl Deref for $name {
            type Target = [$elem];
            fn deref(&self) -> &[$elem] {
                self.as_slice()
            }
        }

        impl DerefMut for $name {
            fn deref_mut(&mut self) -> &mut [$elem] {
                self.as_mut_slice()
            }
        }

        impl PartialEq for $name {
            /// Element-wise, like slices (so for floats `NaN != NaN` and `0.0 == -0.0`).
            fn eq(&self, other: &Self) -> bool {
                self.as_slice() == other.as_slice()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.as_slice()).finish()
            }
        }
    };
}

aligned_buffer!(
    /// A 64-byte aligned buffer of `f32` (vectors, matrices, embeddings).
    AlignedVec,
    f32
);

aligned_buffer!(
    /// A 64-byte aligned buffer of bytes (hash and cipher inputs, copies).
    AlignedBytes,
    u8
);

impl Eq for AlignedBytes {}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned<T>(slice: &[T]) -> bool {
        (slice.as_ptr() as usize).is_multiple_of(ALIGNMENT)
    }

    #[test]
    fn buffers_are_64_byte_aligned_for_every_length() {
        for len in [0, 1, 3, 15, 16, 17, 64, 1000, 4097] {
            let v = AlignedVec::zeroed(len).unwrap();
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
            let b = AlignedBytes::zeroed(len).unwrap();
            assert_eq!(b.len(), len);
            if len > 0 {
                assert!(aligned(v.as_slice()), "f32 len {len}");
                assert!(aligned(b.as_slice()), "u8 len {len}");
            }
        }
    }

    #[test]
    fn from_slice_round_trips_and_is_mutable() {
        let values: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let mut v = AlignedVec::from_slice(&values).unwrap();
        assert_eq!(v.as_slice(), &values[..]);
        v.as_mut_slice()[36] = -1.0;
        v[0] = 9.0;
        assert_eq!(v[36], -1.0);
        assert_eq!(v[0], 9.0);
        assert!(aligned(v.as_slice()));
        let clone = v.clone();
        assert!(aligned(clone.as_slice()));
        assert_eq!(clone, v);

        let b = AlignedBytes::from_slice(b"hello").unwrap();
        assert_eq!(&*b, b"hello");
        assert_eq!(format!("{b:?}"), "[104, 101, 108, 108, 111]");
        assert!(AlignedBytes::default().is_empty());
    }

    #[test]
    fn impossible_sizes_are_insufficient_memory() {
        assert!(matches!(
            AlignedVec::zeroed(usize::MAX).unwrap_err(),
            AccelError::InsufficientMemory
        ));
        let err = AlignedBytes::zeroed(usize::MAX - 8).unwrap_err();
        assert!(
            matches!(err, AccelError::Allocation { bytes, .. } if bytes == usize::MAX - 8),
            "{err:?}"
        );
        assert_eq!(err.code(), crate::AccelErrorCode::InsufficientMemory);
    }
}
