//! `cargo xtask ci` and `cargo xtask test`: the steps CI runs, in order, each named when it
//! fails.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::services;

/// Optional cargo features CI lints, tests and benches: the TPM layer's `tss` backend (tested
/// against swtpm, needs the provisioned libtss2), in the library and in the daemon, and the
/// accelerator's `matmul`. Kept in one place so `ci`, `test` and `bench` agree.
pub const SERVICE_FEATURES: &[&str] = &["dsmil-tpm/tss", "dsmild/tss", "dsmil-accel/matmul"];

fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

fn with_features(cmd: &mut Command) -> &mut Command {
    if !SERVICE_FEATURES.is_empty() {
        cmd.arg("--features").arg(SERVICE_FEATURES.join(","));
    }
    cmd
}

/// Runs one named step and reports its duration; a failure names the step.
fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("==> {name}");
    let started = Instant::now();
    let result = f().with_context(|| format!("step '{name}' failed"));
    eprintln!(
        "<== {name}: {} in {:.1?}",
        if result.is_ok() { "ok" } else { "FAILED" },
        started.elapsed()
    );
    result
}

/// How long the whole `cargo test` step may take before it is stopped
/// (`DSMIL_TEST_TIMEOUT_SECS` overrides). It takes a few minutes; the limit turns a hung test
/// into a failure that names it instead of a CI run that never ends.
const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(25 * 60);

fn test_timeout() -> Result<Duration> {
    match std::env::var("DSMIL_TEST_TIMEOUT_SECS") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .with_context(|| {
                format!("DSMIL_TEST_TIMEOUT_SECS must be a positive number of seconds, not {v:?}")
            }),
        Err(_) => Ok(DEFAULT_TEST_TIMEOUT),
    }
}

