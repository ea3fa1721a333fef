//! `dsmilctl watch [--types …]`: tails dsmild's WebSocket stream in the terminal — one line
//! per message (or the raw JSON with `--json`), reconnecting when the daemon restarts.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dsmil_api::client::Client;
use dsmil_api::ws::{ClientMessage, Metric, ServerMessage};
use dsmil_core::monitoring::MetricType;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::output::name;

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

/// Parses `--types` names, naming an unknown one with the known ones.
fn metric_types(names: &[String]) -> Result<Vec<MetricType>> {
    names
        .iter()
        .map(|n| {
            serde_json::from_value(serde_json::Value::String(n.clone())).map_err(|_| {
                anyhow::anyhow!(
                    "{n:?} is not a metric type; expected one of {}",
                    MetricType::ALL
                        .iter()
                        .map(name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

/// Runs until interrupted, `count` messages, or (without `follow`) the connection ends.
pub fn watch(client: &Client, options: &WatchOptions) -> Result<()> {
    let types = metric_types(&options.types)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    runtime.block_on(run(client, options, &types))
}

async fn run(client: &Client, options: &WatchOptions, types: &[MetricType]) -> Result<()> {
    let url = client.websocket_url();
    let token = client.token();
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
        if !types.is_empty() {
            let subscribe = serde_json::to_string(&ClientMessage::Subscribe {
                metric_types: types.to_vec(),
            })
            .context("cannot encode the subscription")?;
            tx.send(Message::text(subscribe))
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
            let message: ServerMessage = serde_json::from_str(&text).with_context(|| {
                format!("the daemon sent a message outside the protocol: {text}")
            })?;
            if let ServerMessage::Error { message, .. } = &message {
                bail!("the daemon refused: {message}");
            }
            let seq = message.seq();
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
                render(&message)
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

/// One line for a person.
pub fn render(message: &ServerMessage) -> String {
    if let Some((header, metric)) = message.metric() {
        let latest = if header.snapshot { " (latest)" } else { "" };
        let kind = name(&metric.metric_type());
        let detail = match &metric {
            Metric::SystemHealth(h) => format!(
                "{} cpu {:.1}%  mem {:.1}%  disk {:.1}%  load {:.1}  temp {}",
                h.timestamp.format("%H:%M:%S"),
                h.cpu_usage_percent,
                h.memory_usage_percent,
                h.disk_usage_percent,
                h.load_average[0],
                if h.thermal_state.sensor_count > 0 {
                    format!("{:.1}°C", h.thermal_state.max_temp)
                } else {
                    "n/a".into()
                }
            ),
            // The data as sent.
            _ => serde_json::to_value(message)
                .ok()
                .and_then(|v| v.get("data").map(ToString::to_string))
                .unwrap_or_default(),
        };
        return format!("{kind}{latest} {detail}");
    }
    match message {
        ServerMessage::ConnectionEstablished {
            client_id, data, ..
        } => format!(
            "connected (client {client_id}, server time {:?})",
            data.server_time
        ),
        ServerMessage::SubscriptionUpdated { data, warnings, .. } => {
            let mut line = format!(
                "subscribed to {:?}",
                data.subscribed_types.iter().map(name).collect::<Vec<_>>()
            );
            for w in warnings {
                line.push_str(&format!(" (warning: {w})"));
            }
            line
        }
        ServerMessage::Alert { data, .. } => format!(
            "{} ALERT {} {} {} = {:.1} (threshold {:.1}){}: {}",
            data.timestamp.format("%H:%M:%S"),
            name(&data.alert_level).to_uppercase(),
            name(&data.metric_type),
            data.metric_name,
            data.current_value,
            data.threshold_value,
            if data.auto_resolved { " RESOLVED" } else { "" },
            data.description
        ),
        ServerMessage::Emergency {
            data, timestamp, ..
        } => format!(
            "{} EMERGENCY {} ({} critical alerts; {})",
            timestamp.format("%H:%M:%S"),
            data.message,
            data.active_critical_alerts,
            data.recommended_action
        ),
        ServerMessage::Pong { timestamp, .. } => format!("pong (server time {timestamp:?})"),
        ServerMessage::Error { code, message, .. } => format!("error {code}: {message}"),
        // Metric messages were rendered above.
        _ => String::new(),
    }
}
