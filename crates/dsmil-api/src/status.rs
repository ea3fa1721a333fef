//! `GET /api/health`, `GET /api/ready` and `GET /api/status`: is the daemon up, can it work,
//! and what it runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dsmil_core::{AgentId, KernelPath};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::alerts::ResponseStatus;

/// `GET /api/health`: always `{"status":"ok"}` while the daemon serves (no token needed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// `GET /api/ready`: every readiness check passed (no token needed). When one fails the answer
/// is 503 `not_ready`, its message naming each failed check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: String,
    /// Each check, in the order run.
    pub checks: Vec<ReadinessCheck>,
}

/// One readiness check: the TPM answering, the data dir writable, the learning store and the
/// workflow journal reachable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReadinessCheck {
    /// `tpm`, `data_dir`, `learning_store` or `journal`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (`answered`, or why it failed).
    pub detail: String,
    /// How long it took, in milliseconds.
    pub elapsed_ms: u64,
}

/// `GET /api/status`: version, uptime and every layer's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// The daemon's version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// The accelerator: path, CPU features, topology, compute engine.
    pub accel: AccelStatus,
    /// The event bus.
    pub event_bus: EventBusStatus,
    /// The TPM.
    pub tpm: TpmStatus,
    /// The learning store.
    pub store: StoreStatus,
    /// Declared agents with their protections.
    pub agents: Vec<AgentStatus>,
    /// Workflows running now.
    pub active_workflows: usize,
    /// WebSocket clients connected.
    pub connected_clients: u64,
    /// The WebSocket hub's counters.
    pub websocket: WebSocketStats,
    /// The system-health collector.
    pub health_collector: CollectorStatus,
    /// Alerts in force.
    pub alerts: AlertsSummary,
}

/// What the accelerator layer detected and runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccelStatus {
    /// The kernel path in use (`DSMIL_ACCEL_FORCE` forces one).
    pub path: KernelPath,
    /// CPU features found (`avx512f`, `sha`, `vaes`, …).
    pub capabilities: Vec<String>,
    /// Cores, NUMA nodes, cache, thermal zones.
    pub topology: CpuTopology,
    /// The compute pool.
    pub engine: EngineStatus,
}

/// Cores, their kinds, caches and NUMA layout (seed `cpu_topology`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CpuTopology {
    /// Logical CPUs online.
    pub total_cores: u32,
    /// Performance cores (all cores on non-hybrid parts).
    pub p_cores: Vec<u32>,
    /// Efficiency cores (empty on non-hybrid parts).
    pub e_cores: Vec<u32>,
    /// CPUs on which AVX-512 may be scheduled.
    pub avx512_cores: Vec<u32>,
    /// NUMA nodes.
    pub numa_nodes: u32,
    /// Last-level cache size in bytes (0 when unknown).
    pub l3_cache_bytes: u64,
    /// Thermal zones found under `/sys/class/thermal`.
    pub thermal_zones: u32,
}

/// The accelerator's compute pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EngineStatus {
    /// Worker threads.
    pub workers: usize,
    /// Cores the workers may run on.
    pub cores: Vec<u32>,
    /// Whether the workers are pinned to those cores.
    pub pinned: bool,
    /// Concurrency scale in force (0–1).
    pub scale: f64,
    /// Jobs waiting.
    pub queued: usize,
    /// Jobs running.
    pub running: usize,
    /// Whether thermal throttling is in force.
    pub thermal_throttled: bool,
    /// Work done, per operation kind.
    pub counters: BTreeMap<String, OpCounters>,
}

/// Work done by one kind of accelerator operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OpCounters {
    /// Jobs that completed.
    pub ops: u64,
    /// Jobs that failed.
    pub failures: u64,
    /// Bytes (or elements) processed.
    pub bytes: u64,
    /// Time spent running these jobs, ns.
    pub busy_nanos: u64,
    /// `bytes` per second of busy time.
    pub throughput_bytes_per_second: f64,
}

/// The event bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventBusStatus {
    /// Subscribers now.
    pub subscribers: usize,
}

/// The TPM the daemon signs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TpmStatus {
    /// `soft` or `tss`.
    pub backend: String,
    /// The configured backend (`soft`, `tss:<TCTI>`).
    pub spec: String,
    /// Whether keys live in a hardware TPM (false for the software TPM and swtpm).
    pub hardware_rooted: bool,
    /// Vendor string.
    pub vendor: String,
    /// Manufacturer id.
    pub manufacturer: String,
}

/// The learning store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreStatus {
    /// `sqlite` or `postgres` (behind an outbox).
    pub backend: String,
    /// The similarity search in use.
    pub search: String,
    /// Records stored (absent when the store could not count them).
    pub records: Option<u64>,
    /// Records waiting in the outbox.
    pub pending: Option<u64>,
    /// Agents with history.
    pub known_agents: usize,
}

/// One agent's protections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentStatus {
    /// Its id.
    pub id: AgentId,
    /// How it is reached.
    pub kind: AgentKind,
    /// Concurrency limit in force.
    pub max_concurrency: usize,
    /// Slots free now.
    pub available: usize,
    /// Its circuit breaker's state.
    pub breaker: BreakerState,
}

/// How an agent is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// A program: task JSON on stdin, result JSON on stdout.
    Command,
    /// An HTTP endpoint.
    Http,
    /// Rust code compiled into the daemon.
    Builtin,
}

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused.
    Open,
    /// Probe calls pass.
    HalfOpen,
}

/// The WebSocket hub's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebSocketStats {
    /// Clients connected now.
    pub clients: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections refused (too many clients).
    pub refused_total: u64,
    /// Clients dropped for falling behind.
    pub slow_disconnects_total: u64,
    /// Messages sent.
    pub messages_total: u64,
    /// Client messages answered with an error.
    pub protocol_errors_total: u64,
    /// Bus events the hub missed by falling behind.
    pub lagged_events_total: u64,
}

/// The system-health collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CollectorStatus {
    /// Whether it runs.
    pub running: bool,
    /// Samples taken.
    pub samples: u64,
    /// Samples that failed.
    pub failures: u64,
    /// Failures in a row (the collector backs off).
    pub consecutive_failures: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// When a sample last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
}

/// Alerts in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertsSummary {
    /// Active alerts.
    pub active: usize,
    /// Automatic responses in force.
    pub responses: ResponseStatus,
}
