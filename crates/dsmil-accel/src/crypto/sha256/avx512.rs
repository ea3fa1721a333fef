//! AVX-512 SHA-256 over 16 lanes: word `t` of the message schedule of all 16 lanes lives in one
//! register, so every round instruction advances 16 independent messages. Σ, Ch and Maj use
//! three-input `vpternlogd`; the 64 rounds are unrolled in groups of 16 so the rolling schedule
//! stays in registers.

use std::arch::x86_64::*;

use super::{K, LANES, Sha256};
use crate::crypto::lanes::LaneHash;

macro_rules! xor3 {
    ($a:expr, $b:expr, $c:expr) => {
        _mm512_ternarylogic_epi32::<0x96>($a, $b, $c)
    };
}

/// One round with schedule word `w` (already computed) and constant `k`.
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $w:expr, $k:expr) => {{
        let s1 = xor3!(
            _mm512_ror_epi32::<6>($e),
            _mm512_ror_epi32::<11>($e),
            _mm512_ror_epi32::<25>($e)
        );
        let ch = _mm512_ternarylogic_epi32::<0xCA>($e, $f, $g);
        let t1 = _mm512_add_epi32(
            _mm512_add_epi32($h, s1),
            _mm512_add_epi32(ch, _mm512_add_epi32($w, _mm512_set1_epi32($k as i32))),
        );
        let s0 = xor3!(
            _mm512_ror_epi32::<2>($a),
            _mm512_ror_epi32::<13>($a),
            _mm512_ror_epi32::<22>($a)
        );
        let maj = _mm512_ternarylogic_epi32::<0xE8>($a, $b, $c);
        $d = _mm512_add_epi32($d, t1);
        $h = _mm512_add_epi32(t1, _mm512_add_epi32(s0, maj));
    }};
}

/// Next schedule word from the rolling window `w` at position `i` (t mod 16).
macro_rules! schedule {
    ($w:ident, $i:expr) => {{
        let w15 = $w[($i + 1) & 15];
        let w2 = $w[($i + 14) & 15];
        let s0 = xor3!(
            _mm512_ror_epi32::<7>(w15),
            _mm512_ror_epi32::<18>(w15),
            _mm512_srli_epi32::<3>(w15)
        );
        let s1 = xor3!(
            _mm512_ror_epi32::<17>(w2),
            _mm512_ror_epi32::<19>(w2),
            _mm512_srli_epi32::<10>(w2)
        );
        $w[$i] = _mm512_add_epi32(
            _mm512_add_epi32($w[$i], s0),
            _mm512_add_epi32($w[($i + 9) & 15], s1),
        );
    }};
}

/// Sixteen rounds; `sched` says whether the window must be advanced first (rounds 16..64).
macro_rules! sixteen_rounds {
    ($st:ident, $w:ident, $base:expr, $sched:expr) => {{
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = $st;
        macro_rules! r {
            ($i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {
                if $sched {
                    schedule!($w, $i);
                }
                round!($a, $b, $c, $d, $e, $f, $g, $h, $w[$i], K[$base + $i]);
            };
        }
        r!(0, a, b, c, d, e, f, g, h);
        r!(1, h, a, b, c, d, e, f, g);
        r!(2, g, h, a, b, c, d, e, f);
        r!(3, f, g, h, a, b, c, d, e);
        r!(4, e, f, g, h, a, b, c, d);
        r!(5, d, e, f, g, h, a, b, c);
        r!(6, c, d, e, f, g, h, a, b);
        r!(7, b, c, d, e, f, g, h, a);
        r!(8, a, b, c, d, e, f, g, h);
        r!(9, h, a, b, c, d, e, f, g);
        r!(10, g, h, a, b, c, d, e, f);
        r!(11, f, g, h, a, b, c, d, e);
        r!(12, e, f, g, h, a, b, c, d);
        r!(13, d, e, f, g, h, a, b, c);
        r!(14, c, d, e, f, g, h, a, b);
        r!(15, b, c, d, e, f, g, h, a);
        $st = [a, b, c, d, e, f, g, h];
    }};
}

/// The 64 bytes of block `offset` (relative to each lane's start block) of every lane: the
/// message itself where a whole block is available, else the padded copy in `scratch`.
/// Inactive lanes read a zero block.
fn block_rows<'s>(
    inputs: &'s [(&[u8], usize)],
    offset: usize,
    active: u32,
    scratch: &'s mut [[u8; 64]; LANES],
) -> [&'s [u8; 64]; LANES] {
    for (i, (msg, first)) in inputs.iter().take(LANES).enumerate() {
        let index = first + offset;
        let start = index * 64;
        if active & (1 << i) != 0 && start + 64 > msg.len() {
            Sha256::padded_block(msg, index, &mut scratch[i]);
        } else if active & (1 << i) == 0 {
            scratch[i] = [0u8; 64];
        }
    }
    let scratch: &'s [[u8; 64]; LANES] = scratch;
    std::array::from_fn(|i| match inputs.get(i) {
        Some((msg, first)) if active & (1 << i) != 0 => {
            let start = (first + offset) * 64;
            msg.get(start..start + 64)
                .and_then(|b| <&[u8; 64]>::try_from(b).ok())
                .unwrap_or(&scratch[i])
        }
        _ => &scratch[i],
    })
}

