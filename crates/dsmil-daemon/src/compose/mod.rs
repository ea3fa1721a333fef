//! Composing the layers in dependency order, serving until a signal, and shutting down in
//! reverse.
//!
//! Order: data dir and token → event bus (the hub and the alert engine subscribe here, before
//! anything publishes) and accelerator engine → TPM and its audit key → learning engine →
//! audit log → coordinator (resumes unfinished workflows) → DSMIL bridge → audit anchor task →
//! monitoring → HTTP. Shutdown: WebSocket clients told first, HTTP drains, running workflows get
//! `shutdown_grace_seconds`, then the last audit batch is signed and anchored and the
//! accelerator drains.

pub mod audit;
pub mod coordination;
pub mod learning;
pub mod monitoring;
pub mod tpm;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsmil_accel::{Engine, EngineConfig, Platform};
use dsmil_coord::workflow::Coordinator;
use dsmil_core::EventBus;
use dsmil_core::ports::JournalStore;
use dsmil_learn::LearningEngine;
use dsmil_tpm::Tpm;
use dsmil_tpm::audit::AuditLog;
use dsmil_tpm::bridge::DsmilBridge;
use dsmil_tpm::config::TpmBackendSpec;
use tokio::net::TcpListener;

use crate::config::DaemonConfig;
use crate::error::{Context, Result};
use crate::token::{self, ApiToken};

/// What the accelerator layer detected at start, as `/api/status` reports it.
#[derive(Debug, Clone)]
pub struct AccelInfo {
    /// The kernel path in use.
    pub platform: Platform,
    /// CPU features found.
    pub capabilities: dsmil_accel::CapabilitySet,
    /// Cores, NUMA nodes, cache, thermal zones.
    pub topology: dsmil_accel::CpuTopology,
}

/// Every running layer of one daemon: what the HTTP API serves from.
pub struct Layers {
    /// The effective configuration.
    pub config: DaemonConfig,
    /// The data directory, resolved.
    pub data_dir: PathBuf,
    /// The API token.
    pub token: ApiToken,
    /// When the daemon started.
    pub started: Instant,
    /// What the accelerator detected.
    pub accel: AccelInfo,
    /// The accelerator's compute pool.
    pub engine: Arc<Engine>,
    /// The event bus every layer publishes to.
    pub bus: EventBus,
    /// The learning engine.
    pub learning: Arc<LearningEngine>,
    /// The workflow coordinator.
    pub coordinator: Arc<Coordinator>,
    /// Its journal.
    pub journal: Arc<dyn JournalStore>,
    /// This node of the cluster, with `[cluster]`.
    pub cluster: Option<Arc<dsmil_cluster::ClusterNode>>,
    /// The TPM.
    pub tpm: Tpm,
    /// The DSMIL device bridge.
    pub bridge: Arc<DsmilBridge>,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// Its signed heads and consistency proofs.
    pub audit_heads: Arc<dsmil_tpm::audit::WitnessedLog>,
    /// Collector, alerts and WebSocket hub.
    pub monitor: monitoring::Monitoring,
}

/// Detects the accelerator path (honouring `DSMIL_ACCEL_FORCE`), CPU features and topology.
fn detect_accel() -> Result<AccelInfo> {
    let platform = Platform::detect().context("cannot select an accelerator path")?;
    let capabilities = dsmil_accel::capabilities();
    let topology = dsmil_accel::topology::detect(capabilities.has_avx512_core());
    Ok(AccelInfo {
        platform,
        capabilities,
        topology,
    })
}

/// Creates the data dir (0700) and returns its canonical path.
fn prepare_data_dir(config: &DaemonConfig) -> Result<PathBuf> {
    let dir = &config.daemon.data_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("cannot resolve data dir {}", dir.display()))
}

