//! The listener against slow, idle and numerous clients: the header timeout closes slowloris
//! and idle kept-alive connections, the connection cap closes the longest-idle connection for a
//! newcomer, and the open-file limit is raised so that many idle sockets under systemd's soft
//! limit of 1,024 do not take the API down. Each wait is bounded by [`PATIENCE`] (a hang
//! guard: before these fixes the connections stayed open for minutes).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{Daemon, PATIENCE, agent, dsmild_under, free_port};

/// Starts dsmild with `config` as its configuration file.
fn start_with(config: &str) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsmil.toml");
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", path.to_str().unwrap()],
    );
    (dir, daemon)
}

fn connect(daemon: &Daemon) -> TcpStream {
    let addr = daemon.base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    stream
}

/// Whether the server has closed `stream` (EOF or reset), reading without waiting long.
fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a response or an error page: keep reading
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

fn health_answers(daemon: &Daemon) {
    let (status, body) = daemon.get("/api/health", None);
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
}

#[test]
fn slow_headers_and_idle_kept_alive_connections_are_closed() {
    let (_dir, daemon) = start_with("http_header_timeout_secs = 1\n");
    // Slowloris: a request line, then one header byte at a time, never finishing.
    let mut slow: Vec<TcpStream> = (0..20).map(|_| connect(&daemon)).collect();
    for s in &mut slow {
        s.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .unwrap();
    }
    // Silent: connects and never sends a byte.
    let mut silent = connect(&daemon);
    // Idle: one whole request answered on a kept-alive connection, then nothing.
    let mut idle = connect(&daemon);
    idle.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !String::from_utf8_lossy(&answer).contains("{\"status\":\"ok\"}") {
        assert!(
            Instant::now() < deadline,
            "no answer on the kept-alive connection"
        );
        let mut buf = [0u8; 1024];
        match idle.read(&mut buf) {
            Ok(0) => panic!("closed before answering"),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }

    let mut open_slow = slow.len();
    let (mut silent_closed, mut idle_closed) = (false, false);
    while open_slow > 0 || !silent_closed || !idle_closed {
        assert!(
            Instant::now() < deadline,
            "still open after {PATIENCE:?}: {open_slow} slow, silent {}, idle {}",
            !silent_closed,
            !idle_closed
        );
        open_slow = 0;
        for s in &mut slow {
            // A write to a closed socket fails; one that lands keeps the client dribbling.
            if s.write_all(b"x").is_ok() && !closed(s) {
                open_slow += 1;
            }
        }
        silent_closed = silent_closed || closed(&mut silent);
        idle_closed = idle_closed || closed(&mut idle);
        // Meanwhile the API answers others.
        health_answers(&daemon);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn at_the_cap_the_longest_idle_connection_makes_room() {
    let (_dir, daemon) = start_with("max_connections = 16\n");
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..16 {
        idle.push(connect(&daemon));
        // Accepted in order, so "longest idle" is the order of connection.
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    // A seventeenth client is served; the first idle connection was closed for it.
    health_answers(&daemon);
    let deadline = Instant::now() + PATIENCE;
    while !closed(&mut idle[0]) {
        assert!(
            Instant::now() < deadline,
            "the longest-idle connection was not closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !closed(&mut idle[15]),
        "the newest idle connection was closed"
    );
    health_answers(&daemon);
}

/// The hard open-file limit here, to run dsmild with a soft limit below it.
fn hard_nofile() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    fields[4].parse().unwrap()
}

#[test]
fn many_idle_sockets_under_a_low_soft_limit_leave_the_api_answering() {
    let hard = hard_nofile();
    const IDLE: usize = 1_500;
    assert!(
        hard > 2_048,
        "this test needs a hard open-file limit above 2048, not {hard}"
    );
    let dir = tempfile::tempdir().unwrap();
    let limit = format!("--nofile=1024:{hard}");
    let mut cmd = dsmild_under("prlimit", &[&limit, "--"]);
    cmd.arg("--data-dir").arg(dir.path().join("data"));
    let daemon = Daemon::start_command(cmd, free_port(), &[]);
    // prlimit executes dsmild in its own process.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", daemon.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (fields[3], fields[4]),
        (hard.to_string().as_str(), hard.to_string().as_str()),
        "the soft limit was not raised to the hard one: {line}"
    );
    let idle: Vec<TcpStream> = (0..IDLE).map(|_| connect(&daemon)).collect();
    // Give the daemon time to accept them all: they are all past its old soft limit.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        let mut resp = agent()
            .get(format!("{}/api/health", daemon.base))
            .call()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.body_mut().read_json().unwrap();
        assert_eq!(body, serde_json::json!({"status": "ok"}));
    }
    drop(idle);
}

#[test]
fn at_the_cap_with_every_connection_busy_a_newcomer_is_told_to_retry() {
    let (dir, daemon) = start_with("max_connections = 8\n");
    let token = std::fs::read_to_string(dir.path().join("data/api-token")).unwrap();
    let spec = serde_json::json!({"workflow_type": "hold", "execution_mode": "sequential",
        "tasks": [{"id": "a", "agent_id": "sleep", "task_description": "hold the connection",
                   "input_data": {"ms": 3000}}]})
    .to_string();
    // Eight connections, each in a request that waits for its workflow.
    let mut busy: Vec<TcpStream> = (0..8).map(|_| connect(&daemon)).collect();
    for s in &mut busy {
        let request = format!(
            "POST /api/workflows HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{spec}",
            token.trim(),
            spec.len()
        );
        s.write_all(request.as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut newcomer = connect(&daemon);
    newcomer
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    newcomer
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = newcomer.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    // The busy requests still finish.
    for s in &mut busy {
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
}