/// Loads one 64-byte block per lane and transposes them so register `t` holds word `t` of all
/// 16 lanes, byte-swapped to big-endian order: a 16×16 transpose of 32-bit words in four stages
/// (32-bit and 64-bit unpacks, two 128-bit shuffles), then `vpshufb`.
#[target_feature(enable = "avx512f,avx512bw")]
fn load_transposed(rows: &[&[u8; 64]; LANES]) -> [__m512i; 16] {
    // SAFETY: every row is exactly 64 bytes.
    let r: [__m512i; 16] =
        std::array::from_fn(|i| unsafe { _mm512_loadu_si512(rows[i].as_ptr().cast()) });
    let mut t = [_mm512_setzero_si512(); 16];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    let mut u = [_mm512_setzero_si512(); 16];
    for k in 0..4 {
        u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    for k in 0..4 {
        t[k] = _mm512_shuffle_i32x4::<0x88>(u[k], u[k + 4]);
        t[k + 4] = _mm512_shuffle_i32x4::<0xdd>(u[k], u[k + 4]);
        t[k + 8] = _mm512_shuffle_i32x4::<0x88>(u[k + 8], u[k + 12]);
        t[k + 12] = _mm512_shuffle_i32x4::<0xdd>(u[k + 8], u[k + 12]);
    }
    let swap = _mm512_set4_epi32(0x0c0d_0e0f, 0x0809_0a0b, 0x0405_0607, 0x0001_0203);
    let mut w = [_mm512_setzero_si512(); 16];
    for k in 0..8 {
        w[k] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4::<0x88>(t[k], t[k + 8]), swap);
        w[k + 8] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4::<0xdd>(t[k], t[k + 8]), swap);
    }
    w
}

/// Compresses `run` consecutive blocks of every active lane (`active` bit i = lane i; lane i
/// starts at block `inputs[i].1` of message `inputs[i].0`) into `states`. Lanes beyond 16
/// are ignored.
///
/// # Safety
/// The CPU must support AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn compress_lanes(
    states: &mut [[u32; 8]],
    inputs: &[(&[u8], usize)],
    run: usize,
    active: u32,
) {
    let mut columns = [[0u32; LANES]; 8];
    for (i, s) in states.iter().take(LANES).enumerate() {
        for j in 0..8 {
            columns[j][i] = s[j];
        }
    }
    // SAFETY: each column is 16 u32 = 64 bytes.
    let mut st: [__m512i; 8] =
        std::array::from_fn(|j| unsafe { _mm512_loadu_si512(columns[j].as_ptr().cast()) });
    let mut scratch = [[0u8; 64]; LANES];
    for offset in 0..run {
        let rows = block_rows(inputs, offset, active, &mut scratch);
        let mut w = load_transposed(&rows);
        let start = st;
        sixteen_rounds!(st, w, 0, false);
        sixteen_rounds!(st, w, 16, true);
        sixteen_rounds!(st, w, 32, true);
        sixteen_rounds!(st, w, 48, true);
        for j in 0..8 {
            st[j] = _mm512_add_epi32(st[j], start[j]);
        }
    }
    for j in 0..8 {
        // SAFETY: each column is 64 bytes.
        unsafe { _mm512_storeu_si512(columns[j].as_mut_ptr().cast(), st[j]) };
    }
    for (i, s) in states.iter_mut().take(LANES).enumerate() {
        if active & (1 << i) != 0 {
            for j in 0..8 {
                s[j] = columns[j][i];
            }
        }
    }
}
