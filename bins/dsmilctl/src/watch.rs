//! `dsmilctl watch [--types …]`: tails dsmild's WebSocket stream in the terminal — one line
//! per message (or the raw JSON with `--json`), reconnecting when the daemon restarts.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::client::Client;

/// What to watch.
pub struct WatchOptions {
    /// Metric types to subscribe to (empty: all).
    pub types: Vec<String>,
    /// Print raw JSON lines.
    pub json: bool,
    /// Stop after this many messages (for scripts and tests).
    pub count: Option<u64>,
    /// Keep reconnecting after the daemon goes away.
    pub follow: bool,
}

/// Runs until interrupted, `count` messages, or (without `follow`) the connection ends.
pub fn watch(client: &Client, options: &WatchOptions) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    runtime.block_on(run(client, options))
}

async fn run(client: &Client, options: &WatchOptions) -> Result<()> {
    let url = format!(
        "{}/ws",
        client
            .base()
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1)
    );
    let token = client.token()?;
    let mut printed = 0u64;
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut request = url
            .clone()
            .into_client_request()
            .context("not a WebSocket URL")?;
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}")
                .parse()
                .context("the token is not a valid header value")?,
        );
        let ws = match connect_async(request).await {
            Ok((ws, _)) => ws,
            Err(e) if options.follow => {
                eprintln!("dsmilctl: {url}: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
            Err(e) => {
                let hint = if e.to_string().contains("401") {
                    " (wrong or missing token: check --token-file)"
                } else {
                    ""
                };
                bail!("cannot connect to {url}: {e}{hint}");
            }
        };
        backoff = Duration::from_millis(500);
        let (mut tx, mut rx) = ws.split();
        if !options.types.is_empty() {
            let subscribe = serde_json::json!({"type": "subscribe", "metric_types": options.types});
            tx.send(Message::text(subscribe.to_string()))
                .await
                .context("cannot subscribe")?;
        }
        let mut last_seq = 0u64;
        while let Some(msg) = rx.next().await {
            let text = match msg {
                Ok(Message::Text(t)) => t,
                Ok(Message::Close(frame)) => {
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    eprintln!("dsmilctl: the daemon closed the stream: {reason}");
                    break;
                }
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("dsmilctl: stream error: {e}");
                    break;
                }
            };
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if value["type"] == "error" {
                bail!(
                    "the daemon refused: {}",
                    value["message"].as_str().unwrap_or("?")
                );
            }
            let seq = value["seq"].as_u64().unwrap_or(0);
            if last_seq != 0 && seq != last_seq + 1 {
                eprintln!(
                    "dsmilctl: {} messages missed",
                    seq.saturating_sub(last_seq + 1)
                );
            }
            last_seq = seq;
            let line = if options.json {
                text.to_string()
            } else {
                render(&value)
            };
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").is_err() {
                return Ok(()); // stdout closed (e.g. piped into head)
            }
            let _ = out.flush();
            printed += 1;
            if options.count.is_some_and(|n| printed >= n) {
                return Ok(());
            }
        }
        if !options.follow {
            return Ok(());
        }
        eprintln!("dsmilctl: reconnecting…");
        tokio::time::sleep(backoff).await;
    }
}

fn f(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |x| format!("{x:.1}"))
}

/// One line for a person.
pub fn render(v: &Value) -> String {
    let data = &v["data"];
    let ts = data["timestamp"]
        .as_str()
        .unwrap_or("")
        .get(11..19)
        .unwrap_or("");
    match v["type"].as_str().unwrap_or("") {
        "connection_established" => format!(
            "connected (client {}, server time {})",
            v["client_id"],
            v["server_time"].as_str().unwrap_or("?")
        ),
        "subscription_updated" => format!("subscribed to {}", v["subscribed"]),
        "alert" => format!(
            "{ts} ALERT {} {} {} = {} (threshold {}){}: {}",
            data["alert_level"].as_str().unwrap_or("?").to_uppercase(),
            data["metric_type"].as_str().unwrap_or("?"),
            data["metric_name"].as_str().unwrap_or("?"),
            f(&data["current_value"]),
            f(&data["threshold_value"]),
            if data["auto_resolved"] == true {
                " RESOLVED"
            } else {
                ""
            },
            data["description"].as_str().unwrap_or("")
        ),
        "emergency" => format!(
            "{ts} EMERGENCY {}",
            data["description"].as_str().unwrap_or("")
        ),
        "metric" => {
            let kind = v["metric_type"].as_str().unwrap_or("?");
            let detail = match kind {
                "system_health" => format!(
                    "cpu {}%  mem {}%  disk {}%  load {}  temp {}",
                    f(&data["cpu_usage_percent"]),
                    f(&data["memory_usage_percent"]),
                    f(&data["disk_usage_percent"]),
                    f(&data["load_average"][0]),
                    if data["thermal_state"]["sensor_count"].as_u64().unwrap_or(0) > 0 {
                        format!("{}°C", f(&data["thermal_state"]["max_temp"]))
                    } else {
                        "n/a".into()
                    }
                ),
                _ => serde_json::to_string(data).unwrap_or_default(),
            };
            format!(
                "{ts} {kind}{} {detail}",
                if v["snapshot"] == true {
                    " (latest)"
                } else {
                    ""
                }
            )
        }
        other => format!("{other} {v}"),
    }
}
