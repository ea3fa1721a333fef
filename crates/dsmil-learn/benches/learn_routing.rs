//! Routing quality on a synthetic world (`cargo xtask bench learn`).
//!
//! Agents have hidden per-topic skill and speed; tasks are text drawn from topic vocabularies
//! (with synonyms standing in for paraphrase, and off-topic noise words); an outcome is a draw
//! from the chosen agent's hidden skill for the task's topic. The engine routes a stream of
//! tasks, learning online from each outcome through the real store. Reward is the chosen agent's
//! true success probability (the expectation of the draw, so the comparison is not noise), and
//! is compared with the oracle (always the truly best agent), the best single agent,
//! round-robin and random choice.
//!
//! Prints a table and, when `DSMIL_BENCH_ROWS_DIR` is set (by `cargo xtask bench`), writes rows
//! in the bench JSON format there.

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use dsmil_core::learning::{AgentPerformance, EMBEDDING_DIM};
use dsmil_core::ports::{FlatIndex, ScalarVectorKernel, Similarity};
use dsmil_learn::store::SqliteStore;
use dsmil_learn::synthetic::{Rng, World};
use dsmil_learn::{EngineConfig, LearningEngine, PredictRequest};
use serde_json::json;

const TOPICS: usize = 8;
const AGENTS: usize = 6;
const TASKS: usize = 2000;
/// Worlds averaged (1 with `DSMIL_BENCH_QUICK=1`).
const WORLDS: u64 = 5;
const FINAL_WINDOW: usize = 500;

#[derive(Default, Clone, Copy)]
struct Score {
    all: f64,
    last: f64,
}

async fn run_world(seed: u64) -> [Score; 5] {
    let mut rng = Rng::new(seed);
    let world = World::new(&mut rng, TOPICS, AGENTS);
    let dir = tempfile::tempdir_in(if std::path::Path::new("/dev/shm").exists() {
        "/dev/shm"
    } else {
        "."
    })
    .unwrap();
    let index = FlatIndex::new(
        Arc::new(ScalarVectorKernel),
        EMBEDDING_DIM,
        Similarity::Cosine,
    );
    let store = SqliteStore::open(&dir.path().join("r.sqlite"), Box::new(index))
        .await
        .unwrap();
    let engine = LearningEngine::new(Arc::new(store), EngineConfig::default())
        .await
        .unwrap();
    engine.register_agents((0..AGENTS).map(World::agent_id));
    let tasks: Vec<(usize, String)> = (0..TASKS)
        .map(|_| {
            let t = world.task(&mut rng);
            (t.topic, t.text)
        })
        .collect();
    let best_single = (0..AGENTS)
        .max_by(|&a, &b| {
            let m = |x: usize| tasks.iter().map(|(t, _)| world.skill[x][*t]).sum::<f64>();
            m(a).total_cmp(&m(b))
        })
        .unwrap();
    // [engine, oracle, best single, round-robin, random]
    let mut totals = [Score::default(); 5];
    for (i, (topic, text)) in tasks.iter().enumerate() {
        let p = engine
            .predict_optimal_agent(&PredictRequest {
                task_description: text.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let chosen: usize = p.predicted_agent.as_str()[6..].parse().unwrap();
        let oracle = world.best_for(*topic).1;
        let rewards = [
            world.skill[chosen][*topic],
            oracle,
            world.skill[best_single][*topic],
            world.skill[i % AGENTS][*topic],
            world.skill[rng.below(AGENTS)][*topic],
        ];
        for (t, r) in totals.iter_mut().zip(rewards) {
            t.all += r;
            if i >= TASKS - FINAL_WINDOW {
                t.last += r;
            }
        }
        let success = if rng.unit() < world.skill[chosen][*topic] {
            1.0
        } else {
            0.0
        };
        engine
            .record_performance(AgentPerformance {
                agent_id: World::agent_id(chosen),
                task_type: "task".into(),
                task_description: text.clone(),
                execution_time_ms: world.speed_ms[chosen],
                success_rate: success,
                resource_usage: Default::default(),
                error_details: None,
                context_factors: Default::default(),
                embedding: None,
                timestamp: None,
                tpm_signature: None,
                record_id: None,
            })
            .await
            .unwrap();
    }
    totals.map(|t| Score {
        all: t.all / TASKS as f64,
        last: t.last / FINAL_WINDOW as f64,
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let worlds = if std::env::var("DSMIL_BENCH_QUICK").is_ok_and(|v| v == "1") {
        1
    } else {
        WORLDS
    };
    let mut sums = [Score::default(); 5];
    for seed in 1..=worlds {
        let s = runtime.block_on(run_world(seed));
        for (a, b) in sums.iter_mut().zip(s) {
            a.all += b.all / worlds as f64;
            a.last += b.last / worlds as f64;
        }
    }
    let names = [
        "dsmil-router",
        "oracle",
        "best-single-agent",
        "round-robin",
        "random",
    ];
    println!("routing quality: {worlds} worlds × {TASKS} tasks, {AGENTS} agents, {TOPICS} topics");
    println!(
        "{:<20} {:>16} {:>22}",
        "policy",
        "mean reward (all)",
        format!("mean reward (last {FINAL_WINDOW})")
    );
    for (n, s) in names.iter().zip(&sums) {
        println!("{n:<20} {:>16.4} {:>22.4}", s.all, s.last);
    }
    let (router, oracle, single) = (sums[0], sums[1], sums[2]);
    println!(
        "router / oracle: {:.3} (all), {:.3} (last {FINAL_WINDOW});  router / best single: {:.3} (all), {:.3} (last)",
        router.all / oracle.all,
        router.last / oracle.last,
        router.all / single.all,
        router.last / single.last
    );
    if let Ok(dir) = std::env::var("DSMIL_BENCH_ROWS_DIR") {
        let mut rows = Vec::new();
        for (case, pick) in [
            (format!("{TASKS} tasks, all"), 0),
            (format!("{TASKS} tasks, last {FINAL_WINDOW}"), 1),
        ] {
            for (group, skip_oracle) in [
                ("routing_vs_oracle", false),
                ("routing_vs_single_agent", true),
            ] {
                for (n, s) in names.iter().zip(&sums) {
                    if skip_oracle && *n == "oracle"
                        || !skip_oracle && *n != "oracle" && *n != "dsmil-router"
                    {
                        continue;
                    }
                    let value = if pick == 0 { s.all } else { s.last };
                    rows.push(json!({"group": group, "case": case, "impl": n, "unit": "reward", "value": value}));
                }
            }
        }
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            std::path::Path::new(&dir).join("routing.json"),
            serde_json::to_string_pretty(&rows).unwrap(),
        )
        .unwrap();
    }
}
