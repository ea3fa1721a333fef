//! The configuration file with every field, its default and its doc, generated from the types
//! that read it (`dsmilctl config default`).
//!
//! Each section's JSON schema (derived by `utoipa` from the section type, doc comments
//! included) gives the fields, their order and their docs; [`DaemonConfig::default`] gives the
//! values. A field added to any layer's section therefore appears here with its doc, without an
//! edit to this file. Fields without a default value (an optional URL, the agents list) are
//! shown commented out with an example.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayItems, Schema};

use super::DaemonConfig;

/// A section of the file: its title and the schema of its type.
struct Section {
    title: &'static str,
    schema: RefOr<Schema>,
}

/// Component schemas by name, for resolving `$ref`s.
type Components = BTreeMap<String, RefOr<Schema>>;

fn section<T: ToSchema>(title: &'static str, components: &mut Components) -> Section {
    let mut referenced = Vec::new();
    T::schemas(&mut referenced);
    components.extend(referenced);
    Section {
        title,
        schema: T::schema(),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The schemas a node wraps: the node itself, then (for `oneOf`/`allOf`/`anyOf` wrappers, as
/// `Option<T>` and documented references are written) its non-null alternatives.
fn layers<'a>(schema: &'a RefOr<Schema>, components: &'a Components) -> Vec<&'a RefOr<Schema>> {
    let mut out = vec![schema];
    let mut current = schema;
    for _ in 0..16 {
        let next = match current {
            RefOr::Ref(r) => r
                .ref_location
                .rsplit('/')
                .next()
                .and_then(|name| components.get(name)),
            RefOr::T(Schema::OneOf(o)) => o.items.iter().find(|i| !is_null(i)),
            RefOr::T(Schema::AllOf(o)) => o.items.iter().find(|i| !is_null(i)),
            RefOr::T(Schema::AnyOf(o)) => o.items.iter().find(|i| !is_null(i)),
            RefOr::T(_) => None,
        };
        match next {
            Some(n) => {
                out.push(n);
                current = n;
            }
            None => break,
        }
    }
    out
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    to_json(schema).get("type").and_then(Value::as_str) == Some("null")
}

/// The schema that describes the value (past references and wrappers).
fn resolve<'a>(schema: &'a RefOr<Schema>, components: &'a Components) -> &'a RefOr<Schema> {
    layers(schema, components).last().copied().unwrap_or(schema)
}

/// The first value of `key` from the outermost layer that has one (a field's own doc before
/// its type's doc).
fn lookup(schema: &RefOr<Schema>, components: &Components, key: &str) -> Option<Value> {
    layers(schema, components)
        .into_iter()
        .find_map(|l| to_json(l).get(key).cloned())
}

fn description(schema: &RefOr<Schema>, components: &Components) -> String {
    lookup(schema, components, "description")
        .and_then(|d| d.as_str().map(|s| s.trim().to_owned()))
        .unwrap_or_default()
}

fn properties(schema: &RefOr<Schema>) -> Vec<(&str, &RefOr<Schema>)> {
    match schema {
        RefOr::T(Schema::Object(o)) => o.properties.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        _ => Vec::new(),
    }
}

fn is_object(schema: &RefOr<Schema>) -> bool {
    !properties(schema).is_empty()
}

fn array_items<'a>(
    schema: &'a RefOr<Schema>,
    components: &'a Components,
) -> Option<&'a RefOr<Schema>> {
    match resolve(schema, components) {
        RefOr::T(Schema::Array(a)) => match &a.items {
            ArrayItems::RefOrSchema(items) => Some(items.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

/// `# ` before every line of `text`.
fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{indent}# {line}");
    }
}

/// The value as TOML (`"text"`, `4`, `{ a = 1 }`); `None` for null.
fn toml_value(value: &Value) -> Option<String> {
    if value.is_null() {
        return None;
    }
    toml::Value::try_from(value).ok().map(|v| toml_inline(&v))
}

fn toml_inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(t) => {
            let fields: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k} = {}", toml_inline(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        toml::Value::Float(f) if f.fract() == 0.0 && f.is_finite() => format!("{f:.1}"),
        other => other.to_string(),
    }
}

/// An example for a field without a value: the schema's example, its first enum value, its
/// default, the defaults of its fields (an inline table), or a placeholder.
fn example(schema: &RefOr<Schema>, components: &Components) -> String {
    let first = |v: Value| match v {
        Value::Array(mut items) if !items.is_empty() => Some(items.swap_remove(0)),
        _ => None,
    };
    let found = lookup(schema, components, "examples")
        .and_then(first)
        .or_else(|| lookup(schema, components, "example"))
        .or_else(|| lookup(schema, components, "enum").and_then(first))
        .or_else(|| lookup(schema, components, "default"))
        // An inline table: its fields' defaults, else (a table of optional fields, like an
        // agent's `tls`) their examples.
        .or_else(|| field_values(schema, components, "default"))
        .or_else(|| field_values(schema, components, "example"));
    found
        .as_ref()
        .and_then(toml_value)
        .unwrap_or_else(|| "\"...\"".to_owned())
}

/// The `key` (`default` or `example`) of each field of the table `schema`, as one table;
/// `None` when no field has one.
fn field_values(schema: &RefOr<Schema>, components: &Components, key: &str) -> Option<Value> {
    let fields: Map<String, Value> = properties(resolve(schema, components))
        .into_iter()
        .filter_map(|(k, s)| lookup(s, components, key).map(|d| (k.to_owned(), d)))
        .filter(|(_, d)| !d.is_null())
        .collect();
    (!fields.is_empty()).then_some(Value::Object(fields))
}

/// The doc of a field, plus the values it may take and the docs of its sub-fields when it is an
/// inline table.
fn field_doc(schema: &RefOr<Schema>, components: &Components) -> String {
    let mut doc = description(schema, components);
    if let Some(Value::Array(values)) = lookup(schema, components, "enum") {
        let names: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
        if !names.is_empty() {
            let _ = write!(doc, "\nOne of: {}.", names.join(", "));
        }
    }
    let resolved = resolve(schema, components);
    for (name, sub) in properties(resolved) {
        let sub_doc = description(sub, components).replace('\n', " ");
        let _ = write!(doc, "\n  {name}: {sub_doc}");
    }
    doc
}

/// Writes the keys of one table: scalars and inline tables with their docs; `commented` writes
/// them commented out (an example rather than a setting).
fn write_fields(
    out: &mut String,
    schema: &RefOr<Schema>,
    values: Option<&Map<String, Value>>,
    components: &Components,
    commented: bool,
) {
    for (name, field) in properties(schema) {
        // An example says more than an empty list in a table shown commented out.
        let value = values
            .and_then(|v| v.get(name))
            .filter(|v| !(commented && v.as_array().is_some_and(Vec::is_empty)));
        comment(out, "", &field_doc(field, components));
        match value.and_then(toml_value) {
            Some(text) if !commented => {
                let _ = writeln!(out, "{name} = {text}");
            }
            Some(text) => {
                let _ = writeln!(out, "# {name} = {text}");
            }
            None => {
                let _ = writeln!(out, "# {name} = {}", example(field, components));
            }
        }
    }
}

/// The defaults the schema of a table gives its fields (those of a `Default` type).
fn schema_defaults(table: &RefOr<Schema>, components: &Components) -> Map<String, Value> {
    properties(table)
        .into_iter()
        .filter_map(|(k, s)| lookup(s, components, "default").map(|d| (k.to_owned(), d)))
        .collect()
}

/// The whole file.
pub fn default_toml() -> String {
    let mut components = Components::new();
    let sections = [
        section::<super::DaemonSettings>("the daemon", &mut components),
        section::<dsmil_tpm::config::TpmConfig>("TPM (dsmil-tpm)", &mut components),
        section::<dsmil_learn::config::LearnConfig>("learning (dsmil-learn)", &mut components),
        section::<dsmil_coord::config::CoordConfig>("coordination (dsmil-coord)", &mut components),
        section::<dsmil_monitor::config::MonitorConfig>(
            "monitoring (dsmil-monitor)",
            &mut components,
        ),
        section::<dsmil_cluster::ClusterSection>("cluster (dsmil-cluster)", &mut components),
    ];
    let defaults = to_json(&DaemonConfig::default());
    let defaults = defaults.as_object();
    let mut out = String::from(
        "# dsmild configuration. Every field is optional; the values shown are the defaults.\n\
         # Flags (--data-dir, --listen, ...) and DSMIL_* environment variables override this file.\n\
         # Generated from the types that read it by `dsmilctl config default`.\n",
    );
    // TOML needs every top-level key before the first [table]: scalars of every section first.
    let mut tables: Vec<(&str, &RefOr<Schema>)> = Vec::new();
    let mut arrays: Vec<(&str, &RefOr<Schema>)> = Vec::new();
    for s in &sections {
        let _ = writeln!(out, "\n# ---- {} ----", s.title);
        for (name, field) in properties(&s.schema) {
            let resolved = resolve(field, &components);
            if is_object(resolved) {
                tables.push((name, field));
                continue;
            }
            if let Some(items) = array_items(field, &components)
                && is_object(resolve(items, &components))
            {
                arrays.push((name, field));
                continue;
            }
            let value = defaults.and_then(|d| d.get(name));
            comment(&mut out, "", &field_doc(field, &components));
            match value.and_then(toml_value) {
                Some(text) => {
                    let _ = writeln!(out, "{name} = {text}");
                }
                None => {
                    let _ = writeln!(out, "# {name} = {}", example(field, &components));
                }
            }
        }
    }
    for (name, field) in tables {
        out.push('\n');
        comment(&mut out, "", &description(field, &components));
        let values = defaults
            .and_then(|d| d.get(name))
            .and_then(Value::as_object);
        let table = resolve(field, &components);
        match values {
            Some(values) => {
                let _ = writeln!(out, "[{name}]");
                write_fields(&mut out, table, Some(values), &components, false);
            }
            // An optional table absent by default (`[cluster]`): present, it switches
            // something on, so it is shown commented out, with its fields' defaults.
            None => {
                let _ = writeln!(out, "# [{name}]");
                let field_defaults = schema_defaults(table, &components);
                write_fields(&mut out, table, Some(&field_defaults), &components, true);
            }
        }
    }
    for (name, field) in arrays {
        out.push('\n');
        comment(&mut out, "", &description(field, &components));
        let _ = writeln!(
            out,
            "# Repeat the table for each entry; the fields of one entry:"
        );
        let _ = writeln!(out, "# [[{name}]]");
        if let Some(items) = array_items(field, &components) {
            let item = resolve(items, &components);
            let item_defaults = schema_defaults(item, &components);
            write_fields(&mut out, item, Some(&item_defaults), &components, true);
        }
    }
    out
}
