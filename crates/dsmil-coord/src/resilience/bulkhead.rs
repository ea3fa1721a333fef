//! Bulkhead: at most N tasks at once on an agent, with a limit that can be lowered and raised
//! while tasks run (the monitor's `reduce_agent_concurrency`).
//!
//! Lowering the limit takes free slots away at once and the rest as running tasks finish (their
//! slots are retired instead of returned); raising it first cancels what is still owed.

use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
struct Limits {
    /// The limit in force.
    limit: usize,
    /// Slots still to retire as tasks finish.
    debt: usize,
}

/// A concurrency limit for one agent.
#[derive(Debug, Clone)]
pub struct Bulkhead {
    sem: Arc<Semaphore>,
    limits: Arc<Mutex<Limits>>,
}

/// A slot; the task holds it while it runs.
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    limits: Arc<Mutex<Limits>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut l = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(permit) = self.permit.take()
            && l.debt > 0
        {
            l.debt -= 1;
            permit.forget();
        }
    }
}

impl Bulkhead {
    /// A bulkhead of `limit` slots (at least 1).
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            sem: Arc::new(Semaphore::new(limit)),
            limits: Arc::new(Mutex::new(Limits { limit, debt: 0 })),
        }
    }

    /// Waits for a slot.
    pub async fn enter(&self) -> Slot {
        // The semaphore is never closed, so acquiring only waits.
        let permit = Arc::clone(&self.sem).acquire_owned().await.ok();
        Slot {
            permit,
            limits: Arc::clone(&self.limits),
        }
    }

    /// The limit in force.
    pub fn limit(&self) -> usize {
        self.limits.lock().unwrap_or_else(|p| p.into_inner()).limit
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.sem.available_permits()
    }

    /// Sets the limit (at least 1).
    pub fn set_limit(&self, limit: usize) {
        let limit = limit.max(1);
        let mut l = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        if limit < l.limit {
            let cut = l.limit - limit;
            let now = self.sem.forget_permits(cut);
            l.debt += cut - now;
        } else {
            let mut grow = limit - l.limit;
            let cancel = grow.min(l.debt);
            l.debt -= cancel;
            grow -= cancel;
            self.sem.add_permits(grow);
        }
        l.limit = limit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limit_can_move_while_slots_are_held() {
        let b = Bulkhead::new(4);
        let held: Vec<Slot> = vec![b.enter().await, b.enter().await, b.enter().await];
        assert_eq!(b.available(), 1);
        b.set_limit(2); // one free slot retired now, one owed
        assert_eq!(b.available(), 0);
        drop(held);
        assert_eq!(
            b.available(),
            2,
            "the owed slot was retired when a task finished"
        );
        b.set_limit(5);
        assert_eq!(b.available(), 5);
        b.set_limit(1);
        assert_eq!(b.available(), 1);
        let s = b.enter().await;
        b.set_limit(3);
        assert_eq!(b.available(), 2);
        drop(s);
        assert_eq!(b.available(), 3);
    }
}
