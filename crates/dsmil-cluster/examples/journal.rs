//! Journals one workflow to a JetStream cluster and reads it back.
//!
//! ```text
//! eval "$(cargo xtask services up)"
//! cargo run -p dsmil-cluster --example journal
//! ```
//!
//! Uses `DSMIL_TEST_NATS_URLS` and `DSMIL_TEST_NATS_TOKEN_FILE` (what `services up` exports);
//! writes under the prefix `example`.

use dsmil_cluster::{ClusterConfig, JetStreamJournal, Names, connect, known_servers};
use dsmil_core::ports::JournalStore;
use dsmil_core::{WorkflowId, WorkflowSpec, WorkflowState};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let urls = std::env::var("DSMIL_TEST_NATS_URLS")
        .map_err(|_| "set DSMIL_TEST_NATS_URLS (run `cargo xtask services up`)")?;
    let token = std::env::var("DSMIL_TEST_NATS_TOKEN_FILE")
        .map_err(|_| "set DSMIL_TEST_NATS_TOKEN_FILE (run `cargo xtask services up`)")?;
    let config = ClusterConfig {
        nats: urls.split(',').map(str::to_owned).collect(),
        name: "example".to_owned(),
        token_file: Some(token.into()),
        ..ClusterConfig::default()
    };
    config.validate()?;
    let client = connect(&config, &config.node_id()).await?;
    let replicas = config.replicas_for(known_servers(&config, &client));
    let journal = JetStreamJournal::open(
        async_nats::jetstream::new(client),
        Names::new(&config.name),
        replicas,
    )
    .await?;

    let spec: WorkflowSpec = serde_json::from_value(serde_json::json!({
        "workflow_type": "example",
        "execution_mode": "sequential",
        "tasks": [{"id": "t1", "agent_id": "echo", "task_description": "say hello", "input_data": {"x": 1}}]
    }))?;
    let id = WorkflowId::new_random();
    journal.create(id, &spec, WorkflowState::Running).await?;
    journal
        .transition(id, WorkflowState::Failed, "example done")
        .await?;
    let record = journal.get(id).await?.ok_or("the workflow was not found")?;
    println!(
        "workflow {id} on {replicas} replica(s): {} transitions, now {:?}",
        record.history.len(),
        record.state
    );
    Ok(())
}
