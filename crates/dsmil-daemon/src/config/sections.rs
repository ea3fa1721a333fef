//! Handing each section of the configuration file its keys.
//!
//! Every section type keeps `deny_unknown_fields` (so a layer's section read alone is as strict
//! as it is here), which rules out serde's `flatten`. Instead the file is parsed into a table,
//! each section takes the keys its own `Deserialize` implementation names, and what is left over
//! is an unknown key. Errors carry the path of the failing field (`agents[0].retry.jitter`).

use std::collections::BTreeSet;

use dsmil_core::validate::FieldError;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::forward_to_deserialize_any;

use super::{ConfigError, DaemonConfig};

/// The field names `T`'s derived `Deserialize` asks for. Empty for types that are not structs.
pub fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut capture = FieldCapture(None);
    // The capture always answers with an error: it only wants to see the field list.
    let _ = T::deserialize(&mut capture);
    capture.0.unwrap_or(&[])
}

/// A deserializer that records the field list a struct asks for, then gives up.
struct FieldCapture(Option<&'static [&'static str]>);

#[derive(Debug)]
struct Captured;

impl std::fmt::Display for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field list captured")
    }
}

impl std::error::Error for Captured {}

impl de::Error for Captured {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Captured
    }
}

impl<'de> de::Deserializer<'de> for &mut FieldCapture {
    type Error = Captured;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Captured> {
        Err(Captured)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Captured> {
        self.0 = Some(fields);
        Err(Captured)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Removes `T`'s keys from `table` and deserializes `T` from them.
fn take<T: DeserializeOwned>(table: &mut toml::Table) -> Result<T, ConfigError> {
    let mut own = toml::Table::new();
    for field in fields_of::<T>() {
        if let Some(value) = table.remove(*field) {
            own.insert((*field).to_owned(), value);
        }
    }
    serde_path_to_error::deserialize(own).map_err(|e| {
        let field = e.path().to_string();
        let reason = e.into_inner().to_string();
        let source = if field == "." {
            // An error about the section as a whole (no field to name beyond the message).
            FieldError::new(
                std::any::type_name::<T>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("config"),
                reason,
            )
        } else {
            FieldError::new(field, reason)
        };
        ConfigError::Invalid { path: None, source }
    })
}

/// Every top-level key some section owns, in the order the sections list them.
pub fn known_keys() -> Vec<&'static str> {
    let mut keys = Vec::new();
    keys.extend_from_slice(fields_of::<super::DaemonSettings>());
    keys.extend_from_slice(fields_of::<dsmil_tpm::config::TpmConfig>());
    keys.extend_from_slice(fields_of::<dsmil_learn::config::LearnConfig>());
    keys.extend_from_slice(fields_of::<dsmil_coord::config::CoordConfig>());
    keys.extend_from_slice(fields_of::<dsmil_monitor::config::MonitorConfig>());
    keys.extend_from_slice(fields_of::<dsmil_cluster::ClusterSection>());
    keys
}

/// Parses `text` into a [`DaemonConfig`], section by section.
pub fn split(text: &str) -> Result<DaemonConfig, ConfigError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|source| ConfigError::Syntax { path: None, source })?;
    let config = DaemonConfig {
        daemon: take(&mut table)?,
        tpm: take(&mut table)?,
        learn: take(&mut table)?,
        coord: take(&mut table)?,
        monitor: take(&mut table)?,
        cluster: take(&mut table)?,
    };
    if let Some(key) = table.keys().next() {
        let known: BTreeSet<&str> = known_keys().into_iter().collect();
        return Err(ConfigError::UnknownKey {
            path: None,
            key: key.clone(),
            expected: known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_own_disjoint_keys() {
        let keys = known_keys();
        let unique: BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(
            unique.len(),
            keys.len(),
            "two sections claim a key: {keys:?}"
        );
        for expected in [
            "listen",
            "tpm",
            "database_url",
            "agents",
            "alerts",
            "websocket",
        ] {
            assert!(
                keys.contains(&expected),
                "{expected} is not owned: {keys:?}"
            );
        }
    }

    #[test]
    fn field_lists_come_from_the_types() {
        assert_eq!(
            fields_of::<dsmil_learn::config::LearnConfig>(),
            &["database_url"]
        );
        assert!(fields_of::<u32>().is_empty());
    }
}
