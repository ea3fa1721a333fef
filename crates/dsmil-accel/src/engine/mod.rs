//! The async compute engine (seed `avx512_acceleration_engine`): async code submits work, a
//! dedicated pool of pinned threads runs it.
//!
//! - **Queue.** [`Engine::submit`] never blocks: a job goes into a bounded FIFO queue
//!   ([`EngineConfig::queue_capacity`] is the memory bound) or is refused with
//!   [`AccelError::QueueFull`]. Each job gets an
//!   [`OperationId`](dsmil_core::OperationId); its [`JobHandle`] is a future
//!   of [`Completed`]. A panicking job yields [`AccelError::JobPanicked`]; its worker survives.
//! - **Workers.** `dsmil-accel-N` threads, each pinned to one allowed core — on the AVX-512 path
//!   only `topology.avx512_cores`. A worker that could not be pinned hands its jobs a
//!   non-AVX-512 platform unless every online core may run AVX-512 ([`Engine::pinned`]).
//! - **Scaling.** At most `ceil(workers × scale)` jobs run at once (at least 1 while the scale
//!   is above 0); scale 0 holds every queued job until the scale is raised. The scale in
//!   effect is the lower of the one set ([`Engine::set_scale`], or the
//!   [`PerformanceScaling`] port) and, while the sensor reads above the threshold,
//!   [`EngineConfig::thermal_scale`]; throttling ends below the threshold minus
//!   [`THERMAL_HYSTERESIS_CELSIUS`].
//! - **Counters and events.** Per [`OpKind`]: ops, failures, bytes, busy time, throughput
//!   ([`Engine::counters`]); an `Event::Accel` per kind at most every [`EVENT_INTERVAL`] with
//!   the throughput since the kind's previous event, and
//!   one named [`THERMAL_EVENT_KERNEL`] when throttling starts or ends. Work that runs on the
//!   caller's thread is counted the same way through a [`Meter`] ([`Engine::meter`]).
//! - **Shutdown.** [`Engine::shutdown`] (or dropping the engine) refuses new work with
//!   [`AccelError::ShutDown`], lets running and queued jobs finish — even when paused — and
//!   joins every thread.
//!
//! ```
//! use dsmil_accel::engine::{Engine, EngineConfig, OpKind};
//! use dsmil_accel::Platform;
//!
//! let topology = dsmil_accel::topology::detect(false);
//! let config = EngineConfig { workers: Some(2), ..EngineConfig::default() };
//! let engine = Engine::start(config, Platform::portable(), &topology, None)?;
//! let handle = engine.submit(OpKind::Dot, 32, |_platform| {
//!     let a = [1.0f32, 2.0, 3.0, 4.0];
//!     a.iter().map(|x| x * x).sum::<f32>()
//! })?;
//! let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! let done = rt.block_on(handle)?;
//! assert_eq!(done.value, 30.0);
//! assert_eq!(engine.counters()["dot"].bytes, 32);
//! engine.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod aligned;
mod ciphers;
mod config;
mod error;
mod gate;
mod hashing;
mod job;
mod meter;
mod metrics;
mod ops;
mod placement;

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::topology::CpuTopology;
use chrono::Utc;
use dsmil_core::events::AccelEvent;
use dsmil_core::ports::{PerformanceScaling, PortError};
use dsmil_core::{Event, EventBus};

pub use aligned::{ALIGNMENT, AlignedBytes, AlignedVec};
pub use ciphers::OwnedChacha20Stream;
pub use config::{
    EngineConfig, THERMAL_HYSTERESIS_CELSIUS, ThermalSensor, max_zone_temperature,
    sysfs_thermal_sensor,
};
pub use error::{AccelError, AccelErrorCode};
pub use job::{Completed, JobHandle};
pub use meter::Meter;
pub use ops::{EVENT_INTERVAL, OpCounters, OpKind};

use crate::Platform;
use gate::Gate;
use ops::Counters;

/// The `kernel` of the `Event::Accel` published when thermal throttling starts or ends
/// (its `scale` is the new scale in effect, its throughput 0).
pub const THERMAL_EVENT_KERNEL: &str = "engine_thermal";

/// State shared by the engine, its workers and its thermal monitor.
struct Shared {
    gate: Gate,
    counters: Counters,
    bus: Option<EventBus>,
    platform: Platform,
    stop_monitor: Mutex<bool>,
    monitor_wake: Condvar,
}

impl Shared {
    fn publish(&self, kernel: &str, path: Platform, throughput: f64) {
        if let Some(bus) = &self.bus {
            bus.publish(Event::Accel(AccelEvent {
                timestamp: Utc::now(),
                kernel: kernel.to_owned(),
                path: path.path(),
                throughput_per_second: throughput,
                scale: self.gate.scale(),
            }));
        }
    }

