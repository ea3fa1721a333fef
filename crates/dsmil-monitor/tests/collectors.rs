//! Collectors: the system collector against a fake /proc and /sys, the real machine, the
//! periodic runner (publishing, back-off, recovery) and the event rate windows.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use dsmil_core::monitoring::{ActivityType, ThermalState};
use dsmil_core::{
    AgentActivity, AgentId, AlertLevel, Event, EventBus, SecurityEvent, SystemHealth, WorkflowId,
};
use dsmil_monitor::collect::{
    CollectError, EventRates, HealthSource, SystemCollector, backoff_delay, disk_usage_percent,
    spawn_system_collector,
};

// ---------------------------------------------------------------------------------------------
// A fake /proc and /sys.

const STAT_1: &str = "cpu  100 0 100 700 100 0 0 0 0 0\n\
                      cpu0 50 0 50 350 50 0 0 0 0 0\n\
                      intr 12345\nctxt 999\n";
// Second sample: +300 user, +100 system, +500 idle, +100 iowait => 400 busy of 1000 ticks.
const STAT_2: &str = "cpu  400 0 200 1200 200 0 0 0 0 0\n\
                      cpu0 200 0 100 600 100 0 0 0 0 0\n";
const MEMINFO: &str = "MemTotal:        1000000 kB\n\
                       MemFree:          100000 kB\n\
                       MemAvailable:     250000 kB\n\
                       Buffers:           10000 kB\n\
                       Cached:           100000 kB\n";
const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n \
  face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
  eth0:     500       5    0    0    0     0          0         0      300       3    0    0    0     0       0          0\n \
 wlan0:     200       2    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n";

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

struct FakeTree {
    dir: tempfile::TempDir,
}

impl FakeTree {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let t = Self { dir };
        let p = t.proc();
        write(&p, "stat", STAT_1);
        write(&p, "meminfo", MEMINFO);
        write(&p, "net/dev", NET_DEV);
        write(&p, "loadavg", "0.50 1.25 2.00 1/123 4567\n");
        write(&p, "uptime", "12345.67 2345.00\n");
        fs::create_dir_all(t.sys()).unwrap();
        fs::create_dir_all(t.data()).unwrap();
        t
    }

    fn proc(&self) -> PathBuf {
        self.dir.path().join("proc")
    }

    fn sys(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn with_sensors(self) -> Self {
        let s = self.sys();
        write(&s, "class/thermal/thermal_zone0/temp", "45000\n");
        write(&s, "class/thermal/thermal_zone1/temp", "55000\n");
        write(&s, "class/thermal/thermal_zone2/temp", "garbage\n"); // unreadable: skipped
        write(&s, "class/thermal/thermal_zone3/temp", "-273000\n"); // absurd: skipped
        write(&s, "class/thermal/cooling_device0/cur_state", "0\n"); // not a zone
        write(&s, "class/hwmon/hwmon0/temp1_input", "65000\n");
        write(&s, "class/hwmon/hwmon0/temp1_label", "Core 0\n"); // not an input
        write(&s, "class/hwmon/hwmon0/temp1_max", "100000\n"); // not an input
        write(&s, "class/hwmon/hwmon1/temp1_input", "250000\n"); // absurd: skipped
        self
    }

    fn collector(&self) -> SystemCollector {
        SystemCollector::new(self.data())
            .with_proc_root(self.proc())
            .with_sys_root(self.sys())
    }
}

#[test]
fn fake_tree_gives_exact_values() {
    let tree = FakeTree::new().with_sensors();
    let mut c = tree.collector();
    let first = c.sample().unwrap();
    // Since boot: 200 busy (user 100 + system 100) of 1000 ticks.
    assert_eq!(first.cpu_usage_percent, 20.0);
    assert_eq!(first.memory_usage_percent, 75.0);
    assert_eq!(first.network_io_bytes_recv, 700);
    assert_eq!(first.network_io_bytes_sent, 400);
    assert_eq!(first.load_average, [0.5, 1.25, 2.0]);
    assert_eq!(first.uptime_seconds, 12345);
    assert_eq!(
        first.thermal_state,
        ThermalState {
            max_temp: 65.0,
            avg_temp: 55.0,
            min_temp: 45.0,
            sensor_count: 3,
        }
    );
    assert!((0.0..=100.0).contains(&first.disk_usage_percent));

    write(&tree.proc(), "stat", STAT_2);
    let second = c.sample().unwrap();
    assert_eq!(second.cpu_usage_percent, 40.0);

    // No tick elapsed: the previous value stands rather than a meaningless 0 or NaN.
    let third = c.sample().unwrap();
    assert_eq!(third.cpu_usage_percent, 40.0);
}

