//! Automatic responses to critical alerts (seed `_handle_critical_alert`), applied and reversed
//! through core's control ports.
//!
//! The responder is reconciled after every batch of alert changes against the set of active
//! alerts, so each response is applied once when its condition starts and reversed once when
//! it ends, whatever the path in between (an escalation from critical to emergency does not
//! reduce twice; a resolution without a prior response reverses nothing).

use std::fmt;
use std::sync::Arc;

use dsmil_core::ports::{PerformanceScaling, Throttle};
use dsmil_core::{AlertLevel, SecurityEvent};
use serde::{Deserialize, Serialize};

use super::metric::{AlertMetric, level_name};
use crate::collect::MONITOR_COMPONENT;

pub use crate::config::ResponsePolicy;

/// Which automatic responses are in effect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseStatus {
    /// Agent concurrency or the accelerator scale was reduced for temperature (and not yet
    /// restored).
    pub thermal_throttled: bool,
    /// Non-critical workflows were paused for CPU (and not yet resumed).
    pub non_critical_paused: bool,
    /// The emergency condition holds: the emergency response was published and, with a
    /// throttle configured, the emergency stop called.
    pub emergency_active: bool,
    /// Why the emergency stop was triggered.
    pub emergency_reason: Option<String>,
}

/// An active alert as the responder sees it.
pub(crate) struct ActiveRef<'a> {
    pub(crate) metric: AlertMetric,
    pub(crate) level: AlertLevel,
    pub(crate) alert_id: &'a str,
}

/// What one reconciliation did, for the engine to audit, publish and count.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Entries for the audit log.
    pub(crate) audit: Vec<SecurityEvent>,
    /// Events for the bus (`emergency_response`, `emergency_cleared`).
    pub(crate) publish: Vec<SecurityEvent>,
    pub(crate) applied: u64,
    pub(crate) reversed: u64,
    pub(crate) emergencies: u64,
    pub(crate) port_errors: u64,
}

struct ThermalApplied {
    /// Whether `reduce_agent_concurrency` succeeded (so `1.0` must be restored).
    concurrency_reduced: bool,
    /// The scale read before a successful `set_scale` (to restore).
    previous_scale: Option<f64>,
}

struct Emergency {
    reason: String,
    /// Whether `emergency_stop` was called (so `clear_emergency` must be).
    stopped: bool,
}

pub(crate) struct Responder {
    throttle: Option<Arc<dyn Throttle>>,
    scaling: Option<Arc<dyn PerformanceScaling>>,
    policy: ResponsePolicy,
    thermal: Option<ThermalApplied>,
    /// `Some(called)` while CPU is critical; `called` when `pause_non_critical` was called.
    cpu: Option<bool>,
    emergency: Option<Emergency>,
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("throttle", &self.throttle.is_some())
            .field("scaling", &self.scaling.is_some())
            .field("policy", &self.policy)
            .field("status", &self.status())
            .finish()
    }
}

fn event(
    event_type: &str,
    severity: AlertLevel,
    description: String,
    resources: Vec<String>,
    actions: Vec<String>,
) -> SecurityEvent {
    let mut e = SecurityEvent::new(event_type, severity, MONITOR_COMPONENT, description);
    e.affected_resources = resources;
    e.response_actions = actions;
    e
}

impl Responder {
    pub(crate) fn new(policy: ResponsePolicy) -> Self {
        Self {
            throttle: None,
            scaling: None,
            policy,
            thermal: None,
            cpu: None,
            emergency: None,
        }
    }

    pub(crate) fn set_throttle(&mut self, throttle: Arc<dyn Throttle>) {
        self.throttle = Some(throttle);
    }

    pub(crate) fn set_scaling(&mut self, scaling: Arc<dyn PerformanceScaling>) {
        self.scaling = Some(scaling);
    }

    pub(crate) fn set_policy(&mut self, policy: ResponsePolicy) {
        self.policy = policy;
    }

    pub(crate) fn status(&self) -> ResponseStatus {
        ResponseStatus {
            thermal_throttled: self
                .thermal
                .as_ref()
                .is_some_and(|t| t.concurrency_reduced || t.previous_scale.is_some()),
            non_critical_paused: self.cpu == Some(true),
            emergency_active: self.emergency.is_some(),
            emergency_reason: self.emergency.as_ref().map(|e| e.reason.clone()),
        }
    }

