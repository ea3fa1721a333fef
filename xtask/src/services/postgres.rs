//! PostgreSQL 16 with pgvector, from the PyPI wheel `pgserver` (Debian 12 ships no pgvector).
//!
//! Where things live, and why:
//! - the venv that `pip install`s the wheel: `target/dsmil-services/pgserver-venv/` (root's);
//! - the PostgreSQL binaries, libraries and `share/`, copied out of the venv, and the data dir:
//!   `/var/tmp/dsmil-pg-<hash of the workspace path>/{install,data}`.
//!
//! PostgreSQL refuses to run as root, so as root the server runs as the unprivileged system user
//! `dsmil-pg`. That user may be unable to reach anything under the workspace: CI clones into an
//! unknown folder, possibly below `/root` (mode 700), and changing the modes of the user's home
//! folders is not ours to do. So the binaries are copied to a folder of their own under
//! `/var/tmp` (world-traversable, owned by us, made world-readable), and the data dir sits beside
//! them, owned by `dsmil-pg` with mode 700. The copy keeps the wheel's layout
//! (`pgserver/pginstall/{bin,lib,share}` beside `pgserver.libs/`), because the binaries find
//! `libpq` through `RPATH=$ORIGIN/../../../pgserver.libs` and `share/` relative to `bin/`.
//! A short path there also keeps the unix socket path below its 107-byte limit.
//! When xtask does not run as root, the server simply runs as the current user, same layout.
//!
//! The data dir is kept across `down`/`up` (a second `up` is a plain `pg_ctl start`); the
//! server listens on 127.0.0.1 only, on a port chosen free at each start, with `trust` auth.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use dsmil_core::testenv::DATABASE_URL_VAR;
use nix::sys::signal::Signal;
use nix::unistd::{User, getegid, geteuid};

use super::Env;
use super::process::{self, ServiceState, note};

/// Process name of the postmaster (what `/proc/<pid>/comm` says).
const COMM: &str = "postgres";
/// The PyPI wheel bundling PostgreSQL 16 and pgvector; pinned so the copy can be reused.
const PGSERVER_VERSION: &str = "0.1.4";
/// Unprivileged system user the server runs as when xtask runs as root.
const PG_USER: &str = "dsmil-pg";
/// Database the tests use; `vector` is created in it.
const DATABASE: &str = "dsmil_test";
/// Marker written into a complete copy of the binaries, holding [`PGSERVER_VERSION`].
const MARKER: &str = ".dsmil-pgserver-version";

/// The folders PostgreSQL uses for one workspace.
struct Layout {
    /// venv the wheel is pip-installed into (only needed to make the copy).
    venv: PathBuf,
    /// `/var/tmp/dsmil-pg-<hash>`.
    base: PathBuf,
    /// Copy of the wheel's files, readable by everyone.
    install: PathBuf,
    /// `initdb`, `pg_ctl`, `postgres`, `psql`.
    bin: PathBuf,
    /// The cluster, owned by the user the server runs as.
    data: PathBuf,
}

impl Layout {
    fn new(root: &Path, state_dir: &Path) -> Self {
        let canonical = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let hash = fnv1a(canonical.as_os_str().as_encoded_bytes());
        let base = PathBuf::from(format!("/var/tmp/dsmil-pg-{hash:016x}"));
        let install = base.join("install");
        Self {
            venv: state_dir.join("pgserver-venv"),
            bin: install.join("pgserver").join("pginstall").join("bin"),
            data: base.join("data"),
            install,
            base,
        }
    }

    fn postmaster_pid(&self) -> PathBuf {
        self.data.join("postmaster.pid")
    }

    fn log_file(&self) -> PathBuf {
        self.data.join("postgres.log")
    }
}

/// 64-bit FNV-1a: a hash that stays the same across Rust versions (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Who the server runs as.
enum RunAs {
    /// xtask is not root: the current user.
    Current,
    /// xtask is root: this unprivileged user, via `runuser`.
    User { name: String, uid: u32, gid: u32 },
}

