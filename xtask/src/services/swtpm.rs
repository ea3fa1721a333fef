//! The software TPM: Debian's `swtpm` on two loopback ports (TPM commands on `P`, control on
//! `P + 1`), state and pid file under `target/dsmil-services/swtpm/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use dsmil_core::testenv::TCTI_VAR;
use nix::sys::signal::Signal;

use super::Env;
use super::process::{self, ServiceState, note};

/// Process name of the service (what `/proc/<pid>/comm` says).
const COMM: &str = "swtpm";
/// Debian packages the TPM tests and the `tss-esapi` build need.
const PACKAGES: &[&str] = &[
    "libtss2-dev",
    "swtpm",
    "swtpm-tools",
    "tpm2-tools",
    "pkg-config",
];

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("swtpm")
}

fn pid_file(state_dir: &Path) -> PathBuf {
    dir(state_dir).join("swtpm.pid")
}

/// The TCTI string for a swtpm whose command port is `port`.
pub fn tcti(port: u16) -> String {
    format!("swtpm:host=127.0.0.1,port={port}")
}

/// Makes sure swtpm runs: reuses `previous` when it still answers, otherwise installs what is
/// missing and starts a fresh one.
pub fn up(state_dir: &Path, previous: Option<ServiceState>) -> Result<ServiceState> {
    if let Some(prev) = previous {
        if prev.is_up(COMM) {
            note(format!(
                "swtpm already runs (pid {}, port {})",
                prev.pid, prev.port
            ));
            return Ok(prev);
        }
        // Recorded but broken (dead, or alive without answering): clear it out first.
        process::stop_pid(prev.pid, COMM, Signal::SIGTERM, Duration::from_secs(10))
            .context("stopping the previous swtpm")?;
    }
    stop_from_pid_file(state_dir)?;
    ensure_installed()?;

    let dir = dir(state_dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Two tries: the free ports can be taken by someone else between finding and binding.
    let mut last_err = None;
    for _ in 0..2 {
        match start(state_dir) {
            Ok(state) => return Ok(state),
            Err(err) => {
                note(format!("starting swtpm failed: {err:#}"));
                last_err = Some(err);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("swtpm was never started")))
}

fn start(state_dir: &Path) -> Result<ServiceState> {
    let dir = dir(state_dir);
    let pid_file = pid_file(state_dir);
    let log_file = dir.join("swtpm.log");
    let _ = fs::remove_file(&pid_file);
    let port = process::free_port_pair()?;
    let ctrl = port + 1;
    note(format!(
        "starting swtpm on 127.0.0.1:{port} (control {ctrl})"
    ));
    process::run(
        Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
            .args(["--flags", "not-need-init,startup-clear", "--daemon"])
            .arg("--pid")
            .arg(format!("file={}", pid_file.display()))
            .arg("--log")
            .arg(format!("file={},level=1", log_file.display())),
        "starting swtpm",
    )
    .with_context(|| {
        format!(
            "last lines of {}:\n{}",
            log_file.display(),
            process::tail(&log_file, 20)
        )
    })?;
    let pid = process::wait_for_pid_file(&pid_file, Duration::from_secs(10))?;
    process::wait_for_port(port, pid, COMM, Duration::from_secs(10)).with_context(|| {
        format!(
            "waiting for swtpm; last lines of {}:\n{}",
            log_file.display(),
            process::tail(&log_file, 20)
        )
    })?;
    let env = Env::from([(TCTI_VAR.to_owned(), tcti(port))]);
    Ok(ServiceState { pid, port, env })
}

/// Installs swtpm, tpm2-tools and the tss2 headers when any of them is missing.
pub fn ensure_installed() -> Result<()> {
    let mut missing = Vec::new();
    for tool in ["swtpm", "tpm2_getrandom", "pkg-config"] {
        if process::which(tool).is_none() {
            missing.push(tool.to_owned());
        }
    }
    if process::which("pkg-config").is_some()
        && !Command::new("pkg-config")
            .args(["--exists", "tss2-esys"])
            .status()
            .is_ok_and(|status| status.success())
    {
        missing.push("tss2-esys.pc (libtss2-dev)".to_owned());
    }
    if missing.is_empty() {
        return Ok(());
    }
    process::apt_install(PACKAGES, &format!("missing {}", missing.join(", ")))?;
    if process::which("swtpm").is_none() {
        bail!("apt-get installed {PACKAGES:?} but `swtpm` is still not on PATH");
    }
    Ok(())
}

/// Stops the swtpm whose pid is in the pid file (one that outlived a lost `state.json`).
fn stop_from_pid_file(state_dir: &Path) -> Result<()> {
    let pid_file = pid_file(state_dir);
    if let Ok(Some(pid)) = process::read_pid_file(&pid_file) {
        process::stop_pid(pid, COMM, Signal::SIGTERM, Duration::from_secs(10))
            .context("stopping swtpm from its pid file")?;
    }
    let _ = fs::remove_file(&pid_file);
    Ok(())
}

/// Stops the swtpm recorded in `state` and/or its pid file (SIGTERM, then SIGKILL).
pub fn down(state_dir: &Path, state: Option<&ServiceState>) -> Result<()> {
    if let Some(state) = state {
        note(format!("stopping swtpm (pid {})", state.pid));
        process::stop_pid(state.pid, COMM, Signal::SIGTERM, Duration::from_secs(10))
            .context("stopping swtpm")?;
    }
    stop_from_pid_file(state_dir)
}

/// One line saying whether swtpm runs.
pub fn status(state: Option<&ServiceState>) -> String {
    match state {
        Some(s) if s.is_up(COMM) => format!(
            "swtpm: running, pid {}, port {} (control {})",
            s.pid,
            s.port,
            s.port.saturating_add(1)
        ),
        Some(s) => format!(
            "swtpm: NOT answering (recorded pid {}, port {})",
            s.pid, s.port
        ),
        None => "swtpm: stopped".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcti_names_host_and_port() {
        assert_eq!(tcti(2321), "swtpm:host=127.0.0.1,port=2321");
    }
}
