//! SHA-256 of many messages at once (FIPS 180-4).
//!
//! The AVX-512 path hashes 16 messages of independent lengths in parallel, one per 32-bit
//! lane: each lane walks its own message blocks and padding, lanes that finish early are
//! masked out, and [`Sha256Lanes`] refills a lane with the next queued message as soon as its
//! current one is done (the multi-buffer manager pattern of intel-ipsec-mb), so a stream of
//! messages of mixed sizes keeps every lane busy.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;
#[cfg(target_arch = "x86_64")]
mod shani;

use dsmil_core::KernelPath;

use super::lanes::{LaneHash, Lanes, compress_each, hash_many};
use crate::Platform;

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

/// Number of 64-byte blocks of a padded message of `len` bytes.
pub(crate) fn block_count(len: usize) -> usize {
    super::padding::block_count(len, 64, 8)
}

/// Block `index` of the padded message.
pub(crate) fn padded_block(msg: &[u8], index: usize, out: &mut [u8; 64]) {
    super::padding::padded_block(msg, index, out, 8);
}

fn digest_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// SHA-256 of one message (portable reference).
pub fn sha256(message: &[u8]) -> [u8; 32] {
    let mut state = [H0];
    compress_each(
        &mut state,
        &[(message, 0)],
        block_count(message.len()),
        1,
        padded_block,
        portable::compress,
    );
    digest_bytes(&state[0])
}

/// SHA-256 as a [`LaneHash`]: 16 lanes on AVX-512, one message at a time elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct Sha256;

impl LaneHash for Sha256 {
    const LANES: usize = LANES;
    type State = [u32; 8];
    type Digest = [u8; 32];

    fn initial() -> Self::State {
        H0
    }

    fn block_count(len: usize) -> usize {
        block_count(len)
    }

    fn compress(
        platform: Platform,
        states: &mut [[u32; 8]],
        inputs: &[(&[u8], usize)],
        run: usize,
        active: u32,
    ) {
        match platform.path() {
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 if states.len() == LANES && inputs.len() == LANES => {
                // SAFETY: an Avx512 `Platform` exists only when AVX-512 F/BW/DQ/VL were detected.
                unsafe { avx512::compress_lanes(states, inputs, run, active) }
            }
            _ => compress_each(
                states,
                inputs,
                run,
                active,
                padded_block,
                portable::compress,
            ),
        }
    }

    fn digest(state: &Self::State) -> Self::Digest {
        digest_bytes(state)
    }
}

/// The multi-buffer manager for SHA-256: queue tagged messages, collect `(tag, digest)`.
pub type Sha256Lanes<'a, T> = Lanes<'a, Sha256, T>;

/// Whether this CPU has the SHA extensions (SHA-NI), checked once.
pub fn has_sha_ni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("sse4.1")
                && std::arch::is_x86_feature_detected!("ssse3")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// SHA-256 with SHA-NI, four messages interleaved, as a [`LaneHash`]. Only usable where
/// [`has_sha_ni`] is true; elsewhere it falls back to the portable compression.
#[derive(Debug, Clone, Copy)]
pub struct Sha256Ni;

impl LaneHash for Sha256Ni {
    const LANES: usize = 4;
    type State = [u32; 8];
    type Digest = [u8; 32];

    fn initial() -> Self::State {
        H0
    }

    fn block_count(len: usize) -> usize {
        block_count(len)
    }

    fn compress(
        _: Platform,
        states: &mut [[u32; 8]],
        inputs: &[(&[u8], usize)],
        run: usize,
        active: u32,
    ) {
        #[cfg(target_arch = "x86_64")]
        if has_sha_ni() {
            // SAFETY: SHA, SSE4.1 and SSSE3 were detected by `has_sha_ni`.
            unsafe { shani::compress_lanes(states, inputs, run, active) };
            return;
        }
        Sha256::compress(Platform::portable(), states, inputs, run, active)
    }

    fn digest(state: &Self::State) -> Self::Digest {
        digest_bytes(state)
    }
}

/// Which engine hashes a batch: interleaved SHA-NI or the 16-lane AVX-512 kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sha256Engine {
    /// One message at a time, portable code.
    Portable,
    /// Four messages interleaved on the SHA extensions.
    ShaNi4,
    /// Sixteen messages in AVX-512 lanes.
    Avx512x16,
}

/// Every engine this machine can run, portable first.
pub fn available_engines() -> Vec<Sha256Engine> {
    let mut engines = vec![Sha256Engine::Portable];
    if has_sha_ni() {
        engines.push(Sha256Engine::ShaNi4);
    }
    if Platform::avx512().is_some() {
        engines.push(Sha256Engine::Avx512x16);
    }
    engines
}

/// The engine for `platform`: a forced portable platform stays portable; otherwise the faster
/// of the available SIMD engines as measured by `cargo xtask bench sha256_x16`
/// (docs/benchmarks.md).
pub fn choose_engine(platform: Platform) -> Sha256Engine {
    match (platform.path(), has_sha_ni()) {
        (KernelPath::Portable, _) => Sha256Engine::Portable,
        (KernelPath::Avx512, true) => PREFERRED_WITH_BOTH,
        (KernelPath::Avx512, false) => Sha256Engine::Avx512x16,
        (KernelPath::Avx2, true) => Sha256Engine::ShaNi4,
        (KernelPath::Avx2, false) => Sha256Engine::Portable,
    }
}

/// The engine used when both SHA-NI and AVX-512 are present (the faster one in the bench).
const PREFERRED_WITH_BOTH: Sha256Engine = Sha256Engine::Avx512x16;

/// SHA-256 of every message, in order, on `engine`.
pub fn sha256_many_on(engine: Sha256Engine, messages: &[&[u8]]) -> Vec<[u8; 32]> {
    match engine {
        Sha256Engine::Portable => hash_many::<Sha256>(Platform::portable(), messages),
        Sha256Engine::ShaNi4 => hash_many::<Sha256Ni>(Platform::portable(), messages),
        Sha256Engine::Avx512x16 => match Platform::avx512() {
            Some(p) => hash_many::<Sha256>(p, messages),
            None => hash_many::<Sha256>(Platform::portable(), messages),
        },
    }
}

/// SHA-256 of every message, in order, on the fastest engine for `platform`.
pub fn sha256_many(platform: Platform, messages: &[&[u8]]) -> Vec<[u8; 32]> {
    sha256_many_on(choose_engine(platform), messages)
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
        for engine in available_engines() {
            assert_eq!(
                hex(&sha256_many_on(engine, &[&million_a])[0]),
                "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
                "{engine:?}"
            );
        }
    }
}
