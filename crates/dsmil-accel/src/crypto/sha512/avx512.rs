//! AVX-512 SHA-512 over 8 lanes: word `t` of the message schedule of all 8 lanes lives in one
//! register (64-bit lanes). Same structure as the SHA-256 kernel: three-input `vpternlogq`,
//! 80 rounds unrolled in groups of 16 with the rolling schedule in registers.

use std::arch::x86_64::*;

use super::{K, LANES, Sha512};
use crate::crypto::lanes::LaneHash;

macro_rules! xor3 {
    ($a:expr, $b:expr, $c:expr) => {
        _mm512_ternarylogic_epi64::<0x96>($a, $b, $c)
    };
}

/// One round with schedule word `w` (already computed) and constant `k`.
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $w:expr, $k:expr) => {{
        let s1 = xor3!(
            _mm512_ror_epi64::<14>($e),
            _mm512_ror_epi64::<18>($e),
            _mm512_ror_epi64::<41>($e)
        );
        let ch = _mm512_ternarylogic_epi64::<0xCA>($e, $f, $g);
        let t1 = _mm512_add_epi64(
            _mm512_add_epi64($h, s1),
            _mm512_add_epi64(ch, _mm512_add_epi64($w, _mm512_set1_epi64($k as i64))),
        );
        let s0 = xor3!(
            _mm512_ror_epi64::<28>($a),
            _mm512_ror_epi64::<34>($a),
            _mm512_ror_epi64::<39>($a)
        );
        let maj = _mm512_ternarylogic_epi64::<0xE8>($a, $b, $c);
        $d = _mm512_add_epi64($d, t1);
        $h = _mm512_add_epi64(t1, _mm512_add_epi64(s0, maj));
    }};
}

/// Next schedule word from the rolling window `w` at position `i` (t mod 16).
macro_rules! schedule {
    ($w:ident, $i:expr) => {{
        let w15 = $w[($i + 1) & 15];
        let w2 = $w[($i + 14) & 15];
        let s0 = xor3!(
            _mm512_ror_epi64::<1>(w15),
            _mm512_ror_epi64::<8>(w15),
            _mm512_srli_epi64::<7>(w15)
        );
        let s1 = xor3!(
            _mm512_ror_epi64::<19>(w2),
            _mm512_ror_epi64::<61>(w2),
            _mm512_srli_epi64::<6>(w2)
        );
        $w[$i] = _mm512_add_epi64(
            _mm512_add_epi64($w[$i], s0),
            _mm512_add_epi64($w[($i + 9) & 15], s1),
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

/// Transposes block `index` of every active lane into `words` (word `t` of lane `i` at
/// `t * 8 + i`), big-endian decoded.
fn gather_block(inputs: &[(&[u8], usize)], offset: usize, active: u32, words: &mut [u64; 128]) {
    let mut padded = [0u8; 128];
    for (i, (msg, first)) in inputs.iter().take(LANES).enumerate() {
        if active & (1 << i) == 0 {
            continue;
        }
        let index = first + offset;
        let start = index * 128;
        let block: &[u8] = if start + 128 <= msg.len() {
            &msg[start..start + 128]
        } else {
            Sha512::padded_block(msg, index, &mut padded);
            &padded
        };
        for (t, chunk) in block.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            words[t * LANES + i] = u64::from_be_bytes(b);
        }
    }
}

/// Compresses `run` consecutive blocks of every active lane (`active` bit i = lane i; lane i
/// starts at block `inputs[i].1` of message `inputs[i].0`) into `states`. Lanes beyond 8
/// are ignored.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
pub unsafe fn compress_lanes(
    states: &mut [[u64; 8]],
    inputs: &[(&[u8], usize)],
    run: usize,
    active: u32,
) {
    let mut columns = [[0u64; LANES]; 8];
    for (i, s) in states.iter().take(LANES).enumerate() {
        for j in 0..8 {
            columns[j][i] = s[j];
        }
    }
    // SAFETY: each column is 8 u64 = 64 bytes.
    let mut st: [__m512i; 8] =
        std::array::from_fn(|j| unsafe { _mm512_loadu_si512(columns[j].as_ptr().cast()) });
    let mut words = [0u64; 128];
    for offset in 0..run {
        gather_block(inputs, offset, active, &mut words);
        // SAFETY: words has 16 rows of 8 u64.
        let mut w: [__m512i; 16] = std::array::from_fn(|t| unsafe {
            _mm512_loadu_si512(words[t * LANES..].as_ptr().cast())
        });
        let start = st;
        sixteen_rounds!(st, w, 0, false);
        sixteen_rounds!(st, w, 16, true);
        sixteen_rounds!(st, w, 32, true);
        sixteen_rounds!(st, w, 48, true);
        sixteen_rounds!(st, w, 64, true);
        for j in 0..8 {
            st[j] = _mm512_add_epi64(st[j], start[j]);
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
