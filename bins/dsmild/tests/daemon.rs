//! End-to-end tests of the real `dsmild` binary: start, token, auth, errors, clean shutdown.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use nix::sys::signal::Signal;

use crate::common::*;

#[test]
fn starts_writes_a_private_token_enforces_auth_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &[]);

    let token_path = data.join("api-token");
    let mode = std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_owned();

    let (status, body) = daemon.get("/api/status", None);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = daemon.get("/api/status", Some("wrong-token-wrong-token-wrong-token"));
    assert_eq!(status, 401);
    let (status, body) = daemon.get("/api/status", Some(&token));
    assert_eq!(status, 200);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["tpm"]["backend"], "soft");
    assert_eq!(body["store"]["backend"], "sqlite");
    assert!(["portable", "avx2", "avx512"].contains(&body["accel"]["path"].as_str().unwrap()));
    assert!(body["accel"]["topology"]["total_cores"].as_u64().unwrap() >= 1);
    assert!(body["accel"]["capabilities"].is_array());
    assert!(body["accel"]["engine"]["workers"].as_u64().unwrap() >= 1);
    assert_eq!(body["accel"]["engine"]["scale"], 1.0);

    let mut resp = agent()
        .post(format!("{}/api/health", daemon.base))
        .send("")
        .unwrap();
    assert_eq!(resp.status(), 405);
    let body: serde_json::Value = resp.body_mut().read_json().unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let resp = agent()
        .get(format!("{}/api/status", daemon.base))
        .call()
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"dsmild\"")
    );

    let (status, body) = daemon.get("/api/nope", Some(&token));
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/api/nope")
    );

    // Ctrl-C is SIGINT.
    let (exit, stderr) = daemon.stop(Signal::SIGINT);
    assert!(exit.success(), "exit {exit:?}; stderr:\n{stderr}");
    assert!(
        stderr.contains(&token_path.canonicalize().unwrap().display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("NOT hardware-rooted"), "{stderr}");
    assert!(stderr.contains("dsmild stopped cleanly"), "{stderr}");
    assert!(!stderr.contains(&token), "the token must never be logged");

    // A restart keeps the token.
    let daemon = Daemon::start(&data, &["--log-format", "json"]);
    let (status, _) = daemon.get("/api/status", Some(&token));
    assert_eq!(status, 200);
    let (exit, stderr) = daemon.stop(Signal::SIGTERM);
    assert!(exit.success());
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with('{') && l.contains("\"dsmild started\"")),
        "{stderr}"
    );
}

fn run_failing(args: &[&str], config: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dsmild();
    cmd.arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args);
    if let Some(text) = config {
        let path = dir.path().join("dsmil.toml");
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(path);
    }
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "expected failure for {args:?} {config:?}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing may start before validation"
    );
    out
}

#[test]
fn bad_config_or_flags_stop_it_naming_the_field() {
    let check = |args: &[&str], config: Option<&str>, expected: &str| {
        let out = run_failing(args, config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
    };
    check(&[], Some("listne = \"127.0.0.1:1\"\n"), "listne");
    check(
        &[],
        Some("[[agents]]\nid = \"a\"\nkind = \"http\"\n"),
        "agents[0].url",
    );
    check(
        &[],
        Some("[alerts]\ndisk_percent = { warning = 95.0, critical = 90.0 }\n"),
        "alerts.disk_percent.warning",
    );
    check(&["--tpm", "hardware"], None, "--tpm");
    check(&["--listen", "localhost"], None, "--listen");
    check(&["--log-format", "xml"], None, "--log-format");
    check(&["--database-url", "mysql://x"], None, "database_url");
    check(
        &["--config", "/nonexistent/dsmil.toml"],
        None,
        "/nonexistent/dsmil.toml",
    );
}

#[test]
fn environment_variables_act_as_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = dsmild()
        .env("DSMIL_DATA_DIR", dir.path().join("data"))
        .env("DSMIL_TPM", "tss:bogus:x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown kind \"bogus\""), "{stderr}");
}

#[test]
fn an_unknown_forced_kernel_path_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dsmild()
        .env("DSMIL_DATA_DIR", dir.path().join("data"))
        .env("DSMIL_ACCEL_FORCE", "sse9")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DSMIL_ACCEL_FORCE=\"sse9\""), "{stderr}");
    assert!(!dir.path().join("data").exists());
}

/// A command agent running when dsmild is killed with -9 dies with it (PR_SET_PDEATHSIG):
/// it used to keep running beside the copy the recovered workflow starts.
#[test]
fn command_agents_die_with_a_killed_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("agent.pid");
    // The shell writes its pid and then waits for a minute; `exec` keeps that pid for sleep.
    let config = dir.path().join("dsmil.toml");
    std::fs::write(
        &config,
        format!(
            "[[agents]]\nid = \"lingering\"\nkind = \"command\"\ncommand = \"/bin/sh\"\n\
             args = [\"-c\", \"echo $$ > {}; exec sleep 60\"]\n",
            pid_file.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let spec = serde_json::json!({"workflow_type": "linger", "execution_mode": "sequential",
        "tasks": [{"id": "a", "agent_id": "lingering", "task_description": "wait"}]});
    let (status, body) = daemon.post("/api/workflows?wait=false", token.trim(), &spec.to_string());
    assert_eq!(status, 202, "{body}");
    let deadline = std::time::Instant::now() + PATIENCE;
    let agent_pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            break nix::unistd::Pid::from_raw(pid);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (status, _) = daemon.stop(Signal::SIGKILL);
    assert!(!status.success());
    // Orphaned, the agent is reaped by whoever adopts it (maybe late): a zombie counts as gone.
    let running = |pid: nix::unistd::Pid| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            // The state follows the parenthesised command name.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
        })
    };
    while running(agent_pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "agent {agent_pid} still runs after its daemon was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Guessing the token is slowed down: after ten failed checks from one address within a
/// minute, its token checks are answered 429 with Retry-After (the right token too, until the
/// window passes), while `/api/health` (no token) still answers.
#[test]
fn repeated_wrong_tokens_from_one_address_are_refused_for_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &[]);
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    for _ in 0..10 {
        let (status, body) = daemon.get("/api/status", Some("guess-guess-guess-guess-guess"));
        assert_eq!(status, 401, "{body}");
    }
    for presented in ["guess-guess-guess-guess-guess", token.trim()] {
        let resp = agent()
            .get(format!("{}/api/status", daemon.base))
            .header("Authorization", &format!("Bearer {presented}"))
            .call()
            .unwrap();
        assert_eq!(resp.status(), 429);
        let wait: u64 = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("a Retry-After in seconds");
        assert!((1..=60).contains(&wait), "{wait}");
    }
    assert_eq!(daemon.get("/api/health", None).0, 200);
    let (_, stderr) = daemon.stop(Signal::SIGTERM);
    assert!(stderr.contains("too many failed token checks"), "{stderr}");
}
