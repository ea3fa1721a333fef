//! The synchronous, deterministic alert engine: thresholds with `for` durations and
//! hysteresis, alert lifecycle, bounded history, automatic responses, bus and audit output.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dsmil_core::ports::{PerformanceScaling, Throttle};
use dsmil_core::validate::FieldError;
use dsmil_core::{AlertLevel, Event, EventBus, PerformanceAlert, SecurityEvent, SystemHealth};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::audit::AuditWriter;
use super::metric::{AlertMetric, level_name};
use super::responses::{ActiveRef, Responder, ResponsePolicy, ResponseStatus};
use crate::collect::{LevelCounts, MONITOR_COMPONENT, RatesSnapshot};
use crate::config::AlertThresholds;

/// Default bound of the alert history.
pub const DEFAULT_HISTORY_CAPACITY: usize = 1000;

/// Default number of agent task outcomes needed in the window before the failure-rate and
/// response-time alerts may be raised.
pub const DEFAULT_MIN_AGENT_SAMPLES: u64 = 5;

/// Engine settings beyond the thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertEngineOptions {
    /// Transitions kept in [`AlertEngine::history`]; the oldest are dropped. Default: 1,000.
    pub history_capacity: usize,
    /// Agent task outcomes (for the failure rate) or timed outcomes (for the response time)
    /// the window must hold before those alerts may be raised or escalated, so one failed task
    /// out of one does not read as a 100 % failure rate. An alert already active still
    /// follows the value down with fewer samples; no samples at all read as 0. Default: 5.
    pub min_agent_samples: u64,
    /// Automatic responses.
    pub responses: ResponsePolicy,
}

impl Default for AlertEngineOptions {
    fn default() -> Self {
        Self {
            history_capacity: DEFAULT_HISTORY_CAPACITY,
            min_agent_samples: DEFAULT_MIN_AGENT_SAMPLES,
            responses: ResponsePolicy::default(),
        }
    }
}

/// Why an engine could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AlertError {
    /// The thresholds make no sense.
    #[error("invalid alert thresholds: {0}")]
    Thresholds(#[source] FieldError),
    /// The options make no sense.
    #[error("invalid alert engine options: {0}")]
    Options(#[source] FieldError),
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertChange {
    /// A new alert.
    Raised,
    /// An active alert went to a higher level.
    Escalated,
    /// An active alert went to a lower level (after hysteresis).
    DeEscalated,
    /// An active alert cleared (after hysteresis); `auto_resolved` is set.
    Resolved,
}

impl AlertChange {
    /// The audit `event_type` of the change (`alert_raised`, …).
    pub fn audit_event_type(self) -> &'static str {
        match self {
            AlertChange::Raised => "alert_raised",
            AlertChange::Escalated => "alert_escalated",
            AlertChange::DeEscalated => "alert_de_escalated",
            AlertChange::Resolved => "alert_resolved",
        }
    }
}

/// One change of one alert: what the engine returns, keeps in its history and publishes
/// (the `alert` part, as `Event::Alert`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertTransition {
    /// What happened.
    pub change: AlertChange,
    /// The level before (none for a new alert).
    pub previous_level: Option<AlertLevel>,
    /// The alert after the change. `timestamp` is when this change happened; `alert_id` is
    /// the same for every change of one alert; on resolution `alert_level` and
    /// `threshold_value` are those of the level that cleared and `auto_resolved` is true.
    pub alert: PerformanceAlert,
}

/// An alert that is active now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    /// Its latest change (current level).
    pub alert: PerformanceAlert,
    /// When it was first raised.
    pub raised_at: DateTime<Utc>,
    /// The metric's most recent value (the alert carries the value at its last change).
    pub latest_value: f64,
}

/// Counts since start (for Prometheus).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertCounters {
    /// Alerts raised, by level.
    pub raised: LevelCounts,
    /// Escalations.
    pub escalated: u64,
    /// De-escalations.
    pub de_escalated: u64,
    /// Resolutions.
    pub resolved: u64,
    /// Automatic responses applied (thermal, CPU, emergency).
    pub automatic_responses: u64,
    /// Automatic responses reversed.
    pub reversals: u64,
    /// Emergency responses.
    pub emergencies: u64,
    /// Control port calls that failed.
    pub port_errors: u64,
}

