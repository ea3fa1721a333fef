//! Competitive mode: every task runs; `fastest` takes the first success and cancels the rest,
//! `highest_score` the success with the largest numeric `score`.

use std::sync::Arc;

use dsmil_core::workflow::{Comparator, Metadata};
use serde_json::{Value, json};

use crate::workflow::run::Run;

/// Runs `run` and picks the winner.
pub(super) async fn run(run: Arc<Run>) -> (bool, Metadata) {
    let comparator = run.spec.comparator.unwrap_or_default();
    let mut set = super::all_at_once(&run);
    let mut best: Option<(usize, f64, Value)> = None;
    while let Some(joined) = set.join_next().await {
        let Ok((i, result)) = joined else { continue };
        if !result.succeeded() {
            continue;
        }
        match comparator {
            Comparator::Fastest => {
                set.abort_all();
                best = Some((i, 0.0, result.result_data));
                break;
            }
            Comparator::HighestScore => {
                let score = result.result_data.get("score").and_then(Value::as_f64);
                if let Some(s) = score
                    && best.as_ref().is_none_or(|(_, b, _)| s > *b)
                {
                    best = Some((i, s, result.result_data));
                }
            }
        }
    }
    // Drain the cancelled losers (their futures, and processes, are gone).
    while set.join_next().await.is_some() {}
    let mut meta = Metadata::new();
    match best {
        Some((i, score, output)) => {
            meta.insert("winner".into(), json!(run.spec.tasks[i].id));
            meta.insert("winner_agent".into(), json!(&run.agents[i]));
            if comparator == Comparator::HighestScore {
                meta.insert("score".into(), json!(score));
            }
            meta.insert("output".into(), output);
            (true, meta)
        }
        None => {
            meta.insert(
                "error".into(),
                json!(match comparator {
                    Comparator::Fastest => "no task succeeded",
                    Comparator::HighestScore => "no successful task returned a numeric score",
                }),
            );
            (false, meta)
        }
    }
}
