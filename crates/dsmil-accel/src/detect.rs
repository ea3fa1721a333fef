//! CPU feature detection through std's `is_x86_feature_detected!` (CPUID plus the OS's
//! XSAVE state, so a feature the kernel does not enable is reported absent).

use crate::features::{CapabilitySet, CpuFeature};

/// The features of this CPU that the accelerator layer knows about. Empty on non-x86 targets.
pub fn capabilities() -> CapabilitySet {
    let mut set = CapabilitySet::default();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($name:tt => $feature:ident),* $(,)?) => {
                $(if std::arch::is_x86_feature_detected!($name) {
                    set.0.insert(CpuFeature::$feature);
                })*
            };
        }
        probe!(
            "avx2" => Avx2,
            "fma" => Fma,
            "avx512f" => Avx512f,
            "avx512cd" => Avx512cd,
            "avx512bw" => Avx512bw,
            "avx512dq" => Avx512dq,
            "avx512vl" => Avx512vl,
            "avx512ifma" => Avx512ifma,
            "avx512vbmi" => Avx512vbmi,
            "avx512vnni" => Avx512vnni,
            "avx512vbmi2" => Avx512vbmi2,
            "avx512bitalg" => Avx512bitalg,
            "avx512vpopcntdq" => Avx512vpopcntdq,
            "avx512bf16" => Avx512bf16,
            "vaes" => Vaes,
            "vpclmulqdq" => Vpclmulqdq,
            "gfni" => Gfni,
            "sha" => Sha,
            "aes" => Aes,
        );
        // AVX-512 ER and PF (Xeon Phi only) are no longer known to std_detect; read CPUID leaf 7
        // directly, and only trust them when AVX-512 F itself is usable (OS state enabled).
        if set.has(CpuFeature::Avx512f) {
            let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
            if leaf7.ebx & (1 << 27) != 0 {
                set.0.insert(CpuFeature::Avx512er);
            }
            if leaf7.ebx & (1 << 26) != 0 {
                set.0.insert(CpuFeature::Avx512pf);
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_is_consistent_with_std() {
        let caps = capabilities();
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(
                caps.has(CpuFeature::Avx2),
                std::arch::is_x86_feature_detected!("avx2")
            );
            assert_eq!(
                caps.has_avx512_core(),
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            );
            // Sub-features never appear without the foundation.
            if !caps.has(CpuFeature::Avx512f) {
                assert!(CpuFeature::SEED_AVX512.iter().all(|f| !caps.has(*f)));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        assert!(caps.0.is_empty());
    }
}
