//! System health from procfs, sysfs and `statvfs`, with configurable roots so tests can point
//! the collector at a fake `/proc` and `/sys` in a temporary directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::Utc;
use dsmil_core::SystemHealth;
use dsmil_core::monitoring::ThermalState;
use thiserror::Error;

/// Why a system health sample could not be taken. Every variant names the file (or path) at
/// fault so an operator can see what is wrong from `/api/status` alone.
#[derive(Debug, Error)]
pub enum CollectError {
    /// A file could not be read (missing, permission denied, I/O error).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file was read but its contents are not in the expected format.
    #[error("{} is garbled: {reason}", path.display())]
    Garbled {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `statvfs` failed on the path whose filesystem usage is reported.
    #[error("cannot read the filesystem usage of {}: {source}", path.display())]
    DiskUsage {
        /// The path handed to `statvfs`.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },
}

impl CollectError {
    /// The file or path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            CollectError::Read { path, .. }
            | CollectError::Garbled { path, .. }
            | CollectError::DiskUsage { path, .. } => path,
        }
    }
}

/// Cumulative CPU time from the aggregate `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Ticks spent doing anything but idling or waiting for I/O.
    pub busy: u64,
    /// All ticks (user, nice, system, idle, iowait, irq, softirq, steal; guest time is already
    /// part of user and nice, so it is not added twice).
    pub total: u64,
}

impl CpuTimes {
    /// Busy share, 0–100, between `earlier` and `self`; `None` when no tick elapsed (or the
    /// counters went backwards, which only a garbled file or a counter reset can cause).
    pub fn busy_percent_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        if total == 0 {
            return None;
        }
        Some((busy as f64 / total as f64 * 100.0).clamp(0.0, 100.0))
    }
}

/// Samples [`SystemHealth`] from `/proc`, `/sys` and the filesystem holding `disk_path`.
///
/// CPU usage is the busy share between two calls of [`SystemCollector::sample`] (the first
/// call reports the share since boot), so one collector should be sampled by one task.
#[derive(Debug, Clone)]
pub struct SystemCollector {
    proc_root: PathBuf,
    sys_root: PathBuf,
    disk_path: PathBuf,
    previous_cpu: Option<CpuTimes>,
    last_cpu_percent: f64,
}

/// Below this a sensor reading is taken for a disconnected or unimplemented sensor (they
/// commonly read 0, negative values or −273 °C).
const MIN_PLAUSIBLE_CELSIUS: f64 = 0.0;
/// Above this a sensor reading is taken for garbage: no running semiconductor gets there.
const MAX_PLAUSIBLE_CELSIUS: f64 = 150.0;

impl SystemCollector {
    /// A collector reading `/proc` and `/sys` and reporting the usage of the filesystem that
    /// holds `disk_path` (usually the daemon's data directory).
    pub fn new(disk_path: impl Into<PathBuf>) -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            disk_path: disk_path.into(),
            previous_cpu: None,
            last_cpu_percent: 0.0,
        }
    }

    /// Reads procfs files below `proc_root` instead of `/proc` (tests, containers).
    pub fn with_proc_root(mut self, proc_root: impl Into<PathBuf>) -> Self {
        self.proc_root = proc_root.into();
        self.previous_cpu = None;
        self
    }

    /// Reads sysfs files below `sys_root` instead of `/sys` (tests, containers).
    pub fn with_sys_root(mut self, sys_root: impl Into<PathBuf>) -> Self {
        self.sys_root = sys_root.into();
        self
    }

    /// The procfs root in use.
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// The sysfs root in use.
    pub fn sys_root(&self) -> &Path {
        &self.sys_root
    }

    /// The path whose filesystem usage is reported.
    pub fn disk_path(&self) -> &Path {
        &self.disk_path
    }

    /// Takes one sample. Every source but the thermal sensors is required: a missing or
    /// garbled file fails the whole sample with an error naming the file. Having no thermal
    /// sensor is normal (virtual machines, containers) and gives `sensor_count == 0`.
    ///
    /// A failed sample does not disturb the CPU baseline: the next successful one reports the
    /// busy share since the last successful one.
    pub fn sample(&mut self) -> Result<SystemHealth, CollectError> {
        let stat_path = self.proc_root.join("stat");
        let cpu = parse_or_err(&stat_path, parse_cpu_times)?;
        let memory_usage_percent =
            parse_or_err(&self.proc_root.join("meminfo"), parse_meminfo_percent)?;
        let (network_io_bytes_sent, network_io_bytes_recv) =
            parse_or_err(&self.proc_root.join("net/dev"), parse_net_dev)?;
        let load_average = parse_or_err(&self.proc_root.join("loadavg"), parse_loadavg)?;
        let uptime_seconds = parse_or_err(&self.proc_root.join("uptime"), parse_uptime)?;
        let disk_usage_percent = disk_usage(&self.disk_path)?;
        let thermal_state = read_thermal(&self.sys_root);

        // Only now that the whole sample succeeded is the CPU baseline moved.
        let baseline = self.previous_cpu.unwrap_or_default();
        if let Some(percent) = cpu.busy_percent_since(&baseline) {
            self.last_cpu_percent = percent;
        }
        self.previous_cpu = Some(cpu);

        Ok(SystemHealth {
            timestamp: Utc::now(),
            cpu_usage_percent: self.last_cpu_percent,
            memory_usage_percent,
            disk_usage_percent,
            network_io_bytes_sent,
            network_io_bytes_recv,
            thermal_state,
            load_average,
            uptime_seconds,
        })
    }
}

