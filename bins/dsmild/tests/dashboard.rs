//! The dashboard page (`GET /`) in a real browser: Debian's Chromium, headless, driven by
//! ChromeDriver over the W3C WebDriver HTTP protocol, against a real dsmild.
//!
//! The page takes the token from the URL fragment, shows live values, the software-TPM banner
//! and the CPU alert (the config raises one at once), TPM and security/device events from
//! real API calls; then dsmild is stopped (the page says it is reconnecting) and started again
//! on the same port (the page reconnects by itself).
//!
//! `DSMIL_DASHBOARD_SCREENSHOT=path` writes a 1400×900 PNG of the page there after a warm-up
//! with some activity (`DSMIL_DASHBOARD_WARMUP_SECS`, default 5), as used for
//! `docs/dashboard.png`. Without `/usr/bin/chromium` and `/usr/bin/chromedriver` the test is
//! skipped, unless `DSMIL_REQUIRE_SERVICES=1` (`cargo xtask test` installs them).

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Daemon, PATIENCE, agent, free_port};
use crate::schema;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Samples every 200 ms; any CPU use raises a warning. Two built-in agents for workflows.
const CONFIG: &str = r#"health_interval_ms = 200

[alerts]
cpu_percent = { warning = 0.0, critical = 95.0 }

[[agents]]
id = "echo"
kind = "builtin"

[[agents]]
id = "fail"
kind = "builtin"
"#;

/// How long the page gets to show something; a hang guard, not a speed check.
const PAGE_PATIENCE: Duration = Duration::from_secs(20);

/// What the page shows, read in the browser.
const READ_PAGE: &str = r#"
const text = (id) => { const e = document.getElementById(id); return e ? e.textContent.trim() : null; };
const banner = document.getElementById('tpm-banner');
return {
  connection: text('connection'),
  state: document.getElementById('connection').dataset.state,
  cpu: text('cpu-value'),
  memory: text('memory-value'),
  disk: text('disk-value'),
  thermal: text('thermal-value'),
  tpm_ops: text('tpm-ops-value'),
  agents: text('agents-value'),
  accel: text('accel-value'),
  missed: text('missed'),
  tpm_banner: banner && !banner.hidden && banner.offsetParent !== null ? banner.textContent.trim() : null,
  alerts: [...document.querySelectorAll('#alerts .alert')].map((a) => ({
    id: a.dataset.alertId, metric: a.dataset.metric, level: a.dataset.level, node: a.dataset.node || null,
    text: a.textContent })),
  nodes: [...document.getElementById('node-select').options].map((o) => o.value),
  node_shown: document.getElementById('node-box').hidden ? null : document.getElementById('node-select').value,
  cluster: document.getElementById('cluster-box').hidden ? null : text('cluster-totals'),
  events: [...document.querySelectorAll('#events .event')].map((e) => e.dataset.kind),
  token_form: !document.getElementById('token-overlay').hidden,
  hash: location.hash,
  token_stored: sessionStorage.getItem('dsmil.api-token') !== null,
};
"#;

/// A WebDriver session on a headless Chromium; dropping it ends the session and stops
/// ChromeDriver and every process it started (its own process group).
struct Browser {
    driver: Child,
    base: String,
    session: String,
    /// Chromium's profile (removed after the browser is gone).
    profile: tempfile::TempDir,
}

fn webdriver(method: &str, url: &str, body: Option<&Value>) -> Value {
    let agent = agent();
    let mut resp = match method {
        "GET" => agent.get(url).call(),
        "DELETE" => agent.delete(url).call(),
        _ => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body.map_or_else(|| "{}".to_owned(), Value::to_string)),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let value: Value = resp.body_mut().read_json().unwrap();
    assert_eq!(status, 200, "{method} {url}: {value}");
    value["value"].clone()
}

