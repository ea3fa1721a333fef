//! Named contexts, kubectl-style: several daemons, each a URL and a token file, one of them
//! current. Kept in `$XDG_CONFIG_HOME/dsmil/contexts.toml` (`~/.config/dsmil/…`).
//!
//! Which daemon a command talks to: `--url`/`$DSMIL_URL`, else `--context`/`$DSMIL_CONTEXT`,
//! else the current context, else `http://127.0.0.1:8765`. Its token: `--token-file`/
//! `$DSMIL_TOKEN_FILE`, else the context's, else the first that exists of
//! `./dsmil-data/api-token` and `/var/lib/dsmil/api-token` (the packaged service's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use dsmil_daemon::config::paths;
use serde::{Deserialize, Serialize};

/// The daemon a command talks to when nothing says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8765";

/// One daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// Its base URL.
    pub url: String,
    /// Its token file; default: the local rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// The contexts file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contexts {
    /// The context used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Every context by name.
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// Where the contexts file is: `$XDG_CONFIG_HOME/dsmil/contexts.toml`, `~/.config/…`.
pub fn file() -> Result<PathBuf> {
    paths::Environment::current()
        .user_config_dir()
        .map(|d| d.join("contexts.toml"))
        .context("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep contexts")
}

impl Contexts {
    /// Reads `path`; a missing file is no contexts.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("{} is not a valid contexts file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes `path` (creating its folder), through a temporary file so a crash leaves the old
    /// one.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = toml::to_string_pretty(self).context("cannot encode the contexts")?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
    }

    /// The context `name`, or an error listing the known ones.
    pub fn get(&self, name: &str) -> Result<&Context> {
        self.contexts.get(name).with_context(|| {
            let known: Vec<&str> = self.contexts.keys().map(String::as_str).collect();
            format!(
                "no context named {name:?}; known: {} (add one with `dsmilctl context add`)",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        })
    }

    /// Makes `name` current.
    pub fn use_context(&mut self, name: &str) -> Result<()> {
        self.get(name)?;
        self.current = Some(name.to_owned());
        Ok(())
    }

    /// Removes `name` (and unsets it as current).
    pub fn remove(&mut self, name: &str) -> Result<()> {
        if self.contexts.remove(name).is_none() {
            bail!("no context named {name:?}");
        }
        if self.current.as_deref() == Some(name) {
            self.current = None;
        }
        Ok(())
    }
}

/// The token files looked for when neither a flag nor a context names one.
pub fn token_candidates() -> Vec<PathBuf> {
    vec![
        Path::new(paths::LOCAL_DATA_DIR).join(paths::TOKEN_FILE),
        Path::new(paths::SYSTEM_DATA_DIR).join(paths::TOKEN_FILE),
    ]
}

/// The daemon and token a command uses, from the flags and the contexts (see the module doc).
pub fn resolve(
    url: Option<&str>,
    token_file: Option<&Path>,
    context: Option<&str>,
) -> Result<(String, PathBuf)> {
    let chosen = if url.is_some() && token_file.is_some() {
        None
    } else {
        let contexts = Contexts::load(&file()?)?;
        match context.or(contexts.current.as_deref()) {
            Some(name) => Some(contexts.get(name)?.clone()),
            None => None,
        }
    };
    let url = url
        .map(str::to_owned)
        .or_else(|| chosen.as_ref().map(|c| c.url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let token = token_file
        .map(Path::to_path_buf)
        .or_else(|| chosen.and_then(|c| c.token_file))
        .or_else(|| paths::find_first(&token_candidates()))
        .unwrap_or_else(|| token_candidates().swap_remove(0));
    Ok((url, token))
}
