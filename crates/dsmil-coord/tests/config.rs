//! Configuration straight into runtime settings: one set of defaults for agents declared in TOML
//! and agents registered in code, and one validation for both.

use std::sync::Arc;
use std::time::Duration;

use dsmil_coord::agents::BuiltinAgent;
use dsmil_coord::config::{AgentSettings, CircuitBreakerConfig, CoordConfig, RetryConfig};
use dsmil_coord::registry::{AgentRegistry, RegistryError};
use dsmil_coord::resilience::Window;
use dsmil_core::AgentId;

fn id(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}

fn from_toml(text: &str) -> CoordConfig {
    toml::from_str(text).unwrap()
}

#[test]
fn code_and_toml_agents_get_the_same_defaults() {
    let config = from_toml("[[agents]]\nid = \"echo\"\nkind = \"builtin\"\n");
    let toml_reg = AgentRegistry::from_config(&config.agents, None).unwrap();
    let mut code_reg = AgentRegistry::new();
    code_reg
        .register(
            Arc::new(BuiltinAgent::named(id("echo"), "echo").unwrap()),
            AgentSettings::default(),
            None,
        )
        .unwrap();
    let (a, b) = (
        toml_reg.get(&id("echo")).unwrap(),
        code_reg.get(&id("echo")).unwrap(),
    );
    assert_eq!(a.breaker.settings(), b.breaker.settings());
    assert_eq!(a.retry, b.retry);
    assert_eq!(a.bulkhead.limit(), b.bulkhead.limit());
    assert_eq!(toml_reg.info()[0].max_concurrency, 4);
    assert_eq!(config.agents[0].settings(), AgentSettings::default());
    // The seed's breaker: five failures in a row open it for 60 s; three probes close it.
    let s = a.breaker.settings();
    assert_eq!(s.window, Window::Count(5));
    assert_eq!((s.minimum_calls, s.failure_rate_threshold), (5, 1.0));
    assert_eq!(s.open_duration, Duration::from_secs(60));
    assert_eq!(s.half_open_permits, 3);
    assert_eq!(s.slow_call_duration, None, "the seed has no slow-call rule");
    assert_eq!(s.probe_timeout, Duration::from_secs(60));
    let policy = a.retry.policy(3);
    assert_eq!(policy.max_attempts, 3);
    assert_eq!(policy.base_delay, Duration::from_millis(100));
    assert_eq!(policy.max_delay, Duration::from_secs(10));
}

/// What validation says about `settings`, and what registering them in code says.
fn check(settings: AgentSettings) -> (Option<String>, Option<String>) {
    let validated = settings.validate().err().map(|e| e.to_string());
    let mut reg = AgentRegistry::new();
    let registered = reg
        .register(
            Arc::new(BuiltinAgent::named(id("echo"), "echo").unwrap()),
            settings,
            None,
        )
        .err()
        .map(|e| match e {
            RegistryError::Invalid { source, .. } => source.to_string(),
            other => panic!("unexpected {other}"),
        });
    (validated, registered)
}

#[test]
fn registering_in_code_is_validated_as_an_entry_is() {
    let cases = [
        (
            AgentSettings {
                max_concurrency: 0,
                ..AgentSettings::default()
            },
            "max_concurrency",
        ),
        (
            AgentSettings {
                circuit_breaker: CircuitBreakerConfig {
                    failure_threshold: 0,
                    ..Default::default()
                },
                ..AgentSettings::default()
            },
            "circuit_breaker.failure_threshold",
        ),
        (
            AgentSettings {
                circuit_breaker: CircuitBreakerConfig {
                    window_calls: Some(3),
                    ..Default::default()
                },
                ..AgentSettings::default()
            },
            "circuit_breaker.window_calls",
        ),
        (
            AgentSettings {
                circuit_breaker: CircuitBreakerConfig {
                    window_calls: Some(3),
                    minimum_calls: Some(4),
                    ..Default::default()
                },
                ..AgentSettings::default()
            },
            "circuit_breaker.minimum_calls",
        ),
        (
            AgentSettings {
                circuit_breaker: CircuitBreakerConfig {
                    recovery_timeout_seconds: f64::NAN,
                    ..Default::default()
                },
                ..AgentSettings::default()
            },
            "circuit_breaker.recovery_timeout_seconds",
        ),
        (
            AgentSettings {
                retry: RetryConfig {
                    jitter: 2.0,
                    ..Default::default()
                },
                ..AgentSettings::default()
            },
            "retry.jitter",
        ),
    ];
    for (settings, field) in cases {
        let (validated, registered) = check(settings);
        let validated = validated.unwrap_or_else(|| panic!("{field} passed validation"));
        assert!(validated.starts_with(&format!("{field}:")), "{validated}");
        assert_eq!(registered.as_deref(), Some(validated.as_str()));
    }
    assert_eq!(check(AgentSettings::default()), (None, None));
}

#[test]
fn the_daemon_configuration_catches_what_the_registry_would_refuse() {
    // A window too small for the default minimum (failure_threshold) is a configuration error
    // naming the field, not a start-up failure.
    let config = from_toml(
        "[[agents]]\nid = \"echo\"\nkind = \"builtin\"\ncircuit_breaker = { window_calls = 2 }\n",
    );
    let err = config.validate().unwrap_err();
    assert_eq!(err.field, "agents[0].circuit_breaker.window_calls");
    let err = AgentRegistry::from_config(&config.agents, None).unwrap_err();
    assert!(
        matches!(&err, RegistryError::Invalid { source, .. } if source.field == "circuit_breaker.window_calls"),
        "{err}"
    );
    let missing = from_toml("[[agents]]\nid = \"cmd\"\nkind = \"command\"\n");
    assert_eq!(missing.validate().unwrap_err().field, "agents[0].command");
    let err = AgentRegistry::from_config(&missing.agents, None).unwrap_err();
    assert_eq!(
        dsmil_coord::error_chain(&err),
        "agents.cmd: invalid setting: command: is required for command agents"
    );
}
