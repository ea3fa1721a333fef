//! The alert engine fed with values (thresholds, `for` durations, hysteresis, lifecycle,
//! automatic responses, audit, history), and the driver end to end on a real event bus.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use dsmil_core::monitoring::{ActivityType, ThermalState};
use dsmil_core::ports::{
    MemoryAuditSink, PerformanceScaling, PortError, RecordingThrottle, ScalingKnob, Throttle,
};
use dsmil_core::{
    AgentActivity, AgentId, AlertLevel, Event, EventBus, MetricType, SecurityEvent, Subscriber,
    SystemHealth, WorkflowId,
};
use dsmil_monitor::alerts::{
    AlertChange, AlertDriverOptions, AlertEngine, AlertEngineOptions, AlertMetric, AlertTransition,
    AuditWriter, ResponsePolicy, spawn_alert_engine,
};
use dsmil_monitor::collect::RatesSnapshot;
use dsmil_monitor::config::AlertThresholds;

const CPU: AlertMetric = AlertMetric::CpuUsagePercent;
const MEM: AlertMetric = AlertMetric::MemoryUsagePercent;
const DISK: AlertMetric = AlertMetric::DiskUsagePercent;
const THERMAL: AlertMetric = AlertMetric::ThermalMaxCelsius;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn engine() -> AlertEngine {
    AlertEngine::new(AlertThresholds::default()).unwrap()
}

fn health(cpu: f64, mem: f64, disk: f64, thermal: Option<f64>) -> SystemHealth {
    SystemHealth {
        timestamp: Utc::now(),
        cpu_usage_percent: cpu,
        memory_usage_percent: mem,
        disk_usage_percent: disk,
        network_io_bytes_sent: 0,
        network_io_bytes_recv: 0,
        thermal_state: match thermal {
            Some(t) => ThermalState {
                max_temp: t,
                avg_temp: t - 10.0,
                min_temp: t - 20.0,
                sensor_count: 4,
            },
            None => ThermalState::default(),
        },
        load_average: [1.0, 1.0, 1.0],
        uptime_seconds: 100,
    }
}

fn changes(ts: &[AlertTransition]) -> Vec<(AlertChange, AlertLevel)> {
    ts.iter().map(|t| (t.change, t.alert.alert_level)).collect()
}

/// A throttle and a scaling port that log every call, in order.
#[derive(Default)]
struct Log {
    calls: Mutex<Vec<String>>,
    scale: Mutex<f64>,
    fail_scaling: bool,
}

impl Log {
    fn new(scale: f64) -> Arc<Self> {
        let log = Self::default();
        *log.scale.lock().unwrap() = scale;
        Arc::new(log)
    }

    fn failing_scaling() -> Arc<Self> {
        Arc::new(Self {
            fail_scaling: true,
            scale: Mutex::new(1.0),
            ..Self::default()
        })
    }