#[test]
fn no_sensors_is_normal() {
    let tree = FakeTree::new();
    let health = tree.collector().sample().unwrap();
    assert_eq!(health.thermal_state, ThermalState::default());
    assert_eq!(health.thermal_state.sensor_count, 0);
}

#[test]
fn missing_files_are_named() {
    for rel in ["stat", "meminfo", "net/dev", "loadavg", "uptime"] {
        let tree = FakeTree::new();
        fs::remove_file(tree.proc().join(rel)).unwrap();
        let err = tree.collector().sample().unwrap_err();
        assert!(matches!(err, CollectError::Read { .. }), "{rel}: {err:?}");
        assert_eq!(err.path(), tree.proc().join(rel));
        assert!(err.to_string().contains(rel), "{rel}: {err}");
    }
    let tree = FakeTree::new();
    let missing = tree.dir.path().join("no-such-dir");
    let err = SystemCollector::new(&missing)
        .with_proc_root(tree.proc())
        .with_sys_root(tree.sys())
        .sample()
        .unwrap_err();
    assert!(matches!(err, CollectError::DiskUsage { .. }), "{err:?}");
    assert_eq!(err.path(), missing);
}

#[test]
fn garbled_files_are_named() {
    let cases = [
        ("stat", "intr 1 2 3\n"),
        ("stat", "cpu 1 2\n"),
        ("meminfo", "MemFree: 10 kB\n"),
        ("meminfo", "MemTotal: lots kB\nMemAvailable: 1 kB\n"),
        ("net/dev", "hello world\n"),
        ("net/dev", "Inter-| x\n face | y\n  eth0: 1 2 3\n"),
        ("loadavg", "high\n"),
        ("uptime", "\n"),
    ];
    for (rel, text) in cases {
        let tree = FakeTree::new();
        write(&tree.proc(), rel, text);
        let err = tree.collector().sample().unwrap_err();
        assert!(
            matches!(err, CollectError::Garbled { .. }),
            "{rel} {text:?}: {err:?}"
        );
        assert!(err.to_string().contains(rel), "{err}");
    }
}

#[test]
fn a_failed_sample_keeps_the_cpu_baseline() {
    let tree = FakeTree::new();
    let mut c = tree.collector();
    c.sample().unwrap();
    write(&tree.proc(), "stat", STAT_2);
    fs::remove_file(tree.proc().join("uptime")).unwrap();
    assert!(c.sample().is_err());
    write(&tree.proc(), "uptime", "1 1\n");
    assert_eq!(c.sample().unwrap().cpu_usage_percent, 40.0);
}

#[test]
fn disk_usage_math_matches_df() {
    // 1000 blocks, 400 free of which 300 available to users: 600 used of 900 usable.
    assert!((disk_usage_percent(1000, 400, 300) - 600.0 / 900.0 * 100.0).abs() < 1e-9);
    assert_eq!(disk_usage_percent(1000, 1000, 1000), 0.0);
    assert_eq!(disk_usage_percent(1000, 50, 0), 100.0);
    assert_eq!(disk_usage_percent(0, 0, 0), 0.0);
}

