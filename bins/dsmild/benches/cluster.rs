//! `cargo xtask bench cluster`: no-op tasks through real dsmild processes, beside the physical
//! limit of the engine underneath, in the same run.
//!
//! - `jetstream-raw` (the reference): async-nats alone doing what one remote task costs at
//!   least — publish the task to a replicated work-queue stream, pull it, publish its result
//!   into a replicated stream and wait for that ack, ack the task — while the submitter waits
//!   for the result; the same number in flight as the rows beside it.
//! - `dsmil-cluster-3-nodes`: three dsmild nodes on the same three-server cluster, `noop`
//!   hosted on all three; each round trip is `POST /api/workflows` (one task, waiting for the
//!   result) to the nodes in turn: submission, journal, lease, dispatch, run, result.
//! - `dsmil-local`: one dsmild without `[cluster]` (SQLite journal, in-process dispatch).
//! - failover: the owner of a running workflow is killed (`kill -9`) again and again; the time
//!   from the kill to another node resuming the workflow (`lease_seconds = 1`).
//!
//! Each cluster row is measured on a cluster started by this bench (nats-server ≥ 2.10 from
//! `DSMIL_TEST_NATS_SERVER`, which `cargo xtask bench` provides), once with nats-server's
//! default flushing and once with `sync_interval: always`. `DSMIL_BENCH_QUICK=1` shortens every
//! run. Rows go to `DSMIL_BENCH_ROWS_DIR` when set.

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsmil_cluster::nats_server::{NatsCluster, NatsClusterSpec};
use serde_json::{Value, json};

/// A dsmild process; killed when dropped.
struct Daemon {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Starts dsmild with `config` in `dir` and waits until it answers.
fn start(dir: &Path, name: &str, config: &str) -> Daemon {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let data = dir.join(format!("{name}-data"));
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_dsmild"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent()
        .get(format!("{base}/api/health"))
        .call()
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "dsmild {name} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = std::fs::read_to_string(data.join("api-token"))
        .unwrap()
        .trim()
        .to_owned();
    Daemon { child, base, token }
}

fn node_config(cluster: &NatsCluster, prefix: &str, id: &str, lease: u64, agents: &str) -> String {
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("{u:?}")).collect();
    format!(
        "[responses]\nenabled = false\n\n{agents}\n[cluster]\nnats = [{}]\nname = \"{prefix}\"\n\
         node_id = \"{id}\"\ntoken_file = {:?}\nlease_seconds = {lease}\n",
        urls.join(", "),
        cluster.token_file().display().to_string()
    )
}

const NOOP: &str = "[[agents]]\nid = \"noop\"\nkind = \"builtin\"\nmax_concurrency = 256\n";

/// Round trips, their latencies and the wall time they took.
struct Run {
    tasks: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.tasks as f64 / self.wall.as_secs_f64()
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        self.latencies.sort();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
}

/// `total` one-task workflows over `daemons` in turn, `in_flight` at a time.
fn through_dsmild(daemons: &[Daemon], in_flight: usize, total: usize) -> Run {
    let spec = json!({"workflow_type": "bench", "execution_mode": "sequential",
        "tasks": [{"id": "t", "agent_id": "noop", "task_description": "noop", "input_data": {}}]})
    .to_string();
    let targets: Vec<(String, String)> = daemons
        .iter()
        .map(|d| (format!("{}/api/workflows", d.base), d.token.clone()))
        .collect();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    std::thread::scope(|s| {
        for worker in 0..in_flight {
            let (targets, spec, latencies) = (&targets, &spec, Arc::clone(&latencies));
            s.spawn(move || {
                let http = agent();
                let mut mine = Vec::new();
                let mut i = worker;
                while i < total {
                    let (url, token) = &targets[i % targets.len()];
                    let t0 = Instant::now();
                    let mut resp = http
                        .post(url)
                        .header("Authorization", &format!("Bearer {token}"))
                        .header("Content-Type", "application/json")
                        .send(spec.as_str())
                        .unwrap();
                    let body: Value = resp.body_mut().read_json().unwrap();
                    assert_eq!(body["success"], true, "{body}");
                    mine.push(t0.elapsed());
                    i += in_flight;
                }
                latencies.lock().unwrap().extend(mine);
            });
        }
    });
    let wall = started.elapsed();
    let latencies = Arc::try_unwrap(latencies).unwrap().into_inner().unwrap();
    Run {
        tasks: latencies.len(),
        wall,
        latencies,
    }
}

