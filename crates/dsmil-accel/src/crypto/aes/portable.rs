//! Portable, constant-time AES-256. SubBytes is computed, not looked up: 64 bytes at a time
//! are bitsliced into eight `u64` planes (plane `i` holds bit `i` of every byte), inverted in
//! GF(2^8) as x^254 with AND/XOR arithmetic, and passed through the affine map. MixColumns
//! uses a branch-free `xtime`. Slow (a few MB/s) but free of secret-indexed memory accesses:
//! this is the reference the hardware paths are tested against.

use zeroize::Zeroize;

use super::{BLOCK_LEN, Block, KEY_LEN, MAX_KEYS, ROUNDS, Schedule};

/// Round keys of every key, `[round][key]`.
type RoundKeys = [[Block; MAX_KEYS]; ROUNDS + 1];

/// Bytes per bitsliced batch: four blocks.
const BATCH: usize = 64;

/// Bit `i` of 64 bytes per plane `i`.
type Planes = [u64; 8];

fn to_planes(bytes: &[u8; BATCH]) -> Planes {
    let mut p = [0u64; 8];
    for (j, &b) in bytes.iter().enumerate() {
        for (i, plane) in p.iter_mut().enumerate() {
            *plane |= u64::from((b >> i) & 1) << j;
        }
    }
    p
}

fn from_planes(p: &Planes, bytes: &mut [u8; BATCH]) {
    for (j, b) in bytes.iter_mut().enumerate() {
        let mut v = 0u8;
        for (i, plane) in p.iter().enumerate() {
            v |= (((plane >> j) & 1) as u8) << i;
        }
        *b = v;
    }
}

/// Reduces a product of degree ≤ 14 modulo x^8 + x^4 + x^3 + x + 1.
fn reduce(mut p: [u64; 15]) -> Planes {
    for k in (8..15).rev() {
        let v = p[k];
        p[k - 4] ^= v;
        p[k - 5] ^= v;
        p[k - 7] ^= v;
        p[k - 8] ^= v;
    }
    let mut out = [0u64; 8];
    out.copy_from_slice(&p[..8]);
    out
}

fn gf_mul(a: &Planes, b: &Planes) -> Planes {
    let mut p = [0u64; 15];
    for (i, ai) in a.iter().enumerate() {
        for (j, bj) in b.iter().enumerate() {
            p[i + j] ^= ai & bj;
        }
    }
    reduce(p)
}

fn gf_square(a: &Planes) -> Planes {
    let mut p = [0u64; 15];
    for (i, ai) in a.iter().enumerate() {
        p[2 * i] = *ai;
    }
    reduce(p)
}

/// x^254: the multiplicative inverse, with 0 mapped to 0.
fn gf_inverse(x: &Planes) -> Planes {
    let mut acc = *x; // x^1
    // x^(2^k - 1) for k = 2..7: square then multiply by x.
    for _ in 0..6 {
        acc = gf_mul(&gf_square(&acc), x);
    }
    gf_square(&acc) // (x^127)^2
}

/// Bit `i` of the constant `c` as an all-ones or all-zero plane.
fn constant_plane(c: u8, i: usize) -> u64 {
    0u64.wrapping_sub(u64::from((c >> i) & 1))
}

/// SubBytes on 64 bytes.
fn sub_bytes(bytes: &mut [u8; BATCH]) {
    let b = gf_inverse(&to_planes(bytes));
    let mut s = [0u64; 8];
    for (i, si) in s.iter_mut().enumerate() {
        *si = b[i]
            ^ b[(i + 4) % 8]
            ^ b[(i + 5) % 8]
            ^ b[(i + 6) % 8]
            ^ b[(i + 7) % 8]
            ^ constant_plane(0x63, i);
    }
    from_planes(&s, bytes);
}

/// InvSubBytes on 64 bytes.
fn inv_sub_bytes(bytes: &mut [u8; BATCH]) {
    let s = to_planes(bytes);
    let mut b = [0u64; 8];
    for (i, bi) in b.iter_mut().enumerate() {
        *bi = s[(i + 2) % 8] ^ s[(i + 5) % 8] ^ s[(i + 7) % 8] ^ constant_plane(0x05, i);
    }
    from_planes(&gf_inverse(&b), bytes);
}

fn xtime(a: u8) -> u8 {
    (a << 1) ^ (0x1b & 0u8.wrapping_sub(a >> 7))
}

fn shift_rows(b: &mut [u8]) {
    let mut o = [0u8; BLOCK_LEN];
    o.copy_from_slice(b);
    for c in 0..4 {
        for r in 0..4 {
            b[r + 4 * c] = o[r + 4 * ((c + r) % 4)];
        }
    }
}

fn inv_shift_rows(b: &mut [u8]) {
    let mut o = [0u8; BLOCK_LEN];
    o.copy_from_slice(b);
    for c in 0..4 {
        for r in 0..4 {
            b[r + 4 * c] = o[r + 4 * ((c + 4 - r) % 4)];
        }
    }
}