    fn push(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

impl Throttle for Log {
    fn reduce_agent_concurrency(&self, factor: f64) -> Result<(), PortError> {
        self.push(format!("reduce_agent_concurrency({factor})"));
        Ok(())
    }
    fn pause_non_critical(&self) {
        self.push("pause_non_critical".into());
    }
    fn resume_non_critical(&self) {
        self.push("resume_non_critical".into());
    }
    fn emergency_stop(&self, _reason: &str) {
        self.push("emergency_stop".into());
    }
    fn clear_emergency(&self) {
        self.push("clear_emergency".into());
    }
}

impl PerformanceScaling for Log {
    fn set_scale(&self, factor: f64) -> Result<(), PortError> {
        self.push(format!("set_scale({factor})"));
        if self.fail_scaling {
            return Err(PortError::Unavailable("accelerator gone".into()));
        }
        *self.scale.lock().unwrap() = factor;
        Ok(())
    }
    fn scale(&self) -> f64 {
        *self.scale.lock().unwrap()
    }
}

fn logged_engine(log: &Arc<Log>) -> AlertEngine {
    engine()
        .with_throttle(log.clone())
        .with_scaling(log.clone())
}

// ---------------------------------------------------------------------------------------------
// Thresholds and lifecycle.

#[test]
fn each_threshold_raises_at_the_right_level() {
    let cases: [(AlertMetric, f64, f64, f64); 7] = [
        (CPU, 79.9, 80.0, 95.0),
        (MEM, 84.9, 85.0, 95.0),
        (DISK, 79.9, 80.0, 90.0),
        (THERMAL, 84.9, 85.0, 95.0),
        (AlertMetric::AgentFailureRate, 0.09, 0.10, 0.25),
        (AlertMetric::AgentResponseTimeMs, 4999.0, 5000.0, 10000.0),
        (AlertMetric::SecurityEventsPerMinute, 9.9, 10.0, 50.0),
    ];
    let t0 = Instant::now();
    for (metric, below, warning, critical) in cases {
        let mut e = engine();
        assert!(e.observe(metric, below, t0).is_empty(), "{metric}");
        let raised = e.observe(metric, warning, t0);
        assert_eq!(
            changes(&raised),
            [(AlertChange::Raised, AlertLevel::Warning)]
        );
        let a = &raised[0].alert;
        assert_eq!(a.metric_name, metric.name());
        assert_eq!(a.threshold_value, warning);
        assert_eq!(a.current_value, warning);
        assert!(!a.recommended_actions.is_empty());
        assert!(!a.auto_resolved);
        let escalated = e.observe(metric, critical, t0);
        assert_eq!(
            changes(&escalated),
            [(AlertChange::Escalated, AlertLevel::Critical)]
        );
        assert_eq!(escalated[0].previous_level, Some(AlertLevel::Warning));
        assert_eq!(escalated[0].alert.alert_id, a.alert_id);
        assert_eq!(escalated[0].alert.threshold_value, critical);
    }
    // Temperature has an emergency level.
    let mut e = engine();
    let t = e.observe(THERMAL, 100.0, t0);
    assert_eq!(changes(&t), [(AlertChange::Raised, AlertLevel::Emergency)]);
    assert_eq!(t[0].alert.threshold_value, 100.0);
    assert_eq!(t[0].alert.metric_type, MetricType::SystemHealth);
}

#[test]
fn health_samples_feed_four_metrics_and_thermal_only_with_sensors() {
    let t0 = Instant::now();
    let mut e = engine();
    let t = e.observe_health(&health(81.0, 86.0, 81.0, None), t0);
    let names: Vec<&str> = t.iter().map(|t| t.alert.metric_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cpu_usage_percent",
            "memory_usage_percent",
            "disk_usage_percent"
        ]
    );
    // No sensors: an absurd max_temp is ignored.
    let mut none = health(1.0, 1.0, 1.0, None);
    none.thermal_state.max_temp = 500.0;
    let t = engine().observe_health(&none, t0);
    assert!(t.is_empty());
    let t = engine().observe_health(&health(1.0, 1.0, 1.0, Some(96.0)), t0);
    assert_eq!(changes(&t), [(AlertChange::Raised, AlertLevel::Critical)]);
    assert_eq!(t[0].alert.metric_name, "thermal_max_celsius");
}

#[test]
fn for_seconds_delays_the_alert() {
    let th = AlertThresholds {
        for_seconds: 30,
        ..AlertThresholds::default()
    };
    let mut e = AlertEngine::new(th).unwrap();
    let t0 = Instant::now();
    assert!(e.observe(CPU, 90.0, t0).is_empty());
    assert!(e.observe(CPU, 90.0, t0 + secs(29)).is_empty());
    let t = e.observe(CPU, 90.0, t0 + secs(30));
    assert_eq!(changes(&t), [(AlertChange::Raised, AlertLevel::Warning)]);

    // A dip below the threshold restarts the clock.
    let mut e = AlertEngine::new(AlertThresholds {
        for_seconds: 30,
        ..AlertThresholds::default()
    })
    .unwrap();
    assert!(e.observe(MEM, 90.0, t0).is_empty());
    assert!(e.observe(MEM, 50.0, t0 + secs(10)).is_empty());
    assert!(e.observe(MEM, 90.0, t0 + secs(20)).is_empty());
    assert!(e.observe(MEM, 90.0, t0 + secs(49)).is_empty());
    assert_eq!(e.observe(MEM, 90.0, t0 + secs(50)).len(), 1);

    // Escalation waits too, counted from when the higher level was first reached.
    assert!(e.observe(MEM, 96.0, t0 + secs(60)).is_empty());
    assert!(e.observe(MEM, 96.0, t0 + secs(89)).is_empty());
    let t = e.observe(MEM, 96.0, t0 + secs(90));
    assert_eq!(
        changes(&t),
        [(AlertChange::Escalated, AlertLevel::Critical)]
    );

    // Going straight past warning to critical fires critical once both have held.
    let mut e = AlertEngine::new(AlertThresholds {
        for_seconds: 5,
        ..AlertThresholds::default()
    })
    .unwrap();
    assert!(e.observe(DISK, 95.0, t0).is_empty());
    let t = e.observe(DISK, 95.0, t0 + secs(5));
    assert_eq!(changes(&t), [(AlertChange::Raised, AlertLevel::Critical)]);
}

#[test]
fn hovering_at_the_threshold_raises_once_and_never_flaps() {
    let mut e = engine();
    let t0 = Instant::now();
    let mut all = Vec::new();
    for i in 0..100u64 {
        let value = if i % 2 == 0 { 80.8 } else { 79.2 };
        all.extend(e.observe(CPU, value, t0 + secs(i)));
    }
    assert_eq!(changes(&all), [(AlertChange::Raised, AlertLevel::Warning)]);
    // With 5 % hysteresis the warning at 80 holds down to 76.
    assert!(e.observe(CPU, 76.1, t0 + secs(100)).is_empty());
    assert_eq!(e.active().len(), 1);
    let t = e.observe(CPU, 75.9, t0 + secs(101));
    assert_eq!(changes(&t), [(AlertChange::Resolved, AlertLevel::Warning)]);
    assert!(e.active().is_empty());
}

#[test]
fn escalation_and_de_escalation_follow_hysteresis() {
    let mut e = engine();
    let t0 = Instant::now();
    let raised = e.observe(CPU, 85.0, t0);
    let id = raised[0].alert.alert_id.clone();
    assert_eq!(
        changes(&e.observe(CPU, 96.0, t0)),
        [(AlertChange::Escalated, AlertLevel::Critical)]
    );
    // Critical (95) holds down to 90.25.
    assert!(e.observe(CPU, 94.0, t0).is_empty());
    assert!(e.observe(CPU, 90.5, t0).is_empty());
    let down = e.observe(CPU, 89.0, t0);
    assert_eq!(
        changes(&down),
        [(AlertChange::DeEscalated, AlertLevel::Warning)]
    );
    assert_eq!(down[0].previous_level, Some(AlertLevel::Critical));
    assert_eq!(down[0].alert.alert_id, id);
    assert_eq!(down[0].alert.threshold_value, 80.0);
    // Warning (80) holds down to 76.
    assert!(e.observe(CPU, 77.0, t0).is_empty());
    let active = e.active();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].alert.alert_level, AlertLevel::Warning);
    assert_eq!(active[0].latest_value, 77.0);
    // From critical straight to resolved when the value drops far enough.
    e.observe(CPU, 99.0, t0);
    let gone = e.observe(CPU, 10.0, t0);
    assert_eq!(
        changes(&gone),
        [(AlertChange::Resolved, AlertLevel::Critical)]
    );
}

