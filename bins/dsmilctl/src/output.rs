//! Printing answers as text for people or as JSON (`--json`) for scripts.

use serde_json::Value;

/// Prints `value` as pretty JSON when `json` is set, else the text `render` makes of it.
pub fn print(json: bool, value: &Value, render: impl Fn(&Value) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        );
    } else {
        println!("{}", render(value));
    }
}

/// Text form of `GET /api/status`.
pub fn status_text(v: &Value) -> String {
    let mut out = format!(
        "dsmild {}  up {}s\naccel:  {} ({} cores)\nTPM:    {}\nstore:  {}\nagents:",
        v["version"].as_str().unwrap_or("?"),
        v["uptime_seconds"].as_u64().unwrap_or(0),
        v["accel"]["path"].as_str().unwrap_or("?"),
        v["accel"]["topology"]["total_cores"].as_u64().unwrap_or(0),
        v["tpm"]["backend"].as_str().unwrap_or("?"),
        v["store"]["backend"].as_str().unwrap_or("?"),
    );
    match v["agents"].as_array() {
        Some(agents) if !agents.is_empty() => {
            for a in agents {
                out.push_str(&format!(
                    "\n  {} ({}, max {} at once)",
                    a["id"].as_str().unwrap_or("?"),
                    a["kind"].as_str().unwrap_or("?"),
                    a["max_concurrency"]
                ));
            }
        }
        _ => out.push_str(" none configured"),
    }
    out
}
