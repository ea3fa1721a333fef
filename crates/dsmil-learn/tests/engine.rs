//! The learning engine over both stores: prediction, trends, anomalies, allocation, signing
//! and bad input.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::common::*;
use chrono::{DateTime, Duration, Utc};
use dsmil_core::Signature;
use dsmil_core::learning::AgentPerformance;
use dsmil_core::ports::{HmacSigner, Verifier};
use dsmil_learn::analysis::{AnomalyMetric, TrendDirection};
use dsmil_learn::engine::PendingTask;
use dsmil_learn::record::parse_records;
use dsmil_learn::store::HistoryFilter;
use dsmil_learn::{EngineConfig, LearnError, LearningEngine, PredictRequest};

async fn engine(b: &Backend, config: EngineConfig) -> LearningEngine {
    LearningEngine::new(Arc::clone(&b.store), config)
        .await
        .unwrap()
}

fn at(
    r: dsmil_core::learning::AgentPerformance,
    t: DateTime<Utc>,
) -> dsmil_core::learning::AgentPerformance {
    dsmil_core::learning::AgentPerformance {
        timestamp: Some(t),
        ..r
    }
}

fn ask(text: &str) -> PredictRequest {
    PredictRequest {
        task_description: text.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_follow_the_history_of_similar_tasks() {
    for b in backends().await {
        let e = engine(&b, EngineConfig::default()).await;
        let mut batch = Vec::new();
        for i in 0..40 {
            batch.push(perf(
                "hasher",
                "hash",
                &format!("compute sha256 digests of log file {i}"),
                40,
                1.0,
            ));
            batch.push(perf(
                "renderer",
                "hash",
                &format!("compute sha256 digests of log file {i}"),
                90,
                0.2,
            ));
            batch.push(perf(
                "renderer",
                "ui",
                &format!("render the dashboard chart number {i}"),
                30,
                1.0,
            ));
            batch.push(perf(
                "hasher",
                "ui",
                &format!("render the dashboard chart number {i}"),
                300,
                0.1,
            ));
        }
        assert_eq!(e.record_batch(batch).await.unwrap(), 160);

        let p = e
            .predict_optimal_agent(&ask("compute sha256 digests of the audit log"))
            .await
            .unwrap();
        assert_eq!(p.predicted_agent, id("hasher"), "{}: {p:?}", b.name);
        assert!(
            p.confidence_score > 0.5,
            "{}: {}",
            b.name,
            p.confidence_score
        );
        assert_eq!(p.alternative_agents[0].0, id("renderer"));
        assert!(p.alternative_agents[0].1 < p.confidence_score);
        assert!(
            (35..=45).contains(&p.execution_time_estimate_ms),
            "{}",
            p.execution_time_estimate_ms
        );
        assert!((p.resource_estimate["cpu"] - 0.5).abs() < 1e-9);
        assert_eq!(p.reasoning["method"], "similar_history");

        let p = e
            .predict_optimal_agent(&ask("render a chart on the dashboard"))
            .await
            .unwrap();
        assert_eq!(p.predicted_agent, id("renderer"), "{}", b.name);

        let mut excluded = ask("compute sha256 digests of the audit log");
        excluded.exclude_agents = vec![id("hasher")];
        let p = e.predict_optimal_agent(&excluded).await.unwrap();
        assert_eq!(p.predicted_agent, id("renderer"));
        excluded.exclude_agents.push(id("renderer"));
        let err = e.predict_optimal_agent(&excluded).await.unwrap_err();
        assert!(matches!(err, LearnError::NoEligibleAgent(_)), "{err}");
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_history_the_default_agent_answers_with_no_confidence() {
    for b in backends().await {
        let config = EngineConfig {
            default_agent: Some(id("generalist")),
            ..Default::default()
        };
        let e = engine(&b, config).await;
        let err = e.predict_optimal_agent(&ask("anything")).await.unwrap_err();
        assert!(err.to_string().contains("no agent is known"), "{err}");
        e.register_agents([id("generalist"), id("specialist")]);
        let p = e.predict_optimal_agent(&ask("anything")).await.unwrap();
        assert_eq!(p.predicted_agent, id("generalist"));
        assert_eq!(p.confidence_score, 0.0);
        assert_eq!(p.reasoning["method"], "default_agent_without_history");
        let err = e.predict_optimal_agent(&ask("  ")).await.unwrap_err();
        assert!(matches!(err, LearnError::InvalidRequest(_)));
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_outliers_are_the_anomalies() {
    for b in backends().await {
        let e = engine(&b, EngineConfig::default()).await;
        let mut rng = Rng(21);
        let start = Utc::now() - Duration::hours(5);
        let mut batch = Vec::new();
        for i in 0..200 {
            let t = start + Duration::seconds(60 * i);
            let ms = 100 + rng.next_u64() % 11; // 100–110 ms
            let mut r = at(
                perf(
                    "steady",
                    "build",
                    "build the kernel module",
                    ms,
                    0.95 + rng.unit() * 0.05,
                ),
                t,
            );
            if i == 120 {
                r.execution_time_ms = 900;
            }
            if i == 150 {
                r.success_rate = 0.0;
            }
            batch.push(r);
        }
        e.record_batch(batch).await.unwrap();
        let found = e.detect_performance_anomalies(4.0).await.unwrap();
        let kinds: Vec<(AnomalyMetric, u64)> =
            found.iter().map(|a| (a.metric, a.value as u64)).collect();
        assert_eq!(found.len(), 2, "{}: {found:?}", b.name);
        assert!(kinds.contains(&(AnomalyMetric::ExecutionTimeMs, 900)));
        assert!(kinds.contains(&(AnomalyMetric::SuccessRate, 0)));
        assert!(found.iter().all(|a| a.z_score.abs() > 4.0));
        let err = e.detect_performance_anomalies(-1.0).await.unwrap_err();
        assert!(matches!(err, LearnError::InvalidRequest(_)));
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_slopes_are_the_trends() {
    for b in backends().await {
        let e = engine(&b, EngineConfig::default()).await;
        let start = Utc::now() - Duration::hours(20);
        let mut batch = Vec::new();
        for i in 0..40 {
            let t = start + Duration::minutes(30 * i);
            let h = (i as f64) * 0.5;
            // Success rises 0.02 per hour; time rises 10 ms per hour; a steady agent.
            batch.push(at(perf("learner", "x", "task", 100, 0.2 + 0.02 * h), t));
            batch.push(at(
                perf("tiring", "x", "task", (100.0 + 10.0 * h) as u64, 0.9),
                t,
            ));
            batch.push(at(
                perf("steady", "x", "task", 100 + (i % 2) as u64, 0.9),
                t,
            ));
        }
        e.record_batch(batch).await.unwrap();
        let learner = e
            .analyze_performance_trends(&id("learner"), 24)
            .await
            .unwrap();
        let s = learner.success_rate.unwrap();
        assert!(
            (s.slope_per_hour - 0.02).abs() < 1e-6,
            "{}: {}",
            b.name,
            s.slope_per_hour
        );
        assert_eq!(learner.direction, TrendDirection::Improving);
        assert_eq!(learner.samples, 40);
        let tiring = e
            .analyze_performance_trends(&id("tiring"), 24)
            .await
            .unwrap();
        let t = tiring.execution_time_ms.unwrap();
        assert!(
            (t.slope_per_hour - 10.0).abs() < 0.1,
            "{}",
            t.slope_per_hour
        );
        assert_eq!(tiring.direction, TrendDirection::Degrading);
        assert!(t.p99 >= t.p95 && t.p95 >= t.p50);
        let steady = e
            .analyze_performance_trends(&id("steady"), 24)
            .await
            .unwrap();
        assert_eq!(steady.direction, TrendDirection::Stable);
        // A window that holds only the last 5 hours sees 10 runs.
        let recent = e
            .analyze_performance_trends(&id("steady"), 5)
            .await
            .unwrap();
        assert!((9..=11).contains(&recent.samples), "{}", recent.samples);
        let none = e
            .analyze_performance_trends(&id("nobody"), 24)
            .await
            .unwrap();
        assert_eq!(none.direction, TrendDirection::InsufficientData);
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_respects_capacity_and_prefers_the_better_agent() {
    for b in backends().await {
        let e = engine(&b, EngineConfig::default()).await;
        let mut batch = Vec::new();
        for i in 0..20 {
            batch.push(perf(
                "hasher",
                "hash",
                &format!("hash the archive part {i}"),
                50,
                1.0,
            ));
            batch.push(perf(
                "general",
                "hash",
                &format!("hash the archive part {i}"),
                50,
                0.6,
            ));
            batch.push(perf(
                "general",
                "ui",
                &format!("draw the status page {i}"),
                50,
                0.9,
            ));
            batch.push(perf(
                "hasher",
                "ui",
                &format!("draw the status page {i}"),
                50,
                0.1,
            ));
        }
        e.record_batch(batch).await.unwrap();
        let tasks: Vec<PendingTask> = (0..5)
            .map(|i| PendingTask {
                task_id: format!("h{i}"),
                task_description: format!("hash the archive part {}", 100 + i),
                task_type: None,
                context: Default::default(),
            })
            .chain([PendingTask {
                task_id: "u0".into(),
                task_description: "draw the status page 7".into(),
                task_type: None,
                context: Default::default(),
            }])
            .collect();
        let capacity: BTreeMap<_, _> = [(id("hasher"), 3), (id("general"), 2)].into();
        let plan = e
            .optimize_agent_allocation(&tasks, &capacity)
            .await
            .unwrap();
        assert_eq!(
            plan.assignments[&id("hasher")].len(),
            3,
            "{}: {plan:?}",
            b.name
        );
        assert!(
            plan.assignments[&id("hasher")]
                .iter()
                .all(|t| t.starts_with('h'))
        );
        assert!(plan.assignments[&id("general")].contains(&"u0".to_string()));
        assert_eq!(plan.assignments[&id("general")].len(), 2);
        assert_eq!(plan.unassigned.len(), 1);
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_nothing_is_stored() {
    for b in backends().await {
        let e = engine(&b, EngineConfig::default()).await;
        let ok = perf("a", "t", "fine", 5, 1.0);
        let mut nan = ok.clone();
        nan.success_rate = f64::NAN;
        let err = e.record_batch(vec![ok.clone(), nan]).await.unwrap_err();
        assert!(
            matches!(&err, LearnError::InvalidRecord { index: 2, field, .. } if field == "success_rate"),
            "{err}"
        );
        let mut empty = ok.clone();
        empty.task_description = String::new();
        let err = e
            .record_batch(vec![ok.clone(), ok.clone(), empty])
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with("record 3: task_description"),
            "{err}"
        );
        let err = e
            .record_performance(perf("a", "", "x", 1, 1.0))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("task_type"), "{err}");
        // Wrong dimension and unknown fields are caught while parsing.
        let line = r#"{"agent_id":"a","task_type":"t","task_description":"x","execution_time_ms":1,"success_rate":1}"#;
        let short = r#"{"agent_id":"a","task_type":"t","task_description":"x","execution_time_ms":1,"success_rate":1,"embedding":[0.5]}"#;
        let err = parse_records(&format!("{line}\n{short}")).unwrap_err();
        assert!(
            matches!(&err, LearnError::InvalidRecord { index: 2, .. })
                && err.to_string().contains("256"),
            "{err}"
        );
        let odd = r#"{"agent_id":"a","task_type":"t","task_description":"x","execution_time_ms":1,"success_rate":1,"speed":3}"#;
        let err = parse_records(&format!("{line}\n{line}\n{odd}")).unwrap_err();
        assert!(
            matches!(&err, LearnError::InvalidRecord { index: 3, field, .. } if field == "speed"),
            "{err}"
        );
        assert_eq!(b.store.count().await.unwrap(), 0, "{}", b.name);
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_signed_and_concurrent_writes_are_batched() {
    for b in backends().await {
        let signer = Arc::new(HmacSigner::new(b"learning-key".to_vec()));
        let e = Arc::new(
            engine(&b, EngineConfig::default())
                .await
                .with_signer(signer.clone()),
        );
        let mut handles = Vec::new();
        for i in 0..300 {
            let e = Arc::clone(&e);
            handles.push(tokio::spawn(async move {
                e.record_performance(perf(
                    "worker",
                    "job",
                    &format!("job number {i}"),
                    10 + i,
                    1.0,
                ))
                .await
            }));
        }
        let mut ids = std::collections::HashSet::new();
        for h in handles {
            ids.insert(h.await.unwrap().unwrap());
        }
        assert_eq!(ids.len(), 300);
        assert_eq!(b.store.count().await.unwrap(), 300, "{}", b.name);
        let all = b.store.history(&HistoryFilter::default()).await.unwrap();
        for r in &all {
            let sig: Signature = serde_json::from_str(r.tpm_signature.as_deref().unwrap()).unwrap();
            assert!(
                signer.verify(&r.signed_bytes(), &sig).await.unwrap(),
                "{}",
                b.name
            );
        }
        let mut forged = all[0].clone();
        forged.success_rate = 0.0;
        let sig: Signature =
            serde_json::from_str(forged.tpm_signature.as_deref().unwrap()).unwrap();
        assert!(!signer.verify(&forged.signed_bytes(), &sig).await.unwrap());
        let insights = e.get_learning_insights().await.unwrap();
        assert_eq!(insights.total_records, 300);
        assert_eq!(insights.best_agent_by_task_type["job"].0, id("worker"));
        assert_eq!(insights.last_hour.total_tasks, 300);
        b.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_single_records_share_the_writer_and_a_replayed_id_is_stored_once() {
    for b in backends().await {
        let e = Arc::new(engine(&b, EngineConfig::default()).await);
        let fixed = uuid::Uuid::from_u128(0xD5_0001);
        let replayable = AgentPerformance {
            record_id: Some(fixed),
            ..perf("a", "t", "a record that is sent twice", 10, 1.0)
        };
        // Single records and a batch at the same time: all reach the store through the writer.
        let singles: Vec<_> = (0..20)
            .map(|i| {
                let e = Arc::clone(&e);
                tokio::spawn(async move {
                    e.record_performance(perf("a", "t", &format!("single {i}"), 10, 1.0))
                        .await
                })
            })
            .collect();
        let batch: Vec<_> = (0..30)
            .map(|i| perf("b", "t", &format!("batched {i}"), 10, 1.0))
            .chain([replayable.clone()])
            .collect();
        assert_eq!(e.record_batch(batch).await.unwrap(), 31, "{}", b.name);
        for s in singles {
            s.await.unwrap().unwrap();
        }
        // The same id again, alone and in a batch: nothing new.
        assert_eq!(
            e.record_performance(replayable.clone()).await.unwrap(),
            fixed
        );
        assert_eq!(
            e.record_batch(vec![replayable]).await.unwrap(),
            0,
            "{}",
            b.name
        );
        assert_eq!(e.store().count().await.unwrap(), 51, "{}", b.name);
        // A batch with one bad record stores nothing, naming it.
        let bad = vec![
            perf("b", "t", "fine", 10, 1.0),
            perf("b", "", "no type", 10, 1.0),
        ];
        let err = e.record_batch(bad).await.unwrap_err();
        assert!(
            matches!(&err, LearnError::InvalidRecord { index: 2, field, .. } if field == "task_type"),
            "{err}"
        );
        assert_eq!(e.store().count().await.unwrap(), 51, "{}", b.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_task_types_guide_routing_until_history_speaks() {
    for b in backends().await {
        let e = engine(&b, EngineConfig::default()).await;
        e.register_agent_hints([
            (id("generalist"), Vec::new()),
            (id("hasher"), vec!["hash".to_string()]),
        ]);
        let ask_hash = PredictRequest {
            task_description: "digest the release tarball".into(),
            task_type: Some("hash".into()),
            ..Default::default()
        };
        // No history at all: the hinted agent, and the answer says why.
        let p = e.predict_optimal_agent(&ask_hash).await.unwrap();
        assert_eq!(p.predicted_agent, id("hasher"), "{}", b.name);
        assert_eq!(p.method(), Some("task_type_hint_without_history"));
        // A task of another type is not steered by the hint.
        let other = PredictRequest {
            task_type: Some("build".into()),
            ..ask_hash.clone()
        };
        let p = e.predict_optimal_agent(&other).await.unwrap();
        assert_eq!(p.method(), Some("default_agent_without_history"));
        // Plenty of evidence that the generalist does these tasks better wins over the hint.
        let mut history = Vec::new();
        for i in 0..40 {
            history.push(perf(
                "generalist",
                "hash",
                &format!("digest the release tarball {i}"),
                50,
                1.0,
            ));
            history.push(perf(
                "hasher",
                "hash",
                &format!("digest the release tarball {i}"),
                50,
                0.2,
            ));
        }
        e.record_batch(history).await.unwrap();
        let p = e.predict_optimal_agent(&ask_hash).await.unwrap();
        assert_eq!(
            p.predicted_agent,
            id("generalist"),
            "{}: {:?}",
            b.name,
            p.reasoning
        );
    }
}
