//! Portable reference: RFC 8439 §2.3 block function, one block at a time.

use zeroize::Zeroize;

use super::{BLOCK_LEN, Chacha20Stream, KEY_LEN, NONCE_LEN, initial_state};

#[inline(always)]
fn quarter_round(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(16);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(12);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(8);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(7);
}

/// The keystream block of `state` (20 rounds plus the feed-forward), as 16 words.
pub(super) fn block(state: &[u32; 16], out: &mut [u32; 16]) {
    *out = *state;
    for _ in 0..10 {
        quarter_round(out, 0, 4, 8, 12);
        quarter_round(out, 1, 5, 9, 13);
        quarter_round(out, 2, 6, 10, 14);
        quarter_round(out, 3, 7, 11, 15);
        quarter_round(out, 0, 5, 10, 15);
        quarter_round(out, 1, 6, 11, 12);
        quarter_round(out, 2, 7, 8, 13);
        quarter_round(out, 3, 4, 9, 14);
    }
    for (o, s) in out.iter_mut().zip(state) {
        *o = o.wrapping_add(*s);
    }
}

/// XORs the keystream from block `counter` on into `data` (the caller checked the counter).
pub(super) fn xor(key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN], counter: u32, data: &mut [u8]) {
    let mut state = initial_state(key, nonce, counter);
    let mut words = [0u32; 16];
    let mut bytes = [0u8; BLOCK_LEN];
    for chunk in data.chunks_mut(BLOCK_LEN) {
        block(&state, &mut words);
        for (b, w) in bytes.chunks_exact_mut(4).zip(&words) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        for (d, k) in chunk.iter_mut().zip(&bytes) {
            *d ^= k;
        }
        state[12] = state[12].wrapping_add(1);
    }
    state.zeroize();
    words.zeroize();
    bytes.zeroize();
}

/// Every stream, one after another.
pub(super) fn xor_many(streams: &mut [Chacha20Stream<'_>]) {
    for s in streams {
        xor(s.key, &s.nonce, s.counter, s.data);
    }
}
