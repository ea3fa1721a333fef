//! The API contract as JSON Schema: validators for the component schemas of the OpenAPI
//! description `dsmil_api::openapi` generates (the one `GET /api/openapi.json` serves and
//! `docs/openapi.json` holds), checked with an independent validator (`jsonschema`, draft
//! 2020-12, the dialect of OpenAPI 3.1).

use std::collections::BTreeSet;

use serde_json::{Value, json};

/// The OpenAPI description as JSON.
pub fn document() -> Value {
    serde_json::from_str(&dsmil_api::openapi::to_pretty_json()).unwrap()
}

/// A validator for the component `name`, its references resolved inside the document.
pub fn validator(name: &str) -> jsonschema::Validator {
    let doc = document();
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "$ref": format!("#/components/schemas/{name}"),
    });
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("schema {name}: {e}"))
}

/// A validator for an arbitrary schema fragment of the document (a response's `schema`).
pub fn validator_for(fragment: &Value) -> jsonschema::Validator {
    let doc = document();
    let mut schema = fragment.clone();
    if let Value::Object(map) = &mut schema {
        map.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        map.insert("components".into(), doc["components"].clone());
    }
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{fragment}: {e}"))
}

/// Every error of `instance` against `validator`, as text (empty: valid).
pub fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The values a tagged union's tag takes: the `tag` property's single enum value of each
/// alternative of component `name` (`ServerMessage` → `connection_established`, `metric`, …).
pub fn tags(name: &str, tag: &str) -> BTreeSet<String> {
    let doc = document();
    let schema = &doc["components"]["schemas"][name];
    let alternatives = schema["oneOf"].as_array().cloned().unwrap_or_default();
    let mut out = BTreeSet::new();
    for alt in alternatives {
        let mut parts = vec![alt.clone()];
        parts.extend(alt["allOf"].as_array().cloned().unwrap_or_default());
        for p in parts {
            if let Some(v) = p["properties"][tag]["enum"][0].as_str() {
                out.insert(v.to_owned());
            }
        }
    }
    assert!(
        !out.is_empty(),
        "{name} has no {tag} alternatives: {schema:#}"
    );
    out
}
