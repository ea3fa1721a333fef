//! Accelerator vocabulary (seed layer 4): CPU feature sets, topology, kernel paths and the
//! seed's AVX-512 result codes.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One CPU feature the accelerator layer can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // The names are the ISA extension names.
pub enum CpuFeature {
    Avx2,
    Fma,
    Avx512f,
    Avx512cd,
    Avx512er,
    Avx512pf,
    Avx512bw,
    Avx512dq,
    Avx512vl,
    Avx512ifma,
    Avx512vbmi,
    Avx512vnni,
    Avx512vbmi2,
    Avx512bitalg,
    Avx512vpopcntdq,
    Avx512bf16,
    Vaes,
    Vpclmulqdq,
    Gfni,
    Sha,
    Aes,
}

impl CpuFeature {
    /// The AVX-512 subsets the seed's `avx512_capabilities` lists.
    pub const SEED_AVX512: [CpuFeature; 10] = [
        CpuFeature::Avx512f,
        CpuFeature::Avx512cd,
        CpuFeature::Avx512er,
        CpuFeature::Avx512pf,
        CpuFeature::Avx512bw,
        CpuFeature::Avx512dq,
        CpuFeature::Avx512vl,
        CpuFeature::Avx512ifma,
        CpuFeature::Avx512vbmi,
        CpuFeature::Avx512vnni,
    ];
}

/// The set of features detected on this machine (or forced for a test).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CapabilitySet(pub BTreeSet<CpuFeature>);

impl CapabilitySet {
    /// Whether `feature` is present.
    pub fn has(&self, feature: CpuFeature) -> bool {
        self.0.contains(&feature)
    }

    /// Whether the AVX-512 base the kernels need (F, BW, DQ, VL) is present.
    pub fn has_avx512_core(&self) -> bool {
        [
            CpuFeature::Avx512f,
            CpuFeature::Avx512bw,
            CpuFeature::Avx512dq,
            CpuFeature::Avx512vl,
        ]
        .iter()
        .all(|f| self.has(*f))
    }
}

impl FromIterator<CpuFeature> for CapabilitySet {
    fn from_iter<T: IntoIterator<Item = CpuFeature>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Which implementation a kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

/// Cores, their kinds, caches and NUMA layout (seed `cpu_topology`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTopology {
    /// Logical CPUs online.
    pub total_cores: u32,
    /// Performance cores (all cores on non-hybrid parts).
    pub p_cores: Vec<u32>,
    /// Efficiency cores (empty on non-hybrid parts).
    pub e_cores: Vec<u32>,
    /// CPUs on which AVX-512 may be scheduled.
    pub avx512_cores: Vec<u32>,
    /// NUMA nodes.
    pub numa_nodes: u32,
    /// Last-level cache size in bytes (0 when unknown).
    pub l3_cache_bytes: u64,
    /// Thermal zones found under `/sys/class/thermal`.
    pub thermal_zones: u32,
}

/// The seed's AVX-512 result codes (`avx512_result_code_t`), with their numeric values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccelErrorCode {
    /// The operation needs a CPU feature this machine lacks.
    #[error("not supported on this CPU")]
    NotSupported = -1,
    /// Parameters are invalid (lengths, alignment, counts).
    #[error("invalid parameters")]
    InvalidParams = -2,
    /// Memory could not be allocated.
    #[error("insufficient memory")]
    InsufficientMemory = -3,
    /// Work refused or reduced because of thermal pressure.
    #[error("thermal throttle")]
    ThermalThrottle = -4,
    /// NUMA-local allocation failed.
    #[error("NUMA allocation failed")]
    NumaAllocationFailed = -5,
    /// The operation did not finish in time.
    #[error("operation timed out")]
    OperationTimeout = -6,
    /// The hardware misbehaved.
    #[error("hardware failure")]
    HardwareFailure = -7,
    /// The work queue is full.
    #[error("queue full")]
    QueueFull = -8,
}

impl AccelErrorCode {
    /// The seed's numeric code.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The error for a numeric code; `None` for 0 (success) and unknown codes.
    pub fn from_code(code: i32) -> Option<Self> {
        use AccelErrorCode::*;
        [
            NotSupported,
            InvalidParams,
            InsufficientMemory,
            ThermalThrottle,
            NumaAllocationFailed,
            OperationTimeout,
            HardwareFailure,
            QueueFull,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_match_the_seed() {
        assert_eq!(AccelErrorCode::NotSupported.code(), -1);
        assert_eq!(AccelErrorCode::QueueFull.code(), -8);
        for code in -8..=-1 {
            assert_eq!(
                AccelErrorCode::from_code(code).map(AccelErrorCode::code),
                Some(code)
            );
        }
        assert_eq!(AccelErrorCode::from_code(0), None);
        assert_eq!(AccelErrorCode::from_code(-9), None);
    }

    #[test]
    fn capability_set_serializes_as_names() {
        let set: CapabilitySet = [CpuFeature::Avx512f, CpuFeature::Sha].into_iter().collect();
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            "[\"avx512f\",\"sha\"]"
        );
        assert!(!set.has_avx512_core());
        let back: CapabilitySet =
            serde_json::from_str("[\"avx512f\",\"avx512bw\",\"avx512dq\",\"avx512vl\"]").unwrap();
        assert!(back.has_avx512_core());
    }

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
