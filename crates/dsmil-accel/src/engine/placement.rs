//! Which cores the workers may run on, and pinning them there.
//!
//! On the AVX-512 path only `topology.avx512_cores` are allowed (on hybrid parts AVX-512 is on
//! P-cores only). A worker that could not be pinned runs wherever the OS puts it, so unless
//! every online core may run AVX-512 it hands its jobs the best non-AVX-512 platform instead
//! (the same crypto extensions, minus VAES, which uses 512-bit registers): AVX-512 work is never
//! run on a core outside the allowed set.

use crate::topology::CpuTopology;
use dsmil_core::KernelPath;

use super::error::AccelError;
use crate::Platform;

/// Online cores: P and E cores, or `0..total_cores` when the topology lists neither.
fn online(topology: &CpuTopology) -> Vec<u32> {
    let mut cores: Vec<u32> = topology
        .p_cores
        .iter()
        .chain(&topology.e_cores)
        .copied()
        .collect();
    if cores.is_empty() {
        cores = (0..topology.total_cores).collect();
    }
    cores.sort_unstable();
    cores.dedup();
    cores
}

/// The cores work on `platform` may run on, ascending; an error when there are none.
pub(crate) fn allowed_cores(
    platform: Platform,
    topology: &CpuTopology,
) -> Result<Vec<u32>, AccelError> {
    if platform.path() == KernelPath::Avx512 {
        let mut cores = topology.avx512_cores.clone();
        cores.sort_unstable();
        cores.dedup();
        if cores.is_empty() {
            return Err(AccelError::InvalidParams(
                "topology.avx512_cores: empty, so AVX-512 work has no core to run on".into(),
            ));
        }
        Ok(cores)
    } else {
        let cores = online(topology);
        if cores.is_empty() {
            return Err(AccelError::InvalidParams(
                "topology: no online cores (p_cores, e_cores and total_cores are empty)".into(),
            ));
        }
        Ok(cores)
    }
}

/// The platform an unpinned worker may hand to its jobs.
pub(crate) fn unpinned_platform(
    platform: Platform,
    topology: &CpuTopology,
    allowed: &[u32],
) -> Platform {
    let everywhere = online(topology).iter().all(|c| allowed.contains(c));
    if platform.path() == KernelPath::Avx512 && !everywhere {
        platform
            .with_path(KernelPath::Avx2)
            .or_else(|| platform.with_path(KernelPath::Portable))
            .unwrap_or_else(Platform::portable)
    } else {
        platform
    }
}

/// Pins the calling thread to `core`; whether it worked.
#[cfg(target_os = "linux")]
pub(crate) fn pin_current_thread(core: u32) -> bool {
    use nix::sched::{CpuSet, sched_setaffinity};
    use nix::unistd::Pid;

    let mut set = CpuSet::new();
    let Ok(index) = usize::try_from(core) else {
        return false;
    };
    if set.set(index).is_err() {
        return false;
    }
    // Pid 0 is the calling thread.
    sched_setaffinity(Pid::from_raw(0), &set).is_ok()
}

/// Pinning is only implemented on Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn pin_current_thread(_core: u32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hybrid() -> CpuTopology {
        CpuTopology {
            total_cores: 4,
            p_cores: vec![1, 0],
            e_cores: vec![2, 3],
            avx512_cores: vec![1, 0, 1],
            ..CpuTopology::default()
        }
    }

    #[test]
    fn allowed_cores_follow_the_platform() {
        let t = hybrid();
        assert_eq!(
            allowed_cores(Platform::portable(), &t).unwrap(),
            [0, 1, 2, 3]
        );
        if let Some(avx512) = Platform::avx512() {
            assert_eq!(allowed_cores(avx512, &t).unwrap(), [0, 1]);
            let none = CpuTopology {
                avx512_cores: vec![],
                ..t.clone()
            };
            let err = allowed_cores(avx512, &none).unwrap_err();
            assert!(err.to_string().contains("topology.avx512_cores"), "{err}");
            let fallback = unpinned_platform(avx512, &t, &[0, 1]);
            assert_ne!(fallback.path(), KernelPath::Avx512);
            assert!(!fallback.has(crate::CryptoExtension::Vaes));
            let forced = avx512.without(crate::CryptoExtension::AesNi);
            let fallback = unpinned_platform(forced, &t, &[0, 1]);
            assert!(!fallback.has(crate::CryptoExtension::AesNi), "{fallback}");
            assert_eq!(unpinned_platform(avx512, &t, &[0, 1, 2, 3]), avx512);
        }
        let bare = CpuTopology {
            total_cores: 2,
            ..CpuTopology::default()
        };
        assert_eq!(allowed_cores(Platform::portable(), &bare).unwrap(), [0, 1]);
        assert!(allowed_cores(Platform::portable(), &CpuTopology::default()).is_err());
        assert_eq!(
            unpinned_platform(Platform::portable(), &t, &[0]),
            Platform::portable()
        );
    }

    #[test]
    fn pinning_to_an_impossible_core_fails_cleanly() {
        assert!(!pin_current_thread(u32::MAX));
    }
}
