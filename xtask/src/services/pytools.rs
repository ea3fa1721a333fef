//! Python tools the checks run against the project — independent implementations, not ours:
//! `openapi-spec-validator` (is `docs/openapi.json` valid OpenAPI 3.1?) and `websockets` (a
//! client written to the seed's WebSocket shapes talks to dsmild). They live in one venv,
//! `target/dsmil-services/tools-venv/`, pip-installed at pinned versions on first use.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::postgres::create_venv;
use super::process::{self, note};

/// The pinned tools (`pip install` arguments).
pub const TOOLS: &[&str] = &["openapi-spec-validator==0.7.2", "websockets==15.0.1"];

/// The venv's directory under the services state dir.
pub fn venv_dir(root: &Path) -> PathBuf {
    process::state_dir_path(root).join("tools-venv")
}

/// Makes sure the tools are installed; returns the venv's `bin/` directory.
pub fn ensure(root: &Path) -> Result<PathBuf> {
    let venv = venv_dir(root);
    let bin = venv.join("bin");
    let marker = venv.join(".dsmil-tools");
    let wanted = TOOLS.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|have| have == wanted) {
        return Ok(bin);
    }
    if !bin.join("python").is_file() {
        create_venv(&venv)?;
    }
    note(format!("pip install {}", TOOLS.join(" ")));
    process::pip_install(&venv, TOOLS, "pip install the check tools")?;
    std::fs::write(&marker, wanted)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(bin)
}