impl RunAs {
    fn uid(&self) -> u32 {
        match self {
            Self::Current => geteuid().as_raw(),
            Self::User { uid, .. } => *uid,
        }
    }

    fn gid(&self) -> u32 {
        match self {
            Self::Current => getegid().as_raw(),
            Self::User { gid, .. } => *gid,
        }
    }

    /// A command running `program` as this user, from `cwd`.
    fn command(&self, program: &Path, cwd: &Path) -> Command {
        let mut cmd = match self {
            Self::Current => Command::new(program),
            Self::User { name, .. } => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", name, "--"]).arg(program);
                cmd
            }
        };
        // The user may not be allowed into our current directory; postgres warns about it.
        cmd.current_dir(cwd);
        cmd
    }
}

/// Makes sure PostgreSQL+pgvector runs and `dsmil_test` has the `vector` extension: reuses
/// `previous` (or a server that outlived a lost `state.json`) when it answers, otherwise
/// installs what is missing, initialises the cluster if needed and starts it.
pub fn up(root: &Path, state_dir: &Path, previous: Option<ServiceState>) -> Result<ServiceState> {
    let layout = Layout::new(root, state_dir);
    if let Some(prev) = previous
        && prev.is_up(COMM)
    {
        note(format!(
            "postgres already runs (pid {}, port {})",
            prev.pid, prev.port
        ));
        return Ok(prev);
    }
    if let Some((pid, port)) = running_postmaster(&layout) {
        if process::port_answers(port) {
            note(format!(
                "postgres found running from {} (pid {pid}, port {port})",
                layout.data.display()
            ));
            ensure_database(&layout, port)?;
            return Ok(service_state(pid, port));
        }
        note(format!("postgres (pid {pid}) does not answer; stopping it"));
        stop(pid)?;
    }

    ensure_base_dir(&layout.base)?;
    ensure_install(&layout)?;
    let run_as = ensure_user()?;
    ensure_cluster(&layout, &run_as)?;
    let mut last_err = None;
    // Two tries: the free port can be taken by someone else between finding and binding.
    for _ in 0..2 {
        match start(&layout, &run_as) {
            Ok(state) => return Ok(state),
            Err(err) => {
                note(format!("starting postgres failed: {err:#}"));
                last_err = Some(err);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("postgres was never started")))
}

fn service_state(pid: u32, port: u16) -> ServiceState {
    let url = format!("postgres://postgres@127.0.0.1:{port}/{DATABASE}");
    ServiceState {
        pid,
        port,
        env: Env::from([(DATABASE_URL_VAR.to_owned(), url)]),
    }
}

/// The live postmaster of the workspace's data dir, with its port, from `postmaster.pid`.
fn running_postmaster(layout: &Layout) -> Option<(u32, u16)> {
    let text = fs::read_to_string(layout.postmaster_pid()).ok()?;
    let (pid, port) = parse_postmaster_pid(&text)?;
    process::pid_alive(pid, COMM).then_some((pid, port))
}

/// Pid (line 1) and port (line 4) from the text of a `postmaster.pid` file.
fn parse_postmaster_pid(text: &str) -> Option<(u32, u16)> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let port = lines.nth(2)?.trim().parse().ok()?;
    Some((pid, port))
}

