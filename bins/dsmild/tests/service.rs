//! dsmild as a service: the first run with built-in agents, readiness, the systemd notification
//! protocol (a real datagram socket standing in for systemd), and where configuration and data
//! are found when no flag says.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

fn token(data: &Path) -> String {
    std::fs::read_to_string(data.join("api-token"))
        .unwrap()
        .trim()
        .to_owned()
}

fn echo_workflow(agent: &str) -> String {
    json!({
        "workflow_type": "hello",
        "execution_mode": "sequential",
        "tasks": [{"id": "greet", "agent_id": agent, "task_description": "say hello",
                   "input_data": {"message": "hello"}}]
    })
    .to_string()
}

#[test]
fn a_bare_start_runs_the_readme_workflow_on_the_built_in_agents() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &[]);
    let token = token(&data);
    let (status, r) = daemon.post("/api/workflows", &token, &echo_workflow("echo"));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        r["agent_results"][0]["result_data"],
        json!({"message": "hello"}),
        "{r}"
    );
    // With nothing declared, `auto` may choose among them.
    let (status, r) = daemon.post("/api/workflows", &token, &echo_workflow("auto"));
    assert_eq!(status, 200, "{r}");
    let (_, s) = daemon.get("/api/status", Some(&token));
    let ids: Vec<&str> = s["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["echo", "fail", "noop", "score", "sleep"], "{s}");
}

#[test]
fn built_ins_can_be_switched_off_and_never_take_auto_tasks_from_declared_agents() {
    let dir = tempfile::tempdir().unwrap();
    let off = dir.path().join("off.toml");
    std::fs::write(&off, "[builtins]\nenabled = false\n").unwrap();
    let data = dir.path().join("off");
    let daemon = Daemon::start(&data, &["--config", off.to_str().unwrap()]);
    let (status, r) = daemon.post("/api/workflows", &token(&data), &echo_workflow("echo"));
    assert_eq!(status, 400, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown agent \"echo\""),
        "{r}"
    );
    drop(daemon);

    let declared = dir.path().join("declared.toml");
    std::fs::write(
        &declared,
        "[[agents]]\nid = \"mine\"\nkind = \"builtin\"\nbuiltin = \"echo\"\n",
    )
    .unwrap();
    let data = dir.path().join("declared");
    let daemon = Daemon::start(&data, &["--config", declared.to_str().unwrap()]);
    let token = token(&data);
    for _ in 0..5 {
        let (status, r) = daemon.post("/api/workflows", &token, &echo_workflow("auto"));
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["agent_results"][0]["agent_id"], "mine", "{r}");
    }
    // Still there to be named.
    let (status, r) = daemon.post("/api/workflows", &token, &echo_workflow("noop"));
    assert_eq!((status, &r["success"]), (200, &json!(true)), "{r}");
}

/// Reads datagrams from `socket` until one contains `want`, collecting all of them.
fn until(socket: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + PATIENCE;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push(text.clone());
            if text.contains(want) {
                return;
            }
        }
    }
    panic!("no {want:?} from dsmild; got {seen:?}");
}

#[test]
fn systemd_hears_ready_watchdog_pings_while_ready_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut cmd = dsmild();
    cmd.arg("--data-dir")
        .arg(&data)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000");
    let daemon = Daemon::start_command(cmd, free_port(), &[]);
    let mut seen = Vec::new();
    until(&socket, "READY=1", &mut seen);
    assert!(
        seen.last()
            .unwrap()
            .contains("STATUS=serving on http://127.0.0.1:"),
        "{seen:?}"
    );
    until(&socket, "WATCHDOG=1", &mut seen);

    let (status, ready) = daemon.get("/api/ready", None);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    let names: Vec<&str> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["tpm", "data_dir", "learning_store", "journal"],
        "{ready}"
    );

    // The data dir gone: not ready, and the watchdog is no longer fed.
    let moved = dir.path().join("moved");
    std::fs::rename(&data, &moved).unwrap();
    let (status, r) = daemon.get("/api/ready", None);
    assert_eq!(status, 503, "{r}");
    assert_eq!(r["error"]["code"], "not_ready");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data_dir: "),
        "{r}"
    );
    until(&socket, "STATUS=not ready: data_dir", &mut seen);
    let mut buf = [0u8; 4096];
    let quiet = Instant::now() + Duration::from_secs(1);
    while Instant::now() < quiet {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(
                !text.contains("WATCHDOG=1"),
                "pinged while not ready: {text}"
            );
        }
    }
    std::fs::rename(&moved, &data).unwrap();
    until(&socket, "WATCHDOG=1", &mut seen);

    let (status, stderr) = daemon.stop(Signal::SIGTERM);
    assert!(status.success(), "{stderr}");
    until(&socket, "STOPPING=1", &mut seen);
}

