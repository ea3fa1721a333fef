//! Learns online which agent suits which kind of task, on a synthetic world, and prints, per
//! 100 tasks, how often it picked the truly best agent and how much of the best possible success
//! it got.
//!
//! `cargo run -p dsmil-learn --example route [TASKS]`

use std::sync::Arc;

use dsmil_core::learning::{AgentPerformance, EMBEDDING_DIM};
use dsmil_core::ports::{FlatIndex, ScalarVectorKernel, Similarity};
use dsmil_learn::store::SqliteStore;
use dsmil_learn::synthetic::{Rng, World};
use dsmil_learn::{EngineConfig, LearningEngine, PredictRequest};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tasks: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| format!("TASKS must be a number, got {n:?}"))?,
        None => 1000,
    };
    let dir = tempfile::tempdir()?;
    let index = FlatIndex::new(
        Arc::new(ScalarVectorKernel),
        EMBEDDING_DIM,
        Similarity::Cosine,
    );
    let store = SqliteStore::open(&dir.path().join("learn.sqlite"), Box::new(index)).await?;
    let engine = LearningEngine::new(Arc::new(store), EngineConfig::default()).await?;
    let mut rng = Rng::new(7);
    let world = World::new(&mut rng, 6, 4);
    engine.register_agents((0..world.agents()).map(World::agent_id));
    let (mut best_picks, mut reward, mut oracle) = (0, 0.0, 0.0);
    for i in 1..=tasks {
        let task = world.task(&mut rng);
        let request = PredictRequest {
            task_description: task.text.clone(),
            ..Default::default()
        };
        let prediction = engine.predict_optimal_agent(&request).await?;
        let chosen = (0..world.agents())
            .find(|&a| World::agent_id(a) == prediction.predicted_agent)
            .ok_or("predicted an unknown agent")?;
        let (best, best_skill) = world.best_for(task.topic);
        if chosen == best {
            best_picks += 1;
        }
        reward += world.skill[chosen][task.topic];
        oracle += best_skill;
        let success = rng.unit() < world.skill[chosen][task.topic];
        engine
            .record_performance(AgentPerformance {
                agent_id: prediction.predicted_agent,
                task_type: "task".into(),
                task_description: task.text,
                execution_time_ms: world.speed_ms[chosen],
                success_rate: if success { 1.0 } else { 0.0 },
                resource_usage: Default::default(),
                error_details: None,
                context_factors: Default::default(),
                embedding: None,
                timestamp: None,
                tpm_signature: None,
                record_id: None,
            })
            .await?;
        if i % 100 == 0 {
            println!(
                "tasks {:>5}–{i:<5} best agent chosen {best_picks:>3}%, success {:>5.1}% of the best possible",
                i - 99,
                100.0 * reward / oracle
            );
            (best_picks, reward, oracle) = (0, 0.0, 0.0);
        }
    }
    Ok(())
}
