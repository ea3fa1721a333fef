//! `cargo xtask ci` and `cargo xtask test`: the steps CI runs, in order, each named when it
//! fails.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::services;

/// Cargo features the provisioned services enable in tests and lints: the TPM layer's `tss`
/// backend (tested against swtpm), in the library and in the daemon. Kept in one place so
/// `ci` and `test` agree.
pub const SERVICE_FEATURES: &[&str] = &["dsmil-tpm/tss", "dsmild/tss"];

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

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} exited with {status}");
    }
    Ok(())
}

/// Format, lint, layering, docs, licenses, then every test.
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

/// Provisions the services, runs every test against them, and always tears them down.
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
        step("cargo test", || {
            let mut cmd = cargo(root);
            cmd.args(["test", "--workspace", "--locked"])
                .envs(&env)
                .env(dsmil_core::testenv::REQUIRE_VAR, "1");
            with_features(&mut cmd);
            if !extra.is_empty() {
                cmd.arg("--").args(extra);
            }
            run(&mut cmd)
        })
    })();
    let down = step("services down", || services::down(root));
    result?;
    down
}