/// Reads `path` and parses it with `parse`, turning failures into errors naming the file.
fn parse_or_err<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, CollectError> {
    let text = fs::read_to_string(path).map_err(|source| CollectError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|reason| CollectError::Garbled {
        path: path.to_owned(),
        reason,
    })
}

/// Parses the aggregate `cpu` line of `/proc/stat`.
fn parse_cpu_times(text: &str) -> Result<CpuTimes, String> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))
        .ok_or("no aggregate `cpu` line")?;
    let fields = line
        .split_whitespace()
        .skip(1)
        .map(|f| {
            f.parse::<u64>()
                .map_err(|_| format!("`cpu` line has a non-numeric field {f:?}"))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    if fields.len() < 4 {
        return Err(format!(
            "`cpu` line has {} fields; expected at least 4 (user nice system idle)",
            fields.len()
        ));
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    let idle = at(3).saturating_add(at(4));
    let total = fields
        .iter()
        .take(8)
        .fold(0u64, |sum, v| sum.saturating_add(*v));
    Ok(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// Memory in use, 0–100: (MemTotal − MemAvailable) / MemTotal. Kernels older than 3.14 have
/// no MemAvailable; there MemFree + Buffers + Cached stands in for it.
fn parse_meminfo_percent(text: &str) -> Result<f64, String> {
    let field = |name: &str| -> Result<Option<u64>, String> {
        let Some(line) = text
            .lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(name))
        else {
            return Ok(None);
        };
        let value = line
            .split_once(':')
            .map(|(_, v)| v)
            .and_then(|v| v.split_whitespace().next())
            .ok_or_else(|| format!("{name} has no value"))?;
        value
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("{name} value {value:?} is not a number"))
    };
    let total = field("MemTotal")?.ok_or("no MemTotal line")?;
    if total == 0 {
        return Err("MemTotal is 0".into());
    }
    let available = match field("MemAvailable")? {
        Some(a) => a,
        None => {
            let free = field("MemFree")?.ok_or("neither MemAvailable nor MemFree")?;
            free.saturating_add(field("Buffers")?.unwrap_or(0))
                .saturating_add(field("Cached")?.unwrap_or(0))
        }
    };
    let used = total.saturating_sub(available);
    Ok((used as f64 / total as f64 * 100.0).clamp(0.0, 100.0))
}

/// (bytes sent, bytes received) summed over every interface but `lo`.
fn parse_net_dev(text: &str) -> Result<(u64, u64), String> {
    let (mut sent, mut recv) = (0u64, 0u64);
    let mut header_seen = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, counters)) = line.split_once(':') else {
            if line.contains('|') {
                header_seen = true;
                continue;
            }
            return Err(format!("unexpected line {:?}", line.trim()));
        };
        let name = name.trim();
        let fields: Vec<&str> = counters.split_whitespace().collect();
        if fields.len() < 9 {
            return Err(format!(
                "interface {name} has {} counters; expected at least 9",
                fields.len()
            ));
        }
        let number = |i: usize| -> Result<u64, String> {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .ok_or_else(|| format!("interface {name} has a non-numeric counter"))
        };
        let (rx, tx) = (number(0)?, number(8)?);
        if name != "lo" {
            recv = recv.saturating_add(rx);
            sent = sent.saturating_add(tx);
        }
    }
    if !header_seen {
        return Err("no header lines".into());
    }
    Ok((sent, recv))
}

/// The three load averages of `/proc/loadavg`.
fn parse_loadavg(text: &str) -> Result<[f64; 3], String> {
    let mut fields = text.split_whitespace();
    let mut out = [0.0; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        let f = fields
            .next()
            .ok_or_else(|| format!("{} fields; expected at least 3", i))?;
        *slot = f
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("load average {f:?} is not a non-negative number"))?;
    }
    Ok(out)
}

/// Whole seconds since boot from `/proc/uptime`.
fn parse_uptime(text: &str) -> Result<u64, String> {
    let f = text.split_whitespace().next().ok_or("empty")?;
    let secs = f
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("uptime {f:?} is not a non-negative number"))?;
    // Saturating float-to-int conversion; uptimes are far below u64::MAX anyway.
    Ok(secs as u64)
}

