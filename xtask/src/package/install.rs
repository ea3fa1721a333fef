//! `cargo xtask package --install-check`: the package installed on this machine with `dpkg -i`,
//! the service started as the installed unit says, probed from outside, stopped, then removed
//! and purged — each step checked.
//!
//! PID 1 here is not systemd, so the unit is played by hand: its `ExecStart=` runs as its
//! `User=`/`Group=` (through `setpriv`) with the environment systemd would give —
//! `Environment=`, `$STATE_DIRECTORY` and `$CONFIGURATION_DIRECTORY` created with their modes,
//! `$NOTIFY_SOCKET` (a datagram socket this check reads) and `$WATCHDOG_USEC` from
//! `WatchdogSec=`. The check waits for `READY=1`, asks `GET /api/ready`, runs the installed
//! `dsmilctl status`, waits for a `WATCHDOG=1`, sends SIGTERM and expects `STOPPING=1` and a
//! clean exit.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::services::process;

/// Where the package puts the unit.
const UNIT: &str = "/usr/lib/systemd/system/dsmild.service";
/// The address the shipped configuration listens on.
const DEFAULT_LISTEN: &str = "127.0.0.1:8765";

/// Installs `deb`, runs the service, removes and purges the package.
pub fn check(deb: &Path) -> Result<()> {
    if !process::is_root() {
        bail!("the install check installs a package and adds a system user: run it as root");
    }
    if installed() {
        bail!(
            "a dsmil package is already installed here; the check would replace it \
             (remove it first: dpkg --purge dsmil)"
        );
    }
    step("dpkg -i", || {
        process::run_to_stderr(Command::new("dpkg").arg("-i").arg(deb), "dpkg -i")
    })?;
    let result = (|| {
        step("installed files", installed_files)?;
        step("the service as its unit runs it", run_service)
    })();
    let removed = step("dpkg -r keeps configuration and data", remove_keeps_data);
    let purged = step("dpkg --purge leaves nothing", purge_leaves_nothing);
    result?;
    removed?;
    purged
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("package check: {name}");
    f().with_context(|| format!("package check '{name}' failed"))
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Status}", "dsmil"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout) != "not-installed")
}

/// The files, the user and the conffile the package promises.
fn installed_files() -> Result<()> {
    for path in [
        "/usr/bin/dsmild",
        "/usr/bin/dsmilctl",
        UNIT,
        "/etc/dsmil/dsmil.toml",
        "/usr/share/man/man8/dsmild.8.gz",
        "/usr/share/man/man1/dsmilctl.1.gz",
        "/usr/share/bash-completion/completions/dsmilctl",
        "/usr/share/dsmil/prometheus/dsmil.rules.yml",
    ] {
        if !Path::new(path).exists() {
            bail!("{path} is missing after dpkg -i");
        }
    }
    let user = nix::unistd::User::from_name("dsmil")
        .context("cannot look up the dsmil user")?
        .context("postinst did not create the dsmil user")?;
    let data =
        std::fs::metadata("/var/lib/dsmil").context("postinst did not create /var/lib/dsmil")?;
    if data.uid() != user.uid.as_raw() || data.mode() & 0o777 != 0o700 {
        bail!(
            "/var/lib/dsmil is uid {} mode {:o}; expected the dsmil user and 0700",
            data.uid(),
            data.mode() & 0o777
        );
    }
    let conffiles = process::run(
        Command::new("dpkg-query").args(["-W", "-f", "${Conffiles}", "dsmil"]),
        "dpkg-query",
    )?;
    if !conffiles.contains("/etc/dsmil/dsmil.toml") {
        bail!("dpkg does not list /etc/dsmil/dsmil.toml as a conffile: {conffiles:?}");
    }
    Ok(())
}

/// The `[Service]` settings this check plays.
#[derive(Debug, Default)]
struct Unit {
    exec_start: Vec<String>,
    user: String,
    group: String,
    environment: Vec<(String, String)>,
    state_directory: Option<(String, u32)>,
    configuration_directory: Option<String>,
    watchdog: Option<Duration>,
}

