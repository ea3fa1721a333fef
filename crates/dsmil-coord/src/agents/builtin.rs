//! In-process agents: Rust closures, for embedding and tests, and the built-ins a daemon
//! configuration can name (`kind = "builtin"`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::AgentKind;
use async_trait::async_trait;
use dsmil_core::AgentId;
use serde_json::{Value, json};

use crate::agent::{Agent, AgentError, AgentOutput, TaskInput};

type Handler = dyn Fn(TaskInput) -> Pin<Box<dyn Future<Output = Result<AgentOutput, AgentError>> + Send>>
    + Send
    + Sync;

/// An agent implemented by a Rust function.
#[derive(Clone)]
pub struct BuiltinAgent {
    id: AgentId,
    handler: Arc<Handler>,
}

impl std::fmt::Debug for BuiltinAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinAgent")
            .field("id", &self.id)
            .finish()
    }
}

impl BuiltinAgent {
    /// An agent `id` running `handler` for each attempt.
    pub fn new<F, Fut>(id: AgentId, handler: F) -> Self
    where
        F: Fn(TaskInput) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<AgentOutput, AgentError>> + Send + 'static,
    {
        Self {
            id,
            handler: Arc::new(move |input| Box::pin(handler(input))),
        }
    }

    /// The built-in named `name`, running as agent `id`:
    /// - `echo`: returns its input;
    /// - `noop`: returns `null` at once;
    /// - `sleep`: waits `input_data.ms` milliseconds (default 10), then returns `{"slept_ms"}`;
    /// - `fail`: reports a failure (`input_data.terminal` makes it terminal);
    /// - `score`: returns `{"score": input_data.score}` (for competitive workflows).
    pub fn named(id: AgentId, name: &str) -> Option<Self> {
        let agent = match name {
            "echo" => Self::new(id, |input: TaskInput| async move {
                Ok(AgentOutput {
                    result: input.input_data,
                    ..Default::default()
                })
            }),
            "noop" => Self::new(id, |_| async { Ok(AgentOutput::default()) }),
            "sleep" => Self::new(id, |input: TaskInput| async move {
                let ms = input
                    .input_data
                    .get("ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(10);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(AgentOutput {
                    result: json!({ "slept_ms": ms }),
                    ..Default::default()
                })
            }),
            "fail" => Self::new(id, |input: TaskInput| async move {
                Err(AgentError::Reported {
                    message: "the fail agent always fails".into(),
                    terminal: input.input_data.get("terminal") == Some(&Value::Bool(true)),
                })
            }),
            "score" => Self::new(id, |input: TaskInput| async move {
                let score = input
                    .input_data
                    .get("score")
                    .cloned()
                    .unwrap_or(Value::Null);
                Ok(AgentOutput {
                    result: json!({ "score": score }),
                    ..Default::default()
                })
            }),
            _ => return None,
        };
        Some(agent)
    }

    /// Names accepted by [`BuiltinAgent::named`].
    pub const NAMES: &'static [&'static str] = &["echo", "noop", "sleep", "fail", "score"];
}

#[async_trait]
impl Agent for BuiltinAgent {
    fn id(&self) -> &AgentId {
        &self.id
    }

    fn kind(&self) -> AgentKind {
        AgentKind::Builtin
    }

    async fn run(&self, input: &TaskInput) -> Result<AgentOutput, AgentError> {
        (self.handler)(input.clone()).await
    }
}
