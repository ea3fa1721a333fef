//! Builds the effective configuration: defaults, then the TOML file, then flags and
//! environment — validated once, after merging.

use anyhow::Result;
use dsmil_core::DaemonConfig;

use crate::cli::Cli;

/// The configuration the daemon runs with.
pub fn load(cli: &Cli) -> Result<DaemonConfig> {
    let mut config = match &cli.config {
        Some(path) => DaemonConfig::read_toml_file(path)?,
        None => DaemonConfig::default(),
    };
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if let Some(format) = cli.log_format {
        config.log_format = format;
    }
    if let Some(url) = &cli.database_url {
        config.database_url = Some(url.clone());
    }
    if let Some(tpm) = &cli.tpm {
        config.tpm = tpm.clone();
    }
    config.validate()?;
    Ok(config)
}
