//! The `process_*` metrics every Prometheus client library exports, read from `/proc/self`:
//! start time, CPU seconds, resident and virtual memory, open and maximum file descriptors.
//! Names and units are the Prometheus conventions', so standard dashboards and alerts work.

use async_trait::async_trait;
use dsmil_core::ports::{MetricSet, MetricsSource};

/// This process, as `/proc` shows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessMetrics;

/// What one read of `/proc/self` found; a field is `None` when its file could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSample {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_memory_bytes: Option<f64>,
    /// Virtual memory size, bytes.
    pub virtual_memory_bytes: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<f64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<f64>,
}

/// Clock ticks per second of `/proc`'s times.
fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        // Linux's USER_HZ, fixed at 100 on every architecture it runs on.
        _ => 100.0,
    }
}

/// Fields of `/proc/self/stat` after the command name (which may contain spaces): index 0 is
/// the state (field 3 of proc(5)).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().collect())
}

/// `Key:   value kB` of `/proc/self/status`, in bytes.
fn status_kib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024.0)
}

/// The soft `Max open files` of `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The boot time of `/proc/stat`, seconds since the epoch.
fn boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

impl ProcessSample {
    /// Reads `/proc/self` now.
    pub fn read() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let ticks = clock_ticks();
        let stat = read("/proc/self/stat");
        let fields = stat.as_deref().and_then(stat_fields);
        // proc(5): utime is field 14, stime 15, starttime 22; index 0 here is field 3.
        let field = |n: usize| -> Option<f64> { fields.as_ref()?.get(n - 3)?.parse().ok() };
        let cpu_seconds = match (field(14), field(15)) {
            (Some(u), Some(s)) => Some((u + s) / ticks),
            _ => None,
        };
        let start_time_seconds =
            match (field(22), read("/proc/stat").as_deref().and_then(boot_time)) {
                (Some(start), Some(boot)) => Some(boot + start / ticks),
                _ => None,
            };
        let status = read("/proc/self/status");
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as f64);
        Self {
            cpu_seconds,
            start_time_seconds,
            resident_memory_bytes: status.as_deref().and_then(|s| status_kib(s, "VmRSS:")),
            virtual_memory_bytes: status.as_deref().and_then(|s| status_kib(s, "VmSize:")),
            open_fds,
            max_fds: read("/proc/self/limits")
                .as_deref()
                .and_then(max_open_files),
        }
    }
}

#[async_trait]
impl MetricsSource for ProcessMetrics {
    async fn collect(&self, out: &mut MetricSet) {
        let s = ProcessSample::read();
        if let Some(v) = s.cpu_seconds {
            out.counter(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                &[],
                v,
            );
        }
        for (name, help, value) in [
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                s.start_time_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                s.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                s.virtual_memory_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                s.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                s.max_fds,
            ),
        ] {
            if let Some(v) = value {
                out.gauge(name, help, &[], v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn proc_files_parse_including_a_command_name_with_spaces_and_parens() {
        let stat = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 \
                    5000 10000000 300 18446744073709551615";
        let f = stat_fields(stat).unwrap();
        assert_eq!(f[0], "S");
        assert_eq!(f[14 - 3], "250");
        assert_eq!(f[22 - 3], "5000");
        assert_eq!(
            status_kib("Name:\tx\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048.0 * 1024.0)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
        assert_eq!(boot_time("cpu 1 2 3\nbtime 1700000000\n"), Some(1.7e9));
    }

    #[test]
    fn this_process_reads_as_running_with_memory_and_descriptors() {
        let s = ProcessSample::read();
        assert!(s.resident_memory_bytes.unwrap() > 0.0);
        assert!(s.open_fds.unwrap() >= 3.0);
        assert!(s.max_fds.unwrap() >= s.open_fds.unwrap());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = s.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
    }
}
