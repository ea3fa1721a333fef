//! AES-256 with up to 16 independent keys (FIPS 197): ECB encryption and decryption of one
//! block per key per call (the seed's interface), and CTR keystream (SP 800-38A, 128-bit
//! big-endian counter as `ctr::Ctr128BE`) for one stream of any length per key.
//!
//! [`Aes256x16`] expands every key once, into a 64-byte aligned schedule that is zeroized on
//! drop, and picks its implementation ([`AesBackend::select`]) from the crypto extensions the
//! [`Platform`] carries:
//!
//! - VAES (only ever carried on the AVX-512 path, with AES-NI) → [`AesBackend::Vaes`]: four
//!   blocks per 512-bit register. ECB puts four keys in one register (their round keys sit next
//!   to each other in the schedule); CTR broadcasts one key's round keys to all four 128-bit
//!   lanes and runs 32 blocks (8 registers) of one stream per step.
//! - otherwise AES-NI → [`AesBackend::AesNi`]: 128-bit AES-NI, 8 CTR blocks per step.
//! - neither (the portable platform, `-aes_ni`, or a CPU without AES-NI) →
//!   [`AesBackend::Portable`]: plain Rust reference.
//!
//! Key schedules are computed with `aeskeygenassist`/`aesimc` where AES-NI is used, in plain
//! Rust otherwise. Decryption uses the equivalent inverse cipher (FIPS 197 §5.3.5).
//!
//! Constant time on every path: the hardware instructions take constant time, and the
//! portable path computes the S-box arithmetically (inversion in GF(2^8) as x^254, bitsliced
//! over 64 bytes, then the affine map) — no table is indexed by key or data, and no branch
//! depends on them. Branches depend only on lengths and counter values, which are public.
//! The schedule is zeroized on drop; copies of round keys in registers and spilled stack slots
//! are not under our control and are not cleared.
//!
//! ```
//! use dsmil_accel::Platform;
//! use dsmil_accel::crypto::aes::{Aes256x16, CtrStream};
//!
//! let keys: Vec<[u8; 32]> = (0..16u8).map(|i| [i; 32]).collect();
//! let aes = Aes256x16::new(Platform::detect()?, &keys)?;
//!
//! let mut blocks = [[0x42u8; 16]; 16];
//! aes.encrypt_blocks(&mut blocks)?; // block i with key i
//! aes.decrypt_blocks(&mut blocks)?;
//! assert_eq!(blocks, [[0x42u8; 16]; 16]);
//!
//! let mut records: Vec<Vec<u8>> = (0..16).map(|i| vec![i as u8; 100 + i]).collect();
//! let mut streams: Vec<CtrStream<'_>> = records
//!     .iter_mut()
//!     .map(|r| CtrStream::new([0u8; 16], r))
//!     .collect();
//! aes.ctr_xor_many(&mut streams)?; // stream i with key i
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(target_arch = "x86_64")]
mod aesni;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

use std::fmt;

use thiserror::Error;
use zeroize::Zeroize;

use crate::{CryptoExtension, Platform};

/// Key length in bytes.
pub const KEY_LEN: usize = 32;
/// Block length in bytes.
pub const BLOCK_LEN: usize = 16;
/// Most keys one [`Aes256x16`] holds.
pub const MAX_KEYS: usize = 16;
/// AES-256 rounds.
pub const ROUNDS: usize = 14;

/// One 16-byte block.
pub type Block = [u8; BLOCK_LEN];

/// Why an AES call was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AesError {
    /// No keys, or more than [`MAX_KEYS`].
    #[error("{0} keys given: between 1 and {MAX_KEYS} are allowed")]
    KeyCount(usize),
    /// A key slice is not [`KEY_LEN`] bytes.
    #[error("key {index} is {len} bytes, expected {KEY_LEN}")]
    KeyLength {
        /// Which key.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// Blocks or streams do not match the keys one to one.
    #[error("{got} {what} for {keys} keys: exactly one per key is required")]
    CountMismatch {
        /// "blocks" or "streams".
        what: &'static str,
        /// How many were given.
        got: usize,
        /// How many keys there are.
        keys: usize,
    },
}