impl Browser {
    /// Chromium through ChromeDriver, or `None` (skip) when they are not installed.
    fn start() -> Option<Browser> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var(dsmil_core::testenv::REQUIRE_VAR).as_deref() != Ok("1"),
                "{CHROMIUM} and {CHROMEDRIVER} are required (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "skipped: {CHROMIUM} or {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            profile,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(mut r) = agent().get(format!("{}/status", browser.base)).call()
                && r.body_mut()
                    .read_json::<Value>()
                    .is_ok_and(|v| v["value"]["ready"] == true)
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1400,900".to_owned(),
            format!("--user-data-dir={}", browser.profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let session = webdriver("POST", &format!("{}/session", browser.base), Some(&caps));
        browser.session = session["sessionId"].as_str().unwrap().to_owned();
        // A 1400×900 viewport: the window is that plus whatever the browser's frame takes.
        let frame = browser.execute(
            "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];",
        );
        let rect = json!({
            "width": 1400 + frame[0].as_i64().unwrap_or(0),
            "height": 900 + frame[1].as_i64().unwrap_or(0),
        });
        webdriver("POST", &browser.url("/window/rect"), Some(&rect));
        Some(browser)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    fn navigate(&self, url: &str) {
        webdriver("POST", &self.url("/url"), Some(&json!({"url": url})));
    }

    fn execute(&self, script: &str) -> Value {
        webdriver(
            "POST",
            &self.url("/execute/sync"),
            Some(&json!({"script": script, "args": []})),
        )
    }

    fn screenshot(&self) -> Vec<u8> {
        let b64 = webdriver("GET", &self.url("/screenshot"), None);
        dsmil_tpm::der::base64_decode(b64.as_str().unwrap()).unwrap()
    }

    /// Reads the page until `done` accepts it; the last reading is in the failure message.
    fn wait_until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PAGE_PATIENCE;
        loop {
            let page = self.execute(READ_PAGE);
            if done(&page) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {what}; it shows {page:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into();
            let _ = agent.delete(self.url("")).call();
        }
        // ChromeDriver leads its own process group; Chromium and its helpers are in it.
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

/// Some of everything: TPM quotes, a refused write on a quarantined device (security and
/// device events), a workflow that completes and one that fails (agent outcomes).
fn activity(daemon: &Daemon, token: &str, round: u32) {
    let (status, q) = daemon.post(
        "/api/tpm/quote",
        token,
        &format!(r#"{{"pcrs":[0,1,7],"nonce":"{round:08x}"}}"#),
    );
    assert_eq!(status, 200, "{q}");
    if round.is_multiple_of(3) {
        let (status, e) = daemon.post("/api/devices/0x8009/write", token, r#"{"data":"00ff"}"#);
        assert_eq!(status, 403, "{e}");
    }
    // Critical: CPU-critical alerts pause non-critical work, and this machine may be busy.
    let fails = if round % 2 == 1 {
        "\n[[tasks]]\nid = \"f\"\nagent_id = \"fail\"\ntask_description = \"fail\"\ninput_data = { terminal = true }\n"
    } else {
        ""
    };
    let workflow = format!(
        "workflow_type = \"demo\"\nexecution_mode = \"parallel\"\ncritical = true\n\
         [[tasks]]\nid = \"a\"\nagent_id = \"echo\"\ntask_description = \"echo\"\ninput_data = {{ n = {round} }}\n\
         [[tasks]]\nid = \"b\"\nagent_id = \"echo\"\ntask_description = \"echo\"\ninput_data = {{ n = 0 }}\n{fails}"
    );
    // A prediction searches the embedded store's index: accelerator work on the chart.
    let (status, p) = daemon.post(
        "/api/learn/predict",
        token,
        &format!(r#"{{"task_description":"echo round {round}"}}"#),
    );
    assert_eq!(status, 200, "{p}");
    let mut resp = agent()
        .post(format!("{}/api/workflows", daemon.base))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/toml")
        .send(workflow)
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.body_mut().read_json().unwrap();
    assert_eq!(status, 200, "{body}");
}

fn leading_number(text: &Value) -> Option<f64> {
    let s = text.as_str()?;
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    s[..end].parse().ok()
}

/// The page's message handling against the published contract (`dsmil_api`'s OpenAPI
/// components): it handles exactly the server message types and metric types the schema
/// names, and every message it received or sent validates against `ServerMessage` /
/// `ClientMessage`.
fn page_speaks_the_contract(browser: &Browser) {
    let handled: BTreeSet<String> =
        serde_json::from_value(browser.execute("return window.dsmilDashboard.handledTypes;"))
            .unwrap();
    assert_eq!(handled, schema::tags("ServerMessage", "type"));
    let metrics: BTreeSet<String> =
        serde_json::from_value(browser.execute("return window.dsmilDashboard.handledMetricTypes;"))
            .unwrap();
    let metric_types: BTreeSet<String> = serde_json::from_value(
        schema::document()["components"]["schemas"]["MetricType"]["enum"].clone(),
    )
    .unwrap();
    assert_eq!(metrics, metric_types);
    let trace = browser.execute("return window.dsmilDashboard.trace();");
    let trace = trace.as_array().unwrap();
    let server = schema::validator("ServerMessage");
    let client = schema::validator("ClientMessage");
    let mut seen = BTreeSet::new();
    for entry in trace {
        let message = &entry["message"];
        let validator = if entry["direction"] == "received" {
            seen.insert(message["type"].as_str().unwrap_or("?").to_owned());
            &server
        } else {
            &client
        };
        let errors = schema::errors(validator, message);
        assert!(errors.is_empty(), "{message}: {errors:#?}");
    }
    for expected in ["connection_established", "system_health", "alert", "pong"] {
        assert!(
            seen.contains(expected),
            "the page never received {expected}: {seen:?}"
        );
    }
}

#[test]
fn dashboard_shows_live_data_and_reconnects_after_a_restart() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dsmil.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
    let token = std::fs::read_to_string(data.join("api-token"))
        .unwrap()
        .trim()
        .to_owned();

    browser.navigate(&format!("{}/#token={token}", daemon.base));
    let page = browser.wait_until(
        "a CPU value, a connection, the TPM banner and the CPU alert",
        |p| {
            leading_number(&p["cpu"]).is_some_and(|v| (0.0..=100.0).contains(&v))
                && p["connection"] == "connected"
                && p["state"] == "connected"
                && p["tpm_banner"]
                    .as_str()
                    .is_some_and(|b| b.contains("not hardware-rooted"))
                && p["alerts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["metric"] == "cpu_usage_percent")
        },
    );
    // The token left the address bar for sessionStorage; no form was needed.
    assert_eq!(page["hash"], "", "{page:#}");
    assert_eq!(page["token_stored"], true, "{page:#}");
    assert_eq!(page["token_form"], false, "{page:#}");
    for key in ["memory", "disk"] {
        assert!(leading_number(&page[key]).is_some(), "{key}: {page:#}");
    }
    let thermal = page["thermal"].as_str().unwrap();
    assert!(
        thermal == "no sensors" || leading_number(&page["thermal"]).is_some(),
        "{page:#}"
    );

    // Real activity shows up: TPM operations, agent outcomes, security and device events.
    let warmup = std::env::var("DSMIL_DASHBOARD_WARMUP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5u64);
    let screenshot: Option<PathBuf> =
        std::env::var_os("DSMIL_DASHBOARD_SCREENSHOT").map(Into::into);
    let until = Instant::now() + Duration::from_secs(if screenshot.is_some() { warmup } else { 0 });
    let mut round = 0;
    loop {
        activity(&daemon, &token, round);
        round += 1;
        if Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    browser.wait_until(
        "TPM operations, agent outcomes, accelerator work and events",
        |p| {
            leading_number(&p["tpm_ops"]).is_some_and(|n| n > 0.0)
                && p["accel"].as_str().is_some_and(|a| a.ends_with("B/s"))
                && p["agents"].as_str().is_some_and(|a| a != "0 / 0")
                && p["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k == "quarantine_violation")
                && p["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k == "device_write")
        },
    );
    // Nothing was lost on the way (the bus and the per-client queue have room to spare).
    assert_eq!(browser.execute(READ_PAGE)["missed"], "0");
    page_speaks_the_contract(&browser);
    std::thread::sleep(Duration::from_millis(1200)); // one redraw of the charts
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if let Some(path) = &screenshot {
        std::fs::write(path, &png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    let cpu_alerts = |p: &Value| -> Vec<String> {
        p["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["metric"] == "cpu_usage_percent")
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = cpu_alerts(&browser.execute(READ_PAGE));
    assert!(!before.is_empty());

    // The daemon goes away: the page says so and keeps trying.
    let port: u16 = daemon.base.rsplit(':').next().unwrap().parse().unwrap();
    let (status, stderr) = daemon.stop(Signal::SIGTERM);
    assert!(status.success(), "{status}: {stderr}");
    browser.wait_until("that it is reconnecting", |p| {
        p["state"] == "reconnecting"
            && p["connection"]
                .as_str()
                .is_some_and(|c| c.starts_with("reconnecting"))
    });

    // Back on the same port and data dir: connected again, with status and alerts re-read
    // (the old instance's alert is gone, the new one's is there).
    let daemon = Daemon::start_on(port, &data, &["--config", config.to_str().unwrap()]);
    browser.wait_until("the connection again, with the new CPU alert", |p| {
        let now = cpu_alerts(p);
        p["connection"] == "connected"
            && p["state"] == "connected"
            && !now.is_empty()
            && now.iter().all(|id| !before.contains(id))
            && p["tpm_banner"].is_string()
    });
    let (status, stderr) = daemon.stop(Signal::SIGTERM);
    assert!(status.success(), "{status}: {stderr}");
}

#[test]
fn a_nodes_dashboard_shows_the_cluster_and_any_node_chosen() {
    let Some(mut cluster) = crate::cluster::Cluster::new() else {
        return;
    };
    let Some(browser) = Browser::start() else {
        return;
    };
    cluster.prelude = crate::cluster::ALERTING.to_owned();
    let _a = cluster.node("a", "");
    let b = cluster.node("b", "");
    browser.navigate(&format!("{}/#token={}", b.daemon.base, b.token));
    let page = browser.wait_until("both nodes, their totals and node a's alert", |p| {
        p["nodes"] == json!(["a", "b"])
            && p["node_shown"] == "b"
            && p["cluster"]
                .as_str()
                .is_some_and(|c| c.starts_with("2/2 nodes"))
            && p["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["node"] == "a" && a["metric"] == "cpu_usage_percent")
            && leading_number(&p["cpu"]).is_some()
    });
    assert_eq!(page["state"], "connected", "{page:#}");
    page_speaks_the_contract(&browser);

    // Choosing node a from the selector shows node a (the token stays in the session).
    browser.execute(
        "const s = document.getElementById('node-select'); s.value = 'a'; \
         s.dispatchEvent(new Event('change')); return null;",
    );
    let page = browser.wait_until("node a chosen, with its CPU", |p| {
        p["node_shown"] == "a" && p["state"] == "connected" && leading_number(&p["cpu"]).is_some()
    });
    assert!(!page["token_form"].as_bool().unwrap(), "{page:#}");
}
