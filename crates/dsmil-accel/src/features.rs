//! CPU features the accelerator layer knows, and the set detected on this machine.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
