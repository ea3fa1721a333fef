//! ChaCha20 (RFC 8439) keystream XOR for many independent streams at once, and for one long
//! stream 16 blocks at a time.
//!
//! - [`chacha20_xor_many`]: any number of `(key, nonce, initial block counter, buffer)` streams
//!   of independent lengths. The AVX-512 path runs 16 streams at once, one per 32-bit lane (the
//!   state is held transposed: register `w` holds word `w` of 16 states); a lane whose stream
//!   is done is refilled with the next stream right away, so mixed lengths keep every lane busy.
//! - [`chacha20_xor`]: one stream; the AVX-512 path computes its 16 consecutive blocks (1 KiB)
//!   per step, one block per lane.
//!
//! XOR is its own inverse: the same call encrypts and decrypts. The counter is RFC 8439's 32-bit
//! block counter: a stream that would need block 2^32 is refused with
//! [`ChachaError::CounterOverflow`] before anything is written.
//!
//! Constant time: no branch or memory index depends on a key, nonce or data byte (branches
//! depend only on lengths and counters). Copies of the key held in the kernels' state buffers
//! are zeroized when the call returns.
//!
//! ```
//! use dsmil_accel::Platform;
//! use dsmil_accel::crypto::chacha20::{Chacha20Stream, chacha20_xor, chacha20_xor_many};
//!
//! let platform = Platform::detect()?;
//! let (key_a, key_b) = ([1u8; 32], [2u8; 32]);
//! let mut a = b"first record".to_vec();
//! let mut b = vec![0u8; 5000];
//! chacha20_xor_many(
//!     platform,
//!     &mut [
//!         Chacha20Stream::new(&key_a, [0; 12], 1, &mut a),
//!         Chacha20Stream::new(&key_b, [7; 12], 1, &mut b),
//!     ],
//! )?;
//! // The same keystream again decrypts.
//! chacha20_xor(platform, &key_a, &[0; 12], 1, &mut a)?;
//! assert_eq!(a, b"first record");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

use dsmil_core::KernelPath;
use thiserror::Error;

use crate::Platform;

/// Key length in bytes.
pub const KEY_LEN: usize = 32;
/// Nonce length in bytes (RFC 8439's 96-bit nonce).
pub const NONCE_LEN: usize = 12;
/// Keystream block length in bytes.
pub const BLOCK_LEN: usize = 64;
/// Streams processed at once by the AVX-512 path.
pub const LANES: usize = 16;

/// "expand 32-byte k", the first four state words (RFC 8439 §2.3).
pub(crate) const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// Why a ChaCha20 call was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChachaError {
    /// A key slice is not [`KEY_LEN`] bytes.
    #[error("key is {0} bytes, expected {KEY_LEN}")]
    KeyLength(usize),
    /// A nonce slice is not [`NONCE_LEN`] bytes.
    #[error("nonce is {0} bytes, expected {NONCE_LEN}")]
    NonceLength(usize),
    /// The stream needs a block past the 32-bit block counter's last value.
    #[error("stream {stream}: {len} bytes from block counter {counter} need block 2^32 or later")]
    CounterOverflow {
        /// Which stream of the call (0 for [`chacha20_xor`]).
        stream: usize,
        /// Its initial block counter.
        counter: u32,
        /// Its length in bytes.
        len: usize,
    },
}

/// One stream of [`chacha20_xor_many`]: the keystream of `(key, nonce)` from block `counter`
/// on is XORed into `data` in place.
pub struct Chacha20Stream<'a> {
    /// 256-bit key.
    pub key: &'a [u8; KEY_LEN],
    /// 96-bit nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Block counter of the first 64 bytes of `data`.
    pub counter: u32,
    /// Plaintext in, ciphertext out (or the reverse).
    pub data: &'a mut [u8],
}

impl<'a> Chacha20Stream<'a> {
    /// A stream over `data`.
    pub fn new(
        key: &'a [u8; KEY_LEN],
        nonce: [u8; NONCE_LEN],
        counter: u32,
        data: &'a mut [u8],
    ) -> Self {
        Self {
            key,
            nonce,
            counter,
            data,
        }
    }

    /// A stream from unchecked slices: [`ChachaError::KeyLength`] or
    /// [`ChachaError::NonceLength`] when they have the wrong length.
    pub fn from_slices(
        key: &'a [u8],
        nonce: &[u8],
        counter: u32,
        data: &'a mut [u8],
    ) -> Result<Self, ChachaError> {
        let key = <&[u8; KEY_LEN]>::try_from(key).map_err(|_| ChachaError::KeyLength(key.len()))?;
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce)
            .map_err(|_| ChachaError::NonceLength(nonce.len()))?;
        Ok(Self::new(key, nonce, counter, data))
    }
}

impl std::fmt::Debug for Chacha20Stream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Chacha20Stream")
            .field("counter", &self.counter)
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// Refuses a stream whose last block would be past block counter 2^32 - 1.
fn check_counter(stream: usize, counter: u32, len: usize) -> Result<(), ChachaError> {
    let blocks = len.div_ceil(BLOCK_LEN) as u128;
    if u128::from(counter) + blocks > 1 << 32 {
        return Err(ChachaError::CounterOverflow {
            stream,
            counter,
            len,
        });
    }
    Ok(())
}

/// The initial state of RFC 8439 §2.3: constants, key, counter, nonce (little-endian words).
pub(crate) fn initial_state(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    counter: u32,
) -> [u32; 16] {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&SIGMA);
    for (w, chunk) in s[4..12].iter_mut().zip(key.chunks_exact(4)) {
        *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    s[12] = counter;
    for (w, chunk) in s[13..].iter_mut().zip(nonce.chunks_exact(4)) {
        *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    s
}

/// XORs each stream's keystream into its buffer. Every counter is checked before anything is
/// written; on error no buffer has changed.
pub fn chacha20_xor_many(
    platform: Platform,
    streams: &mut [Chacha20Stream<'_>],
) -> Result<(), ChachaError> {
    for (i, s) in streams.iter().enumerate() {
        check_counter(i, s.counter, s.data.len())?;
    }
    match platform.path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Platform` with the Avx512 path exists only when AVX-512 F/BW/DQ/VL were
        // detected; the kernel needs F and BW.
        KernelPath::Avx512 => unsafe { avx512::xor_many(streams) },
        _ => portable::xor_many(streams),
    }
    Ok(())
}

/// XORs the keystream of `(key, nonce)` from block `counter` on into `data` (one stream; the
/// AVX-512 path computes 16 consecutive blocks per step). On error `data` is unchanged.
pub fn chacha20_xor(
    platform: Platform,
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    counter: u32,
    data: &mut [u8],
) -> Result<(), ChachaError> {
    check_counter(0, counter, data.len())?;
    match platform.path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Platform` with the Avx512 path exists only when AVX-512 F/BW/DQ/VL were
        // detected; the kernel needs F and BW.
        KernelPath::Avx512 => unsafe { avx512::xor_single(key, nonce, counter, data) },
        _ => portable::xor(key, nonce, counter, data),
    }
    Ok(())
}

/// The 64-byte keystream block for `(key, nonce, counter)` (RFC 8439 §2.3, portable).
pub fn chacha20_block(key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN], counter: u32) -> [u8; 64] {
    let mut block = [0u8; 64];
    portable::xor(key, nonce, counter, &mut block);
    block
}