#[test]
fn resolution_is_automatic_and_keeps_the_id() {
    let mut e = engine();
    let t0 = Instant::now();
    let raised = e.observe(DISK, 85.0, t0).remove(0);
    let resolved = e.observe(DISK, 50.0, t0 + secs(1)).remove(0);
    assert_eq!(resolved.change, AlertChange::Resolved);
    assert!(resolved.alert.auto_resolved);
    assert_eq!(resolved.alert.alert_id, raised.alert.alert_id);
    assert_eq!(resolved.alert.current_value, 50.0);
    assert!(resolved.alert.description.starts_with("Resolved"));
    assert!(e.active().is_empty());
    let history = e.history();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1], resolved);
    // A new breach is a new alert with a new id.
    let again = e.observe(DISK, 85.0, t0 + secs(2)).remove(0);
    assert_eq!(again.change, AlertChange::Raised);
    assert_ne!(again.alert.alert_id, raised.alert.alert_id);
    let c = e.counters();
    assert_eq!((c.raised.warning, c.resolved), (2, 1));
}

#[test]
fn non_finite_values_are_ignored() {
    let mut e = engine();
    let t0 = Instant::now();
    assert!(e.observe(CPU, f64::NAN, t0).is_empty());
    assert!(e.observe(CPU, f64::INFINITY, t0).is_empty());
    e.observe(CPU, 85.0, t0);
    assert!(e.observe(CPU, f64::NAN, t0).is_empty());
    assert_eq!(e.active().len(), 1);
}

