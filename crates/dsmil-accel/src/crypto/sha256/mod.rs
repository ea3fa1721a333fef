//! SHA-256 of many messages at once (FIPS 180-4).
//!
//! Three kernels, selected from the [`Platform`] ([`Sha256Engine::select`]):
//!
//! - AVX-512 path → [`Sha256Engine::Avx512x16`]: 16 messages of independent lengths in
//!   parallel, one per 32-bit lane; each lane walks its own message blocks and padding, lanes
//!   that finish early are masked out. Preferred over SHA-NI on this path: it is the faster of
//!   the two as measured by `cargo xtask bench sha256_x16` (docs/benchmarks.md).
//! - otherwise, on a platform carrying SHA-NI → [`Sha256Engine::ShaNi4`]: four messages
//!   interleaved on the SHA extensions.
//! - otherwise → [`Sha256Engine::Portable`]: one message at a time, plain Rust.
//!
//! [`Sha256Lanes`] (the crate's one multi-buffer manager, [`Lanes`]) refills a lane with the next
//! queued message as soon as its current one is done (the pattern of intel-ipsec-mb), so a
//! stream of messages of mixed sizes keeps every lane busy.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;
#[cfg(target_arch = "x86_64")]
mod shani;

use dsmil_core::KernelPath;

use super::lanes::{LaneHash, Lanes, State, compress_each, hash_many};
use crate::{CryptoExtension, Platform};

/// Lanes of the AVX-512 kernel.
pub const LANES: usize = 16;

/// Initial hash value H(0) (FIPS 180-4 §5.3.3).
pub(crate) const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Round constants K (FIPS 180-4 §4.2.2).
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Which kernel hashes a batch on a given [`Platform`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sha256Engine {
    /// One message at a time, portable code.
    Portable,
    /// Four messages interleaved on the SHA extensions.
    ShaNi4,
    /// Sixteen messages in AVX-512 lanes.
    Avx512x16,
}

/// The engine used when both SHA-NI and the AVX-512 path are present (the faster one in the
/// bench).
const PREFERRED_WITH_BOTH: Sha256Engine = Sha256Engine::Avx512x16;

impl Sha256Engine {
    /// The engine for `platform`: AVX-512 ×16 on the AVX-512 path, else SHA-NI ×4 when the
    /// platform carries SHA-NI, else portable.
    pub fn select(platform: Platform) -> Self {
        match (platform.path(), platform.has(CryptoExtension::ShaNi)) {
            (KernelPath::Avx512, true) => PREFERRED_WITH_BOTH,
            (KernelPath::Avx512, false) => Sha256Engine::Avx512x16,
            (_, true) => Sha256Engine::ShaNi4,
            (_, false) => Sha256Engine::Portable,
        }
    }

    /// Messages the engine hashes at once.
    pub fn lanes(self) -> usize {
        match self {
            Sha256Engine::Portable | Sha256Engine::Avx512x16 => LANES,
            Sha256Engine::ShaNi4 => 4,
        }
    }
}

/// SHA-256 as a [`LaneHash`], on the kernel [`Sha256Engine::select`] picks.
#[derive(Debug, Clone, Copy)]
pub struct Sha256;

impl LaneHash for Sha256 {
    const BLOCK_LEN: usize = 64;
    const LENGTH_LEN: usize = 8;
    type Word = u32;
    type Block = [u8; 64];
    type Digest = [u8; 32];
    const INITIAL: [u32; 8] = H0;
    const ZERO_BLOCK: [u8; 64] = [0; 64];
    const ZERO_DIGEST: [u8; 32] = [0; 32];

    fn lanes(platform: Platform) -> usize {
        Sha256Engine::select(platform).lanes()
    }

    fn compress_lanes(
        platform: Platform,
        states: &mut [State<Self>],
        inputs: &[(&[u8], usize)],
        run: usize,
        active: u32,
    ) {
        let engine = Sha256Engine::select(platform);
        let full = states.len() == engine.lanes() && inputs.len() == states.len();
        match engine {
            #[cfg(target_arch = "x86_64")]
            Sha256Engine::Avx512x16 if full => {
                // SAFETY: `select` returns Avx512x16 only for a platform on the AVX-512 path,
                // which exists only when AVX-512 F/BW/DQ/VL were detected.
                unsafe { avx512::compress_lanes(states, inputs, run, active) }
            }
            #[cfg(target_arch = "x86_64")]
            Sha256Engine::ShaNi4 if full => {
                // SAFETY: `select` returns ShaNi4 only for a platform carrying SHA-NI, which
                // exists only when SHA, SSE4.1 and SSSE3 were detected.
                unsafe { shani::compress_lanes(states, inputs, run, active) }
            }
            _ => compress_each::<Self>(states, inputs, run, active),
        }
    }

    fn compress_block(state: &mut State<Self>, block: &[u8; 64]) {
        portable::compress(state, block);
    }
}

/// SHA-256 of one message (portable reference).
pub fn sha256(message: &[u8]) -> [u8; 32] {
    Sha256::hash(message)
}

/// The multi-buffer manager for SHA-256: queue tagged messages, collect `(tag, digest)`.
pub type Sha256Lanes<'a, T> = Lanes<'a, Sha256, T>;

/// SHA-256 of every message, in order, on the engine [`Sha256Engine::select`] picks for
/// `platform`.
pub fn sha256_many(platform: Platform, messages: &[&[u8]]) -> Vec<[u8; 32]> {
    hash_many::<Sha256>(platform, messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: &[u8]) -> String {
        dsmil_core::hex::encode(d)
    }

    #[test]
    fn fips_180_4_examples() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        let million_a = vec![b'a'; 1_000_000];
        let platforms = [
            Some(Platform::portable()),
            Platform::portable().with(CryptoExtension::ShaNi),
            Platform::avx512(),
        ];
        for p in platforms.into_iter().flatten() {
            assert_eq!(
                hex(&sha256_many(p, &[&million_a])[0]),
                "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
                "{p} ({:?})",
                Sha256Engine::select(p)
            );
        }
    }

    #[test]
    fn the_engine_follows_the_platform() {
        assert_eq!(
            Sha256Engine::select(Platform::portable()),
            Sha256Engine::Portable
        );
        if let Some(p) = Platform::portable().with(CryptoExtension::ShaNi) {
            assert_eq!(Sha256Engine::select(p), Sha256Engine::ShaNi4);
            assert_eq!(Sha256::lanes(p), 4);
        }
        if let Some(p) = Platform::avx2() {
            let want = if p.has(CryptoExtension::ShaNi) {
                Sha256Engine::ShaNi4
            } else {
                Sha256Engine::Portable
            };
            assert_eq!(Sha256Engine::select(p), want);
            assert_eq!(
                Sha256Engine::select(p.without(CryptoExtension::ShaNi)),
                Sha256Engine::Portable
            );
        }
        if let Some(p) = Platform::avx512() {
            assert_eq!(Sha256Engine::select(p), Sha256Engine::Avx512x16);
            assert_eq!(
                Sha256Engine::select(p.without(CryptoExtension::ShaNi)),
                Sha256Engine::Avx512x16
            );
        }
    }
}