#[test]
fn configuration_and_data_are_found_where_systemd_and_xdg_put_them() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("dsmil")).unwrap();
    std::fs::write(
        xdg.join("dsmil/dsmil.toml"),
        "[builtins]\nenabled = false\n[[agents]]\nid = \"from-xdg\"\nkind = \"builtin\"\nbuiltin = \"noop\"\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut cmd = dsmild();
    cmd.env("XDG_CONFIG_HOME", &xdg)
        .env("STATE_DIRECTORY", &state)
        .current_dir(dir.path());
    let daemon = Daemon::start_command(cmd, free_port(), &[]);
    let token = token(&state);
    let (_, s) = daemon.get("/api/status", Some(&token));
    let ids: Vec<&Value> = s["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&json!("from-xdg")], "{s}");
    assert!(!dir.path().join("dsmil-data").exists());
    drop(daemon);

    // systemd's ConfigurationDirectory= comes before the user's file.
    let unit = dir.path().join("unit");
    std::fs::create_dir_all(&unit).unwrap();
    std::fs::write(unit.join("dsmil.toml"), "[builtins]\nenabled = false\n").unwrap();
    let mut cmd = dsmild();
    cmd.env("XDG_CONFIG_HOME", &xdg)
        .env("CONFIGURATION_DIRECTORY", &unit)
        .env("STATE_DIRECTORY", &state);
    let daemon = Daemon::start_command(cmd, free_port(), &[]);
    let (_, s) = daemon.get("/api/status", Some(&token));
    assert_eq!(s["agents"], json!([]), "{s}");
}

/// `promtool`, from `cargo xtask services`; `None` skips (unless services are required).
pub fn promtool() -> Option<String> {
    dsmil_core::testenv::service_from_env(dsmil_core::testenv::PROMTOOL_VAR).unwrap()
}

#[test]
fn metrics_pass_promtool_and_a_local_prometheus_scrapes_them_without_the_token() {
    let Some(promtool) = promtool() else {
        eprintln!("skipping: promtool not provisioned");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("dsmil.toml");
    std::fs::write(
        &config,
        format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
    let token = token(&data);
    let spec = json!({
        "workflow_type": "mixed", "execution_mode": "sequential", "continue_on_failure": true,
        "tasks": [
            {"id": "a", "agent_id": "echo", "task_description": "d", "input_data": {}},
            {"id": "b", "agent_id": "fail", "task_description": "d", "input_data": {},
             "retry_count": 0}
        ]
    });
    let (status, r) = daemon.post("/api/workflows", &token, &spec.to_string());
    assert_eq!(status, 200, "{r}");
    // A prediction runs a similarity scan on the accelerator engine.
    let (status, r) = daemon.post("/api/learn/predict", &token, r#"{"task_description":"d"}"#);
    assert_eq!(status, 200, "{r}");

    let local = format!("http://127.0.0.1:{port}");
    let mut resp = agent().get(format!("{local}/metrics")).call().unwrap();
    assert_eq!(resp.status(), 200, "no token needed on [metrics] listen");
    let text = resp.body_mut().read_to_string().unwrap();
    let resp = agent().get(format!("{local}/api/status")).call().unwrap();
    assert_eq!(resp.status(), 404, "nothing but /metrics there");
    let resp = agent()
        .get(format!("{}/metrics", daemon.base))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 401, "the API address still wants the token");

    let mut check = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "dsmil_agent_tasks_total{agent=\"echo\",outcome=\"completed\"} 1",
        "dsmil_agent_tasks_total{agent=\"fail\",outcome=\"failed\"} 1",
        "dsmil_task_duration_seconds_count{agent=\"echo\"} 1",
        "dsmil_workflows_total{state=\"failed\"} 1",
        "dsmil_agent_circuit_state{agent=\"echo\",state=\"closed\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    for family in [
        "process_start_time_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "dsmil_task_duration_seconds_bucket",
    ] {
        assert!(text.lines().any(|l| l.starts_with(family)), "no {family}");
    }
    assert!(!text.contains("_percent"), "ratios are 0-1 `_ratio`s");
    crate::deploy::every_dashboard_query_names_an_exported_metric(&text);
}

#[test]
fn version_names_the_revision_and_features_and_the_man_page_is_written() {
    let out = dsmild().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.starts_with(&format!("dsmild {} (git ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let tss = if cfg!(feature = "tss") {
        "features: tss"
    } else {
        "features: none"
    };
    assert!(version.contains(tss), "{version}");
    let dir = tempfile::tempdir().unwrap();
    let out = dsmild()
        .arg("--generate-man")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(dir.path().join("dsmild.8")).unwrap();
    assert!(page.contains(".TH dsmild 8"), "{page}");
    assert!(
        page.contains("STATE_DIRECTORY"),
        "documents where data goes"
    );
}