#[test]
fn invalid_settings_are_errors() {
    let mut th = AlertThresholds::default();
    th.cpu_percent.warning = 99.0;
    let err = AlertEngine::new(th).unwrap_err();
    assert!(
        err.to_string().contains("alerts.cpu_percent.warning"),
        "{err}"
    );
    let bad = AlertEngineOptions {
        responses: ResponsePolicy {
            thermal_scale: 0.0,
            ..ResponsePolicy::default()
        },
        ..AlertEngineOptions::default()
    };
    assert!(engine().with_options(bad).is_err());
}

#[test]
fn history_is_bounded_oldest_dropped() {
    let mut e = engine()
        .with_options(AlertEngineOptions {
            history_capacity: 10,
            ..AlertEngineOptions::default()
        })
        .unwrap();
    let t0 = Instant::now();
    for i in 0..15u64 {
        e.observe(DISK, 85.0, t0 + secs(i));
        e.observe(DISK, 10.0, t0 + secs(i));
    }
    let h = e.history();
    assert_eq!(h.len(), 10);
    assert_eq!(h[9].change, AlertChange::Resolved);
    assert_eq!(h[0].change, AlertChange::Raised);
    assert_eq!(e.counters().raised.warning, 15);
    // The default bound is 1,000.
    let mut e = engine();
    for i in 0..600u64 {
        e.observe(DISK, 85.0, t0 + secs(i));
        e.observe(DISK, 10.0, t0 + secs(i));
    }
    assert_eq!(e.history().len(), 1000);
}

#[test]
fn rate_alerts_need_samples_to_raise_and_resolve_when_traffic_stops() {
    let t0 = Instant::now();
    let rates = |completions: u64, failures: u64, mean_ms: Option<f64>, security: f64| {
        let outcomes = completions + failures;
        RatesSnapshot {
            window_seconds: 60.0,
            agent_completions: completions,
            agent_failures: failures,
            agent_failure_rate: (outcomes > 0).then(|| failures as f64 / outcomes as f64),
            agent_response_samples: if mean_ms.is_some() { outcomes } else { 0 },
            agent_response_time_mean_ms: mean_ms,
            agent_response_time_p95_ms: mean_ms,
            security_events: security as u64,
            security_events_per_minute: security,
        }
    };
    let mut e = engine();
    // One failure out of one is not enough evidence (default minimum: 5 outcomes).
    assert!(
        e.observe_rates(&rates(0, 1, Some(20_000.0), 0.0), t0)
            .is_empty()
    );
    let t = e.observe_rates(&rates(6, 2, Some(6_000.0), 12.0), t0);
    assert_eq!(
        t.iter()
            .map(|t| (t.alert.metric_name.as_str(), t.alert.alert_level))
            .collect::<Vec<_>>(),
        [
            ("agent_failure_rate", AlertLevel::Critical),
            ("agent_response_time_ms", AlertLevel::Warning),
            ("security_events_per_minute", AlertLevel::Warning),
        ]
    );
    assert_eq!(t[0].alert.metric_type, MetricType::AgentActivity);
    assert_eq!(t[2].alert.metric_type, MetricType::SecurityEvent);
    // Few samples: an active alert still holds on what data there is ...
    assert!(
        e.observe_rates(&rates(1, 2, Some(6_000.0), 12.0), t0)
            .is_empty()
    );
    // ... and everything resolves once the window is empty.
    let t = e.observe_rates(&rates(0, 0, None, 0.0), t0 + secs(60));
    assert_eq!(t.len(), 3);
    assert!(t.iter().all(|t| t.change == AlertChange::Resolved));
}

