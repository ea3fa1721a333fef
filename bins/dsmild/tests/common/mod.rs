//! The real dsmild as a child process, and HTTP helpers.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Upper bound for the daemon to come up or go down; a hang guard, not a speed check.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn dsmild() -> Command {
    hermetic(Command::new(env!("CARGO_BIN_EXE_dsmild")))
}

/// dsmild run through `wrapper` (e.g. `prlimit --nofile=…`), with [`dsmild`]'s environment.
pub fn dsmild_under(wrapper: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(wrapper);
    cmd.args(args).arg(env!("CARGO_BIN_EXE_dsmild"));
    hermetic(cmd)
}

/// No `DSMIL_*`, `RUST_LOG` or systemd variables, no user configuration file.
fn hermetic(mut cmd: Command) -> Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("DSMIL_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG");
    // Hermetic: no systemd variables, no user configuration file.
    for key in [
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "STATE_DIRECTORY",
        "CONFIGURATION_DIRECTORY",
        "INVOCATION_ID",
    ] {
        cmd.env_remove(key);
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent/dsmil-tests");
    cmd
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

pub struct Daemon {
    pub child: Child,
    pub base: String,
}

impl Daemon {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Daemon {
        Self::start_on(free_port(), data_dir, extra)
    }

    /// Starts dsmild on a given port (e.g. the port of a daemon that was just stopped).
    pub fn start_on(port: u16, data_dir: &Path, extra: &[&str]) -> Daemon {
        let mut cmd = dsmild();
        cmd.arg("--data-dir").arg(data_dir);
        Self::start_command(cmd, port, extra)
    }

    /// Starts `cmd` (a [`dsmild`] command with any environment and flags set) on `port`.
    pub fn start_command(mut cmd: Command, port: u16, extra: &[&str]) -> Daemon {
        let child = cmd
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let daemon = Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let mut daemon = daemon;
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(mut r) = agent().get(format!("{}/api/health", daemon.base)).call() {
                assert_eq!(r.status(), 200);
                let body: serde_json::Value = r.body_mut().read_json().unwrap();
                assert_eq!(body, serde_json::json!({"status": "ok"}));
                return daemon;
            }
            let exited = daemon.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() >= deadline {
                let _ = daemon.child.kill();
                let status = daemon.child.wait().unwrap();
                let mut stderr = String::new();
                if let Some(mut pipe) = daemon.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("dsmild did not come up ({status}):\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = agent().get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = req.call().unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_json().unwrap())
    }

    /// `POST path` with `body` and the token; status and JSON answer.
    pub fn post(&self, path: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
        let mut resp = agent()
            .post(format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {token}"))
            .send(body)
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_json().unwrap())
    }

    /// Sends `signal` and returns the exit status and stderr.
    pub fn stop(mut self, signal: Signal) -> (std::process::ExitStatus, String) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        kill(pid, signal).unwrap();
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "dsmild did not stop on {signal}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status, stderr)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
