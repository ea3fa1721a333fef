//! Identifiers: agents and tasks are named by people (validated strings), workflows by UUID,
//! operations by a process-wide counter.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

/// Longest accepted agent or task name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Why a name was rejected as an agent or task id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name is empty.
    #[error("{kind} id must not be empty")]
    Empty {
        /// "agent" or "task".
        kind: &'static str,
    },
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("{kind} id {name:?} is {len} bytes long; at most {MAX_NAME_LEN} are allowed")]
    TooLong {
        /// "agent" or "task".
        kind: &'static str,
        /// The start of the rejected name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name holds a character outside `[A-Za-z0-9_.:-]`.
    #[error(
        "{kind} id {name:?} contains {ch:?}; only letters, digits, '_', '-', '.' and ':' are allowed"
    )]
    BadChar {
        /// "agent" or "task".
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// The first offending character.
        ch: char,
    },
    /// The reserved word `auto` was used as a concrete agent id.
    #[error("\"auto\" is reserved (it asks the learning layer to choose) and cannot name an agent")]
    Reserved,
}

fn validate_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > MAX_NAME_LEN {
        let shown: String = name.chars().take(32).collect();
        return Err(NameError::TooLong {
            kind,
            name: shown,
            len: name.len(),
        });
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(NameError::BadChar {
            kind,
            name: name.to_owned(),
            ch,
        });
    }
    Ok(())
}

/// The JSON schema of a name: a string of 1–128 of `[A-Za-z0-9_.:-]`.
fn name_schema(description: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9_.:-]{1,128}$"))
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_LEN))
        .description(Some(description))
        .examples([example])
        .into()
}

macro_rules! name_id {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $example:literal, $extra:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Validates `name` and wraps it.
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                validate_name($kind, &name)?;
                let extra: fn(&str) -> Result<(), NameError> = $extra;
                extra(&name)?;
                Ok(Self(name))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> Self {
                value.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                name_schema(concat!("The name of ", $kind, " (letters, digits, '_', '-', '.', ':')."), $example)
            }
        }

        impl ToSchema for $ty {}
    };
}

name_id!(
    /// The name of an agent as declared in the daemon configuration (`[[agents]] id`).
    AgentId,
    "agent",
    "hasher",
    |name| if name == "auto" { Err(NameError::Reserved) } else { Ok(()) }
);

name_id!(
    /// The id of one task inside a workflow spec; dependencies refer to it.
    TaskId,
    "task",
    "fetch",
    |_| Ok(())
);

/// The agent a task asks for: a named agent, or `auto` to let the learning layer choose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentRef {
    /// Run on this agent.
    Named(AgentId),
    /// Ask the [`AgentAdvisor`](crate::ports::AgentAdvisor) which agent to use.
    Auto,
}

impl AgentRef {
    /// The named agent, if any.
    pub fn named(&self) -> Option<&AgentId> {
        match self {
            AgentRef::Named(id) => Some(id),
            AgentRef::Auto => None,
        }
    }
}

impl fmt::Display for AgentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentRef::Named(id) => id.fmt(f),
            AgentRef::Auto => f.write_str("auto"),
        }
    }
}

impl FromStr for AgentRef {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            Ok(AgentRef::Auto)
        } else {
            AgentId::new(s).map(AgentRef::Named)
        }
    }
}

impl Serialize for AgentRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AgentRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl PartialSchema for AgentRef {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[A-Za-z0-9_.:-]{1,128}$"))
            .description(Some(
                "An agent's name, or \"auto\" to let the learning layer choose.",
            ))
            .examples(["auto", "hasher"])
            .into()
    }
}

impl ToSchema for AgentRef {}

/// The id of one workflow run (a random UUID v4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkflowId(pub Uuid);

impl WorkflowId {
    /// A fresh random workflow id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for WorkflowId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl PartialSchema for WorkflowId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .description(Some("The id of one workflow run (a UUID)."))
            .into()
    }
}

impl ToSchema for WorkflowId {}

/// The id of one asynchronous operation (a TPM command, an accelerator job): unique within
/// the process, increasing, so logs and results can be correlated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperationId(pub u64);

static NEXT_OPERATION: AtomicU64 = AtomicU64::new(1);

impl OperationId {
    /// The next id from the process-wide counter.
    pub fn next() -> Self {
        Self(NEXT_OPERATION.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op-{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn agent_ids_are_validated() {
        assert!(AgentId::new("sha-hasher_2.v1:x").is_ok());
        assert_eq!(AgentId::new(""), Err(NameError::Empty { kind: "agent" }));
        assert_eq!(AgentId::new("auto"), Err(NameError::Reserved));
        let err = AgentId::new("bad name").unwrap_err();
        assert!(err.to_string().contains("' '"), "{err}");
        assert!(matches!(
            TaskId::new("x".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong { len: 129, .. })
        ));
        assert!(
            TaskId::new("auto").is_ok(),
            "auto is only reserved for agents"
        );
    }

    #[test]
    fn agent_ref_parses_auto_and_names() {
        assert_eq!("auto".parse::<AgentRef>(), Ok(AgentRef::Auto));
        let named: AgentRef = serde_json::from_str("\"hasher\"").unwrap();
        assert_eq!(named.named().map(AgentId::as_str), Some("hasher"));
        assert!(serde_json::from_str::<AgentRef>("\"\"").is_err());
        assert_eq!(serde_json::to_string(&AgentRef::Auto).unwrap(), "\"auto\"");
    }

    #[test]
    fn deserializing_rejects_invalid_ids_with_the_reason() {
        let err = serde_json::from_str::<AgentId>("\"a/b\"").unwrap_err();
        assert!(err.to_string().contains("'/'"), "{err}");
    }

    #[test]
    fn operation_ids_increase() {
        let a = OperationId::next();
        let b = OperationId::next();
        assert!(b > a);
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(name in "[A-Za-z0-9_.:-]{1,128}") {
            prop_assume!(name != "auto");
            let id = AgentId::new(name.clone()).unwrap();
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<AgentId>(&json).unwrap(), id);
        }

        #[test]
        fn workflow_ids_round_trip(bytes in any::<[u8; 16]>()) {
            let id = WorkflowId(Uuid::from_bytes(bytes));
            let parsed: WorkflowId = id.to_string().parse().unwrap();
            prop_assert_eq!(parsed, id);
        }
    }
}
