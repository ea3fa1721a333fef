//! A private swtpm process for tests and benchmarks. Without a resource manager, a TPM's
//! three transient-object slots are shared by every client, so each test gets its own swtpm
//! (on free loopback ports, state in a directory of the caller's) instead of sharing one.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `swtpm socket --tpm2`, killed on drop.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    port: u16,
}

/// Whether the `swtpm` program is on `PATH`.
pub fn available() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("swtpm").is_file()))
}

fn free_port_pair() -> std::io::Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    // Random candidates in the dynamic range; both ports must bind now. (Asking the kernel for
    // an ephemeral port and hoping its neighbour is free fails often: the kernel hands out
    // ports of one parity to bind and the other to outgoing connections.)
    for _ in 0..500 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = 20_000 + (h.finish() % 40_000) as u16;
        let a = TcpListener::bind(("127.0.0.1", port));
        let b = TcpListener::bind(("127.0.0.1", port + 1));
        if a.is_ok() && b.is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        "no two adjacent free loopback ports",
    ))
}

impl Swtpm {
    /// Starts swtpm with its state in `state_dir` (created if missing), initialised and
    /// started (`TPM2_Startup(CLEAR)`), and waits until it accepts connections (≤ 5 s).
    pub fn spawn(state_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(state_dir)?;
        let mut last = None;
        for _ in 0..5 {
            let port = free_port_pair()?;
            let mut child = Command::new("swtpm")
                .arg("socket")
                .arg("--tpm2")
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--tpmstate")
                .arg(format!("dir={}", state_dir.display()))
                .arg("--flags")
                .arg("not-need-init,startup-clear")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait()? {
                    last = Some(std::io::Error::other(format!(
                        "swtpm exited at start with {status} (port {port} taken?)"
                    )));
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(Self { child, port });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            last.get_or_insert_with(|| std::io::Error::other("swtpm did not listen within 5 s"));
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("swtpm did not start")))
    }

    /// The command port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCTI string for tss-esapi and tpm2-tools.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
