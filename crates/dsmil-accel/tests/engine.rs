//! The compute engine with real threads: bounded queue, scaling that really limits how many
//! jobs run, thermal throttling with hysteresis, draining shutdown, panics, counters and
//! events. No timing thresholds: sleeps only give the engine a chance to misbehave, and every
//! wait has a hang guard.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use dsmil_accel::Platform;
use dsmil_accel::engine::{
    AccelError, Completed, Engine, EngineConfig, JobHandle, OpKind, THERMAL_EVENT_KERNEL,
};
use dsmil_accel::topology::CpuTopology;
use dsmil_core::ports::{PerformanceScaling, PortError};
use dsmil_core::{Event, EventBus, KernelPath};

/// How long any wait may take before the test is declared hung.
const GUARD: Duration = Duration::from_secs(30);

/// How long a job waits for company; shorter than [`GUARD`], so a failure to meet shows as a
/// wrong maximum rather than a hang.
const MEETING_GUARD: Duration = Duration::from_secs(10);

fn platform_and_topology() -> (Platform, CpuTopology) {
    let platform = Platform::best();
    let topology = dsmil_accel::topology::detect(platform.path() == KernelPath::Avx512);
    (platform, topology)
}

fn config(workers: usize, capacity: usize) -> EngineConfig {
    EngineConfig {
        workers: Some(workers),
        queue_capacity: capacity,
        thermal_sensor: Arc::new(|| None),
        ..EngineConfig::default()
    }
}

fn start(config: EngineConfig, bus: Option<EventBus>) -> Engine {
    let (platform, topology) = platform_and_topology();
    Engine::start(config, platform, &topology, bus).unwrap()
}

async fn done<T>(handle: JobHandle<T>) -> Completed<T> {
    tokio::time::timeout(GUARD, handle)
        .await
        .expect("hang guard: job did not finish")
        .unwrap()
}

