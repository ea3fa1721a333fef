//! VAES on 512-bit registers: four AES blocks per register.
//!
//! ECB: register `j` holds blocks `4j..4j+4`, and the round-`r` keys of keys `4j..4j+4` are
//! 64 contiguous bytes of the round-major schedule, so one aligned load gives each block its
//! own key. CTR: one key's round keys broadcast to all four lanes, 32 counter blocks (eight
//! registers, enough independent chains to keep both AES pipes busy) per step, counters kept
//! as little-endian 128-bit lanes and byte-swapped into big-endian blocks.

use std::arch::x86_64::*;

use super::{BLOCK_LEN, Block, MAX_KEYS, ROUNDS};

/// Round keys of every key, `[round][key]`; 64-byte aligned (the `Schedule` repr).
type RoundKeys = [[Block; MAX_KEYS]; ROUNDS + 1];

/// Registers of CTR blocks per step.
const PAR: usize = 8;
/// Bytes per register.
const REG: usize = 4 * BLOCK_LEN;

/// Block `i` of 16 with key `i`.
///
/// # Safety
/// The CPU must support AVX-512 F, VAES and AES-NI; `rk` must be 64-byte aligned (it is a
/// field of the `align(64)` schedule).
#[target_feature(enable = "avx512f,vaes,aes")]
pub unsafe fn ecb16(rk: &RoundKeys, blocks: &mut [Block; MAX_KEYS], decrypt: bool) {
    // Keys 4j..4j+4 of round r: 64 contiguous bytes, 64-byte aligned because the schedule is
    // and each round row is 256 bytes.
    let load_keys = |r: usize, j: usize| -> __m512i {
        let row: &[Block; MAX_KEYS] = &rk[r];
        debug_assert_eq!(row.as_ptr().align_offset(64), 0);
        // SAFETY: see above; the CPU supports AVX-512 F (this function's contract).
        unsafe { _mm512_load_si512(row[4 * j..].as_ptr().cast()) }
    };
    let p = blocks.as_mut_ptr().cast::<u8>();
    let mut s = [_mm512_setzero_si512(); 4];
    for (j, v) in s.iter_mut().enumerate() {
        // SAFETY: `blocks` is 256 bytes; register j reads bytes 64j..64j+64.
        let b = unsafe { _mm512_loadu_si512(p.add(REG * j).cast()) };
        *v = _mm512_xor_si512(b, load_keys(0, j));
    }
    for r in 1..ROUNDS {
        for (j, v) in s.iter_mut().enumerate() {
            *v = if decrypt {
                _mm512_aesdec_epi128(*v, load_keys(r, j))
            } else {
                _mm512_aesenc_epi128(*v, load_keys(r, j))
            };
        }
    }
    for (j, v) in s.iter().enumerate() {
        let out = if decrypt {
            _mm512_aesdeclast_epi128(*v, load_keys(ROUNDS, j))
        } else {
            _mm512_aesenclast_epi128(*v, load_keys(ROUNDS, j))
        };
        // SAFETY: as for the load.
        unsafe { _mm512_storeu_si512(p.add(REG * j).cast(), out) };
    }
}

/// `v + inc` per 128-bit lane, both little-endian 128-bit integers whose increment fits the
/// low 64 bits: a carry out of a low half is added to the high half.
#[inline]
#[target_feature(enable = "avx512f")]
fn add_lanes(v: __m512i, inc: __m512i) -> __m512i {
    let s = _mm512_add_epi64(v, inc);
    // High halves have increment 0 and never compare below it.
    let carry = _mm512_cmplt_epu64_mask(s, inc);
    _mm512_mask_add_epi64(s, carry << 1, s, _mm512_set1_epi64(1))
}

