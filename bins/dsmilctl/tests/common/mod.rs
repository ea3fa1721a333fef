//! Helpers of dsmilctl's tests: the real binary with a clean environment, and the sibling
//! dsmild started on a free loopback port.

#![allow(dead_code)] // Each test file uses some of them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// dsmilctl with no `DSMIL_*` variables and no user contexts.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsmilctl"));
    for (key, _) in std::env::vars() {
        if key.starts_with("DSMIL_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent/dsmilctl-tests");
    cmd
}

/// Runs dsmilctl with `args`.
pub fn dsmilctl(args: &[&str]) -> Output {
    command().args(args).output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn sibling_dsmild() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_dsmilctl")).with_file_name("dsmild");
    if path.exists() {
        return Some(path);
    }
    let required = std::env::var(dsmil_core::testenv::REQUIRE_VAR).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{} is missing; `cargo xtask test` builds it first",
        path.display()
    );
    eprintln!(
        "skipping: {} not built (run through `cargo xtask test`)",
        path.display()
    );
    None
}

pub struct Running(pub Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs dsmilctl against the daemon at `url` with its token file.
pub fn ctl_at(url: &str, token: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--url", url, "--token-file", token.to_str().unwrap()];
    args.extend_from_slice(extra);
    dsmilctl(&args)
}

/// Starts `dsmild` with the configuration `config_text` and a data dir under `dir`; waits for
/// it to answer.
pub fn start_daemon(dsmild: PathBuf, config_text: &str, dir: &Path) -> (Running, String, PathBuf) {
    let config = dir.join("dsmil.toml");
    std::fs::write(&config, config_text).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = dir.join("data");
    let daemon = Running(
        Command::new(dsmild)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("api-token").exists()
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    {
        assert!(Instant::now() < deadline, "dsmild did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    (daemon, url, data.join("api-token"))
}
