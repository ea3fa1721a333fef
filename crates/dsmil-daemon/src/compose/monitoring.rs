//! Composes the monitoring layer: the system-health collector, the alert engine (thresholds
//! from the configuration; responses through the coordinator as `Throttle` and the
//! accelerator engine as `PerformanceScaling`; every alert and response in the audit log) and
//! the WebSocket hub fed from the event bus.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Context, Result};
use dsmil_core::ports::{AuditSink, PerformanceScaling, Throttle};
use dsmil_core::{EventBus, Subscriber};

use crate::config::DaemonConfig;
use dsmil_monitor::alerts::{
    AlertDriverOptions, AlertEngine, AlertEngineOptions, AlertEngineTask, AlertsView, AuditWriter,
    spawn_alert_engine_on,
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

/// The monitor's subscriptions to the event bus, taken as soon as the bus exists so that
/// nothing the other layers publish while dsmild wires them is missed: security events at
/// start-up count towards their alert, and an alert raised by the first health sample is in
/// the snapshot every WebSocket client is sent.
pub struct EarlySubscriptions {
    alerts: Subscriber,
    hub: Subscriber,
}

impl EarlySubscriptions {
    /// Subscribes the alert engine and the WebSocket hub to `bus`.
    pub fn take(bus: &EventBus) -> Self {
        Self {
            alerts: bus.subscribe(),
            hub: bus.subscribe(),
        }
    }
}

/// Starts the WebSocket hub and the alert engine on the early subscriptions, then the
/// collector (whose first sample is published at once).
pub fn start(
    config: &DaemonConfig,
    data_dir: &Path,
    bus: &EventBus,
    early: EarlySubscriptions,
    audit: Arc<dyn AuditSink>,
    throttle: Arc<dyn Throttle>,
    scaling: Arc<dyn PerformanceScaling>,
) -> Result<Monitoring> {
    let hub = Hub::new(HubConfig::from(&config.monitor.websocket));
    if let Some(cluster) = &config.cluster.cluster {
        // Messages of this node's events name it, beside the relayed events of the others.
        hub.set_node(&cluster.node_id());
    }
    hub.pump_from(early.hub);
    let engine = AlertEngine::new(config.monitor.alerts.clone())
        .context("invalid alert thresholds")?
        .with_options(AlertEngineOptions {
            responses: config.monitor.responses.clone(),
            ..AlertEngineOptions::default()
        })
        .context("invalid automatic responses")?
        .with_bus(bus.clone())
        .with_audit(AuditWriter::spawn(audit).context("cannot start the alert audit writer")?)
        .with_throttle(throttle)
        .with_scaling(scaling);
    let alert_task = spawn_alert_engine_on(engine, early.alerts, AlertDriverOptions::default())
        .context("cannot start the alert engine")?;
    hub.set_alert_source(alert_task.view().alert_source());
    let collector = spawn_system_collector(
        SystemCollector::new(data_dir),
        config.monitor.health_interval(),
        bus.clone(),
    )
    .context("cannot start the health collector")?;
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
    pub async fn shutdown(&self) {
        self.hub.shutdown();
        self.collector.shutdown().await;
        self.alerts.flush_audit().await;
        self.alert_task.shutdown().await;
    }
}
