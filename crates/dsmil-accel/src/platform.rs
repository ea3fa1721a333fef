//! Which kernel implementation runs: chosen once by detection, forcible for tests and benches.
//!
//! `Platform::detect()` picks the best path this CPU and OS support; `DSMIL_ACCEL_FORCE=
//! portable|avx2|avx512` forces one for the whole process (a path the machine lacks is refused,
//! never run). The explicit constructors return `None` when the machine cannot run that path, so
//! holding a `Platform` is proof that its instructions are available — the soundness argument
//! for every `unsafe` call into a `#[target_feature]` kernel.

use std::fmt;

use dsmil_core::KernelPath;
use thiserror::Error;

/// Environment variable that forces a kernel path for the whole process.
pub const FORCE_VAR: &str = "DSMIL_ACCEL_FORCE";

/// A kernel path this machine is known to support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Platform(KernelPath);

/// Why a forced path could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlatformError {
    /// The variable names no path.
    #[error("{FORCE_VAR}={value:?}: {reason}")]
    BadValue {
        /// What was set.
        value: String,
        /// Why it is not a path.
        reason: String,
    },
    /// The machine cannot run the forced path.
    #[error("{FORCE_VAR}={0} but this CPU/OS does not support it")]
    Unsupported(KernelPath),
}

impl Platform {
    /// Plain Rust; always available.
    pub fn portable() -> Self {
        Self(KernelPath::Portable)
    }

    /// AVX2 + FMA, if this machine has them.
    pub fn avx2() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some(Self(KernelPath::Avx2));
        }
        None
    }

    /// AVX-512 F + BW + DQ + VL, if this machine has them.
    pub fn avx512() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return Some(Self(KernelPath::Avx512));
        }
        None
    }

    /// The platform for `path`, if this machine supports it.
    pub fn for_path(path: KernelPath) -> Option<Self> {
        match path {
            KernelPath::Portable => Some(Self::portable()),
            KernelPath::Avx2 => Self::avx2(),
            KernelPath::Avx512 => Self::avx512(),
        }
    }

    /// The best path available.
    pub fn best() -> Self {
        Self::avx512()
            .or_else(Self::avx2)
            .unwrap_or_else(Self::portable)
    }

    /// [`Platform::best`], unless [`FORCE_VAR`] forces a path.
    pub fn detect() -> Result<Self, PlatformError> {
        match std::env::var(FORCE_VAR) {
            Ok(value) if !value.trim().is_empty() => {
                let path: KernelPath = value.parse().map_err(|reason| PlatformError::BadValue {
                    value: value.clone(),
                    reason,
                })?;
                Self::for_path(path).ok_or(PlatformError::Unsupported(path))
            }
            _ => Ok(Self::best()),
        }
    }

    /// Every path this machine supports, portable first.
    pub fn available() -> Vec<Self> {
        [Some(Self::portable()), Self::avx2(), Self::avx512()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The path.
    pub fn path(self) -> KernelPath {
        self.0
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_paths_are_constructible_and_best_is_the_last() {
        let all = Platform::available();
        assert_eq!(all[0], Platform::portable());
        assert_eq!(*all.last().unwrap(), Platform::best());
        for p in all {
            assert_eq!(Platform::for_path(p.path()), Some(p));
        }
    }
}
