//! The coordinator as the monitor's and bridge's [`Throttle`]: concurrency scaling, pausing
//! non-critical work, and the emergency stop (running workflows cancelled, new ones refused,
//! reported to the bus and the audit log).

use chrono::Utc;
use dsmil_core::Event;
use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
use dsmil_core::ports::{PortError, Throttle};

use super::coordinator::Coordinator;
use super::lock;

impl Throttle for Coordinator {
    /// Scales every agent's concurrency to `factor` (0 < factor ≤ 1) of its configured limit.
    fn reduce_agent_concurrency(&self, factor: f64) -> Result<(), PortError> {
        if !(factor.is_finite() && factor > 0.0 && factor <= 1.0) {
            return Err(PortError::InvalidInput(format!(
                "factor {factor} is out of range; expected a number above 0.0 up to 1.0"
            )));
        }
        self.registry.scale_concurrency(factor);
        Ok(())
    }

    /// Non-critical workflows start no new task until resumed (running tasks finish).
    fn pause_non_critical(&self) {
        self.paused.send_replace(true);
    }

    fn resume_non_critical(&self) {
        self.paused.send_replace(false);
    }

    /// Cancels every running workflow (their processes are killed and they are journaled as
    /// cancelled), refuses new ones until cleared, and reports it to the bus and the audit log.
    fn emergency_stop(&self, reason: &str) {
        *lock(&self.emergency) = Some(reason.to_owned());
        let stopped = self.cancel_all();
        tracing::warn!(reason, workflows = stopped, "emergency stop");
        let event = SecurityEvent {
            timestamp: Utc::now(),
            event_type: "emergency_stop".into(),
            severity: AlertLevel::Emergency,
            source_component: "coord".into(),
            description: format!("emergency stop: {reason}; {stopped} workflows cancelled"),
            tpm_signature: None,
            affected_resources: Vec::new(),
            response_actions: vec![
                "running workflows cancelled".into(),
                "new workflows refused".into(),
            ],
        };
        if let Some(bus) = &self.bus {
            bus.publish(Event::Security(event.clone()));
        }
        if let Some(audit) = self.audit.clone() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        if let Err(e) = audit.append(event).await {
                            tracing::error!(error = %e, "cannot audit the emergency stop");
                        }
                    });
                }
                Err(_) => tracing::error!("no runtime to audit the emergency stop on"),
            }
        }
    }

    fn clear_emergency(&self) {
        *lock(&self.emergency) = None;
    }
}
