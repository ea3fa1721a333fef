//! The operating-system pieces the launcher needs and std lacks or keeps awkward: signals by pid,
//! `/proc` lookups (is this pid still a nats-server of ours?), random secrets from
//! `/dev/urandom`, private files, free loopback ports and log tails.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use super::error::NatsServerError;

/// SIGKILL on Linux.
pub(crate) const SIGKILL: i32 = 9;
/// SIGTERM on Linux.
pub(crate) const SIGTERM: i32 = 15;

// SAFETY: `kill(2)` takes two integers by value and touches no memory of this process, so a call
// with any arguments is memory-safe; declaring it `safe` is sound. Its effect (signalling a pid)
// is guarded by the callers, which only signal children they have not reaped yet or pids whose
// /proc entry shows a nats-server started with one of our config files.
unsafe extern "C" {
    safe fn kill(pid: i32, sig: i32) -> i32;
}

/// Sends `signal` to `pid`; a process that is already gone (ESRCH) counts as success.
pub(crate) fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("pid {pid} out of range"),
        )
    })?;
    if raw <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal pid {pid}"),
        ));
    }
    if kill(raw, signal) == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    // ESRCH: no such process.
    if err.raw_os_error() == Some(3) {
        return Ok(());
    }
    Err(err)
}

/// True when `pid` is a live process (it exists and is neither a zombie nor dead).
pub(crate) fn is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: comm may hold spaces and parentheses, so the state follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start())
        .unwrap_or_default();
    !(state.is_empty() || state.starts_with('Z') || state.starts_with('X'))
}

/// The arguments `pid` was started with, from `/proc/<pid>/cmdline`.
pub(crate) fn cmdline(pid: u32) -> Option<Vec<String>> {
    let bytes = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        bytes
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
    )
}

/// True when `args` is a nats-server command line started with config file `config`.
pub(crate) fn is_server_cmdline(args: &[String], config: &Path) -> bool {
    let Some(program) = args.first() else {
        return false;
    };
    let named = Path::new(program)
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("nats-server"));
    let config = config.to_string_lossy();
    named && args.iter().skip(1).any(|arg| *arg == config)
}

/// `bytes` random bytes from `/dev/urandom`, hex-encoded.
pub(crate) fn random_hex(bytes: usize) -> Result<String, NatsServerError> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut buf))
        .map_err(|source| NatsServerError::Os {
            what: "reading random bytes from /dev/urandom",
            source,
        })?;
    let mut hex = String::with_capacity(bytes * 2);
    for byte in buf {
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(hex)
}

/// Writes `contents` to `path` readable by its owner only (mode 0600, also when it existed).
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), NatsServerError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| NatsServerError::io("creating", path, e))?;
    // `mode` only applies to a new file: narrow an existing one too.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| NatsServerError::io("restricting the mode of", path, e))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| NatsServerError::io("writing", path, e))
}

/// `count` distinct TCP ports on 127.0.0.1 that were free a moment ago (all bound at once, so
/// none repeats, then released).
pub(crate) fn free_ports(count: usize) -> Result<Vec<u16>, NatsServerError> {
    let mut listeners = Vec::with_capacity(count);
    let mut ports = Vec::with_capacity(count);
    for _ in 0..count {
        let os = |source| NatsServerError::Os {
            what: "binding a free port on 127.0.0.1",
            source,
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(os)?;
        ports.push(listener.local_addr().map_err(os)?.port());
        listeners.push(listener);
    }
    Ok(ports)
}

/// The last `lines` lines of a text file (empty when it cannot be read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let mut bytes = Vec::new();
    if File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all.get(all.len().saturating_sub(lines)..)
        .unwrap_or_default()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_has_the_asked_length_and_differs() {
        let a = random_hex(32).unwrap();
        let b = random_hex(32).unwrap();
        assert_eq!(a.len(), 64);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn private_files_are_mode_0600_even_when_they_existed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, "new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn server_command_lines_are_recognised_by_program_and_config() {
        let config = Path::new("/r/n0/nats.conf");
        let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(is_server_cmdline(
            &args(&["/v/bin/nats-server", "-c", "/r/n0/nats.conf"]),
            config
        ));
        assert!(!is_server_cmdline(
            &args(&["/v/bin/nats-server", "-c", "/r/n1/nats.conf"]),
            config
        ));
        assert!(!is_server_cmdline(
            &args(&["/bin/sleep", "/r/n0/nats.conf"]),
            config
        ));
        assert!(!is_server_cmdline(&args(&["/r/n0/nats.conf"]), config));
        assert!(!is_server_cmdline(&[], config));
    }

    #[test]
    fn own_process_is_alive_and_not_a_server() {
        let pid = std::process::id();
        assert!(is_alive(pid));
        let args = cmdline(pid).unwrap();
        assert!(!is_server_cmdline(&args, Path::new("/r/n0/nats.conf")));
        assert!(!is_alive(u32::MAX));
    }

    #[test]
    fn signalling_pid_zero_or_a_gone_process_is_refused_or_harmless() {
        assert!(send_signal(0, SIGTERM).is_err());
        // i32::MAX is above the kernel's pid limit: no such process, which counts as done.
        send_signal(i32::MAX as u32, SIGTERM).unwrap();
    }

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_ports(9).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 9);
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        }
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&path, 2), "b\nc");
        assert_eq!(tail(&path, 10), "a\nb\nc");
        assert_eq!(tail(&dir.path().join("missing"), 2), "");
    }
}
