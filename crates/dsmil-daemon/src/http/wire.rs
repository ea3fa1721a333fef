//! The edge between the layers and the contract: each layer's result type converted to its wire
//! form in `dsmil-api`. A field renamed in a layer or in the contract fails to compile here.

use dsmil_api::{alerts as a, audit as au, devices as d, learn as l, tpm as t, workflows as w};
use dsmil_core::hex;
use serde::Serialize;

/// The serde name of a unit enum variant (`sha256`, `ecc_p256_signing`), the form the wire uses
/// for the TPM's and accelerator's vocabularies.
pub fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

// ---- workflows ----

/// A journal record.
pub fn workflow_record(r: dsmil_coord::journal::WorkflowRecord) -> w::WorkflowRecord {
    w::WorkflowRecord {
        workflow_id: r.workflow_id,
        spec: r.spec,
        state: r.state,
        created_at: r.created_at,
        results: r.results,
        history: r
            .history
            .into_iter()
            .map(|h| w::Transition {
                at: h.at,
                state: h.state,
                detail: h.detail,
            })
            .collect(),
        result: r.result,
    }
}

// ---- learning ----

/// A performance anomaly.
pub fn anomaly(x: dsmil_learn::analysis::Anomaly) -> l::Anomaly {
    use dsmil_learn::analysis::AnomalyMetric as M;
    l::Anomaly {
        record_id: x.record_id,
        agent_id: x.agent_id,
        task_type: x.task_type,
        timestamp: x.timestamp,
        metric: match x.metric {
            M::ExecutionTimeMs => l::AnomalyMetric::ExecutionTimeMs,
            M::SuccessRate => l::AnomalyMetric::SuccessRate,
        },
        value: x.value,
        baseline_mean: x.baseline_mean,
        baseline_std_dev: x.baseline_std_dev,
        z_score: x.z_score,
    }
}

fn metric_trend(m: dsmil_learn::analysis::MetricTrend) -> l::MetricTrend {
    l::MetricTrend {
        mean: m.mean,
        slope_per_hour: m.slope_per_hour,
        p50: m.p50,
        p95: m.p95,
        p99: m.p99,
    }
}

/// An agent's trend.
pub fn trend(r: dsmil_learn::analysis::TrendReport) -> l::TrendReport {
    use dsmil_learn::analysis::TrendDirection as D;
    l::TrendReport {
        agent_id: r.agent_id,
        time_window_hours: r.time_window_hours,
        samples: r.samples,
        success_rate: r.success_rate.map(metric_trend),
        execution_time_ms: r.execution_time_ms.map(metric_trend),
        direction: match r.direction {
            D::Improving => l::TrendDirection::Improving,
            D::Degrading => l::TrendDirection::Degrading,
            D::Stable => l::TrendDirection::Stable,
            D::InsufficientData => l::TrendDirection::InsufficientData,
        },
    }
}

/// A pending task, from the wire.
pub fn pending_task(p: l::PendingTask) -> dsmil_learn::engine::PendingTask {
    dsmil_learn::engine::PendingTask {
        task_id: p.task_id,
        task_description: p.task_description,
        task_type: p.task_type,
        context: p.context,
    }
}

/// A prediction request, from the wire.
pub fn predict_request(p: l::PredictRequest) -> dsmil_learn::PredictRequest {
    dsmil_learn::PredictRequest {
        task_description: p.task_description,
        task_type: p.task_type,
        context: p.context,
        exclude_agents: p.exclude_agents,
        candidates: p.candidates,
    }
}

/// An allocation plan.
pub fn allocation(a: dsmil_learn::engine::Allocation) -> l::Allocation {
    l::Allocation {
        assignments: a.assignments,
        unassigned: a.unassigned,
        total_score: a.total_score,
    }
}

fn system_summary(s: dsmil_learn::engine::SystemSummary) -> l::SystemSummary {
    l::SystemSummary {
        active_agents: s.active_agents,
        total_tasks: s.total_tasks,
        system_avg_time_ms: s.system_avg_time_ms,
        system_success_rate: s.system_success_rate,
        max_time_std_dev_ms: s.max_time_std_dev_ms,
    }
}

/// The learning layer's insights.
pub fn insights(i: dsmil_learn::engine::Insights) -> l::Insights {
    l::Insights {
        store_backend: i.store_backend,
        search_engine: i.search_engine,
        total_records: i.total_records,
        pending_records: i.pending_records,
        known_agents: i.known_agents,
        agents: i
            .agents
            .into_iter()
            .map(|s| l::AgentStats {
                agent_id: s.agent_id,
                task_count: s.task_count,
                avg_execution_time_ms: s.avg_execution_time_ms,
                execution_time_std_dev_ms: s.execution_time_std_dev_ms,
                avg_success_rate: s.avg_success_rate,
                last_seen: s.last_seen,
            })
            .collect(),
        last_hour: system_summary(i.last_hour),
        best_agent_by_task_type: i.best_agent_by_task_type,
        anomalies: i.anomalies,
    }
}

