//! The configuration model against the messages an operator reads.

use super::*;
use dsmil_tpm::config::TpmBackendSpec;
use proptest::prelude::*;

fn check_invalid(toml_text: &str, expected_field: &str) {
    let err = DaemonConfig::parse_toml(toml_text)
        .and_then(|c| c.validate().map(|_| c))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(expected_field),
        "expected {expected_field:?} in {msg:?}"
    );
}

#[test]
fn empty_file_gives_valid_defaults() {
    let c = DaemonConfig::parse_toml("").unwrap();
    c.validate().unwrap();
    assert_eq!(c, DaemonConfig::default());
    assert_eq!(c.daemon.listen.to_string(), "127.0.0.1:8765");
    assert_eq!(c.tpm.tpm, TpmBackendSpec::Soft);
}

#[test]
fn default_toml_parses_back_to_the_defaults() {
    let text = template::default_toml();
    let c = DaemonConfig::parse_toml(&text).unwrap();
    assert_eq!(c, DaemonConfig::default());
}

#[test]
fn full_agent_config_parses() {
    let c = DaemonConfig::parse_toml(
        r#"
        tpm = "tss:swtpm:host=127.0.0.1,port=2321"
        default_agent = "web"
        [[agents]]
        id = "hasher"
        kind = "command"
        command = "/bin/cat"
        args = ["-u"]
        retry = { base_delay_ms = 5, max_delay_ms = 50, multiplier = 1.5, jitter = 0.0 }
        [[agents]]
        id = "web"
        kind = "http"
        url = "http://127.0.0.1:9000/run"
        circuit_breaker = { failure_threshold = 2 }
        [alerts]
        cpu_percent = { warning = 70.0, critical = 90.0 }
        [websocket]
        max_clients = 50
        "#,
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.coord.agents[1].circuit_breaker.failure_threshold, 2);
    assert_eq!(c.coord.agents[1].circuit_breaker.success_threshold, 3);
    assert_eq!(c.monitor.alerts.cpu_percent.warning, 70.0);
    assert_eq!(c.monitor.alerts.memory_percent.warning, 85.0);
    assert_eq!(c.monitor.websocket.max_clients, 50);
    assert_eq!(c.monitor.websocket.queue_depth, 256);
    assert_eq!(
        c.tpm.tpm,
        TpmBackendSpec::Tss {
            tcti: "swtpm:host=127.0.0.1,port=2321".into()
        }
    );
}

#[test]
fn bad_inputs_name_the_field() {
    check_invalid("listne = \"127.0.0.1:1\"", "listne");
    check_invalid("listen = \"localhost\"", "listen");
    check_invalid("listen = \"127.0.0.1:0\"", "listen");
    check_invalid("tpm = \"hardware\"", "tss:<TCTI>");
    check_invalid("tpm = \"tss:serial:/dev/x\"", "unknown kind \"serial\"");
    check_invalid("log_format = \"xml\"", "log_format");
    check_invalid("database_url = \"mysql://x\"", "database_url");
    check_invalid("event_bus_capacity = 0", "event_bus_capacity");
    check_invalid(
        "http_header_timeout_secs = 0",
        "http_header_timeout_secs: is 0",
    );
    check_invalid(
        "http_header_timeout_secs = 3601",
        "http_header_timeout_secs",
    );
    check_invalid("max_connections = 7", "max_connections: is 7");
    check_invalid("default_agent = \"ghost\"", "default_agent");
    check_invalid(
        "[[agents]]\nid = \"w\"\nkind = \"http\"\nurl = \"http://x/run\"\ntls = { ca = \"/c.pem\" }",
        "not an https:// URL",
    );
    check_invalid(
        "[[agents]]\nid = \"w\"\nkind = \"http\"\nurl = \"https://x/run\"\ntls = { cert = \"/c.pem\" }",
        "tls.key",
    );
    check_invalid(
        "[[agents]]\nid = \"c\"\nkind = \"command\"\ncommand = \"/bin/true\"\ntls = { ca = \"/c.pem\" }",
        "only used by http agents",
    );
    check_invalid(
        "[alerts]\ncpu_percent = { warning = 99.0, critical = 95.0 }",
        "alerts.cpu_percent.warning",
    );
    check_invalid(
        "[websocket]\nqueue_depth = 0",
        "websocket.queue_depth: is 0",
    );
    check_invalid(
        "[websocket]\nmax_message_bytes = 100",
        "websocket.max_message_bytes",
    );
    check_invalid("[websocket]\nmax_clinets = 5", "max_clinets");
    check_invalid(
        "[websocket]\nping_interval_seconds = 30\npong_timeout_seconds = 30",
        "websocket.pong_timeout_seconds: is 30, which is not above",
    );
    check_invalid(
        "[websocket]\nwrite_timeout_ms = 10",
        "websocket.write_timeout_ms",
    );
    check_invalid(
        "[[agents]]\nid = \"a\"\nkind = \"command\"",
        "agents[0].command: is required",
    );
    check_invalid(
        "[[agents]]\nid = \"a\"\nkind = \"http\"\nurl = \"ftp://x\"",
        "agents[0].url",
    );
    check_invalid(
        "[[agents]]\nid = \"a\"\nkind = \"builtin\"\nurl = \"http://x\"",
        "agents[0].url: is only used by http",
    );
    check_invalid(
        "[[agents]]\nid = \"a b\"\nkind = \"builtin\"",
        "agent id \"a b\"",
    );
    check_invalid(
        "[[agents]]\nid = \"a\"\nkind = \"builtin\"\n[[agents]]\nid = \"a\"\nkind = \"builtin\"",
        "agents[1].id: \"a\" is declared twice",
    );
    check_invalid(
        "[[agents]]\nid = \"a\"\nkind = \"builtin\"\nmax_concurrency = 0",
        "agents[0].max_concurrency",
    );
    check_invalid(
        "[[agents]]\nid = \"a\"\nkind = \"builtin\"\nretry = { jitter = 1.5 }",
        "agents[0].retry.jitter",
    );
    check_invalid(
        "[[agents]]\nid = \"a\"\nkind = \"builtin\"\nretry = { base_delay_ms = 500, max_delay_ms = 100 }",
        "agents[0].retry.base_delay_ms",
    );
    check_invalid(
        "[[agents]]\nid = \"a\"\nkind = \"builtin\"\ncircuit_breaker = { failure_threshold = 0 }",
        "agents[0].circuit_breaker.failure_threshold",
    );
    check_invalid(
        "[[agents]]\nid = \"a\"\nkind = \"builtin\"\ncircuit_breaker = { window_calls = 5, window_seconds = 3.0 }",
        "agents[0].circuit_breaker.window_seconds",
    );
    check_invalid(
        "[[agents]]\nid = \"a\"\nkind = \"builtin\"\ncircuit_breaker = { failure_rate_threshold = 1.5 }",
        "agents[0].circuit_breaker.failure_rate_threshold",
    );
    check_invalid(
        "[[agents]]\nid = \"a\"\nkind = \"builtin\"\ntimeout = 3",
        "timeout",
    );
}

