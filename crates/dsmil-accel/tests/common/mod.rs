//! Helpers shared by the suites: the forced paths and the [`per_path!`] macro that runs a test
//! once per path, hex vectors, deterministic bytes, and the SHAVS Monte Carlo procedure.

use std::io::Write as _;

use dsmil_accel::{CryptoExtension, Platform};

/// The forced paths, by the name a test instance carries: each returns the platform forced
/// through the explicit constructors, or `None` when this machine cannot run it.
pub mod paths {
    use super::*;

    /// Plain Rust everywhere.
    pub fn portable() -> Option<Platform> {
        Some(Platform::portable())
    }

    /// AVX2 + FMA (with SHA-NI and AES-NI where present).
    pub fn avx2() -> Option<Platform> {
        Platform::avx2()
    }

    /// AVX-512 (with every crypto extension present: SHA-256 ×16, SHA-512 ×8, ChaCha20 ×16,
    /// AES on VAES where present).
    pub fn avx512() -> Option<Platform> {
        Platform::avx512()
    }

    /// Portable vector code with SHA-NI: SHA-256 four messages interleaved.
    pub fn sha_ni() -> Option<Platform> {
        Platform::portable().with(CryptoExtension::ShaNi)
    }

    /// Portable vector code with AES-NI: 128-bit AES.
    pub fn aes_ni() -> Option<Platform> {
        Platform::portable().with(CryptoExtension::AesNi)
    }

    /// AVX-512 with VAES: AES four blocks per 512-bit register.
    pub fn vaes() -> Option<Platform> {
        Platform::avx512().filter(|p| p.has(CryptoExtension::Vaes))
    }
}

/// Runs `body` on `platform`, or — when this machine cannot run the path — reports the test
/// skipped by name. The report goes straight to the process's stderr, past the harness's
/// output capture, so it shows in every run; a skipped path never passes silently.
pub fn on_path(test: &str, platform: Option<Platform>, body: impl FnOnce(Platform)) {
    match platform {
        Some(p) => body(p),
        None => {
            let mut err = std::io::stderr().lock();
            // Nothing sensible to do if stderr is gone.
            let _ = writeln!(err, "SKIPPED {test}: this CPU/OS cannot run that path");
        }
    }
}

/// Instantiates a test once per forced path: `per_path!(name, [portable, avx512], |p| { … })`
/// makes a module `name` with one `#[test]` per path (named after it, e.g. `name::avx512`),
/// each running the body on the platform [`paths`] forces, or reporting itself skipped.
macro_rules! per_path {
    ($name:ident, [$($path:ident),+ $(,)?], |$p:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $path() {
                    $crate::common::on_path(
                        concat!(module_path!(), "::", stringify!($path)),
                        $crate::common::paths::$path(),
                        |$p| $body,
                    );
                }
            )+
        }
    };
}

/// Decodes hex, ignoring white space (vectors are quoted as printed in the standards).
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    dsmil_core::hex::decode(&s).unwrap()
}

/// `len` deterministic pseudo-random bytes (xorshift).
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A deterministic 256-bit key.
pub fn key_of(seed: u64) -> [u8; 32] {
    bytes(32, seed).try_into().unwrap()
}

/// SHAVS §6.4 Monte Carlo test: from `seed`, 100 checkpoints of 1000 chained hashes of
/// `MD[i-3] ‖ MD[i-2] ‖ MD[i-1]`; asserts every `(checkpoint, hex digest)` given.
pub fn monte_carlo<const N: usize>(
    label: &str,
    seed_hex: &str,
    checkpoints: &[(usize, &str)],
    hash: impl Fn(&[u8]) -> [u8; N],
) {
    let mut seed: [u8; N] = hex(seed_hex).try_into().unwrap();
    let mut next = checkpoints.iter().peekable();
    for j in 0..100 {
        let mut md = [seed, seed, seed];
        for _ in 0..1000 {
            let digest = hash(&[md[0], md[1], md[2]].concat());
            md = [md[1], md[2], digest];
        }
        seed = md[2];
        if let Some((count, want)) = next.peek()
            && *count == j
        {
            assert_eq!(
                dsmil_core::hex::encode(&seed),
                *want,
                "{label}: checkpoint {j}"
            );
            next.next();
        }
    }
    assert!(next.peek().is_none(), "{label}: checkpoints past 99");
}