/// Which implementation an [`Aes256x16`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AesBackend {
    /// Plain Rust, constant-time bitsliced S-box.
    Portable,
    /// 128-bit AES-NI.
    AesNi,
    /// VAES on 512-bit registers (AVX-512 F/BW + VAES + AES-NI).
    Vaes,
}

impl AesBackend {
    /// The implementation for `platform`: VAES if it carries VAES, else AES-NI if it carries
    /// AES-NI, else portable.
    pub fn select(platform: Platform) -> Self {
        if platform.has(CryptoExtension::Vaes) {
            Self::Vaes
        } else if platform.has(CryptoExtension::AesNi) {
            Self::AesNi
        } else {
            Self::Portable
        }
    }
}

impl fmt::Display for AesBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Portable => "portable",
            Self::AesNi => "aesni",
            Self::Vaes => "vaes",
        })
    }
}

/// Round keys of all keys, round-major (`[round][key]`), so that the round-`r` keys of keys
/// `4j..4j+4` form one 64-byte aligned register's worth. Zeroized on drop.
#[repr(C, align(64))]
pub(crate) struct Schedule {
    /// Encryption round keys.
    pub(crate) enc: [[Block; MAX_KEYS]; ROUNDS + 1],
    /// Equivalent-inverse-cipher round keys, in the order decryption uses them.
    pub(crate) dec: [[Block; MAX_KEYS]; ROUNDS + 1],
}

impl Drop for Schedule {
    fn drop(&mut self) {
        self.enc.zeroize();
        self.dec.zeroize();
    }
}

/// One stream of [`Aes256x16::ctr_xor_many`]: the CTR keystream starting at `counter_block`
/// (nonce and counter as one big-endian 128-bit value, incremented per block) is XORed into
/// `data` in place.
pub struct CtrStream<'a> {
    /// The first counter block.
    pub counter_block: Block,
    /// Plaintext in, ciphertext out (or the reverse).
    pub data: &'a mut [u8],
}

impl<'a> CtrStream<'a> {
    /// A stream over `data` from `counter_block`.
    pub fn new(counter_block: Block, data: &'a mut [u8]) -> Self {
        Self {
            counter_block,
            data,
        }
    }
}

impl fmt::Debug for CtrStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CtrStream")
            .field("counter_block", &self.counter_block)
            .field("len", &self.data.len())
            .finish()
    }
}

/// Up to 16 expanded AES-256 keys; block or stream `i` of every call uses key `i`.
pub struct Aes256x16 {
    schedule: Box<Schedule>,
    keys: usize,
    backend: AesBackend,
}

