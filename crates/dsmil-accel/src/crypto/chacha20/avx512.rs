//! AVX-512 ChaCha20: 16 blocks per step, one per 32-bit lane. Register `w` holds word `w` of
//! 16 states (a transposed state), the rotations are single `vprold` instructions, and a
//! 16 × 16 word transpose turns the result back into one 64-byte block per register.
//! Partial blocks use byte-masked loads and stores, so nothing past a buffer is touched.

use std::arch::x86_64::*;

use zeroize::Zeroize;

use super::{BLOCK_LEN, Chacha20Stream, KEY_LEN, LANES, NONCE_LEN, initial_state};

/// Bytes per step: one block per lane.
const STEP: usize = BLOCK_LEN * LANES;

/// One ChaCha20 step (`a += b; d ^= a; d <<<= r`) for four quarter rounds at once, written
/// interleaved so that the four independent chains issue side by side.
macro_rules! step4 {
    ($x:ident, [$($a:literal, $b:literal, $d:literal);*], $r:literal) => {
        $( $x[$a] = _mm512_add_epi32($x[$a], $x[$b]); )*
        $( $x[$d] = _mm512_xor_si512($x[$d], $x[$a]); )*
        $( $x[$d] = _mm512_rol_epi32::<$r>($x[$d]); )*
    };
}

/// Four quarter rounds on the columns `(a, b, c, d)` given.
macro_rules! quarter_rounds {
    ($x:ident, $(($a:literal, $b:literal, $c:literal, $d:literal)),*) => {
        step4!($x, [$($a, $b, $d);*], 16);
        step4!($x, [$($c, $d, $b);*], 12);
        step4!($x, [$($a, $b, $d);*], 8);
        step4!($x, [$($c, $d, $b);*], 7);
    };
}

/// Transposes a 16 × 16 matrix of 32-bit words held as 16 rows.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose(x: &mut [__m512i; 16]) {
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(x[2 * i], x[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(x[2 * i], x[2 * i + 1]);
    }
    // u[4i + k]: in 128-bit chunk q, words 4i..4i+4 of lane 4q + k.
    let mut u = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // A 4 × 4 transpose of 128-bit chunks for each k.
    for k in 0..4 {
        let s0 = _mm512_shuffle_i32x4::<0x44>(u[k], u[4 + k]);
        let s1 = _mm512_shuffle_i32x4::<0xEE>(u[k], u[4 + k]);
        let s2 = _mm512_shuffle_i32x4::<0x44>(u[8 + k], u[12 + k]);
        let s3 = _mm512_shuffle_i32x4::<0xEE>(u[8 + k], u[12 + k]);
        x[k] = _mm512_shuffle_i32x4::<0x88>(s0, s2);
        x[4 + k] = _mm512_shuffle_i32x4::<0xDD>(s0, s2);
        x[8 + k] = _mm512_shuffle_i32x4::<0x88>(s1, s3);
        x[12 + k] = _mm512_shuffle_i32x4::<0xDD>(s1, s3);
    }
}

/// The 16 keystream blocks of 16 transposed states; register `l` of the result is lane `l`'s
/// 64-byte block.
#[inline]
#[target_feature(enable = "avx512f")]
fn keystream(input: &[__m512i; 16]) -> [__m512i; 16] {
    let mut x = *input;
    for _ in 0..10 {
        quarter_rounds!(
            x,
            (0, 4, 8, 12),
            (1, 5, 9, 13),
            (2, 6, 10, 14),
            (3, 7, 11, 15)
        );
        quarter_rounds!(
            x,
            (0, 5, 10, 15),
            (1, 6, 11, 12),
            (2, 7, 8, 13),
            (3, 4, 9, 14)
        );
    }
    for (o, i) in x.iter_mut().zip(input) {
        *o = _mm512_add_epi32(*o, *i);
    }
    transpose(&mut x);
    x
}

/// A mask of the first `len` (< 64) bytes.
#[inline]
fn byte_mask(len: usize) -> __mmask64 {
    debug_assert!(len < BLOCK_LEN);
    (1u64 << len) - 1
}

/// XORs `ks` into the `len` bytes at `p` (at most 64; fewer through a byte mask).
///
/// # Safety
/// `p..p + min(len, 64)` must be valid for reads and writes; the CPU must support AVX-512 F
/// and BW.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn xor_block(p: *mut u8, len: usize, ks: __m512i) {
    if len >= BLOCK_LEN {
        // SAFETY: the caller guarantees 64 valid bytes at p.
        unsafe {
            let d = _mm512_loadu_si512(p.cast());
            _mm512_storeu_si512(p.cast(), _mm512_xor_si512(d, ks));
        }
    } else {
        let m = byte_mask(len);
        // SAFETY: masked loads and stores touch only the `len` bytes the caller guarantees.
        unsafe {
            let d = _mm512_maskz_loadu_epi8(m, p.cast());
            _mm512_mask_storeu_epi8(p.cast(), m, _mm512_xor_si512(d, ks));
        }
    }
}

/// Word-major lane states (`[word][lane]`), 64-byte aligned for whole-register loads; holds
/// key words, so it is zeroized on drop.
#[repr(C, align(64))]
struct LaneWords([[u32; LANES]; 16]);

impl Drop for LaneWords {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl LaneWords {
    fn set_lane(&mut self, lane: usize, key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN], ctr: u32) {
        let mut state = initial_state(key, nonce, ctr);
        for (row, word) in self.0.iter_mut().zip(&state) {
            row[lane] = *word;
        }
        state.zeroize();
    }
}