/// Share of the filesystem in use, 0–100, the way `df` and psutil report it:
/// used / (used + available to unprivileged users), where used = total − free. Blocks reserved
/// for root therefore count as neither, and a full disk for ordinary users reads 100 %.
/// All three counts are in the same unit (filesystem fragments). Inconsistent counts (free
/// above total) read as 0 % rather than failing.
pub fn disk_usage_percent(total_blocks: u64, free_blocks: u64, available_blocks: u64) -> f64 {
    let used = total_blocks.saturating_sub(free_blocks) as f64;
    let denominator = used + available_blocks as f64;
    if denominator <= 0.0 {
        return 0.0;
    }
    (used / denominator * 100.0).clamp(0.0, 100.0)
}

fn disk_usage(path: &Path) -> Result<f64, CollectError> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(|source| CollectError::DiskUsage {
        path: path.to_owned(),
        source,
    })?;
    #[allow(clippy::useless_conversion)] // fsblkcnt_t is u64 on most targets, not all.
    let (total, free, avail) = (
        u64::from(stat.blocks()),
        u64::from(stat.blocks_free()),
        u64::from(stat.blocks_available()),
    );
    Ok(disk_usage_percent(total, free, avail))
}

/// Max/avg/min over every plausible sensor in `thermal_zone*/temp` and
/// `hwmon*/temp*_input`. Unreadable, unparsable and implausible readings are skipped.
fn read_thermal(sys: &Path) -> ThermalState {
    let mut temps = Vec::new();
    let mut push = |path: PathBuf| {
        if let Some(c) = fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .map(|milli| milli as f64 / 1000.0)
            .filter(|c| *c > MIN_PLAUSIBLE_CELSIUS && *c <= MAX_PLAUSIBLE_CELSIUS)
        {
            temps.push(c);
        }
    };
    for zone in dir_entries_with_prefix(&sys.join("class/thermal"), "thermal_zone") {
        push(zone.join("temp"));
    }
    for hwmon in dir_entries_with_prefix(&sys.join("class/hwmon"), "hwmon") {
        for entry in dir_entries_with_prefix(&hwmon, "temp") {
            let is_input = entry
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("_input"));
            if is_input {
                push(entry);
            }
        }
    }
    if temps.is_empty() {
        return ThermalState::default();
    }
    let max = temps.iter().copied().fold(f64::MIN, f64::max);
    let min = temps.iter().copied().fold(f64::MAX, f64::min);
    let avg = temps.iter().sum::<f64>() / temps.len() as f64;
    ThermalState {
        max_temp: max,
        avg_temp: avg,
        min_temp: min,
        sensor_count: u32::try_from(temps.len()).unwrap_or(u32::MAX),
    }
}

/// Paths of the entries of `dir` whose name starts with `prefix`, sorted; empty when the
/// directory cannot be read.
fn dir_entries_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    paths.sort();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line_with_and_without_optional_fields() {
        let t = parse_cpu_times("cpu  10 0 10 70 10 0 0 0 5 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(
            t,
            CpuTimes {
                busy: 20,
                total: 100
            }
        );
        let t = parse_cpu_times("cpu 1 2 3 4\n").unwrap();
        assert_eq!(t, CpuTimes { busy: 6, total: 10 });
        assert!(parse_cpu_times("cpu 1 2\n").is_err());
        assert!(parse_cpu_times("cpu0 1 2 3 4\n").is_err());
        assert!(parse_cpu_times("cpu 1 x 3 4\n").is_err());
    }

    #[test]
    fn meminfo_falls_back_without_mem_available() {
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 50 kB\n";
        assert_eq!(parse_meminfo_percent(old).unwrap(), 80.0);
        assert!(parse_meminfo_percent("MemTotal: 0 kB\nMemAvailable: 0 kB\n").is_err());
        assert!(parse_meminfo_percent("MemTotal: x kB\n").is_err());
    }

    #[test]
    fn loadavg_and_uptime_reject_garbage() {
        assert_eq!(
            parse_loadavg("0.5 1.25 2 1/100 42").unwrap(),
            [0.5, 1.25, 2.0]
        );
        assert!(parse_loadavg("0.5 1.25").is_err());
        assert!(parse_loadavg("0.5 -1 2").is_err());
        assert_eq!(parse_uptime("12.9 3.0").unwrap(), 12);
        assert!(parse_uptime("NaN 1").is_err());
        assert!(parse_uptime("").is_err());
    }

    #[test]
    fn disk_math() {
        assert_eq!(disk_usage_percent(100, 40, 20), 75.0);
        assert_eq!(disk_usage_percent(0, 0, 0), 0.0);
        assert_eq!(disk_usage_percent(10, 20, 0), 0.0);
    }
}
