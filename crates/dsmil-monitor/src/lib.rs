//! `dsmil-monitor`: DSMIL layer 5 — where people watch the system and where the system protects
//! itself.
//!
//! - [`collect`]: the system-health collector (CPU, memory, disk, network, thermal from
//!   `/sys/class/thermal` and hwmon, load, uptime) with back-off on failure, and [`collect::EventRates`]
//!   over the other layers' events on the core `EventBus` (agent failure rate, response time,
//!   security events per minute).
//! - [`alerts`]: thresholds with `for` durations and hysteresis, auto-resolve, bounded history,
//!   every alert and automatic response audited; responses through core's `Throttle` and
//!   `PerformanceScaling` ports (thermal critical → half the agent concurrency and scale 0.7; CPU
//!   critical → pause non-critical workflows; three critical alerts → emergency stop), reversed
//!   when the alert resolves.
//! - [`ws`]: the WebSocket protocol and hub — snapshot on connect, sequence numbers, per-client
//!   bounded queues (a slow client is dropped with a reason, never slows the others), server
//!   pings, frame limits, token auth.
//! - [`metrics`]: Prometheus text exposition.
//!
//! ```
//! use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
//! use dsmil_core::{Event, EventBus};
//! use dsmil_monitor::collect::EventRates;
//!
//! let bus = EventBus::new(64);
//! let mut events = bus.subscribe();
//! let mut rates = EventRates::new(std::time::Duration::from_secs(60));
//! bus.publish(Event::Security(SecurityEvent::new(
//!     "login_failed", AlertLevel::Warning, "auth", "bad password")));
//! let now = std::time::Instant::now();
//! while let Ok(Some(p)) = events.try_recv() {
//!     rates.observe(&p.event, now);
//! }
//! assert_eq!(rates.snapshot(now).security_events, 1);
//! ```

pub mod alerts;
pub mod collect;
pub mod config;
pub mod dashboard;
pub mod metrics;
pub mod process;
pub mod prometheus_rules;
mod sources;
pub mod ws;
