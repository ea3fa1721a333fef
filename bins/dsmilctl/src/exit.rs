//! dsmilctl's exit codes, distinct so scripts can tell a failed check from an unreachable or
//! refusing daemon:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | a check failed (`audit verify`, `config check`, a failed workflow) or another error |
//! | 2 | usage: a bad flag or argument (clap's own) |
//! | 3 | the daemon could not be reached |
//! | 4 | the daemon refused the token (401/403), or no token file was found |

use dsmil_api::client::ClientError;

/// A check failed, or another error.
pub const FAILED: i32 = 1;
/// The daemon could not be reached.
pub const UNREACHABLE: i32 = 3;
/// The token was refused or missing.
pub const UNAUTHORISED: i32 = 4;

/// No token file could be read: reported with [`UNAUTHORISED`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoToken(pub String);

/// The exit code for `err`, from the first cause in its chain that says.
pub fn code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if cause.downcast_ref::<NoToken>().is_some() {
            return UNAUTHORISED;
        }
        match cause.downcast_ref::<ClientError>() {
            Some(ClientError::Unreachable { .. }) => return UNREACHABLE,
            Some(ClientError::Api {
                status: 401 | 403, ..
            }) => return UNAUTHORISED,
            _ => {}
        }
    }
    FAILED
}
