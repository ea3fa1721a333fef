//! Where dsmild looks for its configuration and keeps its data when no flag says, following
//! systemd's and the XDG conventions, so a packaged service, a user's own daemon and a
//! `cargo run` from a checkout each find the right place:
//!
//! - configuration: `--config` or `$DSMIL_CONFIG`, else the first that exists of
//!   `$CONFIGURATION_DIRECTORY/dsmil.toml` (systemd's `ConfigurationDirectory=`),
//!   `/etc/dsmil/dsmil.toml`, `$XDG_CONFIG_HOME/dsmil/dsmil.toml` (`~/.config/…`); else the
//!   built-in defaults;
//! - data dir: `--data-dir`, `$DSMIL_DATA_DIR` or the file's `data_dir`, else
//!   `$STATE_DIRECTORY` (systemd's `StateDirectory=`), else `/var/lib/dsmil` for a system
//!   service, else `./dsmil-data`.
//!
//! The rules read an [`Environment`] value, so they are tested without touching the process's.

use std::path::{Path, PathBuf};

/// The system-wide configuration file.
pub const SYSTEM_CONFIG: &str = "/etc/dsmil/dsmil.toml";
/// The data directory of a system service without `StateDirectory=`.
pub const SYSTEM_DATA_DIR: &str = "/var/lib/dsmil";
/// The data directory otherwise, relative to the working directory.
pub const LOCAL_DATA_DIR: &str = "./dsmil-data";
/// The API token's file name in the data dir.
pub const TOKEN_FILE: &str = "api-token";

/// What the path rules look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `$STATE_DIRECTORY` (systemd; colon-separated when the unit names several).
    pub state_directory: Option<PathBuf>,
    /// `$CONFIGURATION_DIRECTORY` (systemd).
    pub configuration_directory: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// Started by systemd's system manager: `$INVOCATION_ID` set and the parent is PID 1.
    pub system_service: bool,
}

/// A variable's value, unless unset or empty.
fn var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl Environment {
    /// This process's environment.
    pub fn current() -> Self {
        Self {
            state_directory: var("STATE_DIRECTORY"),
            configuration_directory: var("CONFIGURATION_DIRECTORY"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
            system_service: var("INVOCATION_ID").is_some()
                && std::os::unix::process::parent_id() == 1,
        }
    }

    /// `$XDG_CONFIG_HOME/dsmil`, else `~/.config/dsmil`: the user's own configuration folder
    /// (dsmilctl keeps its contexts there too).
    pub fn user_config_dir(&self) -> Option<PathBuf> {
        self.xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))
            .map(|d| d.join("dsmil"))
    }
}

/// The data dir when nothing sets one.
pub fn default_data_dir(env: &Environment) -> PathBuf {
    if let Some(dirs) = &env.state_directory {
        // systemd separates several StateDirectory= entries with ':'; the first is ours.
        let first = dirs
            .to_str()
            .and_then(|d| d.split(':').next())
            .map(PathBuf::from)
            .unwrap_or_else(|| dirs.clone());
        if !first.as_os_str().is_empty() {
            return first;
        }
    }
    if env.system_service {
        return PathBuf::from(SYSTEM_DATA_DIR);
    }
    PathBuf::from(LOCAL_DATA_DIR)
}

/// The configuration files looked for, in order, when no flag names one.
pub fn config_candidates(env: &Environment) -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = &env.configuration_directory {
        candidates.push(dir.join("dsmil.toml"));
    }
    candidates.push(PathBuf::from(SYSTEM_CONFIG));
    if let Some(dir) = env.user_config_dir() {
        candidates.push(dir.join("dsmil.toml"));
    }
    candidates
}

/// The first configuration file of [`config_candidates`] that exists.
pub fn find_config(env: &Environment) -> Option<PathBuf> {
    find_first(&config_candidates(env))
}

/// The first of `paths` that exists.
pub fn find_first(paths: &[PathBuf]) -> Option<PathBuf> {
    paths.iter().find(|p| Path::new(p).exists()).cloned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_data_dir_follows_systemd_then_the_service_then_the_working_directory() {
        let mut env = Environment::default();
        assert_eq!(default_data_dir(&env), PathBuf::from("./dsmil-data"));
        env.system_service = true;
        assert_eq!(default_data_dir(&env), PathBuf::from("/var/lib/dsmil"));
        env.state_directory = Some("/var/lib/dsmil:/var/lib/other".into());
        assert_eq!(default_data_dir(&env), PathBuf::from("/var/lib/dsmil"));
        env.state_directory = Some("/srv/state".into());
        assert_eq!(default_data_dir(&env), PathBuf::from("/srv/state"));
    }

    #[test]
    fn configuration_is_looked_for_in_systemd_etc_then_xdg() {
        let dir = tempfile::tempdir().unwrap();
        let env = Environment {
            configuration_directory: Some(dir.path().join("unit")),
            xdg_config_home: Some(dir.path().join("xdg")),
            home: Some(dir.path().join("home")),
            ..Environment::default()
        };
        assert_eq!(
            config_candidates(&env),
            vec![
                dir.path().join("unit/dsmil.toml"),
                PathBuf::from("/etc/dsmil/dsmil.toml"),
                dir.path().join("xdg/dsmil/dsmil.toml"),
            ]
        );
        let home_only = Environment {
            home: Some("/home/u".into()),
            ..Environment::default()
        };
        assert_eq!(
            home_only.user_config_dir(),
            Some(PathBuf::from("/home/u/.config/dsmil"))
        );
        std::fs::create_dir_all(dir.path().join("xdg/dsmil")).unwrap();
        std::fs::write(dir.path().join("xdg/dsmil/dsmil.toml"), "").unwrap();
        if !Path::new(SYSTEM_CONFIG).exists() {
            assert_eq!(
                find_config(&env),
                Some(dir.path().join("xdg/dsmil/dsmil.toml"))
            );
        }
    }
}
