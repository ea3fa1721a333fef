//! SHA-NI SHA-256, four messages interleaved: `sha256rnds2` has a long latency, so one message
//! at a time leaves the unit idle; four independent messages advanced step by step in lockstep
//! keep it busy.

use std::arch::x86_64::*;

use super::{K, Sha256};
use crate::crypto::lanes::LaneHash;

/// Messages advanced together.
pub const WAYS: usize = 4;

/// Converts `[a..h]` into the (ABEF, CDGH) register pair the SHA instructions use.
#[target_feature(enable = "sha,sse4.1,ssse3")]
fn to_registers(state: &[u32; 8]) -> (__m128i, __m128i) {
    // SAFETY: `state` is 8 u32 = two 16-byte loads.
    let (dcba, hgfe) = unsafe {
        (
            _mm_loadu_si128(state.as_ptr().cast()),
            _mm_loadu_si128(state.as_ptr().add(4).cast()),
        )
    };
    let cdab = _mm_shuffle_epi32::<0xB1>(dcba);
    let efgh = _mm_shuffle_epi32::<0x1B>(hgfe);
    (
        _mm_alignr_epi8::<8>(cdab, efgh),
        _mm_blend_epi16::<0xF0>(efgh, cdab),
    )
}

/// The inverse of [`to_registers`].
#[target_feature(enable = "sha,sse4.1,ssse3")]
fn from_registers(abef: __m128i, cdgh: __m128i, state: &mut [u32; 8]) {
    let feba = _mm_shuffle_epi32::<0x1B>(abef);
    let dchg = _mm_shuffle_epi32::<0xB1>(cdgh);
    let dcba = _mm_blend_epi16::<0xF0>(feba, dchg);
    let hgfe = _mm_alignr_epi8::<8>(dchg, feba);
    // SAFETY: `state` is 8 u32 = two 16-byte stores.
    unsafe {
        _mm_storeu_si128(state.as_mut_ptr().cast(), dcba);
        _mm_storeu_si128(state.as_mut_ptr().add(4).cast(), hgfe);
    }
}

/// Compresses one block of each of the four messages.
#[target_feature(enable = "sha,sse4.1,ssse3")]
fn compress4(abef: &mut [__m128i; WAYS], cdgh: &mut [__m128i; WAYS], blocks: [&[u8; 64]; WAYS]) {
    let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    let (save_abef, save_cdgh) = (*abef, *cdgh);
    let mut m = [[_mm_setzero_si128(); 4]; WAYS];
    for g in 0..16 {
        // SAFETY: K has 64 words; group g reads words 4g..4g+4.
        let k = unsafe { _mm_loadu_si128(K.as_ptr().add(4 * g).cast()) };
        for w in 0..WAYS {
            if g < 4 {
                // SAFETY: each block is 64 bytes; group g < 4 reads bytes 16g..16g+16.
                m[w][g] = _mm_shuffle_epi8(
                    unsafe { _mm_loadu_si128(blocks[w].as_ptr().add(16 * g).cast()) },
                    swap,
                );
            }
            let msg = _mm_add_epi32(m[w][g % 4], k);
            cdgh[w] = _mm_sha256rnds2_epu32(cdgh[w], abef[w], msg);
            if (3..15).contains(&g) {
                let tmp = _mm_alignr_epi8::<4>(m[w][g % 4], m[w][(g + 3) % 4]);
                let next = _mm_add_epi32(m[w][(g + 1) % 4], tmp);
                m[w][(g + 1) % 4] = _mm_sha256msg2_epu32(next, m[w][g % 4]);
            }
            abef[w] = _mm_sha256rnds2_epu32(abef[w], cdgh[w], _mm_shuffle_epi32::<0x0E>(msg));
            if (1..13).contains(&g) {
                m[w][(g + 3) % 4] = _mm_sha256msg1_epu32(m[w][(g + 3) % 4], m[w][g % 4]);
            }
        }
    }
    for w in 0..WAYS {
        abef[w] = _mm_add_epi32(abef[w], save_abef[w]);
        cdgh[w] = _mm_add_epi32(cdgh[w], save_cdgh[w]);
    }
}

/// Compresses `run` blocks of each active lane (bit `i` of `active`; up to four lanes).
///
/// # Safety
/// The CPU must support SHA, SSE4.1 and SSSE3.
#[target_feature(enable = "sha,sse4.1,ssse3")]
pub unsafe fn compress_lanes(
    states: &mut [[u32; 8]],
    inputs: &[(&[u8], usize)],
    run: usize,
    active: u32,
) {
    let mut abef = [_mm_setzero_si128(); WAYS];
    let mut cdgh = [_mm_setzero_si128(); WAYS];
    for (w, s) in states.iter().take(WAYS).enumerate() {
        (abef[w], cdgh[w]) = to_registers(s);
    }
    let mut scratch = [[0u8; 64]; WAYS];
    for offset in 0..run {
        for (w, (msg, first)) in inputs.iter().take(WAYS).enumerate() {
            let index = first + offset;
            if active & (1 << w) != 0 && index * 64 + 64 > msg.len() {
                Sha256::padded_block(msg, index, &mut scratch[w]);
            }
        }
        let blocks: [&[u8; 64]; WAYS] = std::array::from_fn(|w| match inputs.get(w) {
            Some((msg, first)) if active & (1 << w) != 0 => {
                let start = (first + offset) * 64;
                msg.get(start..start + 64)
                    .and_then(|b| <&[u8; 64]>::try_from(b).ok())
                    .unwrap_or(&scratch[w])
            }
            _ => &scratch[w],
        });
        compress4(&mut abef, &mut cdgh, blocks);
    }
    for (w, s) in states.iter_mut().take(WAYS).enumerate() {
        if active & (1 << w) != 0 {
            from_registers(abef[w], cdgh[w], s);
        }
    }
}