/// Polls `condition` until it holds; panics after [`GUARD`].
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !condition() {
        assert!(Instant::now() < deadline, "hang guard: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Counts jobs running at once and the maximum seen.
#[derive(Default)]
struct Probe {
    running: AtomicUsize,
    max: AtomicUsize,
    started: AtomicUsize,
}

impl Probe {
    fn enter(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// A job that stays running for a moment, so overlapping jobs would be seen.
fn sleepy(probe: &Arc<Probe>) -> impl FnOnce(Platform) + Send + 'static {
    let probe = Arc::clone(probe);
    move |_| {
        probe.enter();
        thread::sleep(Duration::from_millis(5));
        probe.leave();
    }
}

/// A job that waits (guarded, see [`MEETING_GUARD`]) until `target` jobs have run at once.
fn meeting(probe: &Arc<Probe>, target: usize) -> impl FnOnce(Platform) + Send + 'static {
    let probe = Arc::clone(probe);
    move |_| {
        probe.enter();
        let deadline = Instant::now() + MEETING_GUARD;
        while probe.max() < target && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        probe.leave();
    }
}

/// Submits a job that blocks its worker until the returned sender sends; waits until it runs.
fn blocker(engine: &Engine) -> (mpsc::Sender<()>, JobHandle<()>) {
    let (release, wait) = mpsc::channel::<()>();
    let started = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&started);
    let handle = engine
        .submit(OpKind::Other, 0, move |_| {
            flag.store(true, Ordering::SeqCst);
            wait.recv_timeout(GUARD).unwrap();
        })
        .unwrap();
    eventually("blocker starts", || started.load(Ordering::SeqCst));
    (release, handle)
}

#[tokio::test]
async fn a_full_queue_refuses_at_once_and_everything_completes_after_release() {
    let engine = start(config(1, 2), None);
    let (release, held) = blocker(&engine);
    let queued: Vec<_> = (0..2)
        .map(|i| engine.submit(OpKind::Copy, 8, move |_| i).unwrap())
        .collect();
    assert_eq!(engine.queued(), 2);
    assert_eq!(engine.queue_capacity(), 2);
    assert!(matches!(
        engine.submit(OpKind::Copy, 8, |_| 99).unwrap_err(),
        AccelError::QueueFull
    ));
    release.send(()).unwrap();
    done(held).await;
    for (i, handle) in queued.into_iter().enumerate() {
        assert_eq!(done(handle).await.value, i);
    }
    // Room again.
    assert_eq!(engine.run(OpKind::Copy, 8, |_| 3).await.unwrap().value, 3);
}

#[tokio::test]
async fn scaling_really_limits_how_many_jobs_run() {
    let engine = start(config(2, 64), None);
    assert_eq!(engine.concurrency_limit(), 2);

    // Full scale: two jobs that wait for each other both run at once.
    let probe = Arc::new(Probe::default());
    let both: Vec<_> = (0..2)
        .map(|_| engine.submit(OpKind::Dot, 0, meeting(&probe, 2)).unwrap())
        .collect();
    for h in both {
        done(h).await;
    }
    assert_eq!(probe.max(), 2);

    // Half: never more than one.
    engine.set_scale(0.5).unwrap();
    assert_eq!(engine.concurrency_limit(), 1);
    assert_eq!(engine.scale(), 0.5);
    let probe = Arc::new(Probe::default());
    let jobs: Vec<_> = (0..8)
        .map(|_| engine.submit(OpKind::Dot, 0, sleepy(&probe)).unwrap())
        .collect();
    for h in jobs {
        done(h).await;
    }
    assert_eq!(probe.max(), 1);

    // Zero: queued jobs wait until the scale is raised.
    engine.set_scale(0.0).unwrap();
    assert_eq!(engine.concurrency_limit(), 0);
    let probe = Arc::new(Probe::default());
    let held: Vec<_> = (0..3)
        .map(|_| engine.submit(OpKind::Dot, 0, sleepy(&probe)).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(50));
    assert_eq!(probe.started.load(Ordering::SeqCst), 0);
    assert_eq!(engine.queued(), 3);
    assert_eq!(engine.running(), 0);
    engine.set_scale(1.0).unwrap();
    for h in held {
        done(h).await;
    }
    assert_eq!(probe.started.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn every_handle_gets_its_own_value_and_ids_follow_submission_order() {
    let engine = start(config(2, 256), None);
    let handles: Vec<_> = (0..200u64)
        .map(|i| engine.submit(OpKind::VectorAdd, 4, move |_| i * 3).unwrap())
        .collect();
    let ids: Vec<_> = handles.iter().map(JobHandle::operation_id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids strictly increase");
    for (i, handle) in handles.into_iter().enumerate() {
        let id = handle.operation_id();
        let completed = done(handle).await;
        assert_eq!(completed.value, i as u64 * 3);
        assert_eq!(completed.operation_id, id);
    }
    assert_eq!(engine.counters()["vector_add"].ops, 200);
}

#[tokio::test]
async fn shutdown_drains_running_and_queued_jobs_and_refuses_new_ones() {
    let engine = start(config(1, 16), None);
    let (release, running) = blocker(&engine);
    let finished = Arc::new(AtomicUsize::new(0));
    let queued: Vec<_> = (0..5)
        .map(|_| {
            let finished = Arc::clone(&finished);
            engine
                .submit(OpKind::Set, 1, move |_| {
                    finished.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap()
        })
        .collect();
    engine.close();
    assert!(engine.is_closed());
    assert!(matches!(
        engine.submit(OpKind::Set, 1, |_| ()).unwrap_err(),
        AccelError::ShutDown
    ));
    let stopper = thread::spawn(move || engine.shutdown());
    thread::sleep(Duration::from_millis(20));
    release.send(()).unwrap();
    stopper.join().unwrap();
    // Shutdown returned, so everything already ran.
    assert_eq!(finished.load(Ordering::SeqCst), 5);
    done(running).await;
    for h in queued {
        done(h).await;
    }
}

#[tokio::test]
async fn dropping_a_paused_engine_still_drains_its_queue() {
    let engine = start(config(2, 16), None);
    engine.set_scale(0.0).unwrap();
    let probe = Arc::new(Probe::default());
    let handles: Vec<_> = (0..4)
        .map(|_| engine.submit(OpKind::Gather, 0, sleepy(&probe)).unwrap())
        .collect();
    // A dropped handle does not cancel its job.
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    drop(engine.submit(OpKind::Gather, 0, move |_| {
        flag.store(true, Ordering::SeqCst)
    }));
    drop(engine);
    assert_eq!(probe.started.load(Ordering::SeqCst), 4);
    assert!(ran.load(Ordering::SeqCst));
    for h in handles {
        done(h).await;
    }
}

#[tokio::test]
async fn a_panicking_job_is_reported_and_the_worker_survives() {
    let engine = start(config(1, 8), None);
    let err = engine
        .run(OpKind::Other, 10, |_| -> u32 { panic!("boom in a job") })
        .await
        .unwrap_err();
    match &err {
        AccelError::JobPanicked(message) => assert!(message.contains("boom"), "{message}"),
        other => panic!("expected JobPanicked, got {other:?}"),
    }
    assert_eq!(err.code().code(), -7);
    assert_eq!(engine.run(OpKind::Other, 10, |_| 5).await.unwrap().value, 5);
    let counters = engine.counters()["other"];
    assert_eq!(
        (counters.ops, counters.failures, counters.bytes),
        (1, 1, 10)
    );
}

#[tokio::test]
async fn thermal_pressure_halves_the_permits_with_hysteresis() {
    let temperature = Arc::new(AtomicU64::new(40f64.to_bits()));
    let reading = Arc::clone(&temperature);
    let set = |celsius: f64| temperature.store(celsius.to_bits(), Ordering::SeqCst);
    let bus = EventBus::new(256);
    let mut events = bus.subscribe();
    let engine = start(
        EngineConfig {
            thermal_poll: Duration::from_millis(2),
            thermal_sensor: Arc::new(move || Some(f64::from_bits(reading.load(Ordering::SeqCst)))),
            ..config(2, 64)
        },
        Some(bus),
    );
    eventually("first reading", || {
        engine.temperature_celsius() == Some(40.0)
    });
    assert!(!engine.thermal_throttled());
    assert_eq!(engine.concurrency_limit(), 2);

    set(100.0);
    eventually("throttled", || engine.thermal_throttled());
    assert_eq!(engine.scale(), 0.5);
    assert_eq!(engine.requested_scale(), 1.0);
    assert_eq!(engine.concurrency_limit(), 1);
    let probe = Arc::new(Probe::default());
    let jobs: Vec<_> = (0..6)
        .map(|_| engine.submit(OpKind::Matmul, 0, sleepy(&probe)).unwrap())
        .collect();
    for h in jobs {
        done(h).await;
    }
    assert_eq!(probe.max(), 1, "effective concurrency 1 of 2");
    let throttle_event = loop {
        let published = tokio::time::timeout(GUARD, events.recv())
            .await
            .unwrap()
            .unwrap();
        if let Event::Accel(a) = published.event.as_ref()
            && a.kernel == THERMAL_EVENT_KERNEL
        {
            break a.clone();
        }
    };
    assert_eq!(throttle_event.scale, 0.5);

    // Below the threshold but within the hysteresis band: still throttled.
    set(92.0);
    eventually("reading 92", || engine.temperature_celsius() == Some(92.0));
    assert!(engine.thermal_throttled());

    set(80.0);
    eventually("released", || !engine.thermal_throttled());
    assert_eq!(engine.scale(), 1.0);
    assert_eq!(engine.concurrency_limit(), 2);
    let probe = Arc::new(Probe::default());
    let both: Vec<_> = (0..2)
        .map(|_| {
            engine
                .submit(OpKind::Matmul, 0, meeting(&probe, 2))
                .unwrap()
        })
        .collect();
    for h in both {
        done(h).await;
    }
    assert_eq!(probe.max(), 2);
}

#[tokio::test]
async fn counters_add_up_and_the_bus_hears_about_it() {
    let bus = EventBus::new(64);
    let mut events = bus.subscribe();
    let engine = start(config(2, 64), Some(bus));
    let handles: Vec<_> = (0..5)
        .map(|_| engine.submit(OpKind::Sha256, 128, |_| [0u8; 32]).unwrap())
        .collect();
    for h in handles {
        done(h).await;
    }
    let counters = engine.counters();
    let sha = counters["sha256"];
    assert_eq!((sha.ops, sha.failures, sha.bytes), (5, 0, 640));
    assert!(sha.throughput_bytes_per_second >= 0.0);
    assert_eq!(counters.len(), 1);
    let published = tokio::time::timeout(GUARD, events.recv())
        .await
        .unwrap()
        .unwrap();
    match published.event.as_ref() {
        Event::Accel(a) => {
            assert_eq!(a.kernel, "sha256");
            assert_eq!(a.scale, 1.0);
        }
        other => panic!("expected an accel event, got {other:?}"),
    }
    let json = serde_json::to_value(sha).unwrap();
    assert_eq!(json["bytes"], 640);
    engine.reset_counters();
    assert!(engine.counters().is_empty());
}

/// Searches of an index with the engine's meter count as `top_k` (exact) and
/// `quantized_scan` (int8) work, with the rows' bytes, and the bus hears about them; a failed
/// search counts as a failure.
#[tokio::test]
async fn a_metered_index_counts_its_searches_with_the_engine() {
    use dsmil_accel::AccelIndex;
    use dsmil_accel::index::QUANTIZED_FROM_ROWS;
    use dsmil_core::ports::{Similarity, VectorIndex};

    let bus = EventBus::new(64);
    let mut events = bus.subscribe();
    let engine = start(config(1, 8), Some(bus));
    let (platform, _) = platform_and_topology();
    let dim = 8;
    let mut index = AccelIndex::new(platform, dim, Similarity::Cosine)
        .unwrap()
        .with_meter(engine.meter());
    let row = |i: usize| (0..dim).map(move |j| ((i * 7 + j) % 11) as f32 + 1.0);
    let rows: Vec<f32> = (0..100).flat_map(row).collect();
    index.add(&rows).unwrap();
    let query: Vec<f32> = row(3).collect();
    assert_eq!(index.search(&query, 5).unwrap()[0].index, 3);
    index.search_exact(&query, 5).unwrap();
    let top_k = engine.counters()["top_k"];
    assert_eq!(
        (top_k.ops, top_k.failures, top_k.bytes),
        (2, 0, 2 * 100 * 8 * 4)
    );
    assert!(index.search(&query[..3], 5).is_err(), "wrong dimension");
    assert_eq!(engine.counters()["top_k"].failures, 1);

    let more: Vec<f32> = (100..QUANTIZED_FROM_ROWS).flat_map(row).collect();
    index.add(&more).unwrap();
    assert!(index.search(&query, 5).unwrap()[0].value > 0.999);
    let scan = engine.counters()["quantized_scan"];
    assert_eq!(scan.ops, 1);
    assert!(scan.bytes >= (QUANTIZED_FROM_ROWS * dim) as u64, "{scan:?}");
    let published = tokio::time::timeout(GUARD, events.recv())
        .await
        .unwrap()
        .unwrap();
    match published.event.as_ref() {
        Event::Accel(a) => assert_eq!(a.kernel, "top_k"),
        other => panic!("expected an accel event, got {other:?}"),
    }
    assert_eq!(engine.running(), 0, "metered work does not use the workers");
}

#[tokio::test]
async fn avx512_work_only_runs_on_allowed_cores_and_threads_are_named() {
    let (platform, topology) = platform_and_topology();
    let engine = Engine::start(
        EngineConfig {
            thermal_sensor: Arc::new(|| None),
            ..EngineConfig::default()
        },
        platform,
        &topology,
        None,
    )
    .unwrap();
    if platform.path() == KernelPath::Avx512 {
        assert_eq!(engine.workers(), topology.avx512_cores.len());
        assert!(
            engine
                .cores()
                .iter()
                .all(|c| topology.avx512_cores.contains(c))
        );
    }
    let handles: Vec<_> = (0..32)
        .map(|_| {
            engine
                .submit(OpKind::Dot, 0, |p| {
                    let affinity =
                        nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
                    let cpus: Vec<u32> = (0..nix::sched::CpuSet::count())
                        .filter(|&i| affinity.is_set(i).unwrap_or(false))
                        .map(|i| i as u32)
                        .collect();
                    (p, cpus, thread::current().name().map(str::to_owned))
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        let (p, cpus, name) = done(h).await.value;
        assert!(name.unwrap().starts_with("dsmil-accel-"));
        if p.path() == KernelPath::Avx512 {
            assert!(
                engine.pinned() || cpus.iter().all(|c| topology.avx512_cores.contains(c)),
                "AVX-512 job on {cpus:?}, allowed {:?}",
                topology.avx512_cores
            );
            if engine.pinned() {
                assert_eq!(cpus.len(), 1);
                assert!(topology.avx512_cores.contains(&cpus[0]));
            }
        }
    }
}

#[test]
fn config_errors_name_the_field() {
    let (platform, topology) = platform_and_topology();
    let cases: [(&str, EngineConfig); 7] = [
        ("workers", config(0, 4)),
        ("queue_capacity", config(1, 0)),
        (
            "thermal_threshold_celsius",
            EngineConfig {
                thermal_threshold_celsius: f64::NAN,
                ..config(1, 4)
            },
        ),
        (
            "thermal_scale",
            EngineConfig {
                thermal_scale: 0.0,
                ..config(1, 4)
            },
        ),
        (
            "thermal_scale",
            EngineConfig {
                thermal_scale: 1.5,
                ..config(1, 4)
            },
        ),
        (
            "thermal_scale",
            EngineConfig {
                thermal_scale: f64::NAN,
                ..config(1, 4)
            },
        ),
        (
            "thermal_poll",
            EngineConfig {
                thermal_poll: Duration::ZERO,
                ..config(1, 4)
            },
        ),
    ];
    for (field, bad) in cases {
        match Engine::start(bad, platform, &topology, None) {
            Err(AccelError::InvalidParams(message)) => {
                assert!(message.starts_with(field), "{field}: {message}");
            }
            other => panic!("{field}: expected InvalidParams, got {other:?}"),
        }
    }
    if let Some(avx512) = Platform::avx512() {
        let no_avx512_cores = CpuTopology {
            avx512_cores: vec![],
            ..topology.clone()
        };
        let err = Engine::start(config(1, 4), avx512, &no_avx512_cores, None).unwrap_err();
        assert!(err.to_string().contains("topology.avx512_cores"), "{err}");
    }
}

#[test]
fn scale_is_validated_and_reachable_through_the_port() {
    let engine = start(config(4, 4), None);
    for bad in [-0.1, 1.5, f64::NAN] {
        let err = engine.set_scale(bad).unwrap_err();
        assert!(err.to_string().contains("scale"), "{err}");
    }
    let port: Arc<dyn PerformanceScaling> = Arc::new(engine);
    port.set_scale(0.5).unwrap();
    assert_eq!(port.scale(), 0.5);
    assert!(matches!(
        port.set_scale(2.0),
        Err(PortError::InvalidInput(_))
    ));
}

#[test]
fn error_codes_are_the_seed_numbers() {
    assert_eq!(AccelError::NotSupported.code().code(), -1);
    assert_eq!(AccelError::InvalidParams("x".into()).code().code(), -2);
    assert_eq!(AccelError::InsufficientMemory.code().code(), -3);
    assert_eq!(AccelError::ThermalThrottle.code().code(), -4);
    assert_eq!(AccelError::NumaAllocationFailed.code().code(), -5);
    assert_eq!(AccelError::OperationTimeout.code().code(), -6);
    assert_eq!(AccelError::HardwareFailure("x".into()).code().code(), -7);
    assert_eq!(AccelError::QueueFull.code().code(), -8);
}
