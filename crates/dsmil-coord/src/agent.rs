//! What an agent is: anything that takes a task and returns a JSON result or a typed failure.

use std::time::Duration;

use crate::config::AgentKind;
use async_trait::async_trait;
use dsmil_core::workflow::ResourceUsage;
use dsmil_core::{AgentId, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// What an agent is given (also the JSON written to a command agent's stdin and POSTed to an
/// HTTP agent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInput {
    /// The task's id within its workflow.
    pub task_id: TaskId,
    /// The task in words.
    pub task_description: String,
    /// The task's input (or the previous stage's output in a pipeline).
    pub input_data: Value,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// How long this attempt may take, ms.
    pub timeout_ms: u64,
}

/// A successful run's result.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentOutput {
    /// What the agent returned.
    pub result: Value,
    /// Resources it reported.
    #[serde(default)]
    pub resource_usage: ResourceUsage,
}

/// Most bytes of stderr or of a response body quoted in an error.
pub const ERROR_QUOTE_BYTES: usize = 4096;

/// Any error kept as the cause of an agent failure (an I/O error, an HTTP client's error, a
/// failed blocking task).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a run failed. [`AgentError::is_retryable`] tells retries which failures may pass.
/// Failures caused by another error keep it as their [`source`](std::error::Error::source);
/// [`error_chain`](crate::error_chain) gives the whole message as one line (what task results
/// and performance records carry).
#[derive(Debug, Error)]
pub enum AgentError {
    /// The attempt ran past its timeout (the agent's processes were killed).
    #[error("timed out after {} ms", .after.as_millis())]
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// A command agent exited unsuccessfully.
    #[error("exited with {}{}", .code.map_or_else(|| "a signal".to_string(), |c| format!("code {c}")), if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    Exit {
        /// Exit code, if it exited normally.
        code: Option<i32>,
        /// The start of its stderr.
        stderr: String,
    },
    /// The agent answered something that is not a result object.
    #[error("invalid output: {reason}")]
    InvalidOutput {
        /// What was wrong.
        reason: String,
        /// The JSON error, when the answer did not parse.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The program could not be started.
    #[error("cannot start {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP agent's URL is not an `http://` or `https://` URL.
    #[error("{url:?} is not an http:// or https:// URL")]
    InvalidUrl {
        /// The URL given.
        url: String,
    },
    /// An HTTP agent's TLS files (its CA bundle, client certificate or key) could not be read
    /// or hold nothing usable, or the system has no root certificates.
    #[error("TLS setup: {detail}")]
    TlsSetup {
        /// What is wrong, naming the file.
        detail: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The task could not be encoded as JSON for the agent.
    #[error("cannot encode the task as JSON")]
    Encode(#[source] serde_json::Error),
    /// An HTTP agent answered with a non-2xx status.
    #[error("HTTP {status}: {body}")]
    Http {
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The agent could not be reached or its answer not read (connection refused, reset,
    /// DNS, a broken pipe).
    #[error("transport: {context}")]
    Transport {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// The agent ran and reported failure (`{"success": false, "error": …}`); `terminal`
    /// failures are not retried.
    #[error("agent reported failure: {message}")]
    Reported {
        /// Its message.
        message: String,
        /// Whether retrying cannot help.
        terminal: bool,
    },
    /// The circuit breaker refused the call.
    #[error("circuit open for {agent}; next trial in {} ms", .retry_after.as_millis())]
    CircuitOpen {
        /// The agent.
        agent: AgentId,
        /// Time until the breaker lets a trial call through.
        retry_after: Duration,
    },
    /// The retry budget is spent: retries would multiply load during an outage. The source is
    /// the last attempt's failure.
    #[error("retry budget exhausted")]
    RetryBudgetExhausted(#[source] Box<AgentError>),
    /// The run was cancelled from outside.
    #[error("cancelled")]
    Cancelled,
}

impl AgentError {
    /// A transport failure while doing `context`, caused by `source`.
    pub fn transport(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Transport {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Whether another attempt may succeed: timeouts, crashes, transport errors, 5xx/429 and
    /// non-terminal reported failures. Invalid output, missing programs, 4xx, terminal failures,
    /// cancellation and an open circuit are not retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Exit { .. } | Self::Transport { .. } => true,
            Self::Http { status, .. } => *status >= 500 || *status == 429,
            Self::Reported { terminal, .. } => !terminal,
            Self::InvalidOutput { .. }
            | Self::Spawn { .. }
            | Self::InvalidUrl { .. }
            | Self::TlsSetup { .. }
            | Self::Encode(_)
            | Self::CircuitOpen { .. }
            | Self::RetryBudgetExhausted(_)
            | Self::Cancelled => false,
        }
    }

    /// Whether the failure says something about the agent's health (counts for its circuit
    /// breaker). Cancellation and the breaker's own refusals do not.
    pub fn counts_against_agent(&self) -> bool {
        !matches!(
            self,
            Self::Cancelled | Self::CircuitOpen { .. } | Self::RetryBudgetExhausted(_)
        )
    }
}

/// Anything that runs a task.
#[async_trait]
pub trait Agent: Send + Sync {
    /// Its id.
    fn id(&self) -> &AgentId;

    /// How it is reached.
    fn kind(&self) -> AgentKind;

    /// Runs one attempt. Dropping the future cancels it (a command agent's processes are
    /// killed); the caller enforces the timeout by dropping it.
    async fn run(&self, input: &TaskInput) -> Result<AgentOutput, AgentError>;
}

/// Interprets an agent's JSON answer: an object; `{"success": false, "error": …,
/// "terminal"?: bool}` is a reported failure; otherwise the `result` field (or the whole
/// object when it has none) is the result, and `resource_usage` is taken when present.
pub fn parse_answer(value: Value) -> Result<AgentOutput, AgentError> {
    let Value::Object(mut map) = value else {
        return Err(AgentError::InvalidOutput {
            reason: format!("expected a JSON object, got {}", kind_of(&value)),
            source: None,
        });
    };
    if map.get("success") == Some(&Value::Bool(false)) {
        let message = match map.get("error") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "no error message".into(),
        };
        let terminal = map.get("terminal") == Some(&Value::Bool(true));
        return Err(AgentError::Reported { message, terminal });
    }
    let resource_usage = match map.remove("resource_usage") {
        None | Some(Value::Null) => ResourceUsage::new(),
        Some(v) => serde_json::from_value(v).map_err(|e| AgentError::InvalidOutput {
            reason: "resource_usage must map names to numbers".into(),
            source: Some(e),
        })?,
    };
    let result = match map.remove("result") {
        Some(r) => r,
        None => {
            map.remove("success");
            Value::Object(map)
        }
    };
    Ok(AgentOutput {
        result,
        resource_usage,
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first `max` bytes of `bytes` as text (cut at a character boundary), with a note of how
/// much was left out.
pub fn quote(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    let mut out = text.trim_end().to_string();
    if bytes.len() > max {
        out.push_str(&format!(" … ({} more bytes)", bytes.len() - max));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_results_or_reported_failures() {
        let out =
            parse_answer(json!({"result": {"n": 1}, "resource_usage": {"cpu": 0.5}})).unwrap();
        assert_eq!(out.result, json!({"n": 1}));
        assert_eq!(out.resource_usage["cpu"], 0.5);
        let out = parse_answer(json!({"success": true, "sum": 3})).unwrap();
        assert_eq!(out.result, json!({"sum": 3}));
        let err = parse_answer(json!({"success": false, "error": "disk full"})).unwrap_err();
        assert!(
            matches!(&err, AgentError::Reported { message, terminal: false } if message == "disk full"),
            "{err}"
        );
        assert!(err.is_retryable());
        let err = parse_answer(json!({"success": false, "error": "bad input", "terminal": true}))
            .unwrap_err();
        assert!(!err.is_retryable());
        let err = parse_answer(json!([1, 2])).unwrap_err();
        assert!(err.to_string().contains("an array"), "{err}");
        let err = parse_answer(json!({"resource_usage": {"cpu": "lots"}})).unwrap_err();
        assert!(
            matches!(
                &err,
                AgentError::InvalidOutput {
                    source: Some(_),
                    ..
                }
            ),
            "the JSON error is kept: {err:?}"
        );
        assert!(
            crate::error_chain(&err).contains("invalid type"),
            "{}",
            crate::error_chain(&err)
        );
    }

    #[test]
    fn retryability_follows_the_kind_of_failure() {
        assert!(
            AgentError::Timeout {
                after: Duration::from_secs(1)
            }
            .is_retryable()
        );
        assert!(
            AgentError::Http {
                status: 503,
                body: String::new()
            }
            .is_retryable()
        );
        assert!(
            AgentError::Http {
                status: 429,
                body: String::new()
            }
            .is_retryable()
        );
        assert!(
            !AgentError::Http {
                status: 404,
                body: String::new()
            }
            .is_retryable()
        );
        assert!(!AgentError::Cancelled.is_retryable());
        assert!(!AgentError::Cancelled.counts_against_agent());
        let e = AgentError::Exit {
            code: Some(3),
            stderr: "boom".into(),
        };
        assert_eq!(e.to_string(), "exited with code 3: boom");
        let spent = AgentError::RetryBudgetExhausted(Box::new(e));
        assert_eq!(
            crate::error_chain(&spent),
            "retry budget exhausted: exited with code 3: boom"
        );
    }

    #[test]
    fn quotes_are_bounded() {
        assert_eq!(quote(b"hello\n", 100), "hello");
        let q = quote(&[b'x'; 10_000], 10);
        assert!(
            q.starts_with("xxxxxxxxxx …") && q.contains("9990 more bytes"),
            "{q}"
        );
    }
}
