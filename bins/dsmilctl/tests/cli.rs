//! Tests of the real `dsmilctl` binary: offline config commands, and `status` against a real
//! dsmild (the sibling binary in the same target directory, built by `cargo xtask test`).

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

mod common;

use common::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn config_default_is_valid_and_check_names_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out = dsmilctl(&["config", "default"]);
    assert!(out.status.success());
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &out.stdout).unwrap();
    let out = dsmilctl(&["config", "check", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid (0 agents)"));

    let out = dsmilctl(&["--json", "config", "check", good.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[agents]]\nid = \"x\"\nkind = \"command\"\nmax_concurrency = 0\ncommand = \"/bin/true\"\n").unwrap();
    let out = dsmilctl(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("agents[0].max_concurrency"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn status_without_a_daemon_or_token_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("api-token");
    let out = dsmilctl(&["--token-file", token.to_str().unwrap(), "status"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot read the API token"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(&token, "t".repeat(64)).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = dsmilctl(&[
        "--url",
        &url,
        "--token-file",
        token.to_str().unwrap(),
        "status",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot reach dsmild"),
        "{}",
        text(&out.stderr)
    );
}

/// The dsmild binary next to this dsmilctl, if it was built.
#[test]
fn status_against_a_real_daemon_in_text_and_json() {
    let Some(dsmild) = sibling_dsmild() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, url, token) = start_daemon(
        dsmild,
        "[[agents]]\nid = \"echo\"\nkind = \"command\"\ncommand = \"/bin/cat\"\n",
        dir.path(),
    );
    let args = [
        "--url",
        &url,
        "--token-file",
        token.to_str().unwrap(),
        "status",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = dsmilctl(&args);
        if out.status.success() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "no status: {}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = text(&out.stdout);
    assert!(stdout.contains("TPM:    soft"), "{stdout}");
    assert!(stdout.contains("accel:  "), "{stdout}");
    assert!(stdout.contains("echo (command, max 4 at once)"), "{stdout}");

    let mut json_args = vec!["--json"];
    json_args.extend_from_slice(&args);
    let out = dsmilctl(&json_args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["agents"][0]["id"], "echo");

    std::fs::write(&token, "x".repeat(64)).unwrap();
    let out = dsmilctl(&args);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
}

#[test]
fn learn_import_checks_the_file_first_then_predicts() {
    let Some(dsmild) = sibling_dsmild() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, url, token) = start_daemon(dsmild, "", dir.path());
    let token = token.to_str().unwrap().to_owned();
    let record = |agent: &str, text: &str, success: f64| {
        serde_json::json!({"agent_id": agent, "task_type": "job", "task_description": text,
            "execution_time_ms": 20, "success_rate": success})
        .to_string()
    };
    let mut lines = Vec::new();
    for i in 0..1200 {
        lines.push(record(
            "indexer",
            &format!("rebuild the search index shard {i}"),
            1.0,
        ));
        lines.push(record(
            "mailer",
            &format!("rebuild the search index shard {i}"),
            0.2,
        ));
    }
    let good = dir.path().join("good.ndjson");
    std::fs::write(&good, lines.join("\n") + "\n").unwrap();
    let mut broken = lines.clone();
    broken.insert(
        700,
        r#"{"agent_id":"x","task_type":"job","execution_time_ms":1,"success_rate":1,"speed":9}"#
            .into(),
    );
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, broken.join("\n")).unwrap();

    let base = ["--url", url.as_str(), "--token-file", token.as_str()];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        dsmilctl(&args)
    };
    let out = run(&["learn", "import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.ndjson:701") && err.contains("speed"),
        "{err}"
    );
    let out = run(&["--json", "status"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["store"]["records"], 0, "a bad file sends nothing");

    let out = run(&["learn", "import", "--batch", "500", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("imported 2400 records"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&[
        "--json",
        "learn",
        "predict",
        "rebuild the search index of the archive",
        "--context",
        r#"{"size": 10}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["predicted_agent"], "indexer", "{p}");
    let out = run(&[
        "learn",
        "predict",
        "rebuild the search index",
        "--exclude",
        "indexer",
    ]);
    assert!(
        text(&out.stdout).starts_with("mailer"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["learn", "predict", "x", "--context", "[1]"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("JSON object"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_prints_progress_and_fails_when_the_workflow_fails() {
    let Some(dsmild) = sibling_dsmild() else {
        return;
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/dsmil-coord/examples");
    let dir = tempfile::tempdir().unwrap();
    let agents = examples.join("agents").canonicalize().unwrap();
    let toml = std::fs::read_to_string(examples.join("dsmil.toml"))
        .unwrap()
        .replace(
            "crates/dsmil-coord/examples/agents",
            agents.to_str().unwrap(),
        )
        // A busy machine's CPU-critical alert would pause these non-critical workflows; the
        // responses have tests of their own.
        + "\n[responses]\nenabled = false\n";
    let (_daemon, url, token) = start_daemon(dsmild, &toml, dir.path());
    let token = token.to_str().unwrap().to_owned();
    let run = |extra: &[&str]| {
        let mut args = vec!["--url", url.as_str(), "--token-file", token.as_str()];
        args.extend_from_slice(extra);
        dsmilctl(&args)
    };
    let fan = examples.join("workflows/fan-out.toml");
    let out = run(&["run", fan.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("started") && err.contains("ok    retry on flaky"),
        "{err}"
    );
    assert!(
        text(&out.stdout).contains("completed"),
        "{}",
        text(&out.stdout)
    );

    let failing = dir.path().join("failing.toml");
    std::fs::write(
        &failing,
        std::fs::read_to_string(&fan)
            .unwrap()
            .replace("retry_count = 2", "retry_count = 0"),
    )
    .unwrap();
    let out = run(&["--json", "run", failing.to_str().unwrap()]);
    assert!(!out.status.success());
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["state"], "failed");
}

/// An agent whose circuit opens at its first failure: an audited event.
const BROKEN_AGENT: &str = "[[agents]]\nid = \"broken\"\nkind = \"builtin\"\nbuiltin = \"fail\"\ncircuit_breaker = { failure_threshold = 1 }\n";

/// A one-task workflow on [`BROKEN_AGENT`], written under `dir`.
fn failing_workflow(dir: &Path) -> PathBuf {
    let spec = dir.join("w.toml");
    std::fs::write(
        &spec,
        "workflow_type = \"t\"\nexecution_mode = \"sequential\"\n[[tasks]]\nid = \"a\"\nagent_id = \"broken\"\ntask_description = \"fail\"\nretry_count = 0\n",
    )
    .unwrap();
    spec
}

#[test]
fn audit_verify_checks_the_daemons_log_offline_and_names_tampering() {
    let Some(dsmild) = sibling_dsmild() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, url, token) = start_daemon(dsmild, BROKEN_AGENT, dir.path());
    let spec = failing_workflow(dir.path());
    let out = dsmilctl(&[
        "--url",
        &url,
        "--token-file",
        token.to_str().unwrap(),
        "run",
        spec.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "the workflow fails");
    // A clean stop signs the last batch: the circuit opening is in the log.
    let pid = daemon.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    daemon.0.wait().unwrap();
    let audit_dir = dir.path().join("data/audit");
    let out = dsmilctl(&["--json", "audit", "verify", audit_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["entries"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(summary["entries"], summary["signed_entries"]);
    // The signer's key is a PEM public key that openssl reads as a P-256 key.
    let key = audit_dir.join("signer.pub");
    let shown = Command::new("openssl")
        .args(["pkey", "-pubin", "-noout", "-text", "-in"])
        .arg(&key)
        .output()
        .expect("openssl (Debian's openssl package) runs");
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert!(
        text(&shown.stdout).contains("prime256v1"),
        "{}",
        text(&shown.stdout)
    );
    let log = audit_dir.join("audit.log");
    let original = std::fs::read_to_string(&log).unwrap();
    assert!(original.contains("circuit_breaker_open"), "{original}");
    std::fs::write(&log, original.replacen("broken", "healthy", 1)).unwrap();
    // The entry changed: the first that names the agent (after the daemon's start entry).
    let changed = original
        .lines()
        .filter(|l| l.starts_with(r#"{"type":"entry""#))
        .position(|l| l.contains("broken"))
        .unwrap();
    let out = dsmilctl(&["audit", "verify", audit_dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("NOT intact") && err.contains(&format!("entry {changed})")),
        "{err}"
    );
}

/// `audit prove` fetches an entry's inclusion proof from a running daemon and checks it: the
/// entry is the log's line, the proof leads to the signed root; an unsigned entry and a
/// tree head that is not the proof's are refused with a reason.
#[test]
fn audit_prove_checks_an_entry_of_the_running_daemon() {
    let Some(dsmild) = sibling_dsmild() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, url, token) = start_daemon(dsmild, BROKEN_AGENT, dir.path());
    let ctl = |extra: &[&str]| ctl_at(&url, &token, extra);
    let spec = failing_workflow(dir.path());
    assert!(!ctl(&["run", spec.to_str().unwrap()]).status.success());
    // The circuit opening is entry 0; its batch is signed within a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let proof = loop {
        let out = ctl(&["--json", "audit", "prove", "0"]);
        if out.status.success() {
            break serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
        }
        let err = text(&out.stderr);
        assert!(err.contains("not covered by a signed checkpoint"), "{err}");
        assert!(Instant::now() < deadline, "entry 0 was never signed: {err}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(proof["verified"], true);
    let log = std::fs::read_to_string(dir.path().join("data/audit/audit.log")).unwrap();
    assert_eq!(
        proof["entry"].as_str(),
        log.lines().next(),
        "the entry as written"
    );
    let head = format!("{}:{}", proof["tree_size"], proof["root"].as_str().unwrap());
    let out = ctl(&["audit", "prove", "0", "--head", &head]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("the trusted tree head"));

    let out = ctl(&[
        "audit",
        "prove",
        "0",
        "--head",
        &format!("1:{}", "0".repeat(64)),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not the trusted"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&["audit", "prove", "999999"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("entry 999999 is not covered by a signed checkpoint"),
        "{}",
        text(&out.stderr)
    );

    // `audit consistency`: the signed log of 1 entry is a prefix of the latest, checked here;
    // with the root of entry 0's tree as trusted, and refused with another root.
    let out = ctl(&["--json", "audit", "consistency", "--from", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let consistency: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(consistency["from_size"], 1);
    let from_root = consistency["from_root"].as_str().unwrap().to_owned();
    let out = ctl(&[
        "audit",
        "consistency",
        "--from",
        "1",
        "--from-root",
        &from_root,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("is a prefix of the log of"));
    let out = ctl(&[
        "audit",
        "consistency",
        "--from",
        "1",
        "--from-root",
        &"ab".repeat(32),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("it was rewritten"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&["audit", "consistency", "--from", "999999"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid_range") || text(&out.stderr).contains("latest signed"),
        "{}",
        text(&out.stderr)
    );
    // On one host no one witnesses the log.
    let out = ctl(&["audit", "witnesses"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("one host"));
}

#[test]
fn tpm_info_and_a_quote_tpm2_checkquote_accepts() {
    let Some(dsmild) = sibling_dsmild() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, url, token) = start_daemon(dsmild, "", dir.path());
    let ctl = |extra: &[&str]| ctl_at(&url, &token, extra);
    let out = ctl(&["tpm", "info"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info = text(&out.stdout);
    assert!(
        info.contains("TPM backend:     soft (NOT hardware-rooted)"),
        "{info}"
    );
    assert!(info.contains("dsmil-audit"), "{info}");

    let quote_dir = dir.path().join("quote");
    let out = ctl(&[
        "tpm",
        "quote",
        "--pcrs",
        "0,1,7",
        "--nonce",
        "deadbeef",
        "--out",
        quote_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("tpm2_checkquote -u"),
        "{}",
        text(&out.stdout)
    );
    for f in ["quote.msg", "quote.sig", "quote.pcrs", "ak.pub.pem"] {
        assert!(quote_dir.join(f).is_file(), "{f} missing");
    }
    let tools = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("tpm2_checkquote").is_file()));
    if tools {
        let check = |nonce: &str| {
            Command::new("tpm2_checkquote")
                .current_dir(&quote_dir)
                .args(["-u", "ak.pub.pem", "-m", "quote.msg", "-s", "quote.sig"])
                .args(["-f", "quote.pcrs", "-g", "sha256", "-q", nonce])
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(check("deadbeef"));
        assert!(!check("deadbeee"));
    }
    // Bad arguments are named before anything is sent.
    let out = ctl(&[
        "tpm", "quote", "--pcrs", "0,24", "--nonce", "00", "--out", "x",
    ]);
    assert!(
        text(&out.stderr).contains("out of range"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&[
        "tpm", "quote", "--pcrs", "0", "--nonce", "xyz", "--out", "x",
    ]);
    assert!(
        text(&out.stderr).contains("not hexadecimal"),
        "{}",
        text(&out.stderr)
    );

    // `audit verify --head`: a log without the trusted tree head is not intact.
    let pid = daemon.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    daemon.0.wait().unwrap();
    let audit_dir = dir.path().join("data/audit");
    let out = dsmilctl(&["--json", "audit", "verify", audit_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = dsmilctl(&[
        "audit",
        "verify",
        audit_dir.to_str().unwrap(),
        "--head",
        "99:00",
    ]);
    assert!(
        text(&out.stderr).contains("SIZE:ROOT"),
        "{}",
        text(&out.stderr)
    );
    let head = format!("1:{}", "0".repeat(64));
    let out = dsmilctl(&[
        "audit",
        "verify",
        audit_dir.to_str().unwrap(),
        "--head",
        &head,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("trusted tree head"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn watch_tails_the_live_stream() {
    let Some(dsmild) = sibling_dsmild() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, url, token) = start_daemon(
        dsmild,
        "health_interval_ms = 200\n[alerts]\ncpu_percent = { warning = 0.0, critical = 95.0 }\n",
        dir.path(),
    );
    let ctl = |extra: &[&str]| ctl_at(&url, &token, extra);
    // Text: the greeting, then health lines (and the CPU alert every client gets).
    let out = ctl(&["watch", "--types", "system_health", "--count", "6"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    assert!(lines.starts_with("connected (client"), "{lines}");
    assert!(
        lines.contains("subscribed to [\"system_health\"]"),
        "{lines}"
    );
    assert!(
        lines.contains("system_health") && lines.contains("cpu "),
        "{lines}"
    );
    assert!(lines.contains("ALERT"), "{lines}");
    // JSON: one message per line, sequence numbers without gaps.
    let out = ctl(&["--json", "watch", "--count", "5"]);
    let seqs: Vec<u64> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    // An unknown type is refused with the daemon's reason.
    let out = ctl(&["watch", "--types", "cpu"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a metric type"),
        "{}",
        text(&out.stderr)
    );
    // A wrong token says so.
    std::fs::write(&token, "x".repeat(64)).unwrap();
    let out = ctl(&["watch", "--count", "1"]);
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
}

#[test]
fn cluster_status_on_one_host_and_on_a_cluster_node() {
    let Some(dsmild) = sibling_dsmild() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for sub in ["single", "node"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let (_single, url, token) = start_daemon(dsmild.clone(), "", &dir.path().join("single"));
    let out = ctl_at(&url, &token, &["cluster", "status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("runs on one host"),
        "{}",
        text(&out.stdout)
    );

    use dsmil_core::testenv::{NATS_TOKEN_FILE_VAR, NATS_URLS_VAR, service_from_env};
    let Some(urls) = service_from_env(NATS_URLS_VAR).unwrap() else {
        return;
    };
    let nats_token = service_from_env(NATS_TOKEN_FILE_VAR).unwrap().unwrap();
    let urls: Vec<String> = urls.split(',').map(|u| format!("{u:?}")).collect();
    let prefix = format!("ctl{}", std::process::id());
    let config = format!(
        "[[agents]]\nid = \"echo\"\nkind = \"builtin\"\n\n[cluster]\nnats = [{}]\nname = \"{prefix}\"\n\
         node_id = \"ctl-node\"\ntoken_file = {nats_token:?}\nlease_seconds = 1\n",
        urls.join(", ")
    );
    let (_node, url, token) = start_daemon(dsmild, &config, &dir.path().join("node"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let stdout = loop {
        let out = ctl_at(&url, &token, &["cluster", "status"]);
        let stdout = text(&out.stdout);
        if out.status.success() && stdout.contains("ctl-node") && stdout.contains("live") {
            break stdout;
        }
        assert!(Instant::now() < deadline, "{stdout}{}", text(&out.stderr));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        stdout.starts_with(&format!("cluster {prefix}  node ctl-node")),
        "{stdout}"
    );
    assert!(
        stdout.contains("NODE") && stdout.contains("echo (0/"),
        "{stdout}"
    );

    let out = ctl_at(&url, &token, &["--json", "cluster", "status"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["clustered"], true);
    assert_eq!(v["nodes"][0]["node_id"], "ctl-node");
}
