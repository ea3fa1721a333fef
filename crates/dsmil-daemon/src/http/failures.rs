//! Failed token checks per client address. After [`MAX_FAILURES`] wrong or missing tokens
//! within [`WINDOW`] from one IP address, that address's token checks are answered `429
//! too_many_failures` with `Retry-After` until the window since its first failure has passed —
//! so guessing the token over the network is slow, and other addresses are not affected. A
//! correct token clears the address's count. At most [`MAX_TRACKED`] addresses are tracked; past
//! that the oldest window is dropped first, so the table cannot grow without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures an address may have within [`WINDOW`] before it is refused.
pub const MAX_FAILURES: u32 = 10;

/// How long failures count, from an address's first.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Most addresses tracked at once.
pub const MAX_TRACKED: usize = 4096;

/// One address's failures in its current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    first: Instant,
    count: u32,
}

/// The failure counts of the addresses that failed recently.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl FailureLimiter {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Window>> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(retry_after)` when `ip` has used up its failures in the current window.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut windows = self.lock();
        let Some(w) = windows.get(&ip).copied() else {
            return Ok(());
        };
        let age = now.saturating_duration_since(w.first);
        if age >= WINDOW {
            windows.remove(&ip);
            return Ok(());
        }
        if w.count >= MAX_FAILURES {
            return Err(WINDOW - age);
        }
        Ok(())
    }

    /// Counts a failed check from `ip`; true when this failure used up the window (the moment
    /// to log that the address is now refused).
    pub fn failed(&self, ip: IpAddr, now: Instant) -> bool {
        let mut windows = self.lock();
        if !windows.contains_key(&ip) && windows.len() >= MAX_TRACKED {
            let oldest = windows
                .iter()
                .min_by_key(|(_, w)| w.first)
                .map(|(ip, _)| *ip);
            if let Some(oldest) = oldest {
                windows.remove(&oldest);
            }
        }
        let w = windows.entry(ip).or_insert(Window {
            first: now,
            count: 0,
        });
        if now.saturating_duration_since(w.first) >= WINDOW {
            *w = Window {
                first: now,
                count: 0,
            };
        }
        w.count += 1;
        w.count == MAX_FAILURES
    }

    /// A correct token from `ip`: its count starts again.
    pub fn succeeded(&self, ip: IpAddr) {
        self.lock().remove(&ip);
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_passes() {
        let limiter = FailureLimiter::new();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert!(
                limiter.check(ip(1), t0).is_ok(),
                "failure {i} is still checked"
            );
            assert_eq!(limiter.failed(ip(1), t0), i + 1 == MAX_FAILURES);
        }
        let later = t0 + Duration::from_secs(20);
        assert_eq!(
            limiter.check(ip(1), later),
            Err(WINDOW - Duration::from_secs(20))
        );
        // Another address is not affected.
        assert!(limiter.check(ip(2), later).is_ok());
        // The window passes: checked again, counting from zero.
        let after = t0 + WINDOW;
        assert!(limiter.check(ip(1), after).is_ok());
        assert!(!limiter.failed(ip(1), after));
        assert!(limiter.check(ip(1), after).is_ok());
    }

    #[test]
    fn a_correct_token_clears_the_count() {
        let limiter = FailureLimiter::new();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            limiter.failed(ip(3), t0);
        }
        limiter.succeeded(ip(3));
        limiter.failed(ip(3), t0);
        assert!(limiter.check(ip(3), t0).is_ok());
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_oldest_window() {
        let limiter = FailureLimiter::new();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            limiter.failed(addr, t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(limiter.tracked(), MAX_TRACKED);
        limiter.failed(IpAddr::from([192, 168, 0, 1]), t0 + Duration::from_secs(30));
        assert_eq!(limiter.tracked(), MAX_TRACKED);
        // The first address's window (the oldest) was the one dropped.
        let first = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000));
        for _ in 0..MAX_FAILURES - 1 {
            limiter.failed(first, t0 + Duration::from_secs(31));
        }
        assert!(limiter.check(first, t0 + Duration::from_secs(31)).is_ok());
    }
}
