//! One task through bulkhead → breaker → retry → timeout → agent, under paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dsmil_coord::agent::{AgentError, AgentOutput};
use dsmil_coord::agents::BuiltinAgent;
use dsmil_coord::config::{AgentConfig, CircuitBreakerConfig, CoordConfig, RetryConfig};
use dsmil_coord::registry::{AgentRegistry, AgentSettings, RegistryError};
use dsmil_coord::resilience::{BreakerState, Window};
use dsmil_coord::runner::{TaskRun, run_task};
use dsmil_core::{AgentId, TaskId};
use serde_json::json;
use tokio::time::Instant;

fn id(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

fn run(retries: u32, timeout_ms: u64, input: serde_json::Value) -> TaskRun {
    TaskRun {
        task_id: TaskId::new("t").unwrap(),
        task_description: "work".into(),
        input_data: input,
        timeout: Duration::from_millis(timeout_ms),
        retries,
    }
}

/// Opens after two failures in a row (a count window of 2 at a 100% failure rate).
fn settings(concurrency: u32) -> AgentSettings {
    AgentSettings {
        max_concurrency: concurrency,
        circuit_breaker: CircuitBreakerConfig {
            failure_threshold: 2,
            ..CircuitBreakerConfig::default()
        },
        retry: RetryConfig {
            base_delay_ms: 10,
            ..RetryConfig::default()
        },
    }
}

#[tokio::test(start_paused = true)]
async fn a_flaky_agent_succeeds_on_retry() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let flaky = BuiltinAgent::new(id("flaky"), move |_| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 1 {
                Err(AgentError::transport(
                    "connecting",
                    std::io::Error::other("reset"),
                ))
            } else {
                Ok(AgentOutput {
                    result: json!(n),
                    ..Default::default()
                })
            }
        }
    });
    let mut reg = AgentRegistry::new();
    reg.register(Arc::new(flaky), settings(2), None).unwrap();
    let out = run_task(
        &reg.get(&id("flaky")).unwrap(),
        reg.budget(),
        &run(3, 1000, json!(null)),
    )
    .await;
    assert_eq!(out.result.unwrap().result, json!(1));
    assert_eq!(out.attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_stops_retries_and_transitions_are_heard() {
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = Arc::clone(&heard);
    let mut reg = AgentRegistry::new();
    let fail = BuiltinAgent::named(id("broken"), "fail").unwrap();
    reg.register(
        Arc::new(fail),
        settings(1),
        Some(Arc::new(move |agent: &AgentId, t| {
            h.lock().unwrap().push((agent.clone(), t.to))
        })),
    )
    .unwrap();
    let rt = reg.get(&id("broken")).unwrap();
    let out = run_task(&rt, reg.budget(), &run(5, 1000, json!({}))).await;
    assert_eq!(
        out.attempts, 3,
        "two failures open the breaker; the third attempt is refused"
    );
    assert!(
        matches!(out.result, Err(AgentError::CircuitOpen { .. })),
        "{:?}",
        out.result
    );
    assert_eq!(rt.breaker.state(), BreakerState::Open);
    assert_eq!(
        *heard.lock().unwrap(),
        vec![(id("broken"), BreakerState::Open)]
    );
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_timed_out_and_agent_time_is_counted() {
    let mut reg = AgentRegistry::new();
    reg.register(
        Arc::new(BuiltinAgent::named(id("slow"), "sleep").unwrap()),
        AgentSettings::default(),
        None,
    )
    .unwrap();
    let out = run_task(
        &reg.get(&id("slow")).unwrap(),
        reg.budget(),
        &run(1, 50, json!({"ms": 1000})),
    )
    .await;
    assert!(matches!(out.result, Err(AgentError::Timeout { .. })));
    assert_eq!(out.attempts, 2);
    assert_eq!(out.agent_time, Duration::from_millis(100));
    assert!(out.wall_time >= out.agent_time);
}

#[tokio::test(start_paused = true)]
async fn the_bulkhead_limits_concurrency_and_cancelled_tasks_give_back_their_slot() {
    let mut reg = AgentRegistry::new();
    reg.register(
        Arc::new(BuiltinAgent::named(id("s"), "sleep").unwrap()),
        settings(2),
        None,
    )
    .unwrap();
    let reg = Arc::new(reg);
    let started = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let reg = Arc::clone(&reg);
            tokio::spawn(async move {
                let rt = reg.get(&id("s")).unwrap();
                run_task(&rt, reg.budget(), &run(0, 10_000, json!({"ms": 100}))).await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().result.is_ok());
    }
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(300),
        "6 tasks, 2 at a time, 100 ms each"
    );
    let rt = reg.get(&id("s")).unwrap();
    let long = run(0, 10_000, json!({"ms": 5000}));
    let pending = run_task(&rt, reg.budget(), &long);
    assert!(
        tokio::time::timeout(Duration::from_millis(10), pending)
            .await
            .is_err()
    );
    assert_eq!(
        rt.bulkhead.available(),
        2,
        "the cancelled task released its slot"
    );
    reg.scale_concurrency(0.5);
    assert_eq!(rt.bulkhead.limit(), 1);
    reg.scale_concurrency(1.0);
    assert_eq!(rt.bulkhead.limit(), 2);
}

#[test]
fn registries_come_from_the_daemon_configuration() {
    let config = toml::from_str::<CoordConfig>(
        r#"
        [[agents]]
        id = "echo"
        kind = "builtin"
        [[agents]]
        id = "cat"
        kind = "command"
        command = "/bin/cat"
        max_concurrency = 3
        circuit_breaker = { failure_threshold = 2, recovery_timeout_seconds = 5.0, success_threshold = 1 }
        "#,
    )
    .unwrap();
    let reg = AgentRegistry::from_config(&config.agents, None).unwrap();
    assert_eq!(reg.ids(), vec![id("cat"), id("echo")]);
    let info = reg.info();
    assert_eq!(info[0].max_concurrency, 3);
    let cat = reg.get(&id("cat")).unwrap();
    assert_eq!(cat.breaker.settings().window, Window::Count(2));
    assert_eq!(cat.breaker.settings().open_duration, Duration::from_secs(5));

    let windowed = toml::from_str::<CoordConfig>(
        r#"
        [[agents]]
        id = "w"
        kind = "builtin"
        builtin = "echo"
        circuit_breaker = { window_seconds = 30.0, failure_rate_threshold = 0.5, minimum_calls = 20, slow_call_ms = 2000, slow_call_rate_threshold = 0.8, probe_timeout_seconds = 15.0 }
        retry = { jitter = 0.5 }
        "#,
    )
    .unwrap();
    let reg = AgentRegistry::from_config(&windowed.agents, None).unwrap();
    let s = reg.get(&id("w")).unwrap().breaker.settings().clone();
    assert_eq!(s.window, Window::Time(Duration::from_secs(30)));
    assert_eq!((s.failure_rate_threshold, s.minimum_calls), (0.5, 20));
    assert_eq!(s.slow_call_duration, Some(Duration::from_secs(2)));
    assert_eq!(s.probe_timeout, Duration::from_secs(15));
    assert_eq!(reg.get(&id("w")).unwrap().retry.jitter, 0.5);

    let odd: Vec<AgentConfig> = toml::from_str::<CoordConfig>(
        "[[agents]]\nid = \"x\"\nkind = \"builtin\"\nbuiltin = \"teleport\"\n",
    )
    .unwrap()
    .agents;
    let err = AgentRegistry::from_config(&odd, None).unwrap_err();
    assert!(
        matches!(&err, RegistryError::UnknownBuiltin { name, .. } if name == "teleport"),
        "{err}"
    );
    assert!(err.to_string().contains("echo"), "{err}");
}