/// Reads the `[Service]` section of a unit file (one word per `ExecStart=` argument; this
/// unit has no quoting).
fn parse_unit(text: &str) -> Result<Unit> {
    let mut service = BTreeMap::new();
    let mut environment = Vec::new();
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section != "[Service]" {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("unit line {line:?} is not key=value");
        };
        if key == "Environment" {
            for pair in value.split_whitespace() {
                let (k, v) = pair
                    .split_once('=')
                    .with_context(|| format!("Environment={value} is not NAME=value"))?;
                environment.push((k.to_owned(), v.to_owned()));
            }
        } else {
            service.insert(key.to_owned(), value.to_owned());
        }
    }
    let get = |k: &str| service.get(k).cloned();
    let exec_start: Vec<String> = get("ExecStart")
        .context("the unit has no ExecStart=")?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let user = get("User").context("the unit has no User=")?;
    let mode = |k: &str| -> Result<u32> {
        let text = get(k).unwrap_or_else(|| "0755".into());
        u32::from_str_radix(&text, 8).with_context(|| format!("{k}={text} is not octal"))
    };
    let state_directory = match get("StateDirectory") {
        Some(dir) => Some((dir, mode("StateDirectoryMode")?)),
        None => None,
    };
    let watchdog = match get("WatchdogSec") {
        Some(text) => {
            let secs = text.trim_end_matches('s');
            Some(Duration::from_secs(secs.parse().with_context(|| {
                format!("WatchdogSec={text} is not whole seconds")
            })?))
        }
        None => None,
    };
    Ok(Unit {
        exec_start,
        group: get("Group").unwrap_or_else(|| user.clone()),
        user,
        environment,
        state_directory,
        configuration_directory: get("ConfigurationDirectory"),
        watchdog,
    })
}

/// Starts `ExecStart=` as the unit would and probes it; always stops it.
fn run_service() -> Result<()> {
    let unit =
        parse_unit(&std::fs::read_to_string(UNIT).with_context(|| format!("cannot read {UNIT}"))?)?;
    let sock_dir = tempfile_dir()?;
    let sock_path = sock_dir.join("notify");
    let socket = UnixDatagram::bind(&sock_path).context("cannot bind the notify socket")?;
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o666))?;

    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", unit.user))
        .arg(format!("--regid={}", unit.group))
        .arg("--init-groups")
        .arg("--")
        .args(&unit.exec_start)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("NOTIFY_SOCKET", &sock_path)
        .env("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    for (k, v) in &unit.environment {
        cmd.env(k, v);
    }
    if let Some((dir, mode)) = &unit.state_directory {
        let path = Path::new("/var/lib").join(dir);
        process::run(
            Command::new("install")
                .arg("-d")
                .args([
                    "-o",
                    &unit.user,
                    "-g",
                    &unit.group,
                    "-m",
                    &format!("{mode:o}"),
                ])
                .arg(&path),
            "install -d (StateDirectory=)",
        )?;
        cmd.env("STATE_DIRECTORY", &path).env("HOME", &path);
    }
    if let Some(dir) = &unit.configuration_directory {
        cmd.env("CONFIGURATION_DIRECTORY", Path::new("/etc").join(dir));
    }
    if let Some(period) = unit.watchdog {
        cmd.env("WATCHDOG_USEC", period.as_micros().to_string());
    }
    // The shipped configuration's address, unless something here holds it already.
    let listen = if TcpStream::connect(DEFAULT_LISTEN).is_ok() {
        let other = format!("127.0.0.1:{}", process::free_port()?);
        eprintln!("package check: {DEFAULT_LISTEN} is taken here; the service listens on {other}");
        cmd.env("DSMIL_LISTEN", &other);
        other
    } else {
        DEFAULT_LISTEN.to_owned()
    };
    let mut child = cmd.spawn().context("cannot start the service")?;
    let result = probe(&mut child, &socket, &listen, &unit);
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&sock_dir);
    result
}

