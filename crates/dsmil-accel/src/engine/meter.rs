//! [`Meter`]: counts kernel work that runs on the caller's thread with the engine's counters.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{OpKind, Shared};

/// Accounts for accelerated work done outside the engine's queue — a vector-index search that
/// runs inside a store's blocking task, say, where handing borrowed rows to a worker would
/// mean copying them. What it records joins [`Engine::counters`](super::Engine::counters) and
/// the per-kind `Event::Accel` throughput events, so one view shows all kernel work. Cheap to
/// clone; it never blocks beyond the counters' lock.
#[derive(Clone)]
pub struct Meter {
    pub(super) shared: Arc<Shared>,
}

impl Meter {
    /// Records one finished operation of `kind` that processed `bytes` in `busy`.
    pub fn record(&self, kind: OpKind, bytes: u64, busy: Duration, succeeded: bool) {
        let due = self
            .shared
            .counters
            .record(kind, bytes, busy, succeeded, Instant::now());
        if let Some(throughput) = due {
            self.shared
                .publish(kind.name(), self.shared.platform, throughput);
        }
    }

    /// Runs `work` here, timing it, and records it as `kind` over `bytes` (a failure when it
    /// returns an error).
    pub fn measure<T, E>(
        &self,
        kind: OpKind,
        bytes: u64,
        work: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = work();
        self.record(kind, bytes, started.elapsed(), result.is_ok());
        result
    }
}

impl fmt::Debug for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meter")
            .field("platform", &self.shared.platform)
            .finish_non_exhaustive()
    }
}
