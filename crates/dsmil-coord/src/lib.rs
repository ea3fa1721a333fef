//! `dsmil-coord`: DSMIL layer 3, the agent coordination bus.
//!
//! Built so far: [`agent`] (the `Agent` trait, task input, results and typed failures), the
//! three kinds of [`agents`] (command, HTTP, in-process built-ins), [`resilience`] (bulkhead,
//! circuit breaker, retries with backoff, jitter and a budget), the [`registry`] of agents with
//! their protections, the [`runner`] that runs one task through them, and the [`workflow`]
//! `Coordinator` with its six execution modes. The journal (crash recovery) builds on these.
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
pub mod journal;
pub mod metrics;
pub mod registry;
pub mod resilience;
pub mod runner;
pub mod transitions;
pub mod workflow;
