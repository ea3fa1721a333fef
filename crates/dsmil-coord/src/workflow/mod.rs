//! Workflows: a validated spec run in one of six execution modes.
//!
//! - **sequential**: tasks in dependency order, one at a time; stops at the first failure unless
//!   `continue_on_failure` (then dependents of a failed task are skipped);
//! - **parallel**: a task starts as soon as its own dependencies have succeeded — no batch
//!   barriers; dependents of a failed task are skipped with the reason;
//! - **pipeline**: tasks in order, each one's result is the next one's `input_data`;
//! - **consensus**: every task runs; the workflow succeeds when at least `quorum` results agree
//!   (the whole result, or one `consensus_field`); otherwise it fails with the votes;
//! - **competitive**: every task runs; `fastest` takes the first success and cancels the rest,
//!   `highest_score` the success with the largest numeric `score`;
//! - **redundant**: each task (in dependency order, like parallel) runs on up to `replicas`
//!   replicas, a new one started every `hedge_delay_ms` while none has succeeded; the first
//!   success wins and the others are cancelled.
//!
//! Each task goes through one pipeline: wait while non-critical work is paused → run it through
//! the agent's protections → **journal** its result → hand its performance record to the
//! learning sink (without waiting for the store) → publish it on the bus. A task's result is
//! journaled before anything acts on it. Skipped, cancelled and recovered tasks are typed
//! ([`TaskOutcome`](dsmil_core::workflow::TaskOutcome), `recovered`), never metadata strings.
//!
//! Performance records carry an id derived from the workflow, the task and the replica
//! ([`record_id`]): a record sent again after a crash is the same record, which the store keeps
//! once. A workflow resumed by [`Coordinator::recover`] sends the records of the results it keeps
//! again, so nothing is lost if a crash came between the journal and the sink. A workflow's
//! handle resolves only once its records reached the sink.
//!
//! The global timeout and outside cancellation stop everything still running (processes are
//! killed); the results so far are kept. `coordination_overhead_ms` is the wall time minus the
//! critical path of agent time (the longest dependency chain, the sum in sequence, the slowest
//! member of a concurrent group); neither it nor `total_execution_time_ms` includes the time the
//! sink takes.
//!
//! The parts: [`Coordinator`] and its lifecycle (`coordinator`), one run's shared state and its
//! end (`run`), the per-task pipeline (`task`), the performance recorder and record ids
//! (`record`), one module per mode (`modes`), cancellation ([`cancel_pair`]), the counts `/metrics` reports ([`stats`]) and the
//! [`Throttle`](dsmil_core::ports::Throttle) implementation with the emergency stop
//! (`throttle`).

mod cancel;
mod coordinator;
mod host;
mod modes;
mod record;
mod run;
pub mod stats;
mod task;
mod throttle;

use std::sync::Mutex;
use std::time::Duration;

use dsmil_core::ports::PortError;
use dsmil_core::workflow::SpecError;
use thiserror::Error;

pub use cancel::{CancelHandle, CancelToken, cancel_pair};
pub use coordinator::{Coordinator, Takeover};
pub use host::Host;
pub use record::{RECORD_NAMESPACE, record_id};

use dsmil_core::ports::JournalError;

/// Default delay between hedged replicas.
pub const DEFAULT_HEDGE_DELAY: Duration = Duration::from_millis(100);
/// Default replicas per task in redundant mode.
pub const DEFAULT_REPLICAS: u32 = 2;

/// Why a workflow could not start.
#[derive(Debug, Error)]
pub enum WorkflowError {
    /// The spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A task names an agent that is not registered.
    #[error("tasks[{index}] ({task}): unknown agent {agent:?}; registered: {known}")]
    UnknownAgent {
        /// Position of the task.
        index: usize,
        /// The task id.
        task: String,
        /// The agent it names.
        agent: String,
        /// The registered agents.
        known: String,
    },
    /// The coordinator is shutting down; no workflow starts any more.
    #[error("the coordinator is shutting down; no workflow starts")]
    ShuttingDown,
    /// An emergency stop is in force; no workflow starts until it is cleared.
    #[error("emergency stop in force ({0}); no workflow starts until it is cleared")]
    Emergency(String),
    /// The journal could not record the workflow.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// `auto` could not be resolved: no agent is registered.
    #[error("tasks[{index}] ({task}): no agent for `auto`: no agent is registered")]
    NoAgent {
        /// Position of the task.
        index: usize,
        /// The task id.
        task: String,
    },
    /// `auto` could not be resolved: the advisor failed.
    #[error("tasks[{index}] ({task}): no agent for `auto`: the advisor failed")]
    Advisor {
        /// Position of the task.
        index: usize,
        /// The task id.
        task: String,
        /// The advisor's error.
        #[source]
        source: PortError,
    },
}

/// Locks `m`, going on with the data if a holder panicked (every critical section here leaves
/// it consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
