//! `dsmild`, the DSMIL daemon: parses flags and the configuration file, sets up logging, and
//! runs the composer ([`dsmil_daemon::run`]) until SIGINT or SIGTERM.

mod cli;

use anyhow::Result;
use clap::Parser;
use dsmil_daemon::config::{DaemonConfig, LogFormat, paths};
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = cli::Cli::parse();
    if let Some(dir) = &cli.generate_man {
        if let Err(err) = write_man(dir) {
            eprintln!(
                "dsmild: cannot write the man page into {}: {err}",
                dir.display()
            );
            std::process::exit(1);
        }
        return;
    }
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

/// Defaults, then the file (`--config`, else the first of `dsmil_daemon::config::paths`'s
/// candidates that exists), then flags and environment — validated once, after merging.
fn load(cli: &cli::Cli) -> Result<DaemonConfig> {
    let env = paths::Environment::current();
    let file = cli.config.clone().or_else(|| paths::find_config(&env));
    let mut config = match &file {
        Some(path) => DaemonConfig::read_toml_file(path)?,
        None => DaemonConfig::default(),
    };
    config.apply(cli.overrides());
    config.validate()?;
    Ok(config)
}

/// Writes `dsmild.8` into `dir`.
fn write_man(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let man = clap_mangen::Man::new(cli::Cli::command()).section("8");
    let mut page = Vec::new();
    man.render(&mut page)?;
    std::fs::write(dir.join("dsmild.8"), page)
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
