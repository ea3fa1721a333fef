//! Helpers shared by the crypto test suites: hex vectors, deterministic bytes, and the SHAVS
//! Monte Carlo procedure.

#![allow(dead_code)] // Each test crate uses a different subset.
#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

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
