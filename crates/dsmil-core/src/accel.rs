//! Accelerator vocabulary that crosses layers: which kernel path ran (carried by accelerator
//! events on the bus). CPU features, topology and the seed's result codes live in `dsmil-accel`.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which implementation a kernel runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum KernelPath {
    /// Plain Rust; runs everywhere; the reference for the others.
    Portable,
    /// AVX2 + FMA.
    Avx2,
    /// AVX-512 (F, BW, DQ, VL and what the kernel also needs).
    Avx512,
}

impl fmt::Display for KernelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KernelPath::Portable => "portable",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512 => "avx512",
        })
    }
}

impl std::str::FromStr for KernelPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "portable" => Ok(KernelPath::Portable),
            "avx2" => Ok(KernelPath::Avx2),
            "avx512" => Ok(KernelPath::Avx512),
            other => Err(format!(
                "unknown kernel path {other:?}; expected portable, avx2 or avx512"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_paths_parse() {
        for p in [KernelPath::Portable, KernelPath::Avx2, KernelPath::Avx512] {
            assert_eq!(p.to_string().parse::<KernelPath>(), Ok(p));
        }
        assert!(
            "sse"
                .parse::<KernelPath>()
                .unwrap_err()
                .contains("portable, avx2 or avx512")
        );
    }
}
