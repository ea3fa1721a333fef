//! Discovery of the real services integration tests run against.
//!
//! `cargo xtask test` provisions swtpm and PostgreSQL+pgvector and exports their addresses
//! ([`TCTI_VAR`], [`DATABASE_URL_VAR`]) plus [`REQUIRE_VAR`]`=1`. A test asks for its service
//! with [`service_from_env`]: when the address is set it gets it; when it is not, the test is
//! skipped — unless services are required, in which case the missing service is an error and the
//! test fails instead of passing silently.

use thiserror::Error;

/// Environment variable naming the TCTI of the test TPM (swtpm), e.g.
/// `swtpm:host=127.0.0.1,port=2321`.
pub const TCTI_VAR: &str = "DSMIL_TEST_TCTI";
/// Environment variable holding the PostgreSQL (+pgvector) URL for tests.
pub const DATABASE_URL_VAR: &str = "DSMIL_TEST_DATABASE_URL";
/// Environment variable that, when `1`, turns a missing service into a test failure.
pub const REQUIRE_VAR: &str = "DSMIL_REQUIRE_SERVICES";
/// Environment variable holding the client URLs of the test JetStream cluster, comma-separated
/// `nats://127.0.0.1:<port>` (one per server), exported by `cargo xtask services up`.
pub const NATS_URLS_VAR: &str = "DSMIL_TEST_NATS_URLS";
/// Environment variable naming the file that holds the test JetStream cluster's client token
/// (hex, no newline, mode 0600).
pub const NATS_TOKEN_FILE_VAR: &str = "DSMIL_TEST_NATS_TOKEN_FILE";
/// Environment variable naming the nats-server binary (≥ 2.10) tests use to start clusters of
/// their own, e.g. to kill and restart servers.
pub const NATS_SERVER_VAR: &str = "DSMIL_TEST_NATS_SERVER";

/// Prometheus's `promtool` (to check metrics and rules).
pub const PROMTOOL_VAR: &str = "DSMIL_PROMTOOL";

/// A Python with the check tools installed (the `websockets` library: a client written to the
/// seed's WebSocket shapes talks to dsmild through it).
pub const PYTHON_VAR: &str = "DSMIL_TEST_PYTHON";

/// A service a test needs is not configured although services are required.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "service variable {var} is not set but {require}=1: run the tests through `cargo xtask test`, \
     or start the services with `cargo xtask services up` and export what it prints",
    require = REQUIRE_VAR
)]
pub struct MissingService {
    /// The environment variable that was expected.
    pub var: String,
}

/// Looks up the service address in `var`.
///
/// Returns `Ok(Some(address))` when set and non-empty, `Ok(None)` when unset and services are
/// optional (the caller skips), and `Err` when unset while [`REQUIRE_VAR`] is `1`.
pub fn service_from_env(var: &str) -> Result<Option<String>, MissingService> {
    let value = std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| v.trim() == "1");
    resolve(var, value, required)
}

/// The decision behind [`service_from_env`], separated from the process environment so it can
/// be tested without mutating it.
pub fn resolve(
    var: &str,
    value: Option<String>,
    required: bool,
) -> Result<Option<String>, MissingService> {
    match value {
        Some(v) => Ok(Some(v)),
        None if required => Err(MissingService {
            var: var.to_owned(),
        }),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_value_is_returned_whether_or_not_required() {
        for required in [false, true] {
            let got = resolve(TCTI_VAR, Some("swtpm:port=1".into()), required);
            assert_eq!(got, Ok(Some("swtpm:port=1".to_owned())));
        }
    }

    #[test]
    fn missing_optional_service_skips() {
        assert_eq!(resolve(DATABASE_URL_VAR, None, false), Ok(None));
    }

    #[test]
    fn missing_required_service_fails_naming_the_variable() {
        let err = resolve(DATABASE_URL_VAR, None, true).unwrap_err();
        assert_eq!(err.var, DATABASE_URL_VAR);
        assert!(err.to_string().contains(DATABASE_URL_VAR));
        assert!(err.to_string().contains("cargo xtask test"));
    }
}