// ---------------------------------------------------------------------------------------------
// Automatic responses.

#[test]
fn thermal_critical_throttles_and_is_reversed_on_resolve() {
    let throttle = Arc::new(RecordingThrottle::new());
    let knob = Arc::new(ScalingKnob::default());
    knob.set_scale(0.9).unwrap();
    let mut e = engine()
        .with_throttle(throttle.clone())
        .with_scaling(knob.clone());
    let t0 = Instant::now();
    e.observe(THERMAL, 90.0, t0); // warning: no response
    assert_eq!(throttle.state().concurrency_factor, 1.0);
    assert_eq!(knob.scale(), 0.9);
    e.observe(THERMAL, 96.0, t0);
    assert_eq!(throttle.state().concurrency_factor, 0.5);
    assert_eq!(knob.scale(), 0.7);
    assert!(e.responses().thermal_throttled);
    e.observe(THERMAL, 70.0, t0);
    assert_eq!(throttle.state().concurrency_factor, 1.0);
    assert_eq!(knob.scale(), 0.9, "the previous scale is restored");
    assert!(!e.responses().thermal_throttled);
    assert_eq!(e.counters().automatic_responses, 1);
    assert_eq!(e.counters().reversals, 1);
}

#[test]
fn thermal_responses_are_idempotent_through_escalation() {
    let log = Log::new(1.0);
    let mut e = logged_engine(&log);
    let t0 = Instant::now();
    e.observe(THERMAL, 96.0, t0);
    assert_eq!(
        log.take(),
        ["reduce_agent_concurrency(0.5)", "set_scale(0.7)"]
    );
    // Critical -> emergency: no second reduction; emergency level stops everything.
    e.observe(THERMAL, 101.0, t0);
    assert_eq!(log.take(), ["emergency_stop"]);
    e.observe(THERMAL, 101.0, t0);
    assert!(log.take().is_empty());
    // Emergency -> critical: the emergency is cleared, the thermal throttle stays.
    e.observe(THERMAL, 94.0, t0);
    assert_eq!(log.take(), ["clear_emergency"]);
    // Critical -> warning: the throttle is lifted.
    e.observe(THERMAL, 88.0, t0);
    assert_eq!(log.take(), ["reduce_agent_concurrency(1)", "set_scale(1)"]);
    // Warning -> resolved: nothing to reverse.
    e.observe(THERMAL, 20.0, t0);
    assert!(log.take().is_empty());
    assert!(e.active().is_empty());
}

#[test]
fn a_scale_already_low_is_left_alone_and_not_restored() {
    let log = Log::new(0.4);
    let mut e = logged_engine(&log);
    let t0 = Instant::now();
    e.observe(THERMAL, 96.0, t0);
    assert_eq!(log.take(), ["reduce_agent_concurrency(0.5)"]);
    e.observe(THERMAL, 20.0, t0);
    assert_eq!(log.take(), ["reduce_agent_concurrency(1)"]);
    assert_eq!(log.scale(), 0.4);
}

#[test]
fn cpu_critical_pauses_and_resumes_only_after_a_pause() {
    let log = Log::new(1.0);
    let mut e = logged_engine(&log);
    let t0 = Instant::now();
    e.observe(CPU, 85.0, t0);
    e.observe(CPU, 10.0, t0);
    assert!(log.take().is_empty(), "warning alerts trigger no response");
    e.observe(CPU, 96.0, t0);
    assert_eq!(log.take(), ["pause_non_critical"]);
    e.observe(CPU, 97.0, t0);
    assert!(log.take().is_empty());
    e.observe(CPU, 50.0, t0);
    assert_eq!(log.take(), ["resume_non_critical"]);

    let throttle = Arc::new(RecordingThrottle::new());
    let mut e = engine().with_throttle(throttle.clone());
    e.observe(CPU, 99.0, t0);
    assert!(throttle.state().non_critical_paused);
    e.observe(CPU, 1.0, t0);
    assert!(!throttle.state().non_critical_paused);
}

