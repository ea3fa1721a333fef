//! Consensus mode: every task runs; the workflow succeeds when at least `quorum` successful
//! results agree (the whole result, or its `consensus_field`), and reports the votes.

use std::sync::Arc;

use dsmil_core::workflow::Metadata;
use serde_json::{Value, json};

use crate::workflow::run::Run;

/// Runs `run` and counts the votes.
pub(super) async fn run(run: Arc<Run>) -> (bool, Metadata) {
    let mut set = super::all_at_once(&run);
    let mut votes: Vec<(Value, Vec<String>)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        let Ok((i, result)) = joined else { continue };
        if !result.succeeded() {
            continue;
        }
        // A result without the compared field casts no vote.
        let value = match &run.spec.consensus_field {
            Some(f) => match result.result_data.get(f) {
                Some(v) => v.clone(),
                None => continue,
            },
            None => result.result_data,
        };
        let agent = run.agents[i].as_str().to_owned();
        match votes.iter_mut().find(|(v, _)| *v == value) {
            Some((_, who)) => who.push(agent),
            None => votes.push((value, vec![agent])),
        }
    }
    votes.sort_by_key(|v| std::cmp::Reverse(v.1.len()));
    let quorum = run.spec.effective_quorum();
    let mut meta = Metadata::new();
    meta.insert("quorum".into(), json!(quorum));
    meta.insert(
        "votes".into(),
        json!(
            votes
                .iter()
                .map(|(v, who)| json!({"value": v, "count": who.len(), "agents": who}))
                .collect::<Vec<_>>()
        ),
    );
    match votes.first() {
        Some((value, who)) if who.len() >= quorum => {
            meta.insert("consensus_value".into(), value.clone());
            (true, meta)
        }
        _ => {
            meta.insert("error".into(), json!(format!("no {quorum} results agree")));
            (false, meta)
        }
    }
}