/// Everything `/api/alerts` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsSnapshot {
    /// Active alerts, by metric.
    pub active: Vec<ActiveAlert>,
    /// Past transitions, oldest first (bounded).
    pub history: Vec<AlertTransition>,
    /// Automatic responses in effect.
    pub responses: ResponseStatus,
    /// Counts since start.
    pub counters: AlertCounters,
}

#[derive(Debug)]
struct Active {
    level: AlertLevel,
    threshold: f64,
    raised_at: DateTime<Utc>,
    latest: PerformanceAlert,
}

#[derive(Debug, Default)]
struct MetricState {
    active: Option<Active>,
    /// For each level above the active one: since when the value has been at or above it.
    pending: BTreeMap<AlertLevel, Instant>,
    last_value: Option<f64>,
}

/// Watches metric values against [`AlertThresholds`] and manages alerts.
///
/// Semantics, per metric:
/// - **Raise / escalate**: a value at or above a level's threshold that has stayed at or
///   above it for `for_seconds` (measured with the `now` passed in) raises the alert at that
///   level, or escalates an active one. With `for_seconds == 0` that happens at once.
/// - **Hold, de-escalate, resolve**: an alert at level L stays at L while the value is at or
///   above `threshold(L) × (1 − hysteresis_fraction)`. Below that it steps down to the highest
///   lower level whose threshold × (1 − hysteresis) the value still reaches, or resolves when
///   there is none. Stepping down and resolving happen at once (no `for` delay): the
///   hysteresis band is what prevents flapping.
/// - Every change is returned as an [`AlertTransition`], kept in the bounded history,
///   published as `Event::Alert` (with a bus), and audited (`alert_raised`, `alert_escalated`,
///   `alert_de_escalated`, `alert_resolved`; with an audit writer).
/// - Afterwards the automatic responses are reconciled with the active alerts (see
///   [`ResponsePolicy`]): temperature critical or worse halves agent concurrency and lowers
///   the accelerator scale; CPU critical pauses non-critical workflows; three critical-or-worse
///   alerts at once (or one at emergency level) trigger the emergency stop, published as an
///   `emergency_response` security event. Each is reversed when its condition ends.
///
/// Non-finite values are ignored. The engine never blocks: bus publishing and audit
/// submission are non-blocking, and the control ports are synchronous.
pub struct AlertEngine {
    thresholds: AlertThresholds,
    options: AlertEngineOptions,
    states: BTreeMap<AlertMetric, MetricState>,
    history: VecDeque<AlertTransition>,
    bus: Option<EventBus>,
    audit: Option<AuditWriter>,
    responder: Responder,
    counters: AlertCounters,
    id_prefix: i64,
    next_id: u64,
}

impl fmt::Debug for AlertEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertEngine")
            .field("thresholds", &self.thresholds)
            .field("options", &self.options)
            .field("active", &self.active().len())
            .field("history", &self.history.len())
            .field("bus", &self.bus.is_some())
            .field("audit", &self.audit)
            .field("responder", &self.responder)
            .finish_non_exhaustive()
    }
}

impl AlertEngine {
    /// An engine with `thresholds` (validated) and default options, without bus, audit or
    /// control ports.
    pub fn new(thresholds: AlertThresholds) -> Result<Self, AlertError> {
        thresholds
            .validate()
            .map_err(|e| AlertError::Thresholds(e.within("alerts.")))?;
        let options = AlertEngineOptions::default();
        Ok(Self {
            thresholds,
            responder: Responder::new(options.responses.clone()),
            options,
            states: BTreeMap::new(),
            history: VecDeque::new(),
            bus: None,
            audit: None,
            counters: AlertCounters::default(),
            id_prefix: Utc::now().timestamp(),
            next_id: 1,
        })
    }