    /// Sleeps up to `poll`; whether the monitor should stop.
    fn wait_for_stop(&self, poll: Duration) -> bool {
        let stop = self.stop_monitor.lock().unwrap_or_else(|p| p.into_inner());
        let (stop, _) = self
            .monitor_wake
            .wait_timeout_while(stop, poll, |stop| !*stop)
            .unwrap_or_else(|p| p.into_inner());
        *stop
    }
}

fn worker_loop(shared: &Shared, platform: Platform) {
    while let Some(mut permit) = shared.gate.next() {
        let Some(task) = permit.task.take() else {
            continue;
        };
        let (kind, bytes) = (task.kind, task.bytes);
        let record = |succeeded: bool, busy: Duration| {
            let due = shared
                .counters
                .record(kind, bytes, busy, succeeded, Instant::now());
            if let Some(throughput) = due {
                shared.publish(kind.name(), platform, throughput);
            }
        };
        (task.run)(platform, task.operation_id, permit.queued, &record);
        // Dropping the permit frees the slot.
    }
}

fn monitor_loop(shared: &Shared, sensor: &ThermalSensor, threshold: f64, poll: Duration) {
    loop {
        let reading = catch_unwind(AssertUnwindSafe(|| sensor()))
            .ok()
            .flatten()
            .filter(|c| c.is_finite());
        if shared
            .gate
            .observe_temperature(reading, threshold)
            .is_some()
        {
            shared.publish(THERMAL_EVENT_KERNEL, shared.platform, 0.0);
        }
        if shared.wait_for_stop(poll) {
            return;
        }
    }
}

/// The compute engine. See the [module docs](self).
pub struct Engine {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    monitor: Option<JoinHandle<()>>,
    cores: Vec<u32>,
    pinned: bool,
    queue_capacity: usize,
}

