//! AVX-512 memory kernels: streaming (non-temporal) copy, 64-bit pattern fill, and a
//! comparison that finds the first differing byte with 64-byte masks.

use std::arch::x86_64::*;

/// Bytes per 512-bit register.
const V: usize = 64;

/// Copies with non-temporal stores: the head up to a 64-byte-aligned destination and the tail
/// with `copy_from_slice`, the body 256 bytes per iteration, then a store fence.
///
/// # Safety
/// The CPU must support AVX-512 F. `dst` and `src` must have equal lengths (checked by the
/// caller).
#[target_feature(enable = "avx512f")]
pub unsafe fn copy_streaming(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    let head = dst.as_ptr().align_offset(V).min(n);
    dst[..head].copy_from_slice(&src[..head]);
    let body = (n - head) / (4 * V) * (4 * V);
    let (d, s) = (dst[head..].as_mut_ptr(), src[head..].as_ptr());
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4V <= body <= n - head, so all loads and stores are in bounds; the
        // destination is 64-byte aligned (head was chosen so), as stream stores require.
        unsafe {
            let a = _mm512_loadu_si512(s.add(i).cast());
            let b = _mm512_loadu_si512(s.add(i + V).cast());
            let c = _mm512_loadu_si512(s.add(i + 2 * V).cast());
            let e = _mm512_loadu_si512(s.add(i + 3 * V).cast());
            _mm512_stream_si512(d.add(i).cast(), a);
            _mm512_stream_si512(d.add(i + V).cast(), b);
            _mm512_stream_si512(d.add(i + 2 * V).cast(), c);
            _mm512_stream_si512(d.add(i + 3 * V).cast(), e);
        }
        i += 4 * V;
    }
    // Streaming stores are weakly ordered: fence before anyone reads the destination.
    _mm_sfence();
    dst[head + body..n].copy_from_slice(&src[head + body..n]);
}

/// Fills with the repeated little-endian bytes of `pattern`: 256 bytes per iteration,
/// streaming stores above the non-temporal threshold.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
pub unsafe fn fill_pattern(dst: &mut [u8], pattern: u64) {
    let n = dst.len();
    let head = dst.as_ptr().align_offset(V).min(n);
    super::portable::fill_pattern(&mut dst[..head], pattern);
    // From the aligned start, byte j holds pattern byte (head + j) % 8.
    let phase = (head % 8) as u32;
    let word = pattern.rotate_right(8 * phase);
    let v = _mm512_set1_epi64(word as i64);
    let body = (n - head) / (4 * V) * (4 * V);
    let d = dst[head..].as_mut_ptr();
    let streaming = n >= super::non_temporal_threshold();
    let mut i = 0;
    while i < body {
        // SAFETY: i + 4V <= body <= n - head; the destination is 64-byte aligned.
        unsafe {
            if streaming {
                _mm512_stream_si512(d.add(i).cast(), v);
                _mm512_stream_si512(d.add(i + V).cast(), v);
                _mm512_stream_si512(d.add(i + 2 * V).cast(), v);
                _mm512_stream_si512(d.add(i + 3 * V).cast(), v);
            } else {
                _mm512_store_si512(d.add(i).cast(), v);
                _mm512_store_si512(d.add(i + V).cast(), v);
                _mm512_store_si512(d.add(i + 2 * V).cast(), v);
                _mm512_store_si512(d.add(i + 3 * V).cast(), v);
            }
        }
        i += 4 * V;
    }
    if streaming {
        _mm_sfence();
    }
    let rest = &mut dst[head + body..];
    let word_bytes = word.to_le_bytes();
    for (j, b) in rest.iter_mut().enumerate() {
        *b = word_bytes[j % 8];
    }
}

/// First differing offset of two equally long slices; 256 bytes per iteration with one
/// combined test for the early exit.
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    while i + 4 * V <= n {
        // SAFETY: i + 4V <= n, so all eight loads are in bounds.
        let masks = unsafe {
            [
                _mm512_cmpneq_epi8_mask(
                    _mm512_loadu_si512(pa.add(i).cast()),
                    _mm512_loadu_si512(pb.add(i).cast()),
                ),
                _mm512_cmpneq_epi8_mask(
                    _mm512_loadu_si512(pa.add(i + V).cast()),
                    _mm512_loadu_si512(pb.add(i + V).cast()),
                ),
                _mm512_cmpneq_epi8_mask(
                    _mm512_loadu_si512(pa.add(i + 2 * V).cast()),
                    _mm512_loadu_si512(pb.add(i + 2 * V).cast()),
                ),
                _mm512_cmpneq_epi8_mask(
                    _mm512_loadu_si512(pa.add(i + 3 * V).cast()),
                    _mm512_loadu_si512(pb.add(i + 3 * V).cast()),
                ),
            ]
        };
        if (masks[0] | masks[1] | masks[2] | masks[3]) != 0 {
            for (k, m) in masks.iter().enumerate() {
                if *m != 0 {
                    return Some(i + k * V + m.trailing_zeros() as usize);
                }
            }
        }
        i += 4 * V;
    }
    while i < n {
        let len = (n - i).min(V);
        let m: __mmask64 = if len == V {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        // SAFETY: the masked loads touch only the `len` bytes that exist.
        let diff = unsafe {
            let x = _mm512_maskz_loadu_epi8(m, pa.add(i).cast());
            let y = _mm512_maskz_loadu_epi8(m, pb.add(i).cast());
            _mm512_cmpneq_epi8_mask(x, y)
        };
        if diff != 0 {
            return Some(i + diff.trailing_zeros() as usize);
        }
        i += len;
    }
    None
}
