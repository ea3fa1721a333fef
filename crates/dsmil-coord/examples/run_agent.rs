//! Runs a program as a command agent once, with retries and a timeout, and prints its result.
//!
//! `cargo run -p dsmil-coord --example run_agent -- PROGRAM [ARGS…] < input.json`
//! (e.g. `… -- /bin/cat` echoes the task it was given).

use std::io::Read;
use std::time::Duration;

use dsmil_coord::agent::{Agent, AgentError, TaskInput};
use dsmil_coord::agents::CommandAgent;
use dsmil_coord::config::RetryConfig;
use dsmil_coord::resilience::retry;
use dsmil_core::{AgentId, TaskId};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let program = args
        .next()
        .ok_or("usage: run_agent PROGRAM [ARGS…] < input.json")?;
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let input_data = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).map_err(|e| format!("stdin is not JSON: {e}"))?
    };
    let agent = CommandAgent::new(AgentId::new("example")?, program, args.collect());
    let timeout = Duration::from_secs(10);
    let task_id = TaskId::new("example-task")?;
    // The configured default backoff, four attempts in all.
    let policy = RetryConfig::default().policy(4);
    let done = retry(&policy, None, |attempt| {
        let input = TaskInput {
            task_id: task_id.clone(),
            task_description: "run once from the command line".into(),
            input_data: input_data.clone(),
            attempt,
            timeout_ms: timeout.as_millis() as u64,
        };
        let agent = &agent;
        async move {
            match tokio::time::timeout(timeout, agent.run(&input)).await {
                Ok(result) => result,
                Err(_) => Err(AgentError::Timeout { after: timeout }),
            }
        }
    })
    .await;
    match done.outcome {
        Ok(out) => {
            println!("{}", serde_json::to_string_pretty(&out.result)?);
            eprintln!("succeeded after {} attempt(s)", done.attempts);
            Ok(())
        }
        Err(e) => Err(format!(
            "failed after {} attempt(s): {}",
            done.attempts,
            dsmil_coord::error_chain(&e)
        )
        .into()),
    }
}
