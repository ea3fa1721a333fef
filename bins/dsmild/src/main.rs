//! `dsmild`, the DSMIL daemon: parses flags and the configuration file, sets up logging, and
//! runs the composer ([`dsmil_daemon::run`]) until SIGINT or SIGTERM.

mod cli;

use anyhow::Result;
use clap::Parser;
use dsmil_daemon::config::{DaemonConfig, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = cli::Cli::parse();
    let config = match load(&cli) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("dsmild: {}", dsmil_core::report::chain(err.as_ref()));
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
    if let Err(err) = runtime.block_on(dsmil_daemon::run(config)) {
        let err = anyhow::Error::from(err);
        tracing::error!("{}", dsmil_core::report::chain(err.as_ref()));
        eprintln!("dsmild: {}", dsmil_core::report::chain(err.as_ref()));
        std::process::exit(1);
    }
}

/// Defaults, then the file, then flags and environment — validated once, after merging.
fn load(cli: &cli::Cli) -> Result<DaemonConfig> {
    let mut config = match &cli.config {
        Some(path) => DaemonConfig::read_toml_file(path)?,
        None => DaemonConfig::default(),
    };
    config.apply(cli.overrides());
    config.validate()?;
    Ok(config)
}

fn init_tracing(config: &DaemonConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.daemon.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.daemon.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