// ---- TPM, devices, audit ----

/// A key's public half.
pub fn key_public(k: &dsmil_tpm::KeyPublic) -> t::KeyPublic {
    match k {
        dsmil_tpm::KeyPublic::EccP256 { point } => t::KeyPublic::EccP256 {
            point: hex::encode(point),
        },
        dsmil_tpm::KeyPublic::Rsa { modulus, exponent } => t::KeyPublic::Rsa {
            modulus: hex::encode(modulus),
            exponent: *exponent,
        },
        dsmil_tpm::KeyPublic::Symmetric => t::KeyPublic::Symmetric,
    }
}

/// A quote.
pub fn quote(q: &dsmil_tpm::Quote) -> t::Quote {
    t::Quote {
        bank: name(&q.bank),
        pcr_values: q
            .pcr_values
            .iter()
            .map(|(i, d)| {
                (
                    *i,
                    t::Digest {
                        algorithm: name(&d.algorithm()),
                        hex: hex::encode(d.as_bytes()),
                    },
                )
            })
            .collect(),
        attest: hex::encode(&q.attest),
        signature: hex::encode(&q.signature),
        ak_public: key_public(&q.ak_public),
        ak_parent_qualified_name: q.ak_parent_qualified_name.as_deref().map(hex::encode),
    }
}

/// The TPM's counters.
pub fn tpm_performance(p: dsmil_tpm::perf::PerfSnapshot) -> t::TpmPerformance {
    let c = p.counters;
    t::TpmPerformance {
        counters: t::TpmCounters {
            total_operations: c.total_operations,
            successful_operations: c.successful_operations,
            failed_operations: c.failed_operations,
            timeout_errors: c.timeout_errors,
            hardware_errors: c.hardware_errors,
            policy_violations: c.policy_violations,
            authentication_failures: c.authentication_failures,
        },
        operations: p
            .operations
            .into_iter()
            .map(|o| t::OperationStats {
                operation: name(&o.operation),
                count: o.count,
                ops_per_second: o.ops_per_second,
                mean_us: o.mean_us,
                p50_us: o.p50_us,
                p95_us: o.p95_us,
                p99_us: o.p99_us,
                max_us: o.max_us,
            })
            .collect(),
    }
}

/// What the bridge records about a device.
pub fn device_status(
    r: dsmil_tpm::bridge::DeviceRecord,
    device: dsmil_core::DeviceId,
) -> d::DeviceStatus {
    d::DeviceStatus {
        device: r.device.unwrap_or(device),
        quarantined: r.quarantined,
        key_label: r.key_label,
        config_sealed: r.config_sealed,
        config_locked: r.config_locked,
    }
}

/// A device attestation.
pub fn device_attestation(a: &dsmil_tpm::bridge::DeviceAttestation) -> d::DeviceAttestation {
    d::DeviceAttestation {
        device: a.device,
        state_digest: hex::encode(&a.state_digest),
        nonce: hex::encode(&a.nonce),
        quote: quote(&a.quote),
    }
}

/// An audit inclusion proof.
pub fn inclusion_proof(p: dsmil_tpm::audit::InclusionProof) -> au::InclusionProof {
    au::InclusionProof {
        seq: p.seq,
        entry: p.entry,
        leaf: p.leaf,
        tree_size: p.tree_size,
        root: p.root,
        proof: p.proof,
    }
}

// ---- monitoring ----

/// The automatic responses in force.
pub fn response_status(r: &dsmil_monitor::alerts::ResponseStatus) -> a::ResponseStatus {
    a::ResponseStatus {
        thermal_throttled: r.thermal_throttled,
        non_critical_paused: r.non_critical_paused,
        emergency_active: r.emergency_active,
        emergency_reason: r.emergency_reason.clone(),
    }
}

fn levels(l: &dsmil_monitor::config::Levels) -> a::Levels {
    a::Levels {
        warning: l.warning,
        critical: l.critical,
    }
}

