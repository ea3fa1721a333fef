//! Helpers shared by the services: the state directory and its lock, free ports, pid files,
//! stopping a process by pid, running commands with clear errors, and apt-get.

use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::Env;

/// Loopback address every service listens on.
pub const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Prints a progress line to stderr (stdout of `services up` must stay `eval`-able).
pub fn note(msg: impl AsRef<str>) {
    eprintln!("xtask services: {}", msg.as_ref());
}

/// What `up` recorded about one running service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Pid of the service's main process (swtpm, or the postmaster).
    pub pid: u32,
    /// TCP port it serves on 127.0.0.1.
    pub port: u16,
    /// Environment the tests need to reach it.
    pub env: Env,
}

impl ServiceState {
    /// True when the recorded pid is a live process named `comm` and its port answers.
    pub fn is_up(&self, comm: &str) -> bool {
        pid_alive(self.pid, comm) && port_answers(self.port)
    }
}

/// Contents of `state.json`: one entry per service that `up` started.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The software TPM.
    pub swtpm: Option<ServiceState>,
    /// PostgreSQL with pgvector.
    pub postgres: Option<ServiceState>,
    /// The three-server JetStream cluster (absent in state files written before it existed).
    #[serde(default)]
    pub nats: Option<dsmil_cluster::nats_server::DetachedCluster>,
}

impl State {
    /// The union of the environments of every recorded service.
    pub fn env(&self) -> Env {
        let mut env = Env::new();
        for service in [&self.swtpm, &self.postgres].into_iter().flatten() {
            env.extend(service.env.clone());
        }
        if let Some(cluster) = &self.nats {
            env.extend(super::nats::env(cluster));
        }
        env
    }
}

/// `target/dsmil-services/`, held under an exclusive lock while a command changes it.
pub struct StateDir {
    path: PathBuf,
    // Keeps the advisory lock for as long as this value lives.
    _lock: File,
}

impl StateDir {
    /// Creates (if needed) and locks the state directory of the workspace at `root`, waiting
    /// for another `cargo xtask services` on the same workspace to finish.
    pub fn open(root: &Path) -> Result<Self> {
        let path = state_dir_path(root);
        fs::create_dir_all(&path)
            .with_context(|| format!("creating the services state dir {}", path.display()))?;
        let lock_path = path.join("lock");
        let lock = File::create(&lock_path)
            .with_context(|| format!("opening lock file {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            note("waiting for another `cargo xtask services` on this workspace");
            lock.lock()
                .with_context(|| format!("locking {}", lock_path.display()))?;
        }
        Ok(Self { path, _lock: lock })
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state_file(&self) -> PathBuf {
        self.path.join("state.json")
    }

    /// Reads `state.json`; a missing or unreadable file counts as "nothing recorded".
    pub fn load(&self) -> State {
        let file = self.state_file();
        match fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|err| {
                note(format!("ignoring unreadable {}: {err}", file.display()));
                State::default()
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => State::default(),
            Err(err) => {
                note(format!("ignoring unreadable {}: {err}", file.display()));
                State::default()
            }
        }
    }

    /// Writes `state.json` atomically (write to a temporary file, then rename).
    pub fn save(&self, state: &State) -> Result<()> {
        let file = self.state_file();
        let tmp = self.path.join("state.json.tmp");
        let text = serde_json::to_string_pretty(state).context("serialising services state")?;
        fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &file).with_context(|| format!("renaming to {}", file.display()))
    }
}

/// Where the services keep their state for the workspace at `root`: `target/dsmil-services`,
/// or `$CARGO_TARGET_DIR/dsmil-services` when that is set.
pub fn state_dir_path(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"));
    target.join("dsmil-services")
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener
        .local_addr()
        .context("reading the bound address")?
        .port())
}