#[tokio::test]
async fn third_critical_alert_triggers_the_emergency_and_one_resolving_clears_it() {
    let bus = EventBus::new(64);
    let mut sub = bus.subscribe();
    let throttle = Arc::new(RecordingThrottle::new());
    let sink = Arc::new(MemoryAuditSink::new());
    let mut e = engine()
        .with_bus(bus.clone())
        .with_throttle(throttle.clone())
        .with_audit(AuditWriter::spawn(sink.clone()).unwrap());
    let t0 = Instant::now();
    e.observe_health(&health(96.0, 96.0, 50.0, None), t0);
    assert_eq!(throttle.state().emergency, None, "two critical alerts only");
    e.observe_health(&health(96.0, 96.0, 91.0, None), t0 + secs(1));
    let reason = throttle.state().emergency.unwrap();
    assert!(reason.contains("3 critical alerts"), "{reason}");
    assert!(reason.contains("disk_usage_percent"), "{reason}");
    assert!(e.responses().emergency_active);

    // Escalating or re-observing does not stop twice.
    e.observe_health(&health(99.0, 99.0, 99.0, None), t0 + secs(2));
    assert_eq!(e.counters().emergencies, 1);

    // One resolves: the emergency is cleared, CPU stays paused.
    e.observe_health(&health(99.0, 99.0, 10.0, None), t0 + secs(3));
    assert_eq!(throttle.state().emergency, None);
    assert!(throttle.state().non_critical_paused);
    assert!(!e.responses().emergency_active);

    // The bus saw the alerts and the emergency (which the WebSocket layer broadcasts).
    let events = drain(&mut sub);
    let security: Vec<(&str, AlertLevel)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Security(s) => Some((s.event_type.as_str(), s.severity)),
            _ => None,
        })
        .collect();
    assert_eq!(
        security,
        [
            ("emergency_response", AlertLevel::Emergency),
            ("emergency_cleared", AlertLevel::Info)
        ]
    );
    let alerts = events
        .iter()
        .filter(|e| matches!(e, Event::Alert(_)))
        .count();
    assert_eq!(alerts, e.history().len());

    e.flush_audit().await;
    let types: Vec<String> = sink.events().into_iter().map(|e| e.event_type).collect();
    assert!(
        types.contains(&"emergency_response".to_owned()),
        "{types:?}"
    );
    assert!(types.contains(&"emergency_cleared".to_owned()), "{types:?}");
}

fn drain(sub: &mut Subscriber) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(p) = sub.try_recv().unwrap() {
        out.push((*p.event).clone());
    }
    out
}

#[tokio::test]
async fn alerts_and_responses_are_audited_in_order() {
    let sink = Arc::new(MemoryAuditSink::new());
    let throttle = Arc::new(RecordingThrottle::new());
    let mut e = engine()
        .with_throttle(throttle.clone())
        .with_scaling(Arc::new(ScalingKnob::default()))
        .with_audit(AuditWriter::spawn(sink.clone()).unwrap());
    let t0 = Instant::now();
    e.observe(CPU, 85.0, t0);
    e.observe(CPU, 96.0, t0);
    e.observe(CPU, 89.0, t0);
    e.observe(CPU, 10.0, t0);
    e.flush_audit().await;
    let events = sink.events();
    let summary: Vec<(&str, AlertLevel)> = events
        .iter()
        .map(|e| (e.event_type.as_str(), e.severity))
        .collect();
    assert_eq!(
        summary,
        [
            ("alert_raised", AlertLevel::Warning),
            ("alert_escalated", AlertLevel::Critical),
            ("automatic_response", AlertLevel::Critical),
            ("alert_de_escalated", AlertLevel::Warning),
            ("automatic_response", AlertLevel::Info),
            ("alert_resolved", AlertLevel::Warning),
        ]
    );
    assert!(events.iter().all(|e| e.source_component == "monitor"));
    assert_eq!(events[2].response_actions, ["pause_non_critical()"]);
    assert_eq!(events[4].response_actions, ["resume_non_critical()"]);
    assert!(
        events[0]
            .affected_resources
            .contains(&"cpu_usage_percent".to_owned())
    );
    assert_eq!(sink.verify_chain(), Ok(()));
    let stats = e.audit_writer().unwrap().stats();
    assert_eq!((stats.appended, stats.failed, stats.dropped), (6, 0, 0));
}