/// The big-endian counter blocks `c, c+1, …, c+4N-1`, four per register, wrapping modulo
/// 2^128 like `Ctr128BE`.
///
/// When the counter's last byte does not wrap within the `4N` blocks (seven batches in
/// eight), the increments are added straight to that byte of the big-endian blocks: one
/// 32-bit add per register. Otherwise the blocks are built as little-endian 128-bit lanes with
/// carries and byte-swapped. The branch depends only on the counter, which is public.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn counter_blocks<const N: usize>(c: u128) -> [__m512i; N] {
    let mut out = [_mm512_setzero_si512(); N];
    if usize::from(c as u8) + 4 * N <= 256 {
        let be = c.to_be_bytes();
        // SAFETY: `be` is 16 readable bytes.
        let block = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(be.as_ptr().cast()) });
        // Byte 15 of each block is the top byte of its 32-bit word 3 (dword mask 0x8888).
        const LANE: [i32; 16] = [
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1 << 24,
            0,
            0,
            0,
            2 << 24,
            0,
            0,
            0,
            3 << 24,
        ];
        // SAFETY: `LANE` is 64 readable bytes.
        let lane = unsafe { _mm512_loadu_si512(LANE.as_ptr().cast()) };
        let base = _mm512_add_epi32(block, lane);
        for (j, v) in out.iter_mut().enumerate() {
            *v = _mm512_add_epi32(
                base,
                _mm512_maskz_set1_epi32(0x8888, ((4 * j) as i32) << 24),
            );
        }
    } else {
        // Reverses the bytes of each 128-bit lane: little-endian counter <-> big-endian block.
        let bswap = _mm512_broadcast_i32x4(_mm_set_epi8(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        ));
        let le = _mm512_broadcast_i32x4(_mm_set_epi64x((c >> 64) as i64, c as i64));
        let base = add_lanes(le, _mm512_set_epi64(0, 3, 0, 2, 0, 1, 0, 0));
        for (j, v) in out.iter_mut().enumerate() {
            let lanes = add_lanes(base, _mm512_maskz_set1_epi64(0x55, (4 * j) as i64));
            *v = _mm512_shuffle_epi8(lanes, bswap);
        }
    }
    out
}

/// Encrypts `N` registers of counter blocks and XORs the result into `data` (folded into the
/// last round: `aesenclast(x, k14 ^ d) = aesenclast(x, k14) ^ d`).
#[inline]
#[target_feature(enable = "avx512f,vaes")]
fn encrypt_xor<const N: usize>(
    keys: &[__m512i; ROUNDS + 1],
    counters: [__m512i; N],
    data: [__m512i; N],
) -> [__m512i; N] {
    let mut s = counters;
    for v in s.iter_mut() {
        *v = _mm512_xor_si512(*v, keys[0]);
    }
    for k in &keys[1..ROUNDS] {
        for v in s.iter_mut() {
            *v = _mm512_aesenc_epi128(*v, *k);
        }
    }
    for (v, d) in s.iter_mut().zip(data) {
        *v = _mm512_aesenclast_epi128(*v, _mm512_xor_si512(d, keys[ROUNDS]));
    }
    s
}

/// CTR keystream of key `k` from `counter_block` XORed into `data`.
///
/// # Safety
/// The CPU must support AVX-512 F and BW, VAES and AES-NI.
#[target_feature(enable = "avx512f,avx512bw,vaes,aes")]
pub unsafe fn ctr_xor(rk: &RoundKeys, k: usize, counter_block: &Block, data: &mut [u8]) {
    let mut keys = [_mm512_setzero_si512(); ROUNDS + 1];
    for (v, round) in keys.iter_mut().zip(rk) {
        // SAFETY: a block is 16 readable bytes.
        *v = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(round[k].as_ptr().cast()) });
    }
    let mut c = u128::from_be_bytes(*counter_block);
    let (n, p) = (data.len(), data.as_mut_ptr());
    let mut off = 0;
    while off + PAR * REG <= n {
        let mut d = [_mm512_setzero_si512(); PAR];
        for (j, v) in d.iter_mut().enumerate() {
            // SAFETY: off + 64 (j + 1) <= off + PAR * REG <= n.
            *v = unsafe { _mm512_loadu_si512(p.add(off + REG * j).cast()) };
        }
        let out = encrypt_xor::<PAR>(&keys, counter_blocks::<PAR>(c), d);
        for (j, v) in out.iter().enumerate() {
            // SAFETY: as for the loads.
            unsafe { _mm512_storeu_si512(p.add(off + REG * j).cast(), *v) };
        }
        c = c.wrapping_add((4 * PAR) as u128);
        off += PAR * REG;
    }
    while off < n {
        let len = n - off;
        let m: __mmask64 = if len >= REG { !0 } else { (1u64 << len) - 1 };
        // SAFETY: the mask covers only bytes off..min(off + 64, n), all inside `data`.
        let d = unsafe { _mm512_maskz_loadu_epi8(m, p.add(off).cast()) };
        let [v] = encrypt_xor::<1>(&keys, counter_blocks::<1>(c), [d]);
        // SAFETY: as for the load.
        unsafe { _mm512_mask_storeu_epi8(p.add(off).cast(), m, v) };
        c = c.wrapping_add(4);
        off += REG;
    }
}
