//! Composes the monitoring layer: the system-health collector, the alert engine (thresholds
//! from the configuration; responses through the coordinator as `Throttle` and the
//! accelerator engine as `PerformanceScaling`; every alert and response in the audit log) and
//! the WebSocket hub fed from the event bus.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use dsmil_core::ports::{AuditSink, PerformanceScaling, Throttle};
use dsmil_core::{DaemonConfig, EventBus};
use dsmil_monitor::alerts::{
    AlertDriverOptions, AlertEngine, AlertEngineTask, AlertsView, AuditWriter, spawn_alert_engine,
};
use dsmil_monitor::collect::{CollectorHandle, SystemCollector, spawn_system_collector};
use dsmil_monitor::ws::{Hub, HubConfig};

/// The running monitor.
pub struct Monitoring {
    /// WebSocket clients.
    pub hub: Hub,
    /// Alerts, rates and event counters.
    pub alerts: AlertsView,
    /// The health collector's state.
    pub collector: CollectorHandle,
    alert_task: AlertEngineTask,
}

/// Starts the alert engine (first, so it sees the first sample), the collector and the hub.
pub fn start(
    config: &DaemonConfig,
    bus: &EventBus,
    audit: Arc<dyn AuditSink>,
    throttle: Arc<dyn Throttle>,
    scaling: Arc<dyn PerformanceScaling>,
) -> Result<Monitoring> {
    let engine = AlertEngine::new(config.alerts.clone())
        .context("invalid alert thresholds")?
        .with_bus(bus.clone())
        .with_audit(AuditWriter::spawn(audit).context("cannot start the alert audit writer")?)
        .with_throttle(throttle)
        .with_scaling(scaling);
    let alert_task = spawn_alert_engine(engine, bus, AlertDriverOptions::default())
        .context("cannot start the alert engine")?;
    let collector = spawn_system_collector(
        SystemCollector::new(&config.data_dir),
        Duration::from_millis(config.health_interval_ms),
        bus.clone(),
    )
    .context("cannot start the health collector")?;
    let hub = Hub::new(HubConfig::default());
    hub.pump(bus);
    Ok(Monitoring {
        hub,
        alerts: alert_task.view(),
        collector,
        alert_task,
    })
}

impl Monitoring {
    /// Closes WebSocket clients ("server shutting down"), stops the collector and flushes the
    /// alert audit entries.
    pub async fn shutdown(self) {
        self.hub.shutdown();
        self.collector.shutdown().await;
        self.alerts.flush_audit().await;
        self.alert_task.shutdown().await;
    }
}