    /// Brings the responses in line with `active`: reversals first (emergency, CPU, thermal),
    /// then new responses (thermal, CPU, emergency).
    pub(crate) fn reconcile(&mut self, active: &[ActiveRef<'_>]) -> Effects {
        let mut fx = Effects::default();
        if !self.policy.enabled {
            return fx;
        }
        let find = |metric: AlertMetric| {
            active
                .iter()
                .find(|a| a.metric == metric && a.level >= AlertLevel::Critical)
        };
        let thermal = find(AlertMetric::ThermalMaxCelsius);
        let cpu = find(AlertMetric::CpuUsagePercent);
        let severe: Vec<&ActiveRef<'_>> = active
            .iter()
            .filter(|a| a.level >= AlertLevel::Critical)
            .collect();
        let emergency_level = self.policy.emergency_on_emergency_level
            && severe.iter().any(|a| a.level >= AlertLevel::Emergency);
        let emergency_wanted =
            severe.len() >= self.policy.emergency_min_critical || emergency_level;

        if !emergency_wanted && self.emergency.is_some() {
            self.clear_emergency(&mut fx);
        }
        if cpu.is_none() && self.cpu.is_some() {
            self.resume_cpu(&mut fx);
        }
        if thermal.is_none() && self.thermal.is_some() {
            self.restore_thermal(&mut fx);
        }
        if let Some(a) = thermal
            && self.thermal.is_none()
        {
            self.apply_thermal(a, &mut fx);
        }
        if let Some(a) = cpu
            && self.cpu.is_none()
        {
            self.pause_cpu(a, &mut fx);
        }
        if emergency_wanted && self.emergency.is_none() {
            let list = severe
                .iter()
                .map(|a| format!("{} ({})", a.metric, level_name(a.level)))
                .collect::<Vec<_>>()
                .join(", ");
            let reason = if severe.len() >= self.policy.emergency_min_critical {
                format!("{} critical alerts active: {list}", severe.len())
            } else {
                format!("emergency-level alert active: {list}")
            };
            let ids = severe.iter().map(|a| a.alert_id.to_owned()).collect();
            self.start_emergency(reason, ids, &mut fx);
        }
        fx
    }

    fn apply_thermal(&mut self, alert: &ActiveRef<'_>, fx: &mut Effects) {
        let mut actions = Vec::new();
        let factor = self.policy.thermal_concurrency_factor;
        let concurrency_reduced = match &self.throttle {
            Some(t) => match t.reduce_agent_concurrency(factor) {
                Ok(()) => {
                    actions.push(format!("reduce_agent_concurrency({factor})"));
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "thermal response: cannot reduce agent concurrency");
                    actions.push(format!("reduce_agent_concurrency({factor}) failed: {e}"));
                    fx.port_errors += 1;
                    false
                }
            },
            None => {
                actions.push("no throttle configured: agent concurrency unchanged".into());
                false
            }
        };
        let target = self.policy.thermal_scale;
        let previous_scale = match &self.scaling {
            Some(s) => {
                let previous = s.scale();
                if previous > target {
                    match s.set_scale(target) {
                        Ok(()) => {
                            actions.push(format!("set_scale({target}) (was {previous})"));
                            Some(previous)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "thermal response: cannot set the accelerator scale");
                            actions.push(format!("set_scale({target}) failed: {e}"));
                            fx.port_errors += 1;
                            None
                        }
                    }
                } else {
                    actions.push(format!(
                        "accelerator scale already {previous}, at or below {target}: unchanged"
                    ));
                    None
                }
            }
            None => {
                actions
                    .push("no performance scaling configured: accelerator scale unchanged".into());
                None
            }
        };
        self.thermal = Some(ThermalApplied {
            concurrency_reduced,
            previous_scale,
        });
        fx.applied += 1;
        fx.audit.push(event(
            "automatic_response",
            alert.level,
            format!(
                "thermal {}: agent concurrency and accelerator throughput reduced",
                level_name(alert.level)
            ),
            vec![alert.alert_id.to_owned(), alert.metric.name().to_owned()],
            actions,
        ));
    }

    fn restore_thermal(&mut self, fx: &mut Effects) {
        let Some(applied) = self.thermal.take() else {
            return;
        };
        let mut actions = Vec::new();
        if applied.concurrency_reduced
            && let Some(t) = &self.throttle
        {
            match t.reduce_agent_concurrency(1.0) {
                Ok(()) => actions.push("reduce_agent_concurrency(1.0)".to_owned()),
                Err(e) => {
                    tracing::warn!(error = %e, "thermal response: cannot restore agent concurrency");
                    actions.push(format!("reduce_agent_concurrency(1.0) failed: {e}"));
                    fx.port_errors += 1;
                }
            }
        }
        if let Some(previous) = applied.previous_scale
            && let Some(s) = &self.scaling
        {
            match s.set_scale(previous) {
                Ok(()) => actions.push(format!("set_scale({previous})")),
                Err(e) => {
                    tracing::warn!(error = %e, "thermal response: cannot restore the accelerator scale");
                    actions.push(format!("set_scale({previous}) failed: {e}"));
                    fx.port_errors += 1;
                }
            }
        }
        if actions.is_empty() {
            // Nothing had been changed, so there is nothing to reverse or report.
            return;
        }
        fx.reversed += 1;
        fx.audit.push(event(
            "automatic_response",
            AlertLevel::Info,
            "thermal below critical: agent concurrency and accelerator throughput restored".into(),
            vec![AlertMetric::ThermalMaxCelsius.name().to_owned()],
            actions,
        ));
    }

    fn pause_cpu(&mut self, alert: &ActiveRef<'_>, fx: &mut Effects) {
        let (called, action) = match &self.throttle {
            Some(t) => {
                t.pause_non_critical();
                (true, "pause_non_critical()".to_owned())
            }
            None => (false, "no throttle configured: nothing paused".to_owned()),
        };
        self.cpu = Some(called);
        fx.applied += 1;
        fx.audit.push(event(
            "automatic_response",
            alert.level,
            format!(
                "CPU {}: non-critical workflows paused",
                level_name(alert.level)
            ),
            vec![alert.alert_id.to_owned(), alert.metric.name().to_owned()],
            vec![action],
        ));
    }

    fn resume_cpu(&mut self, fx: &mut Effects) {
        let Some(called) = self.cpu.take() else {
            return;
        };
        let Some(t) = self.throttle.as_ref().filter(|_| called) else {
            return;
        };
        t.resume_non_critical();
        fx.reversed += 1;
        fx.audit.push(event(
            "automatic_response",
            AlertLevel::Info,
            "CPU below critical: non-critical workflows resumed".into(),
            vec![AlertMetric::CpuUsagePercent.name().to_owned()],
            vec!["resume_non_critical()".into()],
        ));
    }

    fn start_emergency(&mut self, reason: String, ids: Vec<String>, fx: &mut Effects) {
        let (stopped, action) = match &self.throttle {
            Some(t) => {
                t.emergency_stop(&reason);
                (
                    true,
                    "emergency_stop: running workflows cancelled, new ones refused",
                )
            }
            None => (false, "no throttle configured: nothing stopped"),
        };
        tracing::error!(%reason, "emergency response");
        let e = event(
            "emergency_response",
            AlertLevel::Emergency,
            format!("emergency response: {reason}"),
            ids,
            vec![action.to_owned()],
        );
        fx.audit.push(e.clone());
        fx.publish.push(e);
        fx.applied += 1;
        fx.emergencies += 1;
        self.emergency = Some(Emergency { reason, stopped });
    }

    fn clear_emergency(&mut self, fx: &mut Effects) {
        let Some(emergency) = self.emergency.take() else {
            return;
        };
        let action = match self.throttle.as_ref().filter(|_| emergency.stopped) {
            Some(t) => {
                t.clear_emergency();
                "clear_emergency: new workflows accepted again"
            }
            None => "nothing to clear",
        };
        tracing::warn!(reason = %emergency.reason, "emergency response cleared");
        let e = event(
            "emergency_cleared",
            AlertLevel::Info,
            format!(
                "emergency cleared: the condition ended ({})",
                emergency.reason
            ),
            Vec::new(),
            vec![action.to_owned()],
        );
        fx.audit.push(e.clone());
        fx.publish.push(e);
        fx.reversed += 1;
    }
}