proptest! {
    #[test]
    fn any_text_parses_or_fails_without_panicking(text in "\\PC{0,200}") {
        if let Ok(c) = DaemonConfig::parse_toml(&text) {
            let _ = c.validate();
        }
    }
}

#[test]
fn the_template_documents_every_field_and_parses_back() {
    let text = template::default_toml();
    for key in sections::known_keys() {
        assert!(
            text.contains(&format!("\n{key} = "))
                || text.contains(&format!("\n# {key} = "))
                || text.contains(&format!("[{key}]"))
                || text.contains(&format!("[[{key}]]")),
            "{key} is missing from the template:\n{text}"
        );
    }
    for doc in [
        "# Where state lives",
        "# Tasks run at once on this agent",
        "# CPU usage, %",
        "warning: Value at or above which a warning is raised",
        "failure_threshold: Consecutive failures that open the circuit",
    ] {
        assert!(text.contains(doc), "{doc:?} is missing:\n{text}");
    }
    assert_eq!(
        DaemonConfig::parse_toml(&text).unwrap(),
        DaemonConfig::default()
    );
}

#[test]
fn the_commented_cluster_table_is_a_valid_cluster_once_uncommented() {
    let text = template::default_toml();
    let table = text
        .split("# [cluster]\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    let settings: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')))
        .filter(|l| !l.contains("\"...\""))
        .collect();
    assert!(
        settings.iter().any(|l| l.starts_with("nats = [\"nats://")),
        "{table}"
    );
    let config = DaemonConfig::parse_toml(&format!("[cluster]\n{}\n", settings.join("\n")))
        .unwrap_or_else(|e| panic!("{e}\n{table}"));
    let cluster = config.cluster.cluster.unwrap();
    assert_eq!(cluster.lease_seconds, 5);
    assert_eq!(cluster.name, "dsmil");
}

#[test]
fn the_commented_agent_entry_is_a_valid_agent_once_uncommented() {
    let text = template::default_toml();
    let entry = text.split("# [[agents]]\n").nth(1).unwrap();
    // Every `# key = value` line of the example, except the fields of other kinds of agent.
    let settings: Vec<&str> = entry
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')))
        .filter(|l| {
            !["url =", "builtin =", "tls ="]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .collect();
    assert!(settings.len() >= 8, "{settings:?}");
    let c = DaemonConfig::parse_toml(&format!("[[agents]]\n{}\n", settings.join("\n"))).unwrap();
    c.validate().unwrap();
    assert_eq!(c.coord.agents[0].id.as_str(), "hasher");
    assert_eq!(c.coord.agents[0].circuit_breaker.failure_threshold, 5);
    // The `tls` example is a valid table for an https:// agent.
    let tls = entry
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .find(|l| l.starts_with("tls = {"))
        .unwrap();
    let https = format!(
        "[[agents]]\nid = \"web\"\nkind = \"http\"\nurl = \"https://agent.example:9000/run\"\n{tls}\n"
    );
    let c = DaemonConfig::parse_toml(&https).unwrap();
    c.validate().unwrap();
    assert!(
        c.coord.agents[0]
            .tls
            .as_ref()
            .is_some_and(|t| t.ca.is_some() && t.key.is_some())
    );
}

#[test]
fn unknown_keys_and_bad_types_name_the_field() {
    check_invalid(
        "[alerts]\ncpu_percent = { warning = \"high\", critical = 95.0 }",
        "alerts.cpu_percent.warning",
    );
    check_invalid("[[agents]]\nid = \"a\"\nkind = \"robot\"", "agents[0].kind");
    check_invalid("shutdown_grace_seconds = -1", "shutdown_grace_seconds");
    let err = DaemonConfig::parse_toml("listne = 1").unwrap_err();
    assert_eq!(err.field(), Some("listne"));
    assert!(err.to_string().contains("`listen`"), "{err}");
}