/// Creates `/var/tmp/dsmil-pg-<hash>` (mode 755), refusing one that is a symlink or someone
/// else's: `/var/tmp` is world-writable.
fn ensure_base_dir(base: &Path) -> Result<()> {
    match fs::symlink_metadata(base) {
        Ok(meta) => {
            if !meta.is_dir() {
                bail!(
                    "{} exists but is not a directory; remove it",
                    base.display()
                );
            }
            if meta.uid() != geteuid().as_raw() {
                bail!(
                    "{} belongs to uid {}, not to us; remove it (it holds only a copy of \
                     PostgreSQL and a throw-away test cluster)",
                    base.display(),
                    meta.uid()
                );
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(base).with_context(|| format!("creating {}", base.display()))?;
        }
        Err(err) => return Err(err).with_context(|| format!("inspecting {}", base.display())),
    }
    fs::set_permissions(base, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 755 {}", base.display()))
}

/// Makes sure the world-readable copy of the PostgreSQL binaries exists, pip-installing the
/// wheel first when needed.
fn ensure_install(layout: &Layout) -> Result<()> {
    let marker = layout.install.join(MARKER);
    let complete = fs::read_to_string(&marker).is_ok_and(|v| v.trim() == PGSERVER_VERSION);
    if complete && layout.bin.join("postgres").is_file() {
        return Ok(());
    }
    let site = ensure_venv(&layout.venv)?;
    note(format!(
        "copying PostgreSQL to {}",
        layout.install.display()
    ));
    let tmp = layout.base.join("install.tmp");
    remove_dir_if_exists(&tmp)?;
    let pgserver = tmp.join("pgserver");
    fs::create_dir_all(&pgserver).with_context(|| format!("creating {}", pgserver.display()))?;
    copy_tree(&site.join("pgserver").join("pginstall"), &pgserver)?;
    let libs = site.join("pgserver.libs");
    if libs.is_dir() {
        copy_tree(&libs, &tmp)?;
    }
    // Readable and traversable by the server's user whatever root's umask was.
    process::run(
        Command::new("chmod").args(["-R", "a+rX"]).arg(&tmp),
        "making the PostgreSQL copy world-readable",
    )?;
    process::write_file(&tmp.join(MARKER), PGSERVER_VERSION)?;
    remove_dir_if_exists(&layout.install)?;
    fs::rename(&tmp, &layout.install)
        .with_context(|| format!("renaming {} to {}", tmp.display(), layout.install.display()))
}

/// `cp -a src dest_dir/` (keeps symlinks and modes).
fn copy_tree(src: &Path, dest_dir: &Path) -> Result<()> {
    process::run(
        Command::new("cp").arg("-a").arg(src).arg(dest_dir),
        &format!("copying {}", src.display()),
    )
    .map(drop)
}

fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The venv's site-packages holding the `pgserver` wheel, installing it when missing.
fn ensure_venv(venv: &Path) -> Result<PathBuf> {
    if let Some(site) = pgserver_site(venv) {
        return Ok(site);
    }
    create_venv(venv)?;
    note(format!(
        "pip install pgserver=={PGSERVER_VERSION} (PostgreSQL 16 + pgvector)"
    ));
    process::pip_install(
        venv,
        &[
            "--no-deps",
            "--only-binary=:all:",
            &format!("pgserver=={PGSERVER_VERSION}"),
        ],
        "pip install pgserver",
    )?;
    pgserver_site(venv).with_context(|| {
        format!(
            "pgserver installed into {} but no pgserver/pginstall/bin/postgres found there",
            venv.display()
        )
    })
}

/// `<venv>/lib/python3.X/site-packages` when it holds the wheel's `postgres` binary.
fn pgserver_site(venv: &Path) -> Option<PathBuf> {
    fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python"))
        .map(|entry| entry.path().join("site-packages"))
        .find(|site| site.join("pgserver/pginstall/bin/postgres").is_file())
}

/// `python3 -m venv <venv>` with pip in it. Prefers Debian's `/usr/bin/python3`; on Debian its
/// `venv` needs `ensurepip`, which only the `python3-venv` package brings, so that package is
/// installed when venv creation fails (plus `ca-certificates`, which pip needs for HTTPS).
pub(crate) fn create_venv(venv: &Path) -> Result<()> {
    let try_create = |python: &Path| -> Result<()> {
        remove_dir_if_exists(venv)?;
        process::run(
            Command::new(python).args(["-m", "venv"]).arg(venv),
            &format!("creating a venv with {}", python.display()),
        )?;
        if !venv.join("bin").join("pip").is_file() {
            bail!("{} -m venv made no pip", python.display());
        }
        Ok(())
    };
    let system = Path::new("/usr/bin/python3");
    let python = if system.is_file() {
        Some(system.to_path_buf())
    } else {
        process::which("python3")
    };
    if let Some(python) = python {
        note(format!(
            "creating venv {} with {}",
            venv.display(),
            python.display()
        ));
        match try_create(&python) {
            Ok(()) => return Ok(()),
            Err(err) => note(format!("{err:#}")),
        }
    }
    process::apt_install(
        &["python3", "python3-venv", "ca-certificates"],
        "python3 cannot create a venv with pip",
    )?;
    try_create(system)
}

/// The user the server runs as, creating the system user `dsmil-pg` when root and missing.
fn ensure_user() -> Result<RunAs> {
    if !process::is_root() {
        return Ok(RunAs::Current);
    }
    let lookup = || User::from_name(PG_USER).with_context(|| format!("looking up user {PG_USER}"));
    let user = match lookup()? {
        Some(user) => user,
        None => {
            note(format!(
                "creating system user {PG_USER} (PostgreSQL refuses to run as root)"
            ));
            process::run(
                Command::new("useradd")
                    .args(["--system", "--user-group", "--no-create-home"])
                    .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
                    .arg(PG_USER),
                &format!("creating user {PG_USER}"),
            )?;
            lookup()?.with_context(|| format!("useradd succeeded but {PG_USER} is unknown"))?
        }
    };
    Ok(RunAs::User {
        name: PG_USER.to_owned(),
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    })
}

/// Makes sure the data dir holds an initialised cluster owned by the server's user.
fn ensure_cluster(layout: &Layout, run_as: &RunAs) -> Result<()> {
    let data = &layout.data;
    if data.join("PG_VERSION").is_file() {
        let owner = fs::metadata(data)
            .with_context(|| format!("inspecting {}", data.display()))?
            .uid();
        if owner != run_as.uid() {
            // e.g. the user was deleted and re-created with another uid.
            process::run(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{}:{}", run_as.uid(), run_as.gid()))
                    .arg(data),
                "handing the data dir to the PostgreSQL user",
            )?;
        }
        return Ok(());
    }
    note(format!("initdb {}", data.display()));
    remove_dir_if_exists(data)?; // a half-made cluster from an interrupted initdb
    fs::create_dir(data).with_context(|| format!("creating {}", data.display()))?;
    std::os::unix::fs::chown(data, Some(run_as.uid()), Some(run_as.gid()))
        .with_context(|| format!("chown {}", data.display()))?;
    fs::set_permissions(data, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 700 {}", data.display()))?;
    process::run(
        run_as
            .command(&layout.bin.join("initdb"), &layout.base)
            .arg("-D")
            .arg(data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"])
            .arg("--no-instructions"),
        "initdb",
    )
    .map(drop)
}

/// `pg_ctl start` on a free port, then creates the test database and extension.
fn start(layout: &Layout, run_as: &RunAs) -> Result<ServiceState> {
    let port = process::free_port()?;
    note(format!("starting postgres on 127.0.0.1:{port}"));
    let log = layout.log_file();
    let options = format!(
        "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='{}'",
        layout.data.display()
    );
    process::run(
        run_as
            .command(&layout.bin.join("pg_ctl"), &layout.base)
            .arg("-D")
            .arg(&layout.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-s", "-o", &options, "start"]),
        "pg_ctl start",
    )
    .with_context(|| {
        format!(
            "last lines of {}:\n{}",
            log.display(),
            process::tail(&log, 20)
        )
    })?;
    let (pid, pid_port) = running_postmaster(layout).with_context(|| {
        format!(
            "pg_ctl start succeeded but {} names no live postmaster",
            layout.postmaster_pid().display()
        )
    })?;
    if pid_port != port {
        bail!("postmaster.pid says port {pid_port}, expected {port}");
    }
    process::wait_for_port(port, pid, COMM, Duration::from_secs(30))?;
    ensure_database(layout, port)?;
    Ok(service_state(pid, port))
}

/// Creates database `dsmil_test` if missing and the `vector` extension in it.
fn ensure_database(layout: &Layout, port: u16) -> Result<()> {
    let psql = |database: &str, sql: &str| {
        process::run(
            Command::new(layout.bin.join("psql"))
                .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-U", "postgres"])
                .arg("-p")
                .arg(port.to_string())
                .args(["-d", database, "-c", sql])
                .env("PGCONNECT_TIMEOUT", "10"),
            &format!("psql -d {database} -c {sql:?}"),
        )
    };
    let exists = psql(
        "postgres",
        &format!("SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"),
    )?;
    if exists.trim() != "1" {
        psql("postgres", &format!("CREATE DATABASE {DATABASE}"))?;
    }
    psql(DATABASE, "CREATE EXTENSION IF NOT EXISTS vector")?;
    Ok(())
}

/// Fast shutdown (SIGINT) of the postmaster, SIGKILL after 30 s.
fn stop(pid: u32) -> Result<()> {
    process::stop_pid(pid, COMM, Signal::SIGINT, Duration::from_secs(30))
        .with_context(|| format!("stopping postgres (pid {pid})"))
}

/// Stops the postmaster named by the data dir's `postmaster.pid` and the one in `state`.
pub fn down(root: &Path, state_dir: &Path, state: Option<&ServiceState>) -> Result<()> {
    let layout = Layout::new(root, state_dir);
    if let Some((pid, _)) = running_postmaster(&layout) {
        note(format!("stopping postgres (pid {pid})"));
        stop(pid)?;
    }
    if let Some(state) = state {
        stop(state.pid)?;
    }
    Ok(())
}

/// Lines saying whether PostgreSQL runs and where its files are.
pub fn status(root: &Path, state_dir: &Path, state: Option<&ServiceState>) -> String {
    let layout = Layout::new(root, state_dir);
    let line = match (state, running_postmaster(&layout)) {
        (Some(s), _) if s.is_up(COMM) => {
            format!("postgres: running, pid {}, port {}", s.pid, s.port)
        }
        (_, Some((pid, port))) => format!(
            "postgres: running but not recorded in state.json, pid {pid}, port {port} \
             (`up` adopts it)"
        ),
        (Some(s), None) => format!(
            "postgres: NOT answering (recorded pid {}, port {})",
            s.pid, s.port
        ),
        (None, None) => "postgres: stopped".to_owned(),
    };
    format!(
        "{line}\n  binaries: {}\n  data:     {}",
        layout.bin.display(),
        layout.data.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postmaster_pid_gives_pid_and_port() {
        let text = "4242\n/var/tmp/x/data\n1700000000\n54321\n/var/tmp/x/data\n127.0.0.1\n  \
                    1234 5\nready   \n";
        assert_eq!(parse_postmaster_pid(text), Some((4242, 54321)));
        assert_eq!(parse_postmaster_pid("4242\n"), None);
        assert_eq!(parse_postmaster_pid(""), None);
    }

    #[test]
    fn fnv1a_matches_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn layout_is_short_and_per_workspace() {
        let a = Layout::new(Path::new("/nonexistent/a"), Path::new("/t"));
        let b = Layout::new(Path::new("/nonexistent/b"), Path::new("/t"));
        assert_ne!(a.base, b.base);
        assert!(a.data.starts_with(&a.base) && a.bin.starts_with(&a.install));
        // unix socket path `<data>/.s.PGSQL.65535` must fit in sun_path (107 bytes).
        assert!(a.data.join(".s.PGSQL.65535").as_os_str().len() < 107);
    }
}