    /// Replaces the options (validated).
    pub fn with_options(mut self, options: AlertEngineOptions) -> Result<Self, AlertError> {
        options
            .responses
            .validate()
            .map_err(|e| AlertError::Options(e.within("responses.")))?;
        self.responder.set_policy(options.responses.clone());
        self.options = options;
        self.trim_history();
        Ok(self)
    }

    /// Publishes every change as `Event::Alert`, and emergency responses as
    /// `Event::Security`, on `bus`.
    pub fn with_bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Audits every change and automatic response through `audit`.
    pub fn with_audit(mut self, audit: AuditWriter) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Throttles workflows through `throttle` (coordination's `Coordinator`).
    pub fn with_throttle(mut self, throttle: Arc<dyn Throttle>) -> Self {
        self.responder.set_throttle(throttle);
        self
    }

    /// Scales accelerator work through `scaling` (the accelerator layer).
    pub fn with_scaling(mut self, scaling: Arc<dyn PerformanceScaling>) -> Self {
        self.responder.set_scaling(scaling);
        self
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> &AlertThresholds {
        &self.thresholds
    }

    /// The options in use.
    pub fn options(&self) -> &AlertEngineOptions {
        &self.options
    }

    /// Evaluates one value of one metric seen at `now`.
    pub fn observe(
        &mut self,
        metric: AlertMetric,
        value: f64,
        now: Instant,
    ) -> Vec<AlertTransition> {
        let mut out = Vec::new();
        self.evaluate(metric, value, now, true, &mut out);
        self.finish(out)
    }

    /// Evaluates CPU, memory, disk and (when there is a sensor) temperature from `health`.
    pub fn observe_health(&mut self, health: &SystemHealth, now: Instant) -> Vec<AlertTransition> {
        let mut out = Vec::new();
        self.evaluate(
            AlertMetric::CpuUsagePercent,
            health.cpu_usage_percent,
            now,
            true,
            &mut out,
        );
        self.evaluate(
            AlertMetric::MemoryUsagePercent,
            health.memory_usage_percent,
            now,
            true,
            &mut out,
        );
        self.evaluate(
            AlertMetric::DiskUsagePercent,
            health.disk_usage_percent,
            now,
            true,
            &mut out,
        );
        // Without sensors the temperatures mean nothing; an active thermal alert is then left
        // as it is (no reading cannot prove the machine cooled down).
        if health.thermal_state.sensor_count > 0 {
            self.evaluate(
                AlertMetric::ThermalMaxCelsius,
                health.thermal_state.max_temp,
                now,
                true,
                &mut out,
            );
        }
        self.finish(out)
    }

    /// Evaluates the agent failure rate, the mean agent response time and the security event
    /// rate from `rates`. A window without agent outcomes reads as 0 (so those alerts resolve
    /// when traffic stops); with fewer than `min_agent_samples` outcomes those alerts may
    /// step down or resolve but not be raised or escalated.
    pub fn observe_rates(&mut self, rates: &RatesSnapshot, now: Instant) -> Vec<AlertTransition> {
        let mut out = Vec::new();
        let min = self.options.min_agent_samples;
        let outcomes = rates.agent_completions.saturating_add(rates.agent_failures);
        self.evaluate(
            AlertMetric::AgentFailureRate,
            rates.agent_failure_rate.unwrap_or(0.0),
            now,
            outcomes >= min,
            &mut out,
        );
        self.evaluate(
            AlertMetric::AgentResponseTimeMs,
            rates.agent_response_time_mean_ms.unwrap_or(0.0),
            now,
            rates.agent_response_samples >= min,
            &mut out,
        );
        self.evaluate(
            AlertMetric::SecurityEventsPerMinute,
            rates.security_events_per_minute,
            now,
            true,
            &mut out,
        );
        self.finish(out)
    }

    /// Evaluates the lost nodes and the agents without a live host of a node's view of its
    /// cluster.
    pub fn observe_cluster(
        &mut self,
        health: &dsmil_core::events::ClusterHealth,
        now: Instant,
    ) -> Vec<AlertTransition> {
        let mut out = Vec::new();
        self.evaluate(
            AlertMetric::ClusterNodesLost,
            health.lost_nodes.len() as f64,
            now,
            true,
            &mut out,
        );
        self.evaluate(
            AlertMetric::ClusterAgentsUnhosted,
            health.unhosted_agents.len() as f64,
            now,
            true,
            &mut out,
        );
        self.finish(out)
    }

    /// Active alerts, by metric.
    pub fn active(&self) -> Vec<ActiveAlert> {
        self.states
            .values()
            .filter_map(|s| {
                let a = s.active.as_ref()?;
                Some(ActiveAlert {
                    alert: a.latest.clone(),
                    raised_at: a.raised_at,
                    latest_value: s.last_value.unwrap_or(a.latest.current_value),
                })
            })
            .collect()
    }

    /// Past transitions, oldest first; at most `history_capacity`.
    pub fn history(&self) -> Vec<AlertTransition> {
        self.history.iter().cloned().collect()
    }

    /// Automatic responses in effect.
    pub fn responses(&self) -> ResponseStatus {
        self.responder.status()
    }

    /// Counts since start.
    pub fn counters(&self) -> &AlertCounters {
        &self.counters
    }

    /// Everything `/api/alerts` shows.
    pub fn snapshot(&self) -> AlertsSnapshot {
        AlertsSnapshot {
            active: self.active(),
            history: self.history(),
            responses: self.responses(),
            counters: self.counters.clone(),
        }
    }

    /// The audit writer, if any (to flush it without holding the engine).
    pub fn audit_writer(&self) -> Option<&AuditWriter> {
        self.audit.as_ref()
    }

    /// Waits until every audit entry submitted so far has reached the sink.
    pub async fn flush_audit(&self) {
        if let Some(audit) = &self.audit {
            audit.flush().await;
        }
    }

    fn evaluate(
        &mut self,
        metric: AlertMetric,
        value: f64,
        now: Instant,
        allow_raise: bool,
        out: &mut Vec<AlertTransition>,
    ) {
        if !value.is_finite() {
            tracing::debug!(%metric, value, "non-finite metric value ignored");
            return;
        }
        let ladder = metric.ladder(&self.thresholds);
        let hold = 1.0 - self.thresholds.hysteresis_fraction;
        let for_duration = Duration::from_secs(self.thresholds.for_seconds);
        let wall = Utc::now();

        let state = self.states.entry(metric).or_default();
        state.last_value = Some(value);
        let current = state.active.as_ref().map(|a| a.level);
        let reached = ladder.classify(value).map(|(level, _)| level);

        // Track how long the value has been at or above each level above the current one.
        if allow_raise {
            state
                .pending
                .retain(|level, _| Some(*level) > current && Some(*level) <= reached);
            for (level, _) in ladder.steps() {
                if Some(*level) > current && Some(*level) <= reached {
                    state.pending.entry(*level).or_insert(now);
                }
            }
        } else {
            state.pending.clear();
        }
        let due = ladder.steps().iter().rev().find(|(level, _)| {
            state
                .pending
                .get(level)
                .is_some_and(|since| now.saturating_duration_since(*since) >= for_duration)
        });

        if let Some(&(level, threshold)) = due {
            state.pending.retain(|l, _| *l > level);
            let description = metric.describe_crossing(value, level, threshold);
            let (change, previous_level, alert_id, raised_at, description) =
                match state.active.take() {
                    None => {
                        let id = format!("{}-{}-{}", metric.name(), self.id_prefix, self.next_id);
                        self.next_id += 1;
                        (AlertChange::Raised, None, id, wall, description)
                    }
                    Some(old) => (
                        AlertChange::Escalated,
                        Some(old.level),
                        old.latest.alert_id,
                        old.raised_at,
                        format!(
                            "Escalated from {} to {}: {description}",
                            level_name(old.level),
                            level_name(level)
                        ),
                    ),
                };
            let alert = metric.alert(alert_id, wall, level, value, threshold, description);
            state.active = Some(Active {
                level,
                threshold,
                raised_at,
                latest: alert.clone(),
            });
            out.push(AlertTransition {
                change,
                previous_level,
                alert,
            });
            return;
        }

        let Some(active) = state.active.as_ref() else {
            return;
        };
        if value >= active.threshold * hold {
            return; // Held at its level.
        }
        let old_level = active.level;
        let old_threshold = active.threshold;
        let resolve_point = old_threshold * hold;
        let fall = metric.describe_fall(value, old_level, old_threshold, resolve_point);
        let step_down = ladder
            .steps()
            .iter()
            .rev()
            .find(|(level, threshold)| *level < old_level && value >= threshold * hold)
            .copied();
        match step_down {
            Some((level, threshold)) => {
                let Some(mut active) = state.active.take() else {
                    return;
                };
                let alert = metric.alert(
                    active.latest.alert_id.clone(),
                    wall,
                    level,
                    value,
                    threshold,
                    format!(
                        "De-escalated from {} to {}: {fall}",
                        level_name(old_level),
                        level_name(level)
                    ),
                );
                active.level = level;
                active.threshold = threshold;
                active.latest = alert.clone();
                state.active = Some(active);
                out.push(AlertTransition {
                    change: AlertChange::DeEscalated,
                    previous_level: Some(old_level),
                    alert,
                });
            }
            None => {
                let Some(active) = state.active.take() else {
                    return;
                };
                state.pending.clear();
                let alert = PerformanceAlert {
                    recommended_actions: Vec::new(),
                    auto_resolved: true,
                    ..metric.alert(
                        active.latest.alert_id,
                        wall,
                        old_level,
                        value,
                        old_threshold,
                        format!("Resolved: {fall}"),
                    )
                };
                out.push(AlertTransition {
                    change: AlertChange::Resolved,
                    previous_level: Some(old_level),
                    alert,
                });
            }
        }
    }

    /// Records, publishes and audits `transitions`, then reconciles the automatic responses.
    fn finish(&mut self, transitions: Vec<AlertTransition>) -> Vec<AlertTransition> {
        for t in &transitions {
            match t.change {
                AlertChange::Raised => self.counters.raised.add(t.alert.alert_level),
                AlertChange::Escalated => self.counters.escalated += 1,
                AlertChange::DeEscalated => self.counters.de_escalated += 1,
                AlertChange::Resolved => self.counters.resolved += 1,
            }
            log_transition(t);
            self.history.push_back(t.clone());
            if let Some(bus) = &self.bus {
                bus.publish(Event::Alert(t.alert.clone()));
            }
            if let Some(audit) = &self.audit {
                let mut entry = SecurityEvent::new(
                    t.change.audit_event_type(),
                    t.alert.alert_level,
                    MONITOR_COMPONENT,
                    t.alert.description.clone(),
                );
                entry.affected_resources =
                    vec![t.alert.alert_id.clone(), t.alert.metric_name.clone()];
                audit.submit(entry);
            }
        }
        self.trim_history();

        let effects = {
            let active: Vec<ActiveRef<'_>> = self
                .states
                .iter()
                .filter_map(|(metric, s)| {
                    s.active.as_ref().map(|a| ActiveRef {
                        metric: *metric,
                        level: a.level,
                        alert_id: &a.latest.alert_id,
                    })
                })
                .collect();
            self.responder.reconcile(&active)
        };
        self.counters.automatic_responses += effects.applied;
        self.counters.reversals += effects.reversed;
        self.counters.emergencies += effects.emergencies;
        self.counters.port_errors += effects.port_errors;
        if let Some(bus) = &self.bus {
            for e in effects.publish {
                bus.publish(Event::Security(e));
            }
        }
        if let Some(audit) = &self.audit {
            for e in effects.audit {
                audit.submit(e);
            }
        }
        transitions
    }

    fn trim_history(&mut self) {
        while self.history.len() > self.options.history_capacity {
            self.history.pop_front();
        }
    }
}

fn log_transition(t: &AlertTransition) {
    let a = &t.alert;
    match t.change {
        AlertChange::Resolved => tracing::info!(
            alert_id = %a.alert_id, metric = %a.metric_name, value = a.current_value,
            "alert resolved"
        ),
        _ => tracing::warn!(
            alert_id = %a.alert_id, metric = %a.metric_name, level = level_name(a.alert_level),
            value = a.current_value, change = ?t.change, "{}", a.description
        ),
    }
}
