//! Printing answers as text for people or as JSON (`--json`) for scripts.

use dsmil_api::status::Status;
use serde::Serialize;

/// Prints `value` as pretty JSON when `json` is set, else the text `render` makes of it.
pub fn print<T: Serialize>(json: bool, value: &T, render: impl Fn(&T) -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("dsmilctl: cannot print the answer as JSON: {e}"),
        }
    } else {
        println!("{}", render(value));
    }
}

/// The snake_case name of a unit enum (`command`, `closed`).
pub fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Text form of `GET /api/status`.
pub fn status_text(s: &Status) -> String {
    let mut out = format!(
        "dsmild {}  up {}s\naccel:  {} ({} cores)\nTPM:    {}\nstore:  {}\nagents:",
        s.version,
        s.uptime_seconds,
        s.accel.path,
        s.accel.topology.total_cores,
        s.tpm.backend,
        s.store.backend,
    );
    if s.agents.is_empty() {
        out.push_str(" none configured");
    }
    for a in &s.agents {
        out.push_str(&format!(
            "\n  {} ({}, max {} at once)",
            a.id,
            name(&a.kind),
            a.max_concurrency
        ));
    }
    out
}
