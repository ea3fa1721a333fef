//! The connection to dsmild: the typed client of `dsmil-api`, with the token read from the
//! token file only when a command needs it, and errors that say what to do.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dsmil_api::client::Client;

/// Where to find the daemon and its token.
pub struct Target {
    url: String,
    token_file: PathBuf,
}

impl Target {
    /// The daemon at `url`, its token in `token_file`.
    pub fn new(url: &str, token_file: &Path) -> Self {
        Self {
            url: url.to_owned(),
            token_file: token_file.to_owned(),
        }
    }

    /// A client with the token from the token file.
    pub fn connect(&self) -> Result<Client> {
        let text = std::fs::read_to_string(&self.token_file).map_err(|e| {
            crate::exit::NoToken(format!(
                "cannot read the API token from {}: {e} (dsmild writes it to \
                 DATA_DIR/api-token on first start; pass --token-file, set DSMIL_TOKEN_FILE or \
                 add a context with `dsmilctl context add`)",
                self.token_file.display()
            ))
        })?;
        Client::new(&self.url, text.trim()).with_context(|| format!("--url {:?}", self.url))
    }
}
