//! The `[alerts]` thresholds as Prometheus alerting rules, for operators who alert from their
//! own Prometheus and Alertmanager rather than (or beside) dsmild's own engine: the same
//! metrics, thresholds, severities and `for`, over what `/metrics` exports.
//!
//! Each level is its own rule with a `severity` label and fires only within its band
//! (`warning` below `critical`), as the engine raises one level at a time. The engine's 60 s
//! rate window is `[1m]` here. Cluster alerts have no rule: their inputs (nodes lost, agents
//! unhosted) are not exported as metrics yet.
//!
//! `dsmilctl config prometheus-rules` prints them for a configuration file;
//! `deploy/prometheus/dsmil.rules.yml` is the output for the defaults (a test keeps it so).

use std::fmt::Write as _;

use crate::config::{AlertThresholds, Levels};

/// One alert of the ladder: its name, the expression's value, how to scale the thresholds
/// (a percentage in the configuration is a 0–1 ratio in the metrics), what it says.
struct Rule {
    alert: &'static str,
    metric: &'static str,
    value: &'static str,
    scale: f64,
    summary: &'static str,
    shown: &'static str,
}

fn rules() -> [Rule; 7] {
    [
        Rule {
            alert: "DsmilCpuUsageHigh",
            metric: "cpu_usage_percent",
            value: "dsmil_cpu_usage_ratio",
            scale: 0.01,
            summary: "CPU busy on the dsmild host",
            shown: "{{ $value | humanizePercentage }}",
        },
        Rule {
            alert: "DsmilMemoryUsageHigh",
            metric: "memory_usage_percent",
            value: "dsmil_memory_usage_ratio",
            scale: 0.01,
            summary: "Memory in use on the dsmild host",
            shown: "{{ $value | humanizePercentage }}",
        },
        Rule {
            alert: "DsmilDiskUsageHigh",
            metric: "disk_usage_percent",
            value: "dsmil_disk_usage_ratio",
            scale: 0.01,
            summary: "Disk in use on dsmild's data dir filesystem (compact or grow it)",
            shown: "{{ $value | humanizePercentage }}",
        },
        Rule {
            alert: "DsmilTemperatureHigh",
            metric: "thermal_max_celsius",
            value: "dsmil_temperature_max_celsius",
            scale: 1.0,
            summary: "Hottest sensor of the dsmild host",
            shown: "{{ $value }} °C",
        },
        Rule {
            alert: "DsmilAgentFailureRateHigh",
            metric: "agent_failure_rate",
            value: "sum(rate(dsmil_agent_tasks_total{outcome=\"failed\"}[1m])) / \
                    sum(rate(dsmil_agent_tasks_total{outcome=~\"completed|failed\"}[1m]))",
            scale: 1.0,
            summary: "Share of agent tasks failing over the last minute",
            shown: "{{ $value | humanizePercentage }}",
        },
        Rule {
            alert: "DsmilAgentResponseTimeHigh",
            metric: "agent_response_time_ms",
            value: "1000 * sum(rate(dsmil_task_duration_seconds_sum[1m])) / \
                    sum(rate(dsmil_task_duration_seconds_count[1m]))",
            scale: 1.0,
            summary: "Mean agent task time over the last minute",
            shown: "{{ $value | humanize }} ms",
        },
        Rule {
            alert: "DsmilSecurityEventsHigh",
            metric: "security_events_per_minute",
            value: "60 * sum(rate(dsmil_events_total{kind=\"security\"}[1m]))",
            scale: 1.0,
            summary: "Security events per minute",
            shown: "{{ $value | humanize }}/min",
        },
    ]
}

/// `value` with no trailing zeros (`0.8`, `95`, `0.1`).
fn number(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

/// The bands of a ladder: (severity, lower bound, upper bound or none for the top).
fn bands(levels: &[(&'static str, f64)]) -> Vec<(&'static str, f64, Option<f64>)> {
    levels
        .iter()
        .enumerate()
        .map(|(i, (severity, low))| (*severity, *low, levels.get(i + 1).map(|(_, high)| *high)))
        .collect()
}

fn ladder(t: &AlertThresholds, metric: &str) -> Vec<(&'static str, f64)> {
    let pair = |l: Levels| vec![("warning", l.warning), ("critical", l.critical)];
    match metric {
        "cpu_usage_percent" => pair(t.cpu_percent),
        "memory_usage_percent" => pair(t.memory_percent),
        "disk_usage_percent" => pair(t.disk_percent),
        "agent_failure_rate" => pair(t.agent_failure_rate),
        "agent_response_time_ms" => pair(t.agent_response_time_ms),
        "security_events_per_minute" => pair(t.security_events_per_minute),
        _ => vec![
            ("warning", t.thermal_celsius.warning),
            ("critical", t.thermal_celsius.critical),
            ("emergency", t.thermal_celsius.emergency),
        ],
    }
}

/// The rules file (YAML) for `thresholds`.
pub fn prometheus_rules(thresholds: &AlertThresholds) -> String {
    let mut out = String::from(
        "# Prometheus alerting rules for dsmild, generated from the [alerts] thresholds by\n\
         # `dsmilctl config prometheus-rules` (these are the defaults). Check with\n\
         # `promtool check rules`; dsmil.rules.test.yml holds `promtool test rules` cases.\n\
         groups:\n  - name: dsmil\n    rules:\n",
    );
    let hold = format!("{}s", thresholds.for_seconds);
    for rule in rules() {
        for (severity, low, high) in bands(&ladder(thresholds, rule.metric)) {
            let low = number(low * rule.scale);
            let value = if rule.value.contains(' ') {
                format!("({})", rule.value)
            } else {
                rule.value.to_owned()
            };
            let expr = match high {
                Some(high) => format!("{value} >= {low} < {}", number(high * rule.scale)),
                None => format!("{value} >= {low}"),
            };
            let _ = write!(
                out,
                "      - alert: {alert}\n        expr: '{expr}'\n        for: {hold}\n        \
                 labels:\n          severity: {severity}\n          metric: {metric}\n        \
                 annotations:\n          summary: \"{summary}\"\n          description: \
                 \"{metric} is {shown} (the {severity} threshold is {low}).\"\n",
                alert = rule.alert,
                metric = rule.metric,
                summary = rule.summary,
                shown = rule.shown,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_of_the_defaults_is_a_rule_in_its_band() {
        let text = prometheus_rules(&AlertThresholds::default());
        assert!(
            text.contains("expr: 'dsmil_cpu_usage_ratio >= 0.8 < 0.95'"),
            "{text}"
        );
        assert!(
            text.contains("expr: 'dsmil_cpu_usage_ratio >= 0.95'"),
            "{text}"
        );
        assert!(
            text.contains("expr: 'dsmil_temperature_max_celsius >= 100'"),
            "{text}"
        );
        assert_eq!(text.matches("- alert: ").count(), 6 * 2 + 3);
        assert_eq!(text.matches("severity: emergency").count(), 1);
        let slow = AlertThresholds {
            for_seconds: 30,
            ..AlertThresholds::default()
        };
        assert!(prometheus_rules(&slow).contains("for: 30s"));
    }
}
