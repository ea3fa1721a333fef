//! 128-bit AES-NI: key expansion with `aeskeygenassist`, the inverse schedule with `aesimc`,
//! 16 independent ECB blocks in flight, and CTR eight blocks per step (enough independent
//! `aesenc` chains to cover the instruction's latency).

use std::arch::x86_64::*;

use super::{BLOCK_LEN, Block, KEY_LEN, MAX_KEYS, ROUNDS, Schedule};

/// Round keys of every key, `[round][key]`.
type RoundKeys = [[Block; MAX_KEYS]; ROUNDS + 1];

/// CTR blocks per step.
const PAR: usize = 8;

/// Loads one 16-byte block.
#[inline]
#[target_feature(enable = "sse2")]
fn load(b: &Block) -> __m128i {
    // SAFETY: a `Block` is 16 readable bytes; unaligned loads are allowed.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

/// Stores one 16-byte block.
#[inline]
#[target_feature(enable = "sse2")]
fn store(b: &mut Block, v: __m128i) {
    // SAFETY: a `Block` is 16 writable bytes.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), v) }
}

/// `a` with each 32-bit word XORed with all lower words (the running XOR of the schedule),
/// then XORed with `t`.
#[inline]
#[target_feature(enable = "sse2")]
fn fold(mut a: __m128i, t: __m128i) -> __m128i {
    a = _mm_xor_si128(a, _mm_slli_si128::<4>(a));
    a = _mm_xor_si128(a, _mm_slli_si128::<4>(a));
    a = _mm_xor_si128(a, _mm_slli_si128::<4>(a));
    _mm_xor_si128(a, t)
}

/// Expands key `k` into both halves of `schedule`.
///
/// # Safety
/// The CPU must support AES-NI and SSE2.
#[target_feature(enable = "aes,sse2")]
pub unsafe fn expand_key(schedule: &mut Schedule, k: usize, key: &[u8; KEY_LEN]) {
    let mut rk = [_mm_setzero_si128(); ROUNDS + 1];
    // SAFETY: `key` is 32 readable bytes.
    let (mut a, mut b) = unsafe {
        (
            _mm_loadu_si128(key.as_ptr().cast()),
            _mm_loadu_si128(key.as_ptr().add(BLOCK_LEN).cast()),
        )
    };
    rk[0] = a;
    rk[1] = b;
    macro_rules! even {
        ($i:literal, $rcon:literal) => {
            a = fold(
                a,
                _mm_shuffle_epi32::<0xFF>(_mm_aeskeygenassist_si128::<$rcon>(b)),
            );
            rk[2 * $i] = a;
        };
    }
    macro_rules! odd {
        ($i:literal) => {
            b = fold(
                b,
                _mm_shuffle_epi32::<0xAA>(_mm_aeskeygenassist_si128::<0>(a)),
            );
            rk[2 * $i + 1] = b;
        };
    }
    even!(1, 0x01);
    odd!(1);
    even!(2, 0x02);
    odd!(2);
    even!(3, 0x04);
    odd!(3);
    even!(4, 0x08);
    odd!(4);
    even!(5, 0x10);
    odd!(5);
    even!(6, 0x20);
    odd!(6);
    even!(7, 0x40);
    for (r, v) in rk.iter().enumerate() {
        store(&mut schedule.enc[r][k], *v);
        let d = if r == 0 || r == ROUNDS {
            *v
        } else {
            _mm_aesimc_si128(*v)
        };
        store(&mut schedule.dec[ROUNDS - r][k], d);
    }
}

/// Block `i` of 16 with key `i`.
///
/// # Safety
/// The CPU must support AES-NI and SSE2.
#[target_feature(enable = "aes,sse2")]
pub unsafe fn ecb16(rk: &RoundKeys, blocks: &mut [Block; MAX_KEYS], decrypt: bool) {
    let mut s = [_mm_setzero_si128(); MAX_KEYS];
    for (i, v) in s.iter_mut().enumerate() {
        *v = _mm_xor_si128(load(&blocks[i]), load(&rk[0][i]));
    }
    for round in &rk[1..ROUNDS] {
        for (v, k) in s.iter_mut().zip(round) {
            *v = if decrypt {
                _mm_aesdec_si128(*v, load(k))
            } else {
                _mm_aesenc_si128(*v, load(k))
            };
        }
    }
    for (i, v) in s.iter().enumerate() {
        let k = load(&rk[ROUNDS][i]);
        let out = if decrypt {
            _mm_aesdeclast_si128(*v, k)
        } else {
            _mm_aesenclast_si128(*v, k)
        };
        store(&mut blocks[i], out);
    }
}

/// The big-endian counter block for `c`.
#[inline]
#[target_feature(enable = "sse2")]
fn counter(c: u128) -> __m128i {
    let hi = ((c >> 64) as u64).swap_bytes();
    let lo = (c as u64).swap_bytes();
    _mm_set_epi64x(lo as i64, hi as i64)
}

/// Encrypts `n` counter blocks from `c` with the round keys in `keys`.
#[inline]
#[target_feature(enable = "aes,sse2")]
fn encrypt_counters<const N: usize>(keys: &[__m128i; ROUNDS + 1], c: u128) -> [__m128i; N] {
    let mut s = [_mm_setzero_si128(); N];
    for (j, v) in s.iter_mut().enumerate() {
        *v = _mm_xor_si128(counter(c.wrapping_add(j as u128)), keys[0]);
    }
    for k in &keys[1..ROUNDS] {
        for v in s.iter_mut() {
            *v = _mm_aesenc_si128(*v, *k);
        }
    }
    for v in s.iter_mut() {
        *v = _mm_aesenclast_si128(*v, keys[ROUNDS]);
    }
    s
}

/// CTR keystream of key `k` from `counter_block` XORed into `data`.
///
/// # Safety
/// The CPU must support AES-NI and SSE2.
#[target_feature(enable = "aes,sse2")]
pub unsafe fn ctr_xor(rk: &RoundKeys, k: usize, counter_block: &Block, data: &mut [u8]) {
    let mut keys = [_mm_setzero_si128(); ROUNDS + 1];
    for (v, round) in keys.iter_mut().zip(rk) {
        *v = load(&round[k]);
    }
    let mut c = u128::from_be_bytes(*counter_block);
    let mut chunks = data.chunks_exact_mut(PAR * BLOCK_LEN);
    for chunk in &mut chunks {
        let ks = encrypt_counters::<PAR>(&keys, c);
        c = c.wrapping_add(PAR as u128);
        for (block, v) in chunk.chunks_exact_mut(BLOCK_LEN).zip(&ks) {
            let p = block.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `block` is 16 bytes, readable and writable.
            unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), *v)) };
        }
    }
    let rest = chunks.into_remainder();
    for block in rest.chunks_mut(BLOCK_LEN) {
        let [v] = encrypt_counters::<1>(&keys, c);
        c = c.wrapping_add(1);
        let mut ks = [0u8; BLOCK_LEN];
        store(&mut ks, v);
        for (d, s) in block.iter_mut().zip(&ks) {
            *d ^= s;
        }
    }
}
