//! Control ports the monitor drives under pressure: [`Throttle`] (provided by coordination)
//! and [`PerformanceScaling`] (provided by the accelerator layer), with recording
//! implementations that hold the state they are told.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::PortError;

/// Slows or stops workflow execution (seed `_handle_critical_alert`).
pub trait Throttle: Send + Sync {
    /// Scales every agent's concurrency limit by `factor` (0 < factor ≤ 1; 1 restores).
    fn reduce_agent_concurrency(&self, factor: f64) -> Result<(), PortError>;
    /// Holds back new tasks of workflows not marked critical.
    fn pause_non_critical(&self);
    /// Lets paused workflows continue.
    fn resume_non_critical(&self);
    /// Cancels every running workflow and refuses new ones until [`Throttle::clear_emergency`].
    fn emergency_stop(&self, reason: &str);
    /// Accepts work again after an emergency stop.
    fn clear_emergency(&self);
}

/// Scales accelerator work under thermal pressure.
pub trait PerformanceScaling: Send + Sync {
    /// Sets the share of full throughput to use, 0.0–1.0.
    fn set_scale(&self, factor: f64) -> Result<(), PortError>;
    /// The share in effect.
    fn scale(&self) -> f64;
}

fn check_factor(factor: f64, allow_zero: bool) -> Result<(), PortError> {
    let ok = factor.is_finite() && factor <= 1.0 && (factor > 0.0 || (allow_zero && factor == 0.0));
    if ok {
        Ok(())
    } else {
        Err(PortError::InvalidInput(format!(
            "factor {factor} is out of range; expected {} to 1.0",
            if allow_zero {
                "0.0"
            } else {
                "a number above 0.0 up"
            }
        )))
    }
}

/// What a [`RecordingThrottle`] has been told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThrottleState {
    /// Current concurrency factor (1.0 = unthrottled).
    pub concurrency_factor: f64,
    /// Whether non-critical work is paused.
    pub non_critical_paused: bool,
    /// The reason of an active emergency stop.
    pub emergency: Option<String>,
}

impl Default for ThrottleState {
    fn default() -> Self {
        Self {
            concurrency_factor: 1.0,
            non_critical_paused: false,
            emergency: None,
        }
    }
}

/// A [`Throttle`] that only records what it is told (tests; deployments without coordination).
#[derive(Debug, Default)]
pub struct RecordingThrottle {
    state: Mutex<ThrottleState>,
}

impl RecordingThrottle {
    /// Unthrottled.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current state.
    pub fn state(&self) -> ThrottleState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Throttle for RecordingThrottle {
    fn reduce_agent_concurrency(&self, factor: f64) -> Result<(), PortError> {
        check_factor(factor, false)?;
        self.lock().concurrency_factor = factor;
        Ok(())
    }
    fn pause_non_critical(&self) {
        self.lock().non_critical_paused = true;
    }
    fn resume_non_critical(&self) {
        self.lock().non_critical_paused = false;
    }
    fn emergency_stop(&self, reason: &str) {
        self.lock().emergency = Some(reason.to_owned());
    }
    fn clear_emergency(&self) {
        self.lock().emergency = None;
    }
}

/// A [`PerformanceScaling`] that holds the factor it is given.
#[derive(Debug)]
pub struct ScalingKnob {
    factor: Mutex<f64>,
}

impl Default for ScalingKnob {
    fn default() -> Self {
        Self {
            factor: Mutex::new(1.0),
        }
    }
}

impl PerformanceScaling for ScalingKnob {
    fn set_scale(&self, factor: f64) -> Result<(), PortError> {
        check_factor(factor, true)?;
        *self.factor.lock().unwrap_or_else(|p| p.into_inner()) = factor;
        Ok(())
    }
    fn scale(&self) -> f64 {
        *self.factor.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_records_and_validates() {
        let t = RecordingThrottle::new();
        t.reduce_agent_concurrency(0.5).unwrap();
        t.pause_non_critical();
        t.emergency_stop("three critical alerts");
        let s = t.state();
        assert_eq!(s.concurrency_factor, 0.5);
        assert!(s.non_critical_paused);
        assert_eq!(s.emergency.as_deref(), Some("three critical alerts"));
        assert!(t.reduce_agent_concurrency(0.0).is_err());
        assert!(t.reduce_agent_concurrency(f64::NAN).is_err());
        t.resume_non_critical();
        t.clear_emergency();
        assert_eq!(t.state().emergency, None);
    }

    #[test]
    fn scaling_accepts_zero_to_one() {
        let k = ScalingKnob::default();
        assert_eq!(k.scale(), 1.0);
        k.set_scale(0.7).unwrap();
        assert_eq!(k.scale(), 0.7);
        k.set_scale(0.0).unwrap();
        assert!(k.set_scale(1.5).is_err());
        assert_eq!(k.scale(), 0.0);
    }
}