/// Streams in flight: where each lane's stream continues and how many bytes it has left
/// (0: the lane is idle).
struct Scheduler {
    words: LaneWords,
    ptr: [*mut u8; LANES],
    left: [usize; LANES],
    next: usize,
}

impl Scheduler {
    /// Gives `lane` the next non-empty stream, or leaves it idle; `true` if it got one.
    fn refill(&mut self, lane: usize, streams: &mut [Chacha20Stream<'_>]) -> bool {
        while let Some(s) = streams.get_mut(self.next) {
            self.next += 1;
            if !s.data.is_empty() {
                self.words.set_lane(lane, s.key, &s.nonce, s.counter);
                self.ptr[lane] = s.data.as_mut_ptr();
                self.left[lane] = s.data.len();
                return true;
            }
        }
        self.left[lane] = 0;
        false
    }
}

/// Every stream; 16 in flight, a finished lane refilled with the next stream at once. Runs of
/// steps in which every lane has whole blocks to do skip the per-lane bookkeeping.
///
/// # Safety
/// The CPU must support AVX-512 F and BW (the caller holds an Avx512 `Platform`).
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn xor_many(streams: &mut [Chacha20Stream<'_>]) {
    let mut sched = Scheduler {
        words: LaneWords([[0; LANES]; 16]),
        ptr: [std::ptr::null_mut(); LANES],
        left: [0; LANES],
        next: 0,
    };
    let mut active = 0;
    for lane in 0..LANES {
        active += usize::from(sched.refill(lane, streams));
    }
    let one = _mm512_set1_epi32(1);
    while active > 0 {
        let mut input = [_mm512_setzero_si512(); 16];
        for (v, row) in input.iter_mut().zip(&sched.words.0) {
            // SAFETY: a row is 16 u32 = 64 bytes, 64-byte aligned by `LaneWords`' repr.
            *v = unsafe { _mm512_load_si512(row.as_ptr().cast()) };
        }
        // Steps in which every running lane XORs a whole block and keeps more to do: no
        // per-lane length checks or refills there.
        let run = sched
            .left
            .iter()
            .filter(|l| **l > 0)
            .map(|l| (l - 1) / BLOCK_LEN)
            .min()
            .unwrap_or(0);
        if run > 0 {
            for _ in 0..run {
                let ks = keystream(&input);
                input[12] = _mm512_add_epi32(input[12], one);
                for (lane, k) in ks.iter().enumerate() {
                    if sched.left[lane] == 0 {
                        continue;
                    }
                    let p = sched.ptr[lane];
                    // SAFETY: the lane has more than 64 bytes left at p (the choice of `run`).
                    unsafe {
                        _mm512_storeu_si512(
                            p.cast(),
                            _mm512_xor_si512(_mm512_loadu_si512(p.cast()), *k),
                        );
                        sched.ptr[lane] = p.add(BLOCK_LEN);
                    }
                }
            }
            for left in sched.left.iter_mut().filter(|l| **l > 0) {
                *left -= run * BLOCK_LEN;
            }
        }
        // One step with per-lane lengths: partial last blocks, finished lanes refilled.
        let ks = keystream(&input);
        let next_counter = _mm512_add_epi32(input[12], one);
        // SAFETY: as above; refills below overwrite the counters of the lanes they restart.
        unsafe { _mm512_store_si512(sched.words.0[12].as_mut_ptr().cast(), next_counter) };
        for (lane, k) in ks.iter().enumerate() {
            let (p, left) = (sched.ptr[lane], sched.left[lane]);
            if left == 0 {
                continue;
            }
            // SAFETY: `p` points at the `left` bytes still to process of the lane's stream
            // (`refill` and the advance below keep that true); at most those are touched.
            unsafe { xor_block(p, left, *k) };
            if left > BLOCK_LEN {
                // SAFETY: more than 64 bytes are left, so p + 64 is inside the buffer.
                sched.ptr[lane] = unsafe { p.add(BLOCK_LEN) };
                sched.left[lane] = left - BLOCK_LEN;
            } else if !sched.refill(lane, streams) {
                active -= 1;
            }
        }
    }
}

/// One stream, 16 consecutive blocks (1 KiB) per step.
///
/// # Safety
/// The CPU must support AVX-512 F and BW (the caller holds an Avx512 `Platform`).
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn xor_single(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    counter: u32,
    data: &mut [u8],
) {
    let mut state = initial_state(key, nonce, counter);
    let mut input = [_mm512_setzero_si512(); 16];
    for (v, w) in input.iter_mut().zip(&state) {
        *v = _mm512_set1_epi32(*w as i32);
    }
    state.zeroize();
    let lane_index = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    input[12] = _mm512_add_epi32(input[12], lane_index);
    let step = _mm512_set1_epi32(LANES as i32);
    let (n, p) = (data.len(), data.as_mut_ptr());
    let mut off = 0;
    // One call site, so that `keystream` is inlined into the loop.
    while off < n {
        let ks = keystream(&input);
        input[12] = _mm512_add_epi32(input[12], step);
        if off + STEP <= n {
            for (l, block) in ks.iter().enumerate() {
                // SAFETY: off + 64 (l + 1) <= off + STEP <= n.
                unsafe { xor_block(p.add(off + l * BLOCK_LEN), BLOCK_LEN, *block) };
            }
        } else {
            for (l, block) in ks.iter().enumerate() {
                let start = off + l * BLOCK_LEN;
                if start >= n {
                    break;
                }
                // SAFETY: start < n and at most n - start bytes are touched.
                unsafe { xor_block(p.add(start), n - start, *block) };
            }
        }
        off += STEP;
    }
}