/// The same round trips with async-nats alone: task published to a replicated work queue,
/// pulled, its result published to a replicated stream (ack awaited), the task acked; the
/// submitter waits for the result on a core subscription.
async fn through_jetstream(cluster: &NatsCluster, in_flight: usize, total: usize) -> Run {
    use async_nats::jetstream::{self, consumer::pull, stream};
    use futures_util::StreamExt as _;
    let client = async_nats::ConnectOptions::with_token(cluster.token().to_owned())
        .connect(cluster.urls())
        .await
        .unwrap();
    let js = jetstream::new(client.clone());
    let prefix = format!("raw{}", uuid::Uuid::new_v4().simple());
    for (name, subject, retention) in [
        ("TASKS", "tasks", stream::RetentionPolicy::WorkQueue),
        ("RESULTS", "results", stream::RetentionPolicy::Limits),
    ] {
        js.create_stream(stream::Config {
            name: format!("{prefix}_{name}"),
            subjects: vec![format!("{prefix}.{subject}.>")],
            retention,
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let tasks = js.get_stream(format!("{prefix}_TASKS")).await.unwrap();
    let consumer = tasks
        .create_consumer(pull::Config {
            durable_name: Some("w".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    // The worker.
    let worker = {
        let js = js.clone();
        let prefix = prefix.clone();
        tokio::spawn(async move {
            let mut messages = consumer.messages().await.unwrap();
            while let Some(Ok(m)) = messages.next().await {
                let js = js.clone();
                let prefix = prefix.clone();
                tokio::spawn(async move {
                    let id = m.subject.as_str().rsplit('.').next().unwrap().to_owned();
                    js.publish(format!("{prefix}.results.{id}"), "{}".into())
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                    m.ack().await.unwrap();
                });
            }
        })
    };
    // Results to the waiting submitters.
    let waiting: Arc<Mutex<HashMap<String, tokio::sync::oneshot::Sender<()>>>> = Arc::default();
    let mut results = client
        .subscribe(format!("{prefix}.results.>"))
        .await
        .unwrap();
    let router = {
        let waiting = Arc::clone(&waiting);
        tokio::spawn(async move {
            while let Some(m) = results.next().await {
                let id = m.subject.as_str().rsplit('.').next().unwrap().to_owned();
                if let Some(done) = waiting.lock().unwrap().remove(&id) {
                    let _ = done.send(());
                }
            }
        })
    };
    let started = Instant::now();
    let mut submitters = Vec::new();
    for worker_no in 0..in_flight {
        let (js, prefix, waiting) = (js.clone(), prefix.clone(), Arc::clone(&waiting));
        submitters.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut i = worker_no;
            while i < total {
                let id = format!("t{i}");
                let (done, wait) = tokio::sync::oneshot::channel();
                waiting.lock().unwrap().insert(id.clone(), done);
                let t0 = Instant::now();
                js.publish(format!("{prefix}.tasks.{id}"), "{}".into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                wait.await.unwrap();
                mine.push(t0.elapsed());
                i += in_flight;
            }
            mine
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for s in submitters {
        latencies.extend(s.await.unwrap());
    }
    let wall = started.elapsed();
    worker.abort();
    router.abort();
    for name in ["TASKS", "RESULTS"] {
        let _ = js.delete_stream(format!("{prefix}_{name}")).await;
    }
    Run {
        tasks: latencies.len(),
        wall,
        latencies,
    }
}

/// Kills the owner of a running workflow `kills` times; the seconds from each kill to another
/// node resuming it (the journal's `recovering` entry).
fn failover(dir: &Path, cluster: &NatsCluster, kills: usize) -> Vec<f64> {
    let prefix = format!("f{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let sleeper = "[[agents]]\nid = \"sleep\"\nkind = \"builtin\"\nmax_concurrency = 64\n";
    let hosts: Vec<Daemon> = ["h1", "h2"]
        .iter()
        .map(|id| start(dir, id, &node_config(cluster, &prefix, id, 1, sleeper)))
        .collect();
    let spec = json!({"workflow_type": "failover", "execution_mode": "sequential",
        "tasks": (0..4).map(|i| json!({"id": format!("s{i}"), "agent_id": "sleep",
            "task_description": "sleep", "input_data": {"ms": 300}})).collect::<Vec<_>>()})
    .to_string();
    let http = agent();
    let mut times = Vec::new();
    for k in 0..kills {
        // A fresh owner each time (its id is new, so no wait for the old heartbeat to lapse).
        let owner = start(
            dir,
            &format!("o{k}"),
            &node_config(cluster, &prefix, &format!("o{k}"), 1, ""),
        );
        let submit = |d: &Daemon| {
            http.post(format!("{}/api/workflows?wait=false", d.base))
                .header("Authorization", &format!("Bearer {}", d.token))
                .header("Content-Type", "application/json")
                .send(spec.as_str())
                .unwrap()
        };
        // Until the owner sees a host of `sleep` (it refuses the workflow before).
        let deadline = Instant::now() + Duration::from_secs(30);
        let id = loop {
            let mut resp = submit(&owner);
            if resp.status() == 202 {
                let body: Value = resp.body_mut().read_json().unwrap();
                break body["workflow_id"].as_str().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "the owner never saw a host");
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(350)); // The second task is running.
        let mut owner = owner;
        owner.child.kill().unwrap();
        let killed = chrono::Utc::now();
        owner.child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let record = loop {
            let mut resp = http
                .get(format!("{}/api/workflows/{id}", hosts[0].base))
                .header("Authorization", &format!("Bearer {}", hosts[0].token))
                .call()
                .unwrap();
            let record: Value = resp.body_mut().read_json().unwrap();
            if record["state"] == "completed" {
                break record;
            }
            assert_ne!(record["state"], "failed", "{record}");
            assert!(Instant::now() < deadline, "never completed: {record}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let resumed = record["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["state"] == "recovering")
            .expect("a takeover");
        let at: chrono::DateTime<chrono::Utc> = resumed["at"].as_str().unwrap().parse().unwrap();
        assert_eq!(record["results"].as_array().unwrap().len(), 4, "{record}");
        times.push((at - killed).as_seconds_f64());
        eprintln!("failover {}/{kills}: {:.3} s", k + 1, times[k]);
        drop(owner);
    }
    times
}

/// Ray's round trips at `in_flight` (the reference row), through the Python that
/// `DSMIL_BENCH_RAY_PYTHON` names (`cargo xtask bench` installs Ray for it); `None` without.
fn through_ray(in_flight: usize, total: usize) -> Option<(f64, f64, f64)> {
    let python = std::env::var_os("DSMIL_BENCH_RAY_PYTHON")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ray_noop.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(in_flight.to_string())
        .arg(total.to_string());
    reference_script(cmd)
}

/// Temporal's one-activity workflows at `in_flight` (a reference row), through the Python and
/// the `temporal` CLI that `DSMIL_BENCH_TEMPORAL_PYTHON` and `DSMIL_BENCH_TEMPORAL_CLI` name
/// (`cargo xtask bench` installs both); `None` without.
fn through_temporal(in_flight: usize, total: usize) -> Option<(f64, f64, f64)> {
    let python = std::env::var_os("DSMIL_BENCH_TEMPORAL_PYTHON")?;
    let cli = std::env::var_os("DSMIL_BENCH_TEMPORAL_CLI")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/temporal_noop.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(cli)
        .arg(in_flight.to_string())
        .arg(total.to_string());
    reference_script(cmd)
}

/// Runs a reference script and reads the JSON line it ends with: (per second, p50 ms, p99 ms).
fn reference_script(mut cmd: Command) -> Option<(f64, f64, f64)> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.lines().last()?).ok()?;
    Some((
        v["per_second"].as_f64()?,
        v["p50_ms"].as_f64()?,
        v["p99_ms"].as_f64()?,
    ))
}

fn row(group: &str, case: &str, implementation: &str, unit: &str, value: f64) -> Value {
    json!({"group": group, "case": case, "impl": implementation, "unit": unit, "value": value})
}

fn main() {
    let quick = std::env::var("DSMIL_BENCH_QUICK").is_ok_and(|v| v == "1");
    if dsmil_cluster::nats_server::NatsBinary::find().is_err() {
        eprintln!(
            "cluster bench skipped: no nats-server ≥ 2.10 (run it through `cargo xtask bench cluster`)"
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let total = |in_flight: usize| if quick { 200 } else { 1000 }.max(in_flight * 20);
    let mut rows = Vec::new();

    // Ray on this machine (the second reference), when installed.
    for in_flight in [1, 16, 64] {
        match through_ray(in_flight, total(in_flight)) {
            Some((rate, p50, p99)) => {
                let case = format!("{in_flight} in flight");
                eprintln!("{case}: ray {rate:.0} tasks/s, p50 {p50:.2} ms, p99 {p99:.2} ms");
                rows.push(row("cluster round trip", &case, "ray", "tasks/s", rate));
                rows.push(row("cluster latency p50", &case, "ray", "ms", p50));
                rows.push(row("cluster latency p99", &case, "ray", "ms", p99));
            }
            None => eprintln!("no Ray row: DSMIL_BENCH_RAY_PYTHON is unset or Ray failed"),
        }
    }
    // Temporal's dev server on this machine (the other reference), when installed:
    // fewer workflows, it runs tens per second.
    for in_flight in [1, 16, 64] {
        let workflows = if quick { 100 } else { 300 }.max(in_flight * 4);
        match through_temporal(in_flight, workflows) {
            Some((rate, p50, p99)) => {
                let case = format!("{in_flight} in flight");
                eprintln!(
                    "{case}: temporal {rate:.0} workflows/s, p50 {p50:.2} ms, p99 {p99:.2} ms"
                );
                rows.push(row(
                    "cluster round trip",
                    &case,
                    "temporal",
                    "tasks/s",
                    rate,
                ));
                rows.push(row("cluster latency p50", &case, "temporal", "ms", p50));
                rows.push(row("cluster latency p99", &case, "temporal", "ms", p99));
            }
            None => eprintln!("no Temporal row: DSMIL_BENCH_TEMPORAL_* unset or Temporal failed"),
        }
    }

    // One host, no cluster.
    let local = start(
        dir.path(),
        "local",
        &format!("[responses]\nenabled = false\n{NOOP}"),
    );
    let local = [local];
    for in_flight in [1, 16, 64] {
        let mut run = through_dsmild(&local, in_flight, total(in_flight));
        let case = format!("{in_flight} in flight");
        rows.push(row(
            "cluster round trip",
            &case,
            "dsmil-local",
            "tasks/s",
            run.per_second(),
        ));
        rows.push(row(
            "cluster latency p50",
            &case,
            "dsmil-local",
            "ms",
            run.percentile_ms(0.5),
        ));
        rows.push(row(
            "cluster latency p99",
            &case,
            "dsmil-local",
            "ms",
            run.percentile_ms(0.99),
        ));
    }
    drop(local);

    for sync_always in [false, true] {
        let flush = if sync_always { ", sync always" } else { "" };
        let mut spec = NatsClusterSpec::new(dir.path().join(format!("nats-{sync_always}")));
        spec.sync_always = sync_always;
        let cluster = NatsCluster::start(spec).unwrap();
        let prefix = format!("b{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let nodes: Vec<Daemon> = ["a", "b", "c"]
            .iter()
            .map(|id| {
                start(
                    dir.path(),
                    &format!("{id}-{sync_always}"),
                    &node_config(&cluster, &prefix, id, 5, NOOP),
                )
            })
            .collect();
        // Every node must see every host before the first workflow.
        std::thread::sleep(Duration::from_secs(2));
        for in_flight in [1, 16, 64] {
            let case = format!("{in_flight} in flight{flush}");
            let mut raw =
                runtime.block_on(through_jetstream(&cluster, in_flight, total(in_flight)));
            let mut ours = through_dsmild(&nodes, in_flight, total(in_flight));
            for (name, run) in [
                ("jetstream-raw", &mut raw),
                ("dsmil-cluster-3-nodes", &mut ours),
            ] {
                eprintln!(
                    "{case}: {name} {:.0} tasks/s, p50 {:.2} ms, p99 {:.2} ms",
                    run.per_second(),
                    run.percentile_ms(0.5),
                    run.percentile_ms(0.99)
                );
                rows.push(row(
                    "cluster round trip",
                    &case,
                    name,
                    "tasks/s",
                    run.per_second(),
                ));
                rows.push(row(
                    "cluster latency p50",
                    &case,
                    name,
                    "ms",
                    run.percentile_ms(0.5),
                ));
                rows.push(row(
                    "cluster latency p99",
                    &case,
                    name,
                    "ms",
                    run.percentile_ms(0.99),
                ));
            }
        }
        if !sync_always {
            let kills = if quick { 5 } else { 20 };
            let mut times = failover(dir.path(), &cluster, kills);
            times.sort_by(f64::total_cmp);
            let case = format!("kill -9 of the owner, lease 1 s, {kills} kills");
            rows.push(row(
                "cluster failover",
                &case,
                "dsmil-p50",
                "s",
                times[times.len() / 2],
            ));
            rows.push(row(
                "cluster failover",
                &case,
                "dsmil-max",
                "s",
                times[times.len() - 1],
            ));
        }
        drop(nodes);
    }

    if let Ok(dir) = std::env::var("DSMIL_BENCH_ROWS_DIR") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cluster.json"),
            serde_json::to_vec_pretty(&rows).unwrap(),
        )
        .unwrap();
    }
    for r in &rows {
        println!(
            "{:<22} {:<34} {:<24} {:>10.2} {}",
            r["group"].as_str().unwrap(),
            r["case"].as_str().unwrap(),
            r["impl"].as_str().unwrap(),
            r["value"].as_f64().unwrap(),
            r["unit"].as_str().unwrap()
        );
    }
}
