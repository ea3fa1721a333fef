//! `dsmil-coord`: DSMIL layer 3, the agent coordination bus.
//!
//! - [`agent`]: the `Agent` trait, task input, results and typed failures (each keeping the
//!   error that caused it as its source);
//! - [`agents`]: the three kinds of agent (command, HTTP, in-process built-ins);
//! - [`resilience`]: bulkhead, circuit breaker, retries with backoff, jitter and a budget;
//! - [`config`]: the coordinator's configuration (`[[agents]]` with their breaker and retry
//!   settings) — the one set of defaults and the one validation, whether an agent is declared in
//!   TOML or registered in code; the runtime settings are built from it;
//! - [`registry`]: every agent with its protections; [`runner`]: one task through them;
//! - [`workflow`]: the `Coordinator` — its lifecycle, the per-task pipeline (run → journal →
//!   performance sink → bus), the six execution modes, and the `Throttle` implementation;
//! - [`journal`]: the SQLite journal every task result is committed to before anything acts on
//!   it, from which [`workflow::Coordinator::recover`] resumes workflows after a crash;
//! - [`transitions`] (breaker transitions to the bus and the audit log) and [`metrics`] (the
//!   `MetricsSource` implementation).
//!
//! ```
//! use dsmil_coord::agent::{Agent, TaskInput};
//! use dsmil_coord::agents::BuiltinAgent;
//! use dsmil_core::{AgentId, TaskId};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let echo = BuiltinAgent::named(AgentId::new("echo")?, "echo").ok_or("no such built-in")?;
//! let input = TaskInput {
//!     task_id: TaskId::new("t1")?,
//!     task_description: "say it back".into(),
//!     input_data: serde_json::json!({"hello": "world"}),
//!     attempt: 1,
//!     timeout_ms: 1000,
//! };
//! let out = echo.run(&input).await?;
//! assert_eq!(out.result["hello"], "world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod agent;
pub mod agents;
pub mod config;
pub mod executor;
pub mod journal;
pub mod metrics;
pub mod registry;
pub mod resilience;
pub mod runner;
pub mod transitions;
pub mod workflow;

/// `err` and its sources as one line (`a: b: c`): how an error crosses into data that is
/// stored or sent as text (a task result's `error_message`, a performance record's
/// `error_details`, a journal transition's detail).
pub use dsmil_core::report::chain as error_chain;
