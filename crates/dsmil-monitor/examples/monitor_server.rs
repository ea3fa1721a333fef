//! A monitor without dsmild: samples this machine's health, raises alerts (with low CPU
//! thresholds so one shows up), and serves the WebSocket protocol on loopback.
//!
//! ```sh
//! cargo run -p dsmil-monitor --example monitor_server            # runs until Ctrl-C
//! cargo run -p dsmil-monitor --example monitor_server -- 5       # stops after 5 seconds
//! ```
//! Then, e.g. with `websocat "ws://127.0.0.1:PORT/?token=example-token"`, watch the
//! `connection_established`, `metric` and `alert` messages.

use std::sync::Arc;
use std::time::Duration;

use dsmil_core::EventBus;
use dsmil_core::ports::{MemoryAuditSink, RecordingThrottle, ScalingKnob};
use dsmil_monitor::alerts::{AlertDriverOptions, AlertEngine, AuditWriter, spawn_alert_engine};
use dsmil_monitor::collect::{SystemCollector, spawn_system_collector};
use dsmil_monitor::config::{AlertThresholds, Levels};
use dsmil_monitor::ws::{Hub, HubConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let run_for = std::env::args().nth(1).and_then(|s| s.parse::<u64>().ok());
    let bus = EventBus::new(4096);
    let thresholds = AlertThresholds {
        cpu_percent: Levels {
            warning: 0.0,
            critical: 95.0,
        },
        ..AlertThresholds::default()
    };
    let audit = Arc::new(MemoryAuditSink::new());
    let engine = AlertEngine::new(thresholds)?
        .with_bus(bus.clone())
        .with_audit(AuditWriter::spawn(audit.clone())?)
        .with_throttle(Arc::new(RecordingThrottle::new()))
        .with_scaling(Arc::new(ScalingKnob::default()));
    let alerts = spawn_alert_engine(engine, &bus, AlertDriverOptions::default())?;
    let collector = spawn_system_collector(
        SystemCollector::new(std::env::temp_dir()),
        Duration::from_secs(1),
        bus.clone(),
    )?;
    let hub = Hub::new(HubConfig::default());
    hub.pump(&bus);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "WebSocket on ws://{}/?token=example-token",
        listener.local_addr()?
    );
    let server = {
        let hub = hub.clone();
        tokio::spawn(async move { hub.serve_tcp(listener, Some("example-token".into())).await })
    };
    match run_for {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => tokio::signal::ctrl_c().await?,
    }
    let snapshot = alerts.view().snapshot();
    println!(
        "{} health samples, {} active alert(s), {} audit entries",
        collector.status().samples,
        snapshot.active.len(),
        audit.events().len()
    );
    hub.shutdown();
    let _ = server.await;
    collector.shutdown().await;
    alerts.shutdown().await;
    Ok(())
}
