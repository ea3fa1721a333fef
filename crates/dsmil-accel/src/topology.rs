//! CPU topology from sysfs: online CPUs, hybrid P/E split, AVX-512-capable CPUs, NUMA nodes,
//! last-level cache size and thermal zones.
//!
//! Intel hybrid parts list their core types in `/sys/devices/cpu_core/cpus` (P) and
//! `/sys/devices/cpu_atom/cpus` (E). AVX-512, when present at all on such parts, is only on
//! P-cores, so AVX-512 work is only ever scheduled on [`CpuTopology::avx512_cores`].

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

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

/// Reads the topology of this machine (`/sys`), given whether AVX-512 is usable.
pub fn detect(avx512: bool) -> CpuTopology {
    from_sysfs(Path::new("/sys"), avx512)
}

/// Reads the topology from a sysfs tree rooted at `sys` (a directory shaped like `/sys`).
/// Missing files degrade to sensible values (one node, no cache size, no thermal zones).
pub fn from_sysfs(sys: &Path, avx512: bool) -> CpuTopology {
    let read = |rel: &str| fs::read_to_string(sys.join(rel)).ok();
    let online = read("devices/system/cpu/online")
        .and_then(|s| parse_cpu_list(&s))
        .unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..n as u32).collect()
        });
    let p_list = read("devices/cpu_core/cpus").and_then(|s| parse_cpu_list(&s));
    let e_list = read("devices/cpu_atom/cpus").and_then(|s| parse_cpu_list(&s));
    let (p_cores, e_cores) = match (p_list, e_list) {
        (Some(p), Some(e)) => (
            p.into_iter().filter(|c| online.contains(c)).collect(),
            e.into_iter()
                .filter(|c| online.contains(c))
                .collect::<Vec<_>>(),
        ),
        _ => (online.clone(), Vec::new()),
    };
    let avx512_cores = if avx512 { p_cores.clone() } else { Vec::new() };
    let numa_nodes = fs::read_dir(sys.join("devices/system/node"))
        .map(|dir| {
            dir.flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.strip_prefix("node")
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count() as u32
        })
        .unwrap_or(0)
        .max(1);
    let cpu0 = online.first().copied().unwrap_or(0);
    let l3_cache_bytes = (0..8)
        .filter_map(|i| {
            let base = format!("devices/system/cpu/cpu{cpu0}/cache/index{i}");
            let level = read(&format!("{base}/level"))?;
            (level.trim() == "3").then(|| read(&format!("{base}/size")))?
        })
        .find_map(|s| parse_cache_size(&s))
        .unwrap_or(0);
    let thermal_zones = fs::read_dir(sys.join("class/thermal"))
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
                .count() as u32
        })
        .unwrap_or(0);
    CpuTopology {
        total_cores: online.len() as u32,
        p_cores,
        e_cores,
        avx512_cores,
        numa_nodes,
        l3_cache_bytes,
        thermal_zones,
    }
}

/// Parses a kernel CPU list such as `0-3,8,10-11`; `None` when malformed.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Vec::new());
    }
    let mut cpus = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b || b - a > 65_536 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// Parses a sysfs cache size such as `32768K` or `32M` into bytes.
pub fn parse_cache_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits.parse().ok()?;
    let mult = match unit.trim() {
        "" => 1,
        "K" | "KB" | "k" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        let check = |text: &str, expected: Option<Vec<u32>>| {
            assert_eq!(parse_cpu_list(text), expected, "{text:?}")
        };
        check("0-3,8,10-11\n", Some(vec![0, 1, 2, 3, 8, 10, 11]));
        check("5", Some(vec![5]));
        check("", Some(vec![]));
        check("3-1", None);
        check("a-b", None);
        check("0-4294967295", None);
    }

    #[test]
    fn cache_sizes() {
        assert_eq!(parse_cache_size("32768K\n"), Some(32 << 20));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("x"), None);
        assert_eq!(parse_cache_size("12Q"), None);
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn hybrid_machine_keeps_avx512_on_p_cores() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path();
        write(sys, "devices/system/cpu/online", "0-11\n");
        write(sys, "devices/cpu_core/cpus", "0-3\n");
        write(sys, "devices/cpu_atom/cpus", "4-11\n");
        write(sys, "devices/system/node/node0/cpulist", "0-11\n");
        write(sys, "devices/system/node/node1/cpulist", "\n");
        write(sys, "devices/system/cpu/cpu0/cache/index2/level", "2\n");
        write(sys, "devices/system/cpu/cpu0/cache/index2/size", "1280K\n");
        write(sys, "devices/system/cpu/cpu0/cache/index3/level", "3\n");
        write(sys, "devices/system/cpu/cpu0/cache/index3/size", "24576K\n");
        write(sys, "class/thermal/thermal_zone0/temp", "42000\n");
        write(sys, "class/thermal/cooling_device0/type", "fan\n");
        let t = from_sysfs(sys, true);
        assert_eq!(t.total_cores, 12);
        assert_eq!(t.p_cores, vec![0, 1, 2, 3]);
        assert_eq!(t.e_cores, (4..12).collect::<Vec<_>>());
        assert_eq!(t.avx512_cores, vec![0, 1, 2, 3]);
        assert_eq!(t.numa_nodes, 2);
        assert_eq!(t.l3_cache_bytes, 24 << 20);
        assert_eq!(t.thermal_zones, 1);
        assert!(from_sysfs(sys, false).avx512_cores.is_empty());
    }

    #[test]
    fn plain_machine_and_empty_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "devices/system/cpu/online", "0-1\n");
        let t = from_sysfs(dir.path(), true);
        assert_eq!((t.p_cores.clone(), t.e_cores.clone()), (vec![0, 1], vec![]));
        assert_eq!(t.numa_nodes, 1);
        assert_eq!(t.l3_cache_bytes, 0);
        let empty = tempfile::tempdir().unwrap();
        assert!(from_sysfs(empty.path(), false).total_cores >= 1);
    }

    #[test]
    fn this_machine_has_sane_topology() {
        let t = detect(false);
        assert!(t.total_cores >= 1);
        assert_eq!(t.p_cores.len() + t.e_cores.len(), t.total_cores as usize);
    }
}
