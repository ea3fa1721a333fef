//! Asks a running dsmild what it runs, through the typed client of the contract crate.
//!
//! ```sh
//! cargo run -p dsmil-api --features client --example status -- http://127.0.0.1:8765 dsmil-data/api-token
//! ```

use dsmil_api::client::Client;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8765".into());
    let token_file = args.next().unwrap_or_else(|| "dsmil-data/api-token".into());
    let token = std::fs::read_to_string(&token_file)
        .map_err(|e| format!("cannot read the API token from {token_file}: {e}"))?;
    let client = Client::new(&url, token.trim())?;
    let status = client.status()?;
    println!(
        "dsmild {} up {} s, TPM {} ({}hardware-rooted), store {} with {} records",
        status.version,
        status.uptime_seconds,
        status.tpm.backend,
        if status.tpm.hardware_rooted {
            ""
        } else {
            "NOT "
        },
        status.store.backend,
        status.store.records.unwrap_or(0),
    );
    for agent in &status.agents {
        println!(
            "  {} ({:?}, {} of {} slots free, breaker {:?})",
            agent.id, agent.kind, agent.available, agent.max_concurrency, agent.breaker
        );
    }
    Ok(())
}
