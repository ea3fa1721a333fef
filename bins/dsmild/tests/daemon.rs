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
