//! Collectors: system health from procfs/sysfs, and rates over the events other layers publish.
//!
//! - [`SystemCollector`] samples CPU (busy share between samples, from `/proc/stat`), memory
//!   (`/proc/meminfo`), disk (`statvfs` of the data directory), network (`/proc/net/dev`,
//!   `lo` excluded), temperatures (`/sys/class/thermal`, `/sys/class/hwmon`), load and uptime.
//!   Its roots are configurable so tests run it against a fake tree.
//! - [`spawn_system_collector`] runs a collector periodically, publishes
//!   `Event::SystemHealth` on the bus, backs off while sampling fails and reports a
//!   [`CollectorStatus`].
//! - Agent, workflow, security, TPM, device and accelerator events already travel on the core
//!   `EventBus`; the bus is their collector. [`EventRates`] turns them into the windowed rates
//!   the alert engine watches and into counters by kind for Prometheus.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use dsmil_core::EventBus;
//! use dsmil_monitor::collect::{SystemCollector, spawn_system_collector};
//!
//! let bus = EventBus::default();
//! let collector = SystemCollector::new("/var/lib/dsmil");
//! let handle = spawn_system_collector(collector, Duration::from_secs(5), bus.clone())?;
//! println!("{:?}", handle.status());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

mod rates;
mod runner;
mod system;

pub use rates::{
    DEFAULT_RATE_WINDOW, EventCounters, EventRates, LevelCounts, MAX_WINDOW_ENTRIES,
    MONITOR_COMPONENT, RatesSnapshot,
};
pub use runner::{
    CollectorHandle, CollectorStatus, HealthSource, MAX_BACKOFF, MIN_INTERVAL, NoRuntime,
    backoff_delay, spawn_system_collector,
};
pub use system::{CollectError, CpuTimes, SystemCollector, disk_usage_percent};