#[test]
fn the_real_machine_works() {
    let mut c = SystemCollector::new("/");
    for _ in 0..2 {
        let h = c.sample().unwrap();
        for v in [
            h.cpu_usage_percent,
            h.memory_usage_percent,
            h.disk_usage_percent,
        ] {
            assert!((0.0..=100.0).contains(&v), "{h:?}");
        }
        assert!(h.load_average.iter().all(|l| *l >= 0.0));
        if h.thermal_state.sensor_count > 0 {
            let t = h.thermal_state;
            assert!(
                t.min_temp <= t.avg_temp && t.avg_temp <= t.max_temp,
                "{t:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The runner.

#[test]
fn backoff_doubles_up_to_the_cap() {
    let s = Duration::from_secs;
    let one = s(1);
    let delays: Vec<_> = (0..6).map(|n| backoff_delay(one, n)).collect();
    assert_eq!(delays, [s(1), s(2), s(4), s(8), s(10), s(10)]);
    assert_eq!(backoff_delay(one, 100), s(10));
    assert_eq!(backoff_delay(s(10), 3), s(60));
    assert_eq!(backoff_delay(s(10), 9), s(60));
    // A long interval is never shortened by failures.
    assert_eq!(backoff_delay(s(120), 1), s(120));
}

fn health(cpu: f64) -> SystemHealth {
    SystemHealth {
        timestamp: Utc::now(),
        cpu_usage_percent: cpu,
        memory_usage_percent: 10.0,
        disk_usage_percent: 10.0,
        network_io_bytes_sent: 0,
        network_io_bytes_recv: 0,
        thermal_state: ThermalState::default(),
        load_average: [0.0; 3],
        uptime_seconds: 1,
    }
}

/// Plays a script of results (then succeeds forever).
struct Scripted(Arc<Mutex<VecDeque<Result<f64, &'static str>>>>);

impl HealthSource for Scripted {
    fn sample(&mut self) -> Result<SystemHealth, CollectError> {
        match self.0.lock().unwrap().pop_front().unwrap_or(Ok(1.0)) {
            Ok(cpu) => Ok(health(cpu)),
            Err(reason) => Err(CollectError::Garbled {
                path: PathBuf::from("/fake/proc/stat"),
                reason: reason.into(),
            }),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn runner_publishes_backs_off_and_recovers() {
    let bus = EventBus::new(64);
    let mut sub = bus.subscribe();
    let script = VecDeque::from([
        Ok(1.0),
        Err("bad"),
        Err("bad"),
        Err("bad"),
        Err("worse"),
        Ok(2.0),
        Ok(3.0),
    ]);
    let start = tokio::time::Instant::now();
    let handle = spawn_system_collector(
        Scripted(Arc::new(Mutex::new(script))),
        Duration::from_secs(1),
        bus.clone(),
    )
    .unwrap();
    let mut status = handle.status_receiver();
    let mut seen = Vec::new();
    while seen.len() < 7 {
        status.changed().await.unwrap();
        let st = status.borrow_and_update().clone();
        seen.push((start.elapsed(), st));
    }
    let at: Vec<u64> = seen.iter().map(|(t, _)| t.as_secs()).collect();
    // Attempts at 0 (ok), 1, 3, 7, 15 (failures: waits of 2, 4, 8, then 10 = the cap), then
    // 25 (ok) and one interval later 26 (ok).
    assert_eq!(at, [0, 1, 3, 7, 15, 25, 26]);
    let failures: Vec<u32> = seen.iter().map(|(_, s)| s.consecutive_failures).collect();
    assert_eq!(failures, [0, 1, 2, 3, 4, 0, 0]);
    let (_, failing) = &seen[4];
    assert_eq!(failing.next_sample_in_ms, 10_000);
    let last_error = failing.last_error.as_deref().unwrap();
    assert!(last_error.contains("/fake/proc/stat") && last_error.contains("worse"));
    let (_, recovered) = &seen[6];
    assert_eq!(recovered.samples, 3);
    assert_eq!(recovered.failures, 4);
    assert_eq!(recovered.next_sample_in_ms, 1000);
    assert_eq!(
        recovered.last_sample.as_ref().unwrap().cpu_usage_percent,
        3.0
    );

    // Only the successful samples were published, in order.
    let mut published = Vec::new();
    while let Some(p) = sub.try_recv().unwrap() {
        match &*p.event {
            Event::SystemHealth(h) => published.push(h.cpu_usage_percent),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(published, [1.0, 2.0, 3.0]);

    handle.shutdown().await;
    assert!(!status.borrow().running);
}

#[tokio::test(start_paused = true)]
async fn runner_with_the_real_collector_on_a_fake_tree() {
    let tree = FakeTree::new();
    let bus = EventBus::new(64);
    let mut sub = bus.subscribe();
    let handle =
        spawn_system_collector(tree.collector(), Duration::from_secs(5), bus.clone()).unwrap();
    let first = sub.recv().await.unwrap();
    let Event::SystemHealth(h) = &*first.event else {
        panic!("{first:?}");
    };
    assert_eq!(h.memory_usage_percent, 75.0);

    // Break it: the runner reports the file and publishes nothing.
    fs::remove_file(tree.proc().join("meminfo")).unwrap();
    let mut status = handle.status_receiver();
    let st = status
        .wait_for(|s| s.consecutive_failures >= 2)
        .await
        .unwrap()
        .clone();
    assert!(st.last_error.unwrap().contains("meminfo"));
    assert_eq!(sub.try_recv().unwrap(), None);

    // Repair it: samples flow again at the normal interval.
    write(&tree.proc(), "meminfo", MEMINFO);
    let next = sub.recv().await.unwrap();
    assert!(matches!(&*next.event, Event::SystemHealth(_)));
    let st = handle.status();
    assert_eq!(st.consecutive_failures, 0);
    assert_eq!(st.samples, 2);
    assert_eq!(st.next_sample_in_ms, 5000);
    handle.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_stops_the_runner() {
    let bus = EventBus::new(8);
    let handle = spawn_system_collector(
        Scripted(Arc::new(Mutex::new(VecDeque::new()))),
        Duration::from_secs(1),
        bus.clone(),
    )
    .unwrap();
    let mut status = handle.status_receiver();
    status.wait_for(|s| s.samples >= 1).await.unwrap();
    drop(handle);
    status.wait_for(|s| !s.running).await.unwrap();
}

#[test]
fn spawning_outside_a_runtime_is_an_error_not_a_panic() {
    let r = spawn_system_collector(
        Scripted(Arc::new(Mutex::new(VecDeque::new()))),
        Duration::from_secs(1),
        EventBus::new(8),
    );
    assert!(r.is_err());
}

// ---------------------------------------------------------------------------------------------
// Event rates.

fn activity(kind: ActivityType, duration_ms: Option<u64>) -> Event {
    Event::AgentActivity(AgentActivity {
        timestamp: Utc::now(),
        agent_id: AgentId::new("hasher").unwrap(),
        workflow_id: WorkflowId::new_random(),
        activity_type: kind,
        duration_ms,
        success: kind != ActivityType::TaskFail,
        error_message: None,
        resource_usage: Default::default(),
        metadata: Default::default(),
    })
}

fn security(source: &str, level: AlertLevel) -> Event {
    Event::Security(SecurityEvent::new(
        "intrusion_detected",
        level,
        source,
        "test",
    ))
}

#[test]
fn rates_over_the_window() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut rates = EventRates::new(s(60));
    rates.observe(&activity(ActivityType::TaskStart, None), t0);
    for d in [100, 200, 300] {
        rates.observe(&activity(ActivityType::TaskComplete, Some(d)), t0);
    }
    rates.observe(&activity(ActivityType::TaskFail, Some(400)), t0 + s(10));
    rates.observe(&activity(ActivityType::TaskComplete, None), t0 + s(10));
    for _ in 0..5 {
        rates.observe(&security("dsmil-bridge", AlertLevel::Critical), t0 + s(20));
    }
    // The monitor's own security events do not feed the rate.
    rates.observe(&security("monitor", AlertLevel::Emergency), t0 + s(20));

    let r = rates.snapshot(t0 + s(30));
    assert_eq!((r.agent_completions, r.agent_failures), (4, 1));
    assert_eq!(r.agent_failure_rate, Some(0.2));
    assert_eq!(r.agent_response_samples, 4);
    assert_eq!(r.agent_response_time_mean_ms, Some(250.0));
    assert_eq!(r.agent_response_time_p95_ms, Some(400.0));
    assert_eq!(r.security_events, 5);
    assert_eq!(r.security_events_per_minute, 5.0);

    // At t0 + 60 s the first three completions leave the window.
    let r = rates.snapshot(t0 + s(60));
    assert_eq!((r.agent_completions, r.agent_failures), (1, 1));
    assert_eq!(r.agent_failure_rate, Some(0.5));
    assert_eq!(r.agent_response_time_mean_ms, Some(400.0));
    assert_eq!(r.security_events, 5);

    // Everything has left the window by t0 + 80 s.
    let r = rates.snapshot(t0 + s(80));
    assert_eq!(r.agent_failure_rate, None);
    assert_eq!(r.agent_response_time_mean_ms, None);
    assert_eq!(r.agent_response_time_p95_ms, None);
    assert_eq!(r.security_events_per_minute, 0.0);

    // Counters are since start and never forget.
    let c = rates.counters();
    assert_eq!(c.agent_task_start, 1);
    assert_eq!(c.agent_task_complete, 4);
    assert_eq!(c.agent_task_fail, 1);
    assert_eq!(c.security.critical, 5);
    assert_eq!(c.security.emergency, 1);
    let kinds: Vec<(&str, u64)> = c.by_kind().into_iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(kinds, [("agent_activity", 6), ("security", 6)]);
    assert_eq!(c.total(), 12);
}

#[test]
fn a_shorter_window_scales_to_per_minute() {
    let t0 = Instant::now();
    let mut rates = EventRates::new(Duration::from_secs(15));
    for i in 0..3 {
        rates.observe(
            &security("dsmil-bridge", AlertLevel::Warning),
            t0 + Duration::from_secs(i),
        );
    }
    let r = rates.snapshot(t0 + Duration::from_secs(5));
    assert_eq!(r.security_events, 3);
    assert_eq!(r.security_events_per_minute, 12.0);
    assert_eq!(r.window_seconds, 15.0);
}

#[test]
fn p95_is_nearest_rank() {
    let t0 = Instant::now();
    let mut rates = EventRates::default();
    for d in 1..=100 {
        rates.observe(&activity(ActivityType::TaskComplete, Some(d)), t0);
    }
    let r = rates.snapshot(t0);
    assert_eq!(r.agent_response_time_p95_ms, Some(95.0));
    assert_eq!(r.agent_response_time_mean_ms, Some(50.5));
    assert_eq!(r.agent_failure_rate, Some(0.0));
}
