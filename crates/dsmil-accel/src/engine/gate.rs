//! The queue and the permits, under one mutex and condition variable.
//!
//! A worker may start a job only while fewer than [`Gate::limit`] jobs run; the limit follows
//! the scale, so lowering it really reduces the work in flight, and 0 stops new starts until
//! it is raised. Waiting is on the condition variable, never a spin.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dsmil_core::OperationId;

use super::config::THERMAL_HYSTERESIS_CELSIUS;
use super::error::AccelError;
use super::job::Run;
use super::ops::OpKind;

/// A job waiting for a worker.
pub(crate) struct Task {
    pub(crate) operation_id: OperationId,
    pub(crate) kind: OpKind,
    pub(crate) bytes: u64,
    pub(crate) enqueued: Instant,
    pub(crate) run: Run,
}

struct State {
    queue: VecDeque<Task>,
    running: usize,
    user_scale: f64,
    throttled: bool,
    temperature: Option<f64>,
    closed: bool,
}

/// A started job: [`Gate::next`] hands it out, [`Drop`] gives the permit back, even if the
/// worker unwinds.
pub(crate) struct Permit<'a> {
    gate: &'a Gate,
    pub(crate) task: Option<Task>,
    pub(crate) queued: Duration,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        state.running -= 1;
        drop(state);
        // Waiters may now start a job, or (when closed and drained) exit.
        self.gate.changed.notify_all();
    }
}

/// Queue + permits.
pub(crate) struct Gate {
    state: Mutex<State>,
    changed: Condvar,
    workers: usize,
    capacity: usize,
    thermal_scale: f64,
}

impl Gate {
    pub(crate) fn new(workers: usize, capacity: usize, thermal_scale: f64) -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                running: 0,
                user_scale: 1.0,
                throttled: false,
                temperature: None,
                closed: false,
            }),
            changed: Condvar::new(),
            workers,
            capacity,
            thermal_scale,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn effective(&self, state: &State) -> f64 {
        if state.throttled {
            state.user_scale.min(self.thermal_scale)
        } else {
            state.user_scale
        }
    }

    fn limit_of(&self, state: &State) -> usize {
        let scale = self.effective(state);
        let limit = if scale <= 0.0 {
            0
        } else {
            // The epsilon keeps e.g. 10 × 0.3 = 3.0000000000000004 at 3.
            ((self.workers as f64 * scale - 1e-9).ceil() as usize).clamp(1, self.workers)
        };
        // A closing engine drains its queue even when paused.
        if state.closed { limit.max(1) } else { limit }
    }

    /// Queues a job; never blocks.
    pub(crate) fn push(
        &self,
        kind: OpKind,
        bytes: u64,
        run: Run,
    ) -> Result<OperationId, AccelError> {
        let mut state = self.lock();
        if state.closed {
            return Err(AccelError::ShutDown);
        }
        if state.queue.len() >= self.capacity {
            return Err(AccelError::QueueFull);
        }
        // Taken under the lock, so ids increase in queue order.
        let operation_id = OperationId::next();
        state.queue.push_back(Task {
            operation_id,
            kind,
            bytes,
            enqueued: Instant::now(),
            run,
        });
        drop(state);
        // Every waiter waits for the same thing, so one is enough for one job.
        self.changed.notify_one();
        Ok(operation_id)
    }

    /// Waits until a job may start and takes it (FIFO); `None` once closed and drained.
    pub(crate) fn next(&self) -> Option<Permit<'_>> {
        let mut state = self.lock();
        loop {
            if !state.queue.is_empty() && state.running < self.limit_of(&state) {
                let task = state.queue.pop_front()?;
                state.running += 1;
                let queued = task.enqueued.elapsed();
                return Some(Permit {
                    gate: self,
                    task: Some(task),
                    queued,
                });
            }
            if state.closed && state.queue.is_empty() {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stops accepting jobs; queued ones still run.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn set_scale(&self, scale: f64) {
        self.lock().user_scale = scale;
        self.changed.notify_all();
    }

    pub(crate) fn requested_scale(&self) -> f64 {
        self.lock().user_scale
    }

    pub(crate) fn scale(&self) -> f64 {
        let state = self.lock();
        self.effective(&state)
    }

    pub(crate) fn limit(&self) -> usize {
        let state = self.lock();
        self.limit_of(&state)
    }

    pub(crate) fn running(&self) -> usize {
        self.lock().running
    }

    pub(crate) fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    pub(crate) fn throttled(&self) -> bool {
        self.lock().throttled
    }

    pub(crate) fn temperature(&self) -> Option<f64> {
        self.lock().temperature
    }

    /// Takes a sensor reading: throttles above `threshold`, releases below
    /// `threshold - THERMAL_HYSTERESIS_CELSIUS`. Returns the new effective scale on a change.
    pub(crate) fn observe_temperature(&self, reading: Option<f64>, threshold: f64) -> Option<f64> {
        let mut state = self.lock();
        state.temperature = reading;
        let celsius = reading?;
        let throttle = if !state.throttled && celsius > threshold {
            true
        } else if state.throttled && celsius < threshold - THERMAL_HYSTERESIS_CELSIUS {
            false
        } else {
            return None;
        };
        state.throttled = throttle;
        let scale = self.effective(&state);
        drop(state);
        self.changed.notify_all();
        Some(scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_follows_scale_and_thermal_and_closing() {
        let gate = Gate::new(10, 4, 0.5);
        assert_eq!(gate.limit(), 10);
        for (scale, limit) in [(0.3, 3), (0.25, 3), (0.01, 1), (0.0, 0), (1.0, 10)] {
            gate.set_scale(scale);
            assert_eq!(gate.limit(), limit, "scale {scale}");
        }
        assert_eq!(gate.observe_temperature(Some(96.0), 95.0), Some(0.5));
        assert_eq!(gate.limit(), 5);
        assert_eq!(
            gate.observe_temperature(Some(92.0), 95.0),
            None,
            "hysteresis"
        );
        assert!(gate.throttled());
        gate.set_scale(0.2);
        assert_eq!(gate.scale(), 0.2, "the lower of the two");
        assert_eq!(gate.observe_temperature(None, 95.0), None);
        assert!(gate.throttled(), "no reading changes nothing");
        assert_eq!(gate.observe_temperature(Some(89.0), 95.0), Some(0.2));
        assert!(!gate.throttled());
        assert_eq!(gate.temperature(), Some(89.0));
        gate.set_scale(0.0);
        assert_eq!(gate.limit(), 0);
        gate.close();
        assert_eq!(gate.limit(), 1, "a closing engine drains even when paused");
    }
}
