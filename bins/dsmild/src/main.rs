//! `dsmild`, the DSMIL daemon: parses flags and config, sets up logging, prepares the data
//! dir and API token, composes the layers and serves the API until SIGINT/SIGTERM.

mod api;
mod api_learn;
mod api_monitor;
mod api_tpm;
mod api_workflows;
mod audit;
mod cli;
mod coordination;
mod learning;
mod monitoring;
mod settings;
mod token;
mod tpm;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use dsmil_accel::{Engine, EngineConfig, Platform};
use dsmil_core::{DaemonConfig, EventBus, LogFormat, TpmBackendSpec};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = cli::Cli::parse();
    let config = match settings::load(&cli) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("dsmild: {err:#}");
            std::process::exit(2);
        }
    };
    init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dsmild")
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("dsmild: cannot start the async runtime: {err}");
            std::process::exit(1);
        }
    };
    if let Err(err) = runtime.block_on(run(config)) {
        tracing::error!("{err:#}");
        eprintln!("dsmild: {err:#}");
        std::process::exit(1);
    }
}

fn init_tracing(config: &DaemonConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(config: DaemonConfig) -> Result<()> {
    let started = Instant::now();
    let (accel, platform) = detect_accel()?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let data_dir = config
        .data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve data dir {}", config.data_dir.display()))?;
    let token = token::load_or_create(&data_dir)?;
    let bus = EventBus::new(config.event_bus_capacity);
    let early = monitoring::EarlySubscriptions::take(&bus);
    let engine = Arc::new(
        Engine::start(
            EngineConfig::default(),
            platform,
            &accel.topology,
            Some(bus.clone()),
        )
        .context("cannot start the accelerator engine")?,
    );

    let tpm = tpm::start(&config, &data_dir, &bus)?;
    let audit_signer = tpm::audit_signer(&tpm).await?;
    let learning = learning::start(&config, &data_dir, platform, engine.meter()).await?;
    let audit = audit::start(&data_dir, audit_signer.clone()).await?;
    let coordinator = coordination::start(
        &config,
        &data_dir,
        Arc::clone(&learning),
        bus.clone(),
        audit.clone(),
    )
    .await?;
    let bridge = tpm::bridge(&tpm, &data_dir, audit.clone(), &bus, coordinator.clone())?;
    tpm::spawn_anchor_task(tpm.clone(), audit.clone(), audit_signer, bus.clone());
    let monitor = monitoring::start(
        &config,
        &bus,
        early,
        audit.clone(),
        coordinator.clone(),
        engine.clone(),
    )?;

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    if !local.ip().is_loopback() {
        tracing::warn!(
            %local,
            "listening on a non-loopback address: every API call except /api/health needs the token"
        );
    }
    tracing::info!(
        version = dsmil_core::VERSION,
        data_dir = %data_dir.display(),
        token_file = %token.path.display(),
        token_created = token.created,
        url = %format!("http://{local}/"),
        tpm = %config.tpm,
        store = learning.store().backend(),
        search = %learning.store().search_engine(),
        agents = config.agents.len(),
        accel = %accel.path,
        cores = accel.topology.total_cores,
        accel_workers = engine.workers(),
        accel_pinned = engine.pinned(),
        "dsmild started"
    );
    if config.tpm == TpmBackendSpec::Soft {
        tracing::warn!("TPM backend is the software TPM: signatures are NOT hardware-rooted");
    }
    eprintln!(
        "dsmild {} listening on http://{local}/\n  data dir:  {}\n  API token: {}",
        dsmil_core::VERSION,
        data_dir.display(),
        token.path.display()
    );

    let state = Arc::new(api::AppState {
        config,
        token: token.secret,
        started,
        accel,
        engine: Arc::clone(&engine),
        bus,
        learning: Some(learning),
        coordinator: Some(Arc::clone(&coordinator)),
        tpm: Some(tpm.clone()),
        bridge: Some(bridge),
        audit: Some(audit.clone()),
        hub: Some(monitor.hub.clone()),
        alerts: Some(monitor.alerts.clone()),
        collector: Some(monitor.collector.status_receiver()),
    });
    // On a signal, WebSocket clients are told first ("server shutting down"), so that open
    // connections do not hold the graceful HTTP shutdown.
    let hub = monitor.hub.clone();
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            hub.shutdown();
        })
        .await
        .context("HTTP server failed")?;
    monitor.shutdown().await;
    let running = coordinator.active().len();
    if running > 0 {
        tracing::info!(
            workflows = running,
            "workflows still running stop here and resume from the journal at the next start"
        );
    }
    if let Err(e) = audit.checkpoint().await {
        tracing::error!(error = %e, "cannot sign the last audit batch");
    }
    if let Err(e) = tpm::anchor(&tpm, &audit).await {
        tracing::error!(error = %format!("{e:#}"), "cannot anchor the last audit tree head");
    }
    // Let accelerator work in flight finish; joining threads blocks, so not on a runtime thread.
    engine.close();
    tokio::task::spawn_blocking(move || drop(engine))
        .await
        .context("accelerator engine shutdown failed")?;
    tracing::info!("dsmild stopped cleanly");
    Ok(())
}

/// Detects the accelerator path (honouring `DSMIL_ACCEL_FORCE`), CPU features and topology.
fn detect_accel() -> Result<(api::AccelInfo, Platform)> {
    let platform = Platform::detect()?;
    let capabilities = dsmil_accel::capabilities();
    let topology = dsmil_accel::topology::detect(capabilities.has_avx512_core());
    let info = api::AccelInfo {
        path: platform.path(),
        capabilities,
        topology,
    };
    Ok((info, platform))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
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
}
