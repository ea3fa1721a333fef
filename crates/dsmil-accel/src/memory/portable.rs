//! Portable memory kernels, the reference for the SIMD paths.

/// Fills with the repeated little-endian bytes of `pattern`.
pub fn fill_pattern(dst: &mut [u8], pattern: u64) {
    let bytes = pattern.to_le_bytes();
    let mut chunks = dst.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&bytes);
    }
    let tail = chunks.into_remainder();
    let len = tail.len();
    tail.copy_from_slice(&bytes[..len]);
}

/// First differing offset of two equally long slices, eight bytes at a time.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let mut offset = 0;
    for (x, y) in a.chunks(8).zip(b.chunks(8)) {
        if x != y {
            return x
                .iter()
                .zip(y)
                .position(|(p, q)| p != q)
                .map(|i| offset + i);
        }
        offset += x.len();
    }
    None
}