/// Runs `cmd`; past `limit` it and every process it started (test binaries, the daemons and
/// swtpm instances they spawned) get SIGTERM, then SIGKILL, and the step fails saying so.
/// The test runner has already named the test that hung as slow.
fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Result<()> {
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let started = Instant::now();
    let pid = i32::try_from(child.id()).context("process id out of range")?;
    loop {
        if let Some(status) = child.try_wait().context("cannot wait for cargo")? {
            if !status.success() {
                bail!("{cmd:?} exited with {status}");
            }
            return Ok(());
        }
        if started.elapsed() >= limit {
            eprintln!(
                "xtask: {cmd:?} still running after {limit:?}: stopping it and what it started \
                 (a hung test is named above as slow)"
            );
            for signal in [Signal::SIGTERM, Signal::SIGKILL] {
                // Children first, so none is re-parented away from the tree before it is seen.
                let mut tree = descendants(pid);
                tree.reverse();
                tree.push(pid);
                for p in tree {
                    let _ = kill(Pid::from_raw(p), signal);
                }
                let grace = Instant::now();
                while grace.elapsed() < Duration::from_secs(5) {
                    if child.try_wait().ok().flatten().is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let _ = child.wait();
            bail!("{cmd:?} did not finish within {limit:?} (DSMIL_TEST_TIMEOUT_SECS)");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every process below `root`, parents before children, read from /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} exited with {status}");
    }
    Ok(())
}

/// Format, lint, layering, docs, licenses, every test, then the Debian package.
pub fn ci(root: &Path) -> Result<()> {
    let started = Instant::now();
    step("cargo fmt --check", || {
        run(cargo(root).args(["fmt", "--all", "--", "--check"]))
    })?;
    step(
        "install build dependencies",
        crate::services::install_build_deps,
    )?;
    step("cargo clippy -D warnings", || {
        run(
            with_features(cargo(root).args(["clippy", "--workspace", "--all-targets", "--locked"]))
                .args(["--", "-D", "warnings"]),
        )
    })?;
    step("layering", || crate::layering::check_workspace(root))?;
    step("source file sizes", || crate::sizes::check(root))?;
    step("docs/openapi.json current and valid", || {
        crate::openapi::run(root, true)
    })?;
    step("cargo doc -D warnings", || {
        run(cargo(root)
            .args(["doc", "--workspace", "--no-deps", "--locked"])
            .env("RUSTDOCFLAGS", "-D warnings"))
    })?;
    step("cargo deny check licenses bans sources", || {
        ensure_cargo_deny(root)?;
        // Advisories need the RustSec database from the network, which these machines lack.
        run(cargo(root).args(["deny", "--locked", "check", "licenses", "bans", "sources"]))
    })?;
    test(root, &[])?;
    step(
        "Debian package: lintian, install, run, remove, purge",
        || {
            let args = crate::package::PackageArgs {
                // The binaries the test step built: a release build would add ten minutes.
                profile: "dev".into(),
                out: None,
                install_check: true,
            };
            crate::package::run(root, &args).map(|_| ())
        },
    )?;
    eprintln!("ci: all steps passed in {:.1?}", started.elapsed());
    Ok(())
}

fn ensure_cargo_deny(root: &Path) -> Result<()> {
    let present = cargo(root)
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    eprintln!(
        "cargo-deny is missing: installing it with cargo install --locked (a few minutes, once)"
    );
    run(cargo(root).args(["install", "--locked", "cargo-deny"]))
}

/// True when `cargo nextest` runs here.
fn nextest_available(root: &Path) -> bool {
    cargo(root)
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Provisions the services, runs every test against them (with cargo-nextest when it is
/// installed, else `cargo test`), and always tears them down.
pub fn test(root: &Path, extra: &[String]) -> Result<()> {
    let env = step("services up", || services::up(root))?;
    let result = (|| {
        // Binaries first: end-to-end tests run the sibling binaries (dsmild, dsmilctl).
        step("cargo build --bins", || {
            run(with_features(cargo(root).args([
                "build",
                "--workspace",
                "--bins",
                "--locked",
            ])))
        })?;
        let limit = test_timeout()?;
        // One test command against the services, with `extra` passed to the test filter.
        let tests = |args: &[&str], extra: &[String]| {
            let mut cmd = cargo(root);
            cmd.args(args)
                .args(["--workspace", "--locked", "--no-fail-fast"])
                .envs(&env)
                .env(dsmil_core::testenv::REQUIRE_VAR, "1");
            with_features(&mut cmd);
            if !extra.is_empty() {
                cmd.arg("--").args(extra);
            }
            run_with_deadline(&mut cmd, limit)
        };
        if nextest_available(root) {
            // One process per test (a hang or abort is named alone; .config/nextest.toml
            // kills a test at five minutes); doctests, which nextest does not run, after.
            step("cargo nextest run", || tests(&["nextest", "run"], extra))?;
            step("cargo test --doc", || tests(&["test", "--doc"], &[]))
        } else {
            eprintln!(
                "xtask: cargo-nextest is not installed: running the tests with cargo test \
                 (`cargo install --locked cargo-nextest` for one process per test)"
            );
            step("cargo test", || tests(&["test"], extra))
        }
    })();
    let down = step("services down", || services::down(root));
    result?;
    down
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_past_its_deadline_is_stopped_with_its_children() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pidfile = dir.path().join("grandchild.pid");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("sleep 60 & echo $! > {}; wait", pidfile.display()));
        let started = Instant::now();
        let err = run_with_deadline(&mut cmd, Duration::from_millis(500))
            .err()
            .unwrap_or_else(|| panic!("a hung command passed"));
        assert!(err.to_string().contains("did not finish within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(30));
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap_or_else(|e| panic!("{e}"))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        // Killed, and reaped by init (or a zombie until then): not running `sleep` any more.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim().to_owned()));
            if state.as_deref().is_none_or(|s| s.starts_with('Z')) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the grandchild survived: {state:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn a_failing_or_passing_command_is_reported_as_such() {
        assert!(run_with_deadline(&mut Command::new("true"), Duration::from_secs(30)).is_ok());
        let err = run_with_deadline(&mut Command::new("false"), Duration::from_secs(30))
            .err()
            .unwrap_or_else(|| panic!("false passed"));
        assert!(err.to_string().contains("exited with"), "{err}");
    }
}
