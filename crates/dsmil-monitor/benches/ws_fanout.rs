//! WebSocket broadcast fan-out on loopback: N clients subscribed, 10 messages/s to each; delivery
//! latency (p50/p99), server CPU and server memory per idle client — for the DSMIL hub and,
//! in the same run, a minimal tokio-tungstenite broadcast server (a `tokio::sync::broadcast`
//! channel and one task per connection, no queues, no snapshot, no auth).
//!
//! Each server runs in its own process (this binary re-executed with `--serve …`) so its CPU
//! time and RSS are its own. `DSMIL_BENCH_QUICK=1`: 250 clients for 3 s instead of 1,000 for
//! 10 s. Rows go to `DSMIL_BENCH_ROWS_DIR` when set.

#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
use dsmil_core::{Event, EventBus};
use dsmil_monitor::ws::{Hub, HubConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-token";
const RATE_HZ: u64 = 10;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

// ---------- servers (child processes) ----------

fn serve(kind: &str) {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("PORT {}", listener.local_addr().unwrap().port());
        let publish: Box<dyn Fn(u64) + Send + Sync> = if kind == "dsmil" {
            let bus = EventBus::new(4096);
            let hub = Hub::new(HubConfig::default());
            hub.pump(&bus);
            let h = hub.clone();
            tokio::spawn(async move { h.serve_tcp(listener, Some(TOKEN.into())).await });
            Box::new(move |ts| {
                bus.publish(Event::Security(SecurityEvent::new(
                    "bench",
                    AlertLevel::Info,
                    "bench",
                    ts.to_string(),
                )));
            })
        } else {
            let (tx, _) = tokio::sync::broadcast::channel::<Arc<str>>(1024);
            let accept_tx = tx.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let mut rx = accept_tx.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                            return;
                        };
                        while let Ok(text) = rx.recv().await {
                            if ws.send(Message::text(text.to_string())).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            Box::new(move |ts| {
                let body = json!({"type": "security_event", "timestamp": chrono::Utc::now(),
                    "data": SecurityEvent::new("bench", AlertLevel::Info, "bench", ts.to_string())});
                let _ = tx.send(Arc::from(body.to_string()));
            })
        };
        // Wait for "go SECONDS" on stdin, then publish at RATE_HZ.
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        let seconds: u64 = line.trim().trim_start_matches("go ").parse().unwrap_or(5);
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE_HZ));
        for _ in 0..seconds * RATE_HZ {
            tick.tick().await;
            publish(now_ns());
        }
        println!("DONE");
        // Stay up until killed so clients can drain.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
}

// ---------- the orchestrator ----------

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(kind: &str) -> Server {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--serve", kind])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port = line.trim().trim_start_matches("PORT ").parse().unwrap();
    std::mem::forget(out);
    Server { child, port }
}

fn proc_stat(pid: u32) -> (f64, f64) {
    // (CPU seconds user+system, RSS KiB)
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let cpu = (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    (cpu, rss)
}

/// The number in `"description":"…"`.
fn timestamp(text: &str) -> Option<u64> {
    let start = text.find("\"description\":\"")? + "\"description\":\"".len();
    let rest = &text[start..];
    rest[..rest.find('"')?].parse().ok()
}

struct Measured {
    p50_ms: f64,
    p99_ms: f64,
    delivered: usize,
    expected: usize,
    cpu_percent: f64,
    kib_per_idle_client: f64,
}

async fn measure(kind: &str, clients: usize, seconds: u64) -> Measured {
    let mut server = spawn_server(kind);
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, rss_before) = proc_stat(pid);
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(
        clients * (seconds * RATE_HZ) as usize,
    )));
    let url = format!("ws://127.0.0.1:{}/ws?token={TOKEN}", server.port);
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(clients);
    for _ in 0..clients {
        let url = url.clone();
        let lat = latencies.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            let _ = ready.send(()).await;
            let mut mine = Vec::new();
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                // The timestamp is the description; found without parsing the whole message,
                // so the 1,000 clients sharing this process measure the server, not themselves.
                if let Some(ts) = timestamp(&t) {
                    mine.push(now_ns().saturating_sub(ts));
                }
            }
            lat.lock().await.extend(mine);
        }));
    }
    for _ in 0..clients {
        ready_rx.recv().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // idle
    let (cpu0, rss_idle) = proc_stat(pid);
    let stdin = server.child.stdin.as_mut().unwrap();
    writeln!(stdin, "go {seconds}").unwrap();
    stdin.flush().unwrap();
    tokio::time::sleep(Duration::from_secs(seconds) + Duration::from_millis(1500)).await;
    let (cpu1, _) = proc_stat(pid);
    drop(server); // clients see the connection end and hand in their samples
    for t in tasks {
        let _ = t.await;
    }
    let mut all = std::mem::take(&mut *latencies.lock().await);
    all.sort_unstable();
    let pick = |q: f64| {
        all.get(((all.len() as f64) * q) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1e6
    };
    Measured {
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        delivered: all.len(),
        expected: clients * (seconds * RATE_HZ) as usize,
        cpu_percent: (cpu1 - cpu0) / (seconds as f64 + 1.5) * 100.0,
        kib_per_idle_client: (rss_idle - rss_before) / clients as f64,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        serve(args.get(i + 1).map_or("dsmil", String::as_str));
        return;
    }
    raise_fd_limit();
    let quick = std::env::var("DSMIL_BENCH_QUICK").is_ok_and(|v| v == "1");
    let (clients, seconds) = if quick { (250, 3) } else { (1000, 10) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    let case = format!("{clients} clients");
    for (kind, name) in [
        ("dsmil", "dsmil-hub"),
        ("reference", "tokio-tungstenite-broadcast"),
    ] {
        let m = rt.block_on(measure(kind, clients, seconds));
        println!(
            "{name:<28} p50 {:>7.2} ms  p99 {:>7.2} ms  delivered {}/{}  server CPU {:>5.1} %  {:>6.1} KiB/idle client",
            m.p50_ms, m.p99_ms, m.delivered, m.expected, m.cpu_percent, m.kib_per_idle_client
        );
        for (group, unit, value) in [
            ("ws_fanout_latency_p50", "ms", m.p50_ms),
            ("ws_fanout_latency_p99", "ms", m.p99_ms),
            ("ws_fanout_server_cpu", "% CPU", m.cpu_percent),
            ("ws_idle_client_memory", "KiB", m.kib_per_idle_client),
            ("ws_fanout_delivered", "messages", m.delivered as f64),
        ] {
            rows.push(
                json!({"group": group, "case": case, "impl": name, "unit": unit, "value": value}),
            );
        }
    }
    if let Ok(dir) = std::env::var("DSMIL_BENCH_ROWS_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            std::path::Path::new(&dir).join("ws_fanout.json"),
            serde_json::to_string_pretty(&rows).unwrap(),
        )
        .unwrap();
    }
}