/// A port `p` such that both `p` and `p + 1` are free on 127.0.0.1 right now.
pub fn free_port_pair() -> Result<u16> {
    for _ in 0..100 {
        let first = TcpListener::bind((LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
        let port = first
            .local_addr()
            .context("reading the bound address")?
            .port();
        let Some(next) = port.checked_add(1) else {
            continue;
        };
        if TcpListener::bind((LOCALHOST, next)).is_ok() {
            return Ok(port);
        }
    }
    bail!("found no two consecutive free TCP ports on 127.0.0.1 in 100 tries")
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_answers(port: u16) -> bool {
    let addr = SocketAddr::from((LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Waits until 127.0.0.1:`port` accepts connections, failing early if `pid` dies.
pub fn wait_for_port(port: u16, pid: u32, comm: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        if port_answers(port) {
            return Ok(());
        }
        if !pid_alive(pid, comm) {
            bail!("{comm} (pid {pid}) exited before port {port} answered");
        }
        if start.elapsed() > timeout {
            bail!("{comm} (pid {pid}) did not answer on 127.0.0.1:{port} within {timeout:?}");
        }
        sleep(Duration::from_millis(50));
    }
}

/// Reads the pid on the first line of a pid file; `None` when the file does not exist.
pub fn read_pid_file(path: &Path) -> Result<Option<u32>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let first = text.lines().next().unwrap_or_default().trim();
    let pid = first
        .parse()
        .with_context(|| format!("{} does not start with a pid: {first:?}", path.display()))?;
    Ok(Some(pid))
}

/// Waits up to `timeout` for a pid file to appear (a daemon writes it after forking).
pub fn wait_for_pid_file(path: &Path, timeout: Duration) -> Result<u32> {
    let start = Instant::now();
    loop {
        // A daemon may be between creating and writing the file: retry on parse errors too.
        if let Ok(Some(pid)) = read_pid_file(path) {
            return Ok(pid);
        }
        if start.elapsed() > timeout {
            bail!(
                "pid file {} did not appear within {timeout:?}",
                path.display()
            );
        }
        sleep(Duration::from_millis(20));
    }
}

/// True when `pid` is a live (not zombie) process whose name starts with `comm`.
///
/// The name check keeps a recycled pid — some unrelated process that got the number after the
/// service died — from being mistaken for the service, and from being signalled by [`stop_pid`].
pub fn pid_alive(pid: u32, comm: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Format: `pid (comm) S ...`; comm may contain spaces and parentheses, so take the last ')'.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let name = stat.get(open + 1..close).unwrap_or_default();
    let status = stat.get(close + 1..).unwrap_or_default().trim_start();
    name.starts_with(comm) && !status.starts_with('Z') && !status.starts_with('X')
}

/// Stops process `pid` (expected to be named `comm`): sends `signal`, waits up to `grace` for
/// it to exit, then sends SIGKILL. Does nothing when `pid` is not a live `comm` process.
pub fn stop_pid(pid: u32, comm: &str, signal: Signal, grace: Duration) -> Result<()> {
    if !pid_alive(pid, comm) {
        return Ok(());
    }
    let raw = i32::try_from(pid).with_context(|| format!("pid {pid} out of range"))?;
    send(raw, signal, comm)?;
    if wait_gone(pid, comm, grace) {
        return Ok(());
    }
    note(format!(
        "{comm} (pid {pid}) still runs {grace:?} after {signal}; sending SIGKILL"
    ));
    send(raw, Signal::SIGKILL, comm)?;
    if wait_gone(pid, comm, Duration::from_secs(5)) {
        return Ok(());
    }
    bail!("{comm} (pid {pid}) survived SIGKILL")
}

fn send(pid: i32, signal: Signal, comm: &str) -> Result<()> {
    match kill(Pid::from_raw(pid), signal) {
        // It exited between the check and the signal: that is what we wanted.
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(err) => Err(err).with_context(|| format!("sending {signal} to {comm} (pid {pid})")),
    }
}

fn wait_gone(pid: u32, comm: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    while pid_alive(pid, comm) {
        if start.elapsed() > timeout {
            return false;
        }
        sleep(Duration::from_millis(50));
    }
    true
}

/// Runs `cmd` with no stdin and captured output; returns stdout. On failure the error names
/// `what`, the command line, its exit status and what it printed.
pub fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: could not start {cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "{what}: {cmd:?} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            stdout.trim_end(),
            stderr.trim_end()
        );
    }
    Ok(stdout)
}

/// Runs `cmd` with no stdin and its stdout and stderr both going to our stderr (for long,
/// chatty steps such as apt-get and pip); fails naming `what` and the command when it fails.
pub fn run_to_stderr(cmd: &mut Command, what: &str) -> Result<()> {
    let stderr = io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr")?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .with_context(|| format!("{what}: could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{what}: {cmd:?} failed with {status} (its output is above)");
    }
    Ok(())
}

/// The full path of `program` found on `PATH`, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// True when this process runs as root (and so may apt-get, useradd, chown).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Runs `apt-get update` once per xtask run.
fn apt_update() -> Result<()> {
    if !APT_UPDATED.load(Ordering::SeqCst) {
        run_to_stderr(
            Command::new("apt-get")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive"),
            "apt-get update",
        )?;
        APT_UPDATED.store(true, Ordering::SeqCst);
    }
    Ok(())
}

/// Downloads the `.deb` of `package` into `dir` without installing it (no maintainer scripts
/// run, no service starts); returns its path.
pub fn apt_download(package: &str, dir: &Path) -> Result<PathBuf> {
    apt_update()?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    run_to_stderr(
        Command::new("apt-get")
            .args(["download", "-q", package])
            .current_dir(dir),
        &format!("apt-get download {package}"),
    )?;
    fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .with_context(|| {
            format!(
                "apt-get download {package} left no .deb in {}",
                dir.display()
            )
        })
}

/// Installs Debian `packages` with apt-get, non-interactively, running `apt-get update` first
/// (once per xtask run). Fails with instructions when not root.
pub fn apt_install(packages: &[&str], why: &str) -> Result<()> {
    let list = packages.join(" ");
    if !is_root() {
        bail!("{why}; install them with `sudo apt-get install -y {list}` (xtask is not root)");
    }
    note(format!("{why}; installing with apt-get: {list}"));
    apt_update()?;
    run_to_stderr(
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("apt-get install {list}"),
    )
}

/// The last `lines` lines of a text file, for error messages (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if File::open(path)
        .and_then(|mut file| file.read_to_string(&mut text))
        .is_err()
    {
        return String::new();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Writes `contents` to `path`, creating or truncating it.
pub fn write_file(path: &Path, contents: &str) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// `<venv>/bin/python -m pip install --quiet` with `args`, its output on stderr.
pub fn pip_install(venv: &Path, args: &[&str], what: &str) -> Result<()> {
    run_to_stderr(
        Command::new(venv.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(args),
        what,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_under_its_name_only() {
        let pid = std::process::id();
        let comm = fs::read_to_string("/proc/self/comm").unwrap();
        assert!(pid_alive(pid, comm.trim()));
        assert!(!pid_alive(pid, "surely-not-this-name"));
    }

    #[test]
    fn free_ports_are_bindable() {
        let port = free_port_pair().unwrap();
        TcpListener::bind((LOCALHOST, port)).unwrap();
        TcpListener::bind((LOCALHOST, port + 1)).unwrap();
        assert!(!port_answers(free_port().unwrap()));
    }

    #[test]
    fn pid_file_first_line_is_read() {
        let dir = std::env::temp_dir().join(format!("xtask-pidfile-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.pid");
        assert_eq!(read_pid_file(&file).unwrap(), None);
        write_file(&file, "1234\n/var/lib/data\n5432\n").unwrap();
        assert_eq!(read_pid_file(&file).unwrap(), Some(1234));
        write_file(&file, "garbage\n").unwrap();
        assert!(read_pid_file(&file).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn state_env_merges_services() {
        let mut state = State::default();
        assert!(state.env().is_empty());
        state.swtpm = Some(ServiceState {
            pid: 1,
            port: 2,
            env: Env::from([("A".to_owned(), "1".to_owned())]),
        });
        state.postgres = Some(ServiceState {
            pid: 3,
            port: 4,
            env: Env::from([("B".to_owned(), "2".to_owned())]),
        });
        let env = state.env();
        assert_eq!(env.len(), 2);
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "2");
    }
}
