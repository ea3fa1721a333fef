//! The systemd notification protocol (`sd_notify(3)`), for `Type=notify` units: `READY=1` once
//! the API serves, `WATCHDOG=1` pings while the readiness checks pass, `STOPPING=1` at shutdown,
//! and `STATUS=` lines `systemctl status` shows.
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd) nothing is sent. The socket may be a path
//! or, with a leading `@`, an abstract name.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use crate::compose::Layers;

/// Where systemd listens for notifications.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names; `None` when it is unset or empty.
    pub fn from_env() -> io::Result<Option<Self>> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let bytes = path.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None => SocketAddr::from_pathname(std::path::Path::new(&path))?,
        };
        let socket = UnixDatagram::unbound()?;
        Ok(Some(Self { socket, addr }))
    }

    /// Sends `state` (newline-separated `KEY=value` assignments) in one datagram.
    pub fn send(&self, state: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.addr)
            .map(drop)
    }

    /// Sends `state`, logging (not failing) when systemd cannot be told.
    pub fn tell(&self, state: &str) {
        if let Err(e) = self.send(state) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

/// How often systemd expects a watchdog ping: `$WATCHDOG_USEC`, when `$WATCHDOG_PID` is unset
/// or names this process.
pub fn watchdog_period() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog at half its period while the readiness checks pass; when they fail, says
/// why in `STATUS=` and stops pinging, so systemd restarts a daemon that cannot work.
pub fn spawn_watchdog(
    notifier: Arc<Notifier>,
    layers: Arc<Layers>,
    period: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_ready = true;
        loop {
            tick.tick().await;
            let report = crate::readiness::assess(&layers).await;
            if report.ready() {
                if !was_ready {
                    notifier.tell("STATUS=serving (readiness restored)");
                }
                notifier.tell("WATCHDOG=1");
            } else {
                let why = report.failures();
                tracing::error!(failed = %why, "not ready: the systemd watchdog is not fed");
                notifier.tell(&format!("STATUS=not ready: {why}"));
            }
            was_ready = report.ready();
        }
    })
}