/// The thresholds in force.
pub fn thresholds(t: &dsmil_monitor::config::AlertThresholds) -> a::Thresholds {
    a::Thresholds {
        cpu_percent: levels(&t.cpu_percent),
        memory_percent: levels(&t.memory_percent),
        disk_percent: levels(&t.disk_percent),
        thermal_celsius: a::ThermalLevels {
            warning: t.thermal_celsius.warning,
            critical: t.thermal_celsius.critical,
            emergency: t.thermal_celsius.emergency,
        },
        agent_failure_rate: levels(&t.agent_failure_rate),
        agent_response_time_ms: levels(&t.agent_response_time_ms),
        security_events_per_minute: levels(&t.security_events_per_minute),
        cluster_nodes_lost: levels(&t.cluster_nodes_lost),
        cluster_agents_unhosted: levels(&t.cluster_agents_unhosted),
        for_seconds: t.for_seconds,
        hysteresis_fraction: t.hysteresis_fraction,
    }
}

/// The alert engine's state, rates and thresholds.
pub fn alerts(
    snap: dsmil_monitor::alerts::AlertsSnapshot,
    rates: dsmil_monitor::collect::RatesSnapshot,
    thresholds_in_force: &dsmil_monitor::config::AlertThresholds,
) -> a::Alerts {
    use dsmil_monitor::alerts::AlertChange as C;
    let c = snap.counters;
    a::Alerts {
        active: snap
            .active
            .into_iter()
            .map(|x| a::ActiveAlert {
                alert: x.alert,
                raised_at: x.raised_at,
                latest_value: x.latest_value,
            })
            .collect(),
        history: snap
            .history
            .into_iter()
            .map(|h| a::AlertTransition {
                change: match h.change {
                    C::Raised => a::AlertChange::Raised,
                    C::Escalated => a::AlertChange::Escalated,
                    C::DeEscalated => a::AlertChange::DeEscalated,
                    C::Resolved => a::AlertChange::Resolved,
                },
                previous_level: h.previous_level,
                alert: h.alert,
            })
            .collect(),
        responses: response_status(&snap.responses),
        counters: a::AlertCounters {
            raised: a::LevelCounts {
                info: c.raised.info,
                warning: c.raised.warning,
                critical: c.raised.critical,
                emergency: c.raised.emergency,
            },
            escalated: c.escalated,
            de_escalated: c.de_escalated,
            resolved: c.resolved,
            automatic_responses: c.automatic_responses,
            reversals: c.reversals,
            emergencies: c.emergencies,
            port_errors: c.port_errors,
        },
        rates: a::EventRates {
            window_seconds: rates.window_seconds,
            agent_completions: rates.agent_completions,
            agent_failures: rates.agent_failures,
            agent_failure_rate: rates.agent_failure_rate,
            agent_response_samples: rates.agent_response_samples,
            agent_response_time_mean_ms: rates.agent_response_time_mean_ms,
            agent_response_time_p95_ms: rates.agent_response_time_p95_ms,
            security_events: rates.security_events,
            security_events_per_minute: rates.security_events_per_minute,
        },
        thresholds: thresholds(thresholds_in_force),
    }
}

/// The cluster as a node sees it.
pub fn cluster_view(status: dsmil_cluster::ClusterStatus) -> dsmil_api::cluster::ClusterView {
    use dsmil_api::cluster as c;
    c::ClusterView {
        clustered: true,
        cluster: Some(status.cluster),
        node_id: Some(status.node_id),
        replicas: Some(status.replicas),
        server: Some(status.server),
        nodes: status
            .members
            .into_iter()
            .map(|m| c::ClusterMember {
                node_id: m.info.node_id,
                live: m.live,
                last_seen_ms: m.last_seen_ms,
                version: m.info.version,
                started_at: m.info.started_at,
                workflows: m.workflows,
                agents: m
                    .info
                    .agents
                    .into_iter()
                    .map(|a| c::HostedAgent {
                        agent_id: a.agent_id,
                        capacity: a.capacity,
                        in_flight: a.in_flight,
                        breaker: a.breaker,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// One node's audit log as the cluster witnesses it.
pub fn witnessed_log(n: dsmil_cluster::witness::WitnessedNode) -> dsmil_api::audit::WitnessedLog {
    use dsmil_api::audit as au;
    au::WitnessedLog {
        node_id: n.node,
        head: n.head,
        witnesses: n
            .witnesses
            .into_iter()
            .map(|c| au::WitnessRecord {
                witness: c.witness,
                accepted_size: c.accepted.map(|s| s.tree_size),
                accepted_root: c.accepted.map(|s| dsmil_core::hex::encode(&s.root)),
                accepted_at: c.accepted_at,
                cosigned_size: c.cosigned.map(|s| s.tree_size),
                cosigned_at: c.cosigned_at,
                audit_sequence: c.audit_sequence,
                problem: c.problem,
                problem_at: c.problem_at,
            })
            .collect(),
    }
}
