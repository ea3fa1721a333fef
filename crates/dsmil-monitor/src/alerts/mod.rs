//! Threshold alerts with automatic responses.
//!
//! - [`AlertEngine`] is synchronous and deterministic: it is fed metric values with the time
//!   they were seen ([`AlertEngine::observe_health`], [`AlertEngine::observe_rates`],
//!   [`AlertEngine::observe`]) and returns the [`AlertTransition`]s they cause. It applies
//!   `for_seconds` and hysteresis from core's `AlertThresholds`, keeps the active alerts and a
//!   bounded history, publishes `Event::Alert` on the bus, audits every change and response
//!   through an [`AuditWriter`], and drives the control ports (`Throttle`,
//!   `PerformanceScaling`) as the seed's `_handle_critical_alert` did, reversing each response
//!   when its condition ends.
//! - [`spawn_alert_engine`] is the thin async driver that feeds it from the `EventBus`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use dsmil_core::EventBus;
//! use dsmil_monitor::config::AlertThresholds;
//! use dsmil_core::ports::{MemoryAuditSink, RecordingThrottle, ScalingKnob};
//! use dsmil_monitor::alerts::{AlertDriverOptions, AlertEngine, AuditWriter, spawn_alert_engine};
//!
//! let bus = EventBus::default();
//! let engine = AlertEngine::new(AlertThresholds::default())?
//!     .with_bus(bus.clone())
//!     .with_audit(AuditWriter::spawn(Arc::new(MemoryAuditSink::new()))?)
//!     .with_throttle(Arc::new(RecordingThrottle::new()))
//!     .with_scaling(Arc::new(ScalingKnob::default()));
//! let task = spawn_alert_engine(engine, &bus, AlertDriverOptions::default())?;
//! let view = task.view(); // clone into request handlers
//! println!("{}", serde_json::to_string(&view.snapshot())?);
//! task.shutdown().await;
//! # Ok(()) }
//! ```

mod audit;
mod driver;
mod engine;
mod metric;
mod responses;

pub use audit::{AuditStats, AuditWriter, DEFAULT_AUDIT_QUEUE};
pub use driver::{
    AlertDriverOptions, AlertEngineTask, AlertsView, spawn_alert_engine, spawn_alert_engine_on,
};
pub use engine::{
    ActiveAlert, AlertChange, AlertCounters, AlertEngine, AlertEngineOptions, AlertError,
    AlertTransition, AlertsSnapshot, DEFAULT_HISTORY_CAPACITY, DEFAULT_MIN_AGENT_SAMPLES,
};
pub use metric::AlertMetric;
pub use responses::{ResponsePolicy, ResponseStatus};
