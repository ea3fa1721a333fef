//! SHA-512 of many messages at once (FIPS 180-4): eight 64-bit lanes on the AVX-512 path, one
//! message at a time in plain Rust on the others, through the same multi-buffer manager
//! ([`Lanes`]) as SHA-256.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

use dsmil_core::KernelPath;

use super::lanes::{LaneHash, Lanes, State, compress_each, hash_many};
use crate::Platform;

/// Lanes of the AVX-512 kernel.
pub const LANES: usize = 8;

/// Initial hash value H(0) (FIPS 180-4 §5.3.5).
pub(crate) const H0: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// Round constants K (FIPS 180-4 §4.2.3).
pub(crate) const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// SHA-512 as a [`LaneHash`]: 8 lanes on the AVX-512 path, one message at a time elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct Sha512;

impl LaneHash for Sha512 {
    const BLOCK_LEN: usize = 128;
    const LENGTH_LEN: usize = 16;
    type Word = u64;
    type Block = [u8; 128];
    type Digest = [u8; 64];
    const INITIAL: [u64; 8] = H0;
    const ZERO_BLOCK: [u8; 128] = [0; 128];
    const ZERO_DIGEST: [u8; 64] = [0; 64];

    fn lanes(_: Platform) -> usize {
        LANES
    }

    fn compress_lanes(
        platform: Platform,
        states: &mut [State<Self>],
        inputs: &[(&[u8], usize)],
        run: usize,
        active: u32,
    ) {
        match platform.path() {
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 if states.len() == LANES && inputs.len() == LANES => {
                // SAFETY: a platform on the AVX-512 path exists only when AVX-512 F/BW/DQ/VL
                // were detected.
                unsafe { avx512::compress_lanes(states, inputs, run, active) }
            }
            _ => compress_each::<Self>(states, inputs, run, active),
        }
    }

    fn compress_block(state: &mut State<Self>, block: &[u8; 128]) {
        portable::compress(state, block);
    }
}

/// SHA-512 of one message (portable reference).
pub fn sha512(message: &[u8]) -> [u8; 64] {
    Sha512::hash(message)
}

/// The multi-buffer manager for SHA-512.
pub type Sha512Lanes<'a, T> = Lanes<'a, Sha512, T>;

/// SHA-512 of every message, in order (8 lanes at a time on the AVX-512 path).
pub fn sha512_many(platform: Platform, messages: &[&[u8]]) -> Vec<[u8; 64]> {
    hash_many::<Sha512>(platform, messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fips_180_4_examples() {
        let hex = |d: &[u8]| dsmil_core::hex::encode(d);
        assert_eq!(
            hex(&sha512(b"abc")),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        let two_block = b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
        for p in Platform::available() {
            assert_eq!(
                hex(&sha512_many(p, &[two_block, b""])[0]),
                "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909",
                "{p}"
            );
            assert_eq!(
                hex(&sha512_many(p, &[b""])[0]),
                "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
            );
        }
    }
}
