//! `/metrics` scrape time on a running dsmild with every layer reporting: the daemon is started
//! (software TPM, embedded store, a few agents), given some traffic (quotes, device writes,
//! workflows) so every family has samples, then scraped repeatedly over loopback.
//! `DSMIL_BENCH_QUICK=1` scrapes 100 times instead of 1,000. Rows go to
//! `DSMIL_BENCH_ROWS_DIR` when set.

#![allow(missing_docs, clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let quick = std::env::var("DSMIL_BENCH_QUICK").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("dsmil.toml");
    let mut agents = String::new();
    for i in 0..20 {
        agents.push_str(&format!(
            "[[agents]]\nid = \"agent{i}\"\nkind = \"builtin\"\nbuiltin = \"echo\"\n"
        ));
    }
    std::fs::write(&config, format!("health_interval_ms = 500\n{agents}")).unwrap();
    let data = dir.path().join("data");
    let _daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_dsmild"))
            .args([
                "--config",
                config.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--data-dir")
            .arg(&data)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.get(format!("{base}/api/health")).call().is_err() {
        assert!(Instant::now() < deadline, "dsmild did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = std::fs::read_to_string(data.join("api-token"))
        .unwrap()
        .trim()
        .to_owned();
    let auth = format!("Bearer {token}");
    let post = |path: &str, body: &str| {
        agent
            .post(format!("{base}{path}"))
            .header("Authorization", &auth)
            .send(body)
            .unwrap();
    };
    for i in 0..20 {
        post(
            "/api/tpm/quote",
            &format!(r#"{{"pcrs":[0,1,7],"nonce":"{i:02x}"}}"#),
        );
        post("/api/devices/0x8001/write", r#"{"data":"00"}"#);
        post("/api/devices/0x8009/write", r#"{"data":"00"}"#);
        post(
            "/api/workflows",
            &format!(
                r#"{{"workflow_type":"bench","execution_mode":"parallel","tasks":[{{"id":"a","agent_id":"agent{}","task_description":"x"}}]}}"#,
                i % 20
            ),
        );
    }
    std::thread::sleep(Duration::from_millis(1200)); // a couple of health samples
    let scrapes = if quick { 100 } else { 1000 };
    let mut times = Vec::with_capacity(scrapes);
    let mut bytes = 0;
    for _ in 0..scrapes {
        let t = Instant::now();
        let mut resp = agent
            .get(format!("{base}/metrics"))
            .header("Authorization", &auth)
            .call()
            .unwrap();
        let text = resp.body_mut().read_to_string().unwrap();
        times.push(t.elapsed());
        bytes = text.len();
    }
    times.sort_unstable();
    let pick = |q: f64| {
        times[((times.len() as f64 * q) as usize).min(times.len() - 1)].as_secs_f64() * 1e3
    };
    let (p50, p99) = (pick(0.5), pick(0.99));
    println!("/metrics: {bytes} bytes, p50 {p50:.3} ms, p99 {p99:.3} ms over {scrapes} scrapes");
    let rows = vec![
        json!({"group": "metrics_scrape", "case": "p50, all layers", "impl": "dsmil-metrics", "unit": "ms", "value": p50}),
        json!({"group": "metrics_scrape", "case": "p99, all layers", "impl": "dsmil-metrics", "unit": "ms", "value": p99}),
        json!({"group": "metrics_scrape", "case": "size", "impl": "dsmil-metrics", "unit": "bytes", "value": bytes as f64}),
    ];
    if let Ok(dir) = std::env::var("DSMIL_BENCH_ROWS_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            std::path::Path::new(&dir).join("metrics_scrape.json"),
            serde_json::to_string_pretty(&rows).unwrap(),
        )
        .unwrap();
    }
}