/// READY, /api/ready, dsmilctl status, WATCHDOG, then SIGTERM → STOPPING and exit 0.
fn probe(child: &mut Child, socket: &UnixDatagram, listen: &str, unit: &Unit) -> Result<()> {
    wait_for_state(child, socket, "READY=1", Duration::from_secs(90))?;
    let (status, body) = http_get(listen, "/api/ready")?;
    if status != 200 {
        bail!("GET /api/ready answered {status}: {body}");
    }
    eprintln!("package check: GET /api/ready → 200 {}", body.trim());
    let ctl = process::run(
        Command::new("/usr/bin/dsmilctl")
            .args(["--url", &format!("http://{listen}"), "status"])
            .env_remove("DSMIL_TOKEN_FILE")
            .env_remove("DSMIL_CONTEXT"),
        "dsmilctl status (the packaged one, finding /var/lib/dsmil/api-token itself)",
    )?;
    eprintln!("package check: dsmilctl status:\n{}", ctl.trim_end());
    let user = nix::unistd::User::from_name(&unit.user)?.context("the unit's user is gone")?;
    let token = std::fs::metadata("/var/lib/dsmil/api-token")
        .context("the service wrote no /var/lib/dsmil/api-token")?;
    if token.uid() != user.uid.as_raw() || token.mode() & 0o077 != 0 {
        bail!(
            "the token file is uid {} mode {:o}: it should be the service user's and private",
            token.uid(),
            token.mode() & 0o777
        );
    }
    if let Some(period) = unit.watchdog {
        wait_for_state(child, socket, "WATCHDOG=1", period)?;
    }
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    kill(Pid::from_raw(pid), Signal::SIGTERM).context("cannot signal the service")?;
    wait_for_state(child, socket, "STOPPING=1", Duration::from_secs(60))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("the service exited with {status} after SIGTERM");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the service did not exit within TimeoutStopSec after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the service sends a notification holding `state`.
fn wait_for_state(
    child: &mut Child,
    socket: &UnixDatagram,
    state: &str,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    socket.set_read_timeout(Some(Duration::from_millis(250)))?;
    loop {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]);
            eprintln!("package check: sd-notify {:?}", message.trim());
            if message.lines().any(|l| l == state) {
                return Ok(());
            }
        }
        if state != "STOPPING=1"
            && let Some(status) = child.try_wait()?
        {
            bail!("the service exited with {status} before sending {state}");
        }
        if Instant::now() > deadline {
            bail!("the service sent no {state} within {limit:?}");
        }
    }
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut stream =
        TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// `dpkg -r`: binaries gone, the conffile and the data kept.
fn remove_keeps_data() -> Result<()> {
    process::run_to_stderr(Command::new("dpkg").args(["-r", "dsmil"]), "dpkg -r")?;
    if Path::new("/usr/bin/dsmild").exists() {
        bail!("/usr/bin/dsmild is still there after dpkg -r");
    }
    for kept in ["/etc/dsmil/dsmil.toml", "/var/lib/dsmil"] {
        if !Path::new(kept).exists() {
            bail!("dpkg -r deleted {kept}; only a purge may");
        }
    }
    Ok(())
}

/// `dpkg --purge`: nothing of the package is left but the system user.
fn purge_leaves_nothing() -> Result<()> {
    process::run_to_stderr(
        Command::new("dpkg").args(["--purge", "dsmil"]),
        "dpkg --purge",
    )?;
    let left: Vec<&str> = [
        "/usr/bin/dsmild",
        "/usr/bin/dsmilctl",
        UNIT,
        "/etc/dsmil",
        "/var/lib/dsmil",
        "/usr/share/doc/dsmil",
        "/usr/share/dsmil",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect();
    if !left.is_empty() {
        bail!("after dpkg --purge these are still there: {left:?}");
    }
    if installed() {
        bail!("dpkg still lists dsmil after --purge");
    }
    Ok(())
}

/// A fresh folder under /tmp that the service user can reach (for the notify socket).
fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("dsmil-package-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_shipped_unit_is_read_as_systemd_would_run_it() {
        let text = include_str!("../../../deploy/systemd/dsmild.service");
        let unit = parse_unit(text).unwrap();
        assert_eq!(unit.exec_start, ["/usr/bin/dsmild"]);
        assert_eq!(
            (unit.user.as_str(), unit.group.as_str()),
            ("dsmil", "dsmil")
        );
        assert_eq!(unit.state_directory, Some(("dsmil".into(), 0o700)));
        assert_eq!(unit.configuration_directory.as_deref(), Some("dsmil"));
        assert_eq!(unit.watchdog, Some(Duration::from_secs(30)));
        assert!(
            unit.environment
                .contains(&("DSMIL_LOG_FORMAT".into(), "json".into()))
        );
    }

    #[test]
    fn a_unit_without_what_the_check_needs_is_refused_by_name() {
        let err = parse_unit("[Service]\nUser=x\n").unwrap_err();
        assert!(err.to_string().contains("ExecStart"), "{err}");
        let err =
            parse_unit("[Service]\nExecStart=/bin/true\nUser=x\nWatchdogSec=1min\n").unwrap_err();
        assert!(err.to_string().contains("WatchdogSec"), "{err}");
    }
}