impl Engine {
    /// Validates `config` and starts the workers and the thermal monitor. Work runs on
    /// `platform`, on the cores `topology` allows for it; throughput and thermal events go to
    /// `bus` when given.
    pub fn start(
        config: EngineConfig,
        platform: Platform,
        topology: &CpuTopology,
        bus: Option<EventBus>,
    ) -> Result<Engine, AccelError> {
        config.validate()?;
        let allowed = placement::allowed_cores(platform, topology)?;
        let workers = config.workers.unwrap_or(allowed.len());
        let fallback = placement::unpinned_platform(platform, topology, &allowed);
        let shared = Arc::new(Shared {
            gate: Gate::new(workers, config.queue_capacity, config.thermal_scale),
            counters: Counters::default(),
            bus,
            platform,
            stop_monitor: Mutex::new(false),
            monitor_wake: Condvar::new(),
        });
        // Built step by step: if a spawn fails, dropping `engine` stops what was started.
        let mut engine = Engine {
            shared,
            workers: Vec::with_capacity(workers),
            monitor: None,
            cores: Vec::with_capacity(workers),
            pinned: config.pin_threads,
            queue_capacity: config.queue_capacity,
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        for index in 0..workers {
            let core = allowed[index % allowed.len()];
            let shared = Arc::clone(&engine.shared);
            let ready = ready_tx.clone();
            let pin = config.pin_threads;
            let worker = thread::Builder::new()
                .name(format!("dsmil-accel-{index}"))
                .spawn(move || {
                    let pinned = pin && placement::pin_current_thread(core);
                    // `start` waits for this; it cannot have gone away.
                    let _ = ready.send(pinned);
                    drop(ready);
                    worker_loop(&shared, if pinned { platform } else { fallback });
                })
                .map_err(|source| AccelError::Spawn {
                    thread: format!("dsmil-accel-{index}"),
                    source,
                })?;
            engine.workers.push(worker);
            engine.cores.push(core);
        }
        drop(ready_tx);
        for _ in 0..workers {
            engine.pinned &= ready_rx.recv().unwrap_or(false);
        }
        let shared = Arc::clone(&engine.shared);
        let sensor = config.thermal_sensor;
        let (threshold, poll) = (config.thermal_threshold_celsius, config.thermal_poll);
        let monitor = thread::Builder::new()
            .name("dsmil-accel-thermal".into())
            .spawn(move || monitor_loop(&shared, &sensor, threshold, poll))
            .map_err(|source| AccelError::Spawn {
                thread: "dsmil-accel-thermal".into(),
                source,
            })?;
        engine.monitor = Some(monitor);
        Ok(engine)
    }

    /// Queues `job` (`bytes` is what it processes, for the counters); never blocks.
    /// [`AccelError::QueueFull`] when the queue is full, [`AccelError::ShutDown`] once closed.
    pub fn submit<T, F>(&self, kind: OpKind, bytes: u64, job: F) -> Result<JobHandle<T>, AccelError>
    where
        T: Send + 'static,
        F: FnOnce(Platform) -> T + Send + 'static,
    {
        let (run, receiver) = job::wrap(job);
        let operation_id = self.shared.gate.push(kind, bytes, run)?;
        Ok(job::handle(operation_id, receiver))
    }

    /// [`Engine::submit`] and wait for the result.
    pub async fn run<T, F>(
        &self,
        kind: OpKind,
        bytes: u64,
        job: F,
    ) -> Result<Completed<T>, AccelError>
    where
        T: Send + 'static,
        F: FnOnce(Platform) -> T + Send + 'static,
    {
        self.submit(kind, bytes, job)?.await
    }

    /// Sets the share of the workers that may run jobs, 0.0 (pause) to 1.0 (all).
    pub fn set_scale(&self, scale: f64) -> Result<(), AccelError> {
        if !(0.0..=1.0).contains(&scale) {
            return Err(AccelError::InvalidParams(format!(
                "scale: {scale} is outside [0, 1]"
            )));
        }
        self.shared.gate.set_scale(scale);
        Ok(())
    }

    /// The scale in effect: the one set, lowered to the thermal scale while throttled.
    pub fn scale(&self) -> f64 {
        self.shared.gate.scale()
    }

    /// The scale last set with [`Engine::set_scale`] (1.0 at start).
    pub fn requested_scale(&self) -> f64 {
        self.shared.gate.requested_scale()
    }

    /// How many jobs may run at once now.
    pub fn concurrency_limit(&self) -> usize {
        self.shared.gate.limit()
    }

    /// How many jobs are running.
    pub fn running(&self) -> usize {
        self.shared.gate.running()
    }

    /// How many jobs wait in the queue.
    pub fn queued(&self) -> usize {
        self.shared.gate.queued()
    }

    /// The queue's capacity.
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    /// Whether the thermal scale applies (the sensor read above the threshold and has not yet
    /// fallen below threshold − [`THERMAL_HYSTERESIS_CELSIUS`]).
    pub fn thermal_throttled(&self) -> bool {
        self.shared.gate.throttled()
    }

    /// The last sensor reading, in °C.
    pub fn temperature_celsius(&self) -> Option<f64> {
        self.shared.gate.temperature()
    }

    /// The platform jobs run on (a worker that could not be pinned may use a lesser one; see
    /// [`Engine::pinned`]).
    pub fn platform(&self) -> Platform {
        self.shared.platform
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.cores.len()
    }

    /// The core each worker was assigned, by worker index.
    pub fn cores(&self) -> &[u32] {
        &self.cores
    }

    /// Whether every worker was pinned to its core (false when pinning was off or failed).
    pub fn pinned(&self) -> bool {
        self.pinned
    }

    /// Counters per operation kind that has run, keyed by [`OpKind::name`].
    pub fn counters(&self) -> BTreeMap<&'static str, OpCounters> {
        self.shared.counters.snapshot()
    }

    /// A [`Meter`] that records work done outside the queue into these counters and events.
    pub fn meter(&self) -> Meter {
        Meter {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Zeroes every counter.
    pub fn reset_counters(&self) {
        self.shared.counters.reset();
    }

    /// Stops accepting work ([`AccelError::ShutDown`]); queued and running jobs still finish.
    /// Does not wait: [`Engine::shutdown`] or dropping the engine does.
    pub fn close(&self) {
        self.shared.gate.close();
    }

    /// Whether the engine has stopped accepting work.
    pub fn is_closed(&self) -> bool {
        self.shared.gate.is_closed()
    }

    /// Stops accepting work, lets running and queued jobs finish, and joins every thread.
    /// Blocks: from async code call it where blocking is allowed (`spawn_blocking`).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.gate.close();
        let me = thread::current().id();
        for worker in self.workers.drain(..) {
            // A job that drops the last engine handle runs on a worker: never join oneself.
            if worker.thread().id() != me {
                let _ = worker.join();
            }
        }
        *self
            .shared
            .stop_monitor
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.monitor_wake.notify_all();
        if let Some(monitor) = self.monitor.take() {
            let _ = monitor.join();
        }
    }
}

impl Drop for Engine {
    /// Same as [`Engine::shutdown`]: drains and joins.
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("platform", &self.shared.platform)
            .field("cores", &self.cores)
            .field("pinned", &self.pinned)
            .field("scale", &self.scale())
            .field("running", &self.running())
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl PerformanceScaling for Engine {
    fn set_scale(&self, factor: f64) -> Result<(), PortError> {
        Engine::set_scale(self, factor).map_err(PortError::from)
    }

    fn scale(&self) -> f64 {
        Engine::scale(self)
    }
}