/// Starts every layer (the configuration must be validated).
pub async fn start(config: DaemonConfig) -> Result<Layers> {
    let started = Instant::now();
    let accel = detect_accel()?;
    let data_dir = prepare_data_dir(&config)?;
    let token = token::load_or_create(&data_dir)?;
    let bus = EventBus::new(config.daemon.event_bus_capacity);
    let early = monitoring::EarlySubscriptions::take(&bus);
    let engine = Arc::new(
        Engine::start(
            EngineConfig::default(),
            accel.platform,
            &accel.topology,
            Some(bus.clone()),
        )
        .context("cannot start the accelerator engine")?,
    );
    let tpm = tpm::start(&config, &data_dir, &bus)?;
    let audit_signer = tpm::audit_signer(&tpm).await?;
    let learning = learning::start(&config, &data_dir, accel.platform, engine.meter()).await?;
    let audit::Audit {
        log: audit,
        heads: audit_heads,
    } = audit::start(&data_dir, audit_signer.clone()).await?;
    let coordination::Coordination {
        coordinator,
        journal,
        cluster,
    } = coordination::start(
        &config,
        &data_dir,
        Arc::clone(&learning),
        bus.clone(),
        audit.clone(),
    )
    .await?;
    if let Some(node) = &cluster {
        // Every node's audit log witnessed by the others.
        node.witness(
            audit_heads.clone(),
            Arc::new(dsmil_tpm::audit::P256HeadVerifier),
            audit.clone(),
            bus.clone(),
        )
        .await
        .context("cannot witness the cluster's audit logs")?;
    }
    let bridge = tpm::bridge(&tpm, &data_dir, audit.clone(), &bus, coordinator.clone())?;
    dsmil_tpm::audit::anchor::spawn_anchor_task(
        tpm.clone(),
        audit.clone(),
        audit_signer,
        bus.clone(),
    );
    // In a cluster, the alert engine's emergency stops follow `[cluster] emergency_scope`.
    let throttle: Arc<dyn dsmil_core::ports::Throttle> = match &cluster {
        Some(node) => node
            .throttle(coordinator.clone())
            .await
            .context("cannot follow the cluster's emergency stops")?,
        None => coordinator.clone(),
    };
    let monitor = monitoring::start(
        &config,
        &data_dir,
        &bus,
        early,
        audit.clone(),
        throttle,
        engine.clone(),
    )?;
    Ok(Layers {
        config,
        data_dir,
        token,
        started,
        accel,
        engine,
        bus,
        learning,
        coordinator,
        journal,
        cluster,
        tpm,
        bridge,
        audit,
        audit_heads,
        monitor,
    })
}

/// The listener's limits from the daemon's settings; raises the open-file limit first, since
/// the default connection cap is derived from it.
fn connection_limits(settings: &crate::config::DaemonSettings) -> crate::http::serve::Limits {
    use crate::http::serve;
    let fd_limit = serve::raise_fd_limit().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read or raise the open-file limit; assuming 1024");
        1024
    });
    serve::Limits {
        header_timeout: Duration::from_secs(settings.http_header_timeout_secs),
        max_connections: settings
            .max_connections
            .unwrap_or_else(|| serve::default_max_connections(fd_limit)),
    }
}

/// Runs dsmild: starts the layers, serves the API on the configured address until SIGINT or
/// SIGTERM, then shuts down gracefully. The configuration is validated first; nothing is
/// started (no data dir created) when it is invalid.
pub async fn run(config: DaemonConfig) -> Result<()> {
    config.validate()?;
    let listen = config.daemon.listen;
    let limits = connection_limits(&config.daemon);
    let layers = start(config).await?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let metrics_listener = match layers.config.monitor.metrics.listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} ([metrics] listen)"))?,
        ),
        None => None,
    };
    announce(&layers, local);
    let layers = Arc::new(layers);
    audit::record_lifecycle(
        &layers.audit,
        "daemon_started",
        format!(
            "dsmild {} started on {local} with data dir {}",
            dsmil_core::VERSION,
            layers.data_dir.display()
        ),
        vec![
            format!(
                "configuration sha256:{}",
                audit::config_sha256(&layers.config)
            ),
            format!("tpm {}", layers.config.tpm.tpm),
            format!("store {}", layers.learning.store().backend()),
        ],
    )
    .await;
    // Tasks that hold the layers until the API stops serving.
    let mut background = Vec::new();
    background.extend(metrics_listener.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "serving /metrics without the token ([metrics] listen)");
        }
        let router = crate::http::metrics_router(Arc::clone(&layers));
        tokio::spawn(crate::http::serve::serve(
            listener,
            router,
            limits,
            std::future::pending(),
        ))
    }));
    let notifier = crate::notify::Notifier::from_env()
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable; systemd is not told");
            None
        })
        .map(Arc::new);
    if let Some(n) = &notifier {
        n.tell(&format!(
            "READY=1\nSTATUS=serving on http://{local}/\nMAINPID={}",
            std::process::id()
        ));
        if let Some(period) = crate::notify::watchdog_period() {
            background.push(crate::notify::spawn_watchdog(
                Arc::clone(n),
                Arc::clone(&layers),
                period,
            ));
        }
    }
    let hub = layers.monitor.hub.clone();
    let router = crate::http::router(Arc::clone(&layers));
    let stopped_by = Arc::new(std::sync::OnceLock::new());
    let signal_seen = Arc::clone(&stopped_by);
    crate::http::serve::serve(listener, router, limits, async move {
        let _ = signal_seen.set(shutdown_signal().await);
        if let Some(n) = &notifier {
            n.tell("STOPPING=1\nSTATUS=shutting down");
        }
        // WebSocket clients are told first ("server shutting down"), so that open
        // connections do not hold the graceful HTTP shutdown.
        hub.shutdown();
    })
    .await;
    for task in background {
        task.abort();
        // Cancelled: the task (and the layers it held) is gone once this resolves.
        let _ = task.await;
    }
    let reason = stopped_by.get().copied().unwrap_or("the listener ending");
    // Before `shutdown`, which signs the last audit batch.
    audit::record_lifecycle(
        &layers.audit,
        "daemon_stopped",
        format!("dsmild stopping on {reason}"),
        vec![format!("up {} s", layers.started.elapsed().as_secs())],
    )
    .await;
    shutdown(layers).await
}

