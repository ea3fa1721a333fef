//! The TPM layer's configuration: which TPM to open (`tpm = "soft"` or `"tss:<TCTI>"` in dsmild's
//! configuration file, `--tpm` on its command line).

use std::fmt;
use std::str::FromStr;

use dsmil_core::validate::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// The TPM layer's part of dsmild's configuration file (a top-level key).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TpmConfig {
    /// TPM backend: `soft` (the embedded software TPM, state in the data dir; not
    /// hardware-rooted) or `tss:<TCTI>` (a real TPM or swtpm through tss-esapi, e.g.
    /// `tss:device:/dev/tpmrm0`, `tss:swtpm:host=127.0.0.1,port=2321`). Default: `soft`.
    pub tpm: TpmBackendSpec,
}

impl TpmConfig {
    /// Nothing to check beyond parsing (a backend spec is validated as it is read); kept so
    /// every layer's section is validated the same way.
    pub fn validate(&self) -> Result<(), FieldError> {
        Ok(())
    }
}

/// Which TPM to open: `soft` or `tss:<TCTI>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum TpmBackendSpec {
    /// The embedded software TPM (state in the data dir). Not hardware-rooted.
    #[default]
    Soft,
    /// A real TPM or swtpm through tss-esapi, e.g. `device:/dev/tpmrm0` or
    /// `swtpm:host=127.0.0.1,port=2321`.
    Tss {
        /// The TCTI string handed to tss-esapi.
        tcti: String,
    },
}

/// TCTI kinds tss-esapi 7.7 understands.
pub const TCTI_KINDS: [&str; 4] = ["device", "swtpm", "mssim", "tabrmd"];

impl FromStr for TpmBackendSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "soft" {
            return Ok(TpmBackendSpec::Soft);
        }
        let Some(tcti) = s.strip_prefix("tss:") else {
            return Err(format!(
                "{s:?} is not a TPM backend; expected \"soft\" or \"tss:<TCTI>\" \
                 (e.g. tss:device:/dev/tpmrm0)"
            ));
        };
        let kind = tcti.split(':').next().unwrap_or_default();
        if !TCTI_KINDS.contains(&kind) {
            return Err(format!(
                "TCTI {tcti:?} has unknown kind {kind:?}; expected one of {}",
                TCTI_KINDS.join(", ")
            ));
        }
        Ok(TpmBackendSpec::Tss {
            tcti: tcti.to_owned(),
        })
    }
}

impl fmt::Display for TpmBackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TpmBackendSpec::Soft => f.write_str("soft"),
            TpmBackendSpec::Tss { tcti } => write!(f, "tss:{tcti}"),
        }
    }
}

impl Serialize for TpmBackendSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl PartialSchema for TpmBackendSpec {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(
                "^(soft|tss:({})(:.*)?)$",
                TCTI_KINDS.join("|")
            )))
            .description(Some(format!(
                "`soft`, or `tss:<TCTI>` with a TCTI kind tss-esapi understands ({}).",
                TCTI_KINDS.join(", ")
            )))
            .examples([
                "soft",
                "tss:device:/dev/tpmrm0",
                "tss:swtpm:host=127.0.0.1,port=2321",
            ])
            .into()
    }
}

impl ToSchema for TpmBackendSpec {}

impl<'de> Deserialize<'de> for TpmBackendSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn specs_name_what_is_wrong() {
        assert_eq!("soft".parse::<TpmBackendSpec>(), Ok(TpmBackendSpec::Soft));
        let err = "hardware".parse::<TpmBackendSpec>().unwrap_err();
        assert!(err.contains("tss:<TCTI>"), "{err}");
        let err = "tss:serial:/dev/x".parse::<TpmBackendSpec>().unwrap_err();
        assert!(err.contains("unknown kind \"serial\""), "{err}");
    }

    proptest! {
        #[test]
        fn tpm_specs_round_trip(port in 1u16.., host in "[a-z0-9.]{1,20}") {
            for spec in [
                TpmBackendSpec::Soft,
                TpmBackendSpec::Tss { tcti: format!("swtpm:host={host},port={port}") },
                TpmBackendSpec::Tss { tcti: "device:/dev/tpmrm0".into() },
            ] {
                prop_assert_eq!(spec.to_string().parse::<TpmBackendSpec>(), Ok(spec.clone()));
            }
        }
    }
}