fn mix_columns(b: &mut [u8]) {
    for col in b.chunks_exact_mut(4) {
        let a = [col[0], col[1], col[2], col[3]];
        let t = a[0] ^ a[1] ^ a[2] ^ a[3];
        for i in 0..4 {
            col[i] = a[i] ^ t ^ xtime(a[i] ^ a[(i + 1) % 4]);
        }
    }
}

fn inv_mix_columns(b: &mut [u8]) {
    for col in b.chunks_exact_mut(4) {
        let u = xtime(xtime(col[0] ^ col[2]));
        let v = xtime(xtime(col[1] ^ col[3]));
        col[0] ^= u;
        col[1] ^= v;
        col[2] ^= u;
        col[3] ^= v;
    }
    mix_columns(b);
}

fn add_round_key(b: &mut [u8], k: &Block) {
    for (x, y) in b.iter_mut().zip(k) {
        *x ^= y;
    }
}

/// Encrypts (or, with the `dec` keys, decrypts) four blocks; block `j` uses key `keys[j]`.
fn crypt4(rk: &RoundKeys, keys: [usize; 4], state: &mut [u8; BATCH], decrypt: bool) {
    for (b, &k) in state.chunks_exact_mut(BLOCK_LEN).zip(&keys) {
        add_round_key(b, &rk[0][k]);
    }
    for (round, round_keys) in rk.iter().enumerate().skip(1) {
        if decrypt {
            inv_sub_bytes(state);
        } else {
            sub_bytes(state);
        }
        for (b, &k) in state.chunks_exact_mut(BLOCK_LEN).zip(&keys) {
            match (decrypt, round == ROUNDS) {
                (false, false) => {
                    shift_rows(b);
                    mix_columns(b);
                }
                (false, true) => shift_rows(b),
                (true, false) => {
                    inv_shift_rows(b);
                    inv_mix_columns(b);
                }
                (true, true) => inv_shift_rows(b),
            }
            add_round_key(b, &round_keys[k]);
        }
    }
}

/// Expands key `k` into both halves of `schedule` (FIPS 197 §5.2 and §5.3.5).
pub(super) fn expand_key(schedule: &mut Schedule, k: usize, key: &[u8; KEY_LEN]) {
    const RCON: [u8; 7] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40];
    let mut w = [[0u8; 4]; 4 * (ROUNDS + 1)];
    for (wi, chunk) in w.iter_mut().zip(key.chunks_exact(4)) {
        wi.copy_from_slice(chunk);
    }
    let mut buf = [0u8; BATCH];
    for i in 8..w.len() {
        let mut t = w[i - 1];
        if i % 8 == 0 || i % 8 == 4 {
            if i % 8 == 0 {
                t.rotate_left(1);
            }
            buf[..4].copy_from_slice(&t);
            sub_bytes(&mut buf);
            t.copy_from_slice(&buf[..4]);
            if i % 8 == 0 {
                t[0] ^= RCON[i / 8 - 1];
            }
        }
        let prev = w[i - 8];
        for (x, (a, b)) in w[i].iter_mut().zip(prev.iter().zip(&t)) {
            *x = a ^ b;
        }
    }
    for (r, round) in schedule.enc.iter_mut().enumerate() {
        for (c, word) in w[4 * r..4 * r + 4].iter().enumerate() {
            round[k][4 * c..4 * c + 4].copy_from_slice(word);
        }
    }
    for r in 0..=ROUNDS {
        let mut rk = schedule.enc[ROUNDS - r][k];
        if r != 0 && r != ROUNDS {
            inv_mix_columns(&mut rk);
        }
        schedule.dec[r][k] = rk;
        rk.zeroize();
    }
    w.zeroize();
    buf.zeroize();
}

/// Block `i` of 16 with key `i`.
pub(super) fn ecb16(rk: &RoundKeys, blocks: &mut [Block; MAX_KEYS], decrypt: bool) {
    let mut state = [0u8; BATCH];
    for (g, group) in blocks.chunks_exact_mut(4).enumerate() {
        for (dst, src) in state.chunks_exact_mut(BLOCK_LEN).zip(group.iter()) {
            dst.copy_from_slice(src);
        }
        let keys = [4 * g, 4 * g + 1, 4 * g + 2, 4 * g + 3];
        crypt4(rk, keys, &mut state, decrypt);
        for (src, dst) in state.chunks_exact(BLOCK_LEN).zip(group.iter_mut()) {
            dst.copy_from_slice(src);
        }
    }
}

/// CTR keystream of key `k` from `counter_block` XORed into `data`.
pub(super) fn ctr_xor(rk: &RoundKeys, k: usize, counter_block: &Block, data: &mut [u8]) {
    let mut ctr = u128::from_be_bytes(*counter_block);
    let mut ks = [0u8; BATCH];
    for chunk in data.chunks_mut(BATCH) {
        for b in ks.chunks_exact_mut(BLOCK_LEN) {
            b.copy_from_slice(&ctr.to_be_bytes());
            ctr = ctr.wrapping_add(1);
        }
        crypt4(rk, [k; 4], &mut ks, false);
        for (d, s) in chunk.iter_mut().zip(&ks) {
            *d ^= s;
        }
    }
    ks.zeroize();
}