/// Logs and prints where the daemon is and what it runs.
fn announce(layers: &Layers, local: std::net::SocketAddr) {
    if !local.ip().is_loopback() {
        tracing::warn!(
            %local,
            "listening on a non-loopback address: every API call except /api/health needs the token"
        );
    }
    let store = layers.learning.store();
    tracing::info!(
        version = dsmil_core::VERSION,
        data_dir = %layers.data_dir.display(),
        token_file = %layers.token.path.display(),
        token_created = layers.token.created,
        url = %format!("http://{local}/"),
        tpm = %layers.config.tpm.tpm,
        store = store.backend(),
        search = %store.search_engine(),
        agents = layers.coordinator.agents().len(),
        accel = %layers.accel.platform.path(),
        cores = layers.accel.topology.total_cores,
        accel_workers = layers.engine.workers(),
        accel_pinned = layers.engine.pinned(),
        "dsmild started"
    );
    if layers.config.tpm.tpm == TpmBackendSpec::Soft {
        tracing::warn!("TPM backend is the software TPM: signatures are NOT hardware-rooted");
    }
    eprintln!(
        "dsmild {} listening on http://{local}/\n  data dir:  {}\n  API token: {}",
        dsmil_core::VERSION,
        layers.data_dir.display(),
        layers.token.path.display()
    );
}

/// Stops the layers in reverse order of start.
async fn shutdown(layers: Arc<Layers>) -> Result<()> {
    layers.monitor.shutdown().await;
    let grace = layers.config.coord.shutdown_grace();
    let stopped = layers.coordinator.shutdown(grace).await;
    if stopped > 0 {
        tracing::info!(
            workflows = stopped,
            grace_seconds = grace.as_secs(),
            "workflows still running after the grace period stop here and resume from the journal at the next start"
        );
    }
    if let Some(node) = &layers.cluster {
        node.shutdown().await;
    }
    if let Err(e) = layers.audit.checkpoint().await {
        tracing::error!(error = %dsmil_core::report::chain(&e), "cannot sign the last audit batch");
    }
    if let Err(e) = dsmil_tpm::audit::anchor::anchor(&layers.tpm, &layers.audit).await {
        tracing::error!(error = %dsmil_core::report::chain(&e), "cannot anchor the last audit tree head");
    }
    // Let accelerator work in flight finish; joining threads blocks, so not on a runtime thread.
    layers.engine.close();
    tokio::task::spawn_blocking(move || drop(layers))
        .await
        .context("accelerator engine shutdown failed")?;
    tracing::info!("dsmild stopped cleanly");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM, with the signal's name.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let wait = |kind: SignalKind, name: &'static str| async move {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
                name
            }
            Err(err) => {
                tracing::error!("cannot listen for {name}: {err}");
                std::future::pending().await
            }
        }
    };
    let name = tokio::select! {
        n = wait(SignalKind::interrupt(), "SIGINT") => n,
        n = wait(SignalKind::terminate(), "SIGTERM") => n,
    };
    tracing::info!(signal = name, "shutting down");
    name
}