#[tokio::test]
async fn port_errors_are_reported_not_fatal() {
    let log = Log::failing_scaling();
    let sink = Arc::new(MemoryAuditSink::new());
    let mut e = logged_engine(&log).with_audit(AuditWriter::spawn(sink.clone()).unwrap());
    let t0 = Instant::now();
    e.observe(THERMAL, 96.0, t0);
    e.observe(THERMAL, 20.0, t0);
    // The failed set_scale is not "restored" on resolution; the concurrency is.
    assert_eq!(
        log.take(),
        [
            "reduce_agent_concurrency(0.5)",
            "set_scale(0.7)",
            "reduce_agent_concurrency(1)"
        ]
    );
    assert_eq!(e.counters().port_errors, 1);
    e.flush_audit().await;
    let response = sink
        .events()
        .into_iter()
        .find(|e| e.event_type == "automatic_response")
        .unwrap();
    assert!(
        response
            .response_actions
            .iter()
            .any(|a| a.contains("set_scale(0.7) failed") && a.contains("accelerator gone")),
        "{response:?}"
    );
}

#[test]
fn responses_can_be_disabled_and_run_without_ports() {
    let log = Log::new(1.0);
    let mut e = logged_engine(&log)
        .with_options(AlertEngineOptions {
            responses: ResponsePolicy {
                enabled: false,
                ..ResponsePolicy::default()
            },
            ..AlertEngineOptions::default()
        })
        .unwrap();
    let t0 = Instant::now();
    e.observe_health(&health(99.0, 99.0, 99.0, Some(120.0)), t0);
    assert!(log.take().is_empty());
    assert_eq!(e.active().len(), 4);

    // Without any port the engine still tracks (and reports) what it would have done.
    let mut e = engine();
    e.observe_health(&health(99.0, 99.0, 99.0, None), t0);
    assert!(e.responses().emergency_active);
    assert!(
        !e.responses().non_critical_paused,
        "nothing could be paused"
    );
    e.observe_health(&health(1.0, 1.0, 1.0, None), t0);
    assert_eq!(e.responses(), Default::default());
}

#[test]
fn the_snapshot_serialises_for_the_api() {
    let mut e = engine().with_throttle(Arc::new(RecordingThrottle::new()));
    e.observe_health(&health(96.0, 10.0, 10.0, None), Instant::now());
    let json = serde_json::to_value(e.snapshot()).unwrap();
    assert_eq!(
        json["active"][0]["alert"]["metric_name"],
        "cpu_usage_percent"
    );
    assert_eq!(json["active"][0]["alert"]["alert_level"], "critical");
    assert_eq!(json["history"][0]["change"], "raised");
    assert_eq!(json["responses"]["non_critical_paused"], true);
    assert_eq!(json["counters"]["raised"]["critical"], 1);
}

// ---------------------------------------------------------------------------------------------
// The driver.

fn activity(kind: ActivityType, duration_ms: u64) -> Event {
    Event::AgentActivity(AgentActivity {
        timestamp: Utc::now(),
        agent_id: AgentId::new("hasher").unwrap(),
        workflow_id: WorkflowId::new_random(),
        activity_type: kind,
        duration_ms: Some(duration_ms),
        success: kind == ActivityType::TaskComplete,
        error_message: None,
        resource_usage: Default::default(),
        metadata: Default::default(),
    })
}