impl fmt::Debug for Aes256x16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Aes256x16")
            .field("keys", &self.keys)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Aes256x16 {
    /// Expands `keys` (1 to 16) for the implementation [`AesBackend::select`] picks.
    pub fn new(platform: Platform, keys: &[[u8; KEY_LEN]]) -> Result<Self, AesError> {
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(AesError::KeyCount(keys.len()));
        }
        let backend = AesBackend::select(platform);
        let mut schedule = Box::new(Schedule {
            enc: [[[0; BLOCK_LEN]; MAX_KEYS]; ROUNDS + 1],
            dec: [[[0; BLOCK_LEN]; MAX_KEYS]; ROUNDS + 1],
        });
        for (k, key) in keys.iter().enumerate() {
            match backend {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `select` returns AesNi or Vaes only for a platform carrying AES-NI
                // (VAES is carried only with it), which exists only when AES-NI and SSE2 were
                // detected.
                AesBackend::AesNi | AesBackend::Vaes => unsafe {
                    aesni::expand_key(&mut schedule, k, key)
                },
                _ => portable::expand_key(&mut schedule, k, key),
            }
        }
        Ok(Self {
            schedule,
            keys: keys.len(),
            backend,
        })
    }

    /// [`Aes256x16::new`] from unchecked slices: [`AesError::KeyLength`] names the first key
    /// that is not 32 bytes.
    pub fn from_slices(platform: Platform, keys: &[&[u8]]) -> Result<Self, AesError> {
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(AesError::KeyCount(keys.len()));
        }
        let mut fixed = [[0u8; KEY_LEN]; MAX_KEYS];
        let mut result = Ok(());
        for (index, (dst, src)) in fixed.iter_mut().zip(keys).enumerate() {
            if src.len() != KEY_LEN {
                result = Err(AesError::KeyLength {
                    index,
                    len: src.len(),
                });
                break;
            }
            dst.copy_from_slice(src);
        }
        let out = result.and_then(|()| Self::new(platform, &fixed[..keys.len()]));
        fixed.zeroize();
        out
    }

    /// Number of keys.
    pub fn keys(&self) -> usize {
        self.keys
    }

    /// The implementation in use.
    pub fn backend(&self) -> AesBackend {
        self.backend
    }

    fn check_count(&self, what: &'static str, got: usize) -> Result<(), AesError> {
        if got != self.keys {
            return Err(AesError::CountMismatch {
                what,
                got,
                keys: self.keys,
            });
        }
        Ok(())
    }

    /// Encrypts block `i` with key `i` in place; there must be exactly one block per key.
    pub fn encrypt_blocks(&self, blocks: &mut [Block]) -> Result<(), AesError> {
        self.check_count("blocks", blocks.len())?;
        self.ecb(blocks, false);
        Ok(())
    }

    /// Decrypts block `i` with key `i` in place; there must be exactly one block per key.
    pub fn decrypt_blocks(&self, blocks: &mut [Block]) -> Result<(), AesError> {
        self.check_count("blocks", blocks.len())?;
        self.ecb(blocks, true);
        Ok(())
    }

    fn ecb(&self, blocks: &mut [Block], decrypt: bool) {
        let mut all = [[0u8; BLOCK_LEN]; MAX_KEYS];
        all[..blocks.len()].copy_from_slice(blocks);
        let s = &*self.schedule;
        let rk = if decrypt { &s.dec } else { &s.enc };
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the backend is Vaes only when `select` saw a platform carrying VAES, which
            // exists only when VAES, AES-NI and AVX-512 F/BW were detected.
            AesBackend::Vaes => unsafe { avx512::ecb16(rk, &mut all, decrypt) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the backend is AesNi only when `select` saw a platform carrying AES-NI,
            // which exists only when AES-NI and SSE2 were detected.
            AesBackend::AesNi => unsafe { aesni::ecb16(rk, &mut all, decrypt) },
            _ => portable::ecb16(rk, &mut all, decrypt),
        }
        blocks.copy_from_slice(&all[..blocks.len()]);
        all.zeroize();
    }

    /// XORs the CTR keystream of key `i` from `streams[i].counter_block` into
    /// `streams[i].data`; there must be exactly one stream per key, of any lengths. The
    /// counter wraps modulo 2^128, as `ctr::Ctr128BE` does.
    pub fn ctr_xor_many(&self, streams: &mut [CtrStream<'_>]) -> Result<(), AesError> {
        self.check_count("streams", streams.len())?;
        let rk = &self.schedule.enc;
        for (k, s) in streams.iter_mut().enumerate() {
            match self.backend {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as in `ecb`: Vaes implies AVX-512 F/BW, VAES and AES-NI.
                AesBackend::Vaes => unsafe { avx512::ctr_xor(rk, k, &s.counter_block, s.data) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as in `ecb`: AesNi implies AES-NI and SSE2.
                AesBackend::AesNi => unsafe { aesni::ctr_xor(rk, k, &s.counter_block, s.data) },
                _ => portable::ctr_xor(rk, k, &s.counter_block, s.data),
            }
        }
        Ok(())
    }
}