async fn next_alert(sub: &mut Subscriber) -> dsmil_core::PerformanceAlert {
    loop {
        let p = sub.recv().await.unwrap();
        if let Event::Alert(a) = &*p.event {
            return a.clone();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn driver_turns_bus_events_into_alerts_on_the_bus() {
    let bus = EventBus::new(256);
    let mut sub = bus.subscribe();
    let throttle = Arc::new(RecordingThrottle::new());
    let sink = Arc::new(MemoryAuditSink::new());
    let engine = engine()
        .with_bus(bus.clone())
        .with_throttle(throttle.clone())
        .with_audit(AuditWriter::spawn(sink.clone()).unwrap());
    let task = spawn_alert_engine(engine, &bus, AlertDriverOptions::default()).unwrap();
    let view = task.view();

    bus.publish(Event::SystemHealth(health(96.0, 10.0, 10.0, None)));
    let a = next_alert(&mut sub).await;
    assert_eq!(a.metric_name, "cpu_usage_percent");
    assert_eq!(a.alert_level, AlertLevel::Critical);
    assert!(throttle.state().non_critical_paused);
    assert_eq!(view.active().len(), 1);

    // Agent failures feed the rate window; the periodic evaluation raises the alert.
    for _ in 0..4 {
        bus.publish(activity(ActivityType::TaskFail, 100));
    }
    bus.publish(activity(ActivityType::TaskComplete, 100));
    let a = next_alert(&mut sub).await;
    assert_eq!(a.metric_name, "agent_failure_rate");
    assert_eq!(a.alert_level, AlertLevel::Critical);
    assert_eq!(a.current_value, 0.8);
    assert_eq!(view.rates().agent_failures, 4);

    // Traffic stops: once the window has emptied the rate alert resolves by itself.
    let resolved = next_alert(&mut sub).await;
    assert_eq!(resolved.metric_name, "agent_failure_rate");
    assert!(resolved.auto_resolved);
    assert_eq!(view.rates().agent_failure_rate, None);

    // CPU recovers.
    bus.publish(Event::SystemHealth(health(10.0, 10.0, 10.0, None)));
    let a = next_alert(&mut sub).await;
    assert!(a.auto_resolved);
    assert!(!throttle.state().non_critical_paused);
    assert!(view.active().is_empty());
    let counters = view.event_counters();
    assert_eq!(counters.system_health, 2);
    assert_eq!(counters.agent_task_fail, 4);
    // The driver also counts the alerts it published (the last may still be in flight).
    assert!(counters.alert.critical >= 3, "{counters:?}");

    view.flush_audit().await;
    let audited: Vec<String> = sink.events().into_iter().map(|e| e.event_type).collect();
    assert_eq!(audited.iter().filter(|t| *t == "alert_raised").count(), 2);
    assert_eq!(audited.iter().filter(|t| *t == "alert_resolved").count(), 2);
    let snapshot = view.snapshot();
    assert_eq!(snapshot.history.len(), 4);
    task.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_lagging_driver_carries_on() {
    let bus = EventBus::new(4);
    let mut sub = bus.subscribe();
    let engine = engine().with_bus(bus.clone());
    let task = spawn_alert_engine(engine, &bus, AlertDriverOptions::default()).unwrap();
    let view = task.view();
    // The driver has not run yet (current-thread runtime): it misses most of these.
    for _ in 0..20 {
        bus.publish(activity(ActivityType::TaskStart, 1));
    }
    bus.publish(Event::SystemHealth(health(10.0, 90.0, 10.0, None)));
    let a = loop {
        match sub.recv().await {
            Ok(p) => {
                if let Event::Alert(a) = &*p.event {
                    break a.clone();
                }
            }
            Err(_) => continue, // this test's own subscriber lags too
        }
    };
    assert_eq!(a.metric_name, "memory_usage_percent");
    assert!(view.lagged_events() > 0);
    task.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_task_handle_stops_the_driver() {
    let bus = EventBus::new(16);
    let task = spawn_alert_engine(engine(), &bus, AlertDriverOptions::default()).unwrap();
    tokio::task::yield_now().await;
    assert_eq!(bus.subscriber_count(), 1);
    drop(task);
    // The driver notices at its next wake-up and drops its subscription.
    while bus.subscriber_count() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn security_event_sources_are_distinguished() {
    // The monitor's own events are tagged so its rates can leave them out.
    let e = SecurityEvent::new("emergency_response", AlertLevel::Emergency, "monitor", "x");
    assert_eq!(
        e.source_component,
        dsmil_monitor::collect::MONITOR_COMPONENT
    );
}
