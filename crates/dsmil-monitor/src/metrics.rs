//! Prometheus text exposition (format 0.0.4): [`render`] turns the [`MetricSet`] every layer's
//! `MetricsSource` filled into the text `/metrics` serves — each family's `# HELP` and `# TYPE`
//! once, its samples together, label values escaped — through [`MetricsWriter`].

use std::collections::BTreeSet;
use std::fmt::Write as _;

use dsmil_core::ports::{MetricKind, MetricSet, SampleValue};

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds one exposition.
#[derive(Debug, Default)]
pub struct MetricsWriter {
    out: String,
    families: BTreeSet<String>,
}

/// Label pairs.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

impl MetricsWriter {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    fn family(&mut self, name: &str, help: &str, kind: &str) -> bool {
        if !valid_name(name) {
            tracing::warn!(name, "invalid Prometheus metric name skipped");
            return false;
        }
        if self.families.insert(name.to_owned()) {
            let _ = writeln!(self.out, "# HELP {name} {}", help.replace('\n', " "));
            let _ = writeln!(self.out, "# TYPE {name} {kind}");
        }
        true
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// A counter sample (the name should end in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, labels: Labels<'_>, value: f64) {
        if self.family(name, help, "counter") {
            self.sample(name, labels, value);
        }
    }

    /// A gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, labels: Labels<'_>, value: f64) {
        if self.family(name, help, "gauge") {
            self.sample(name, labels, value);
        }
    }

    /// A histogram: `buckets` are (upper bound, cumulative count) in ascending order; the
    /// `+Inf` bucket is `count`.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: Labels<'_>,
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        if !self.family(name, help, "histogram") {
            return;
        }
        let bucket_name = format!("{name}_bucket");
        for (le, c) in buckets {
            let le = number(*le);
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket_name, &with_le, *c as f64);
        }
        let mut inf: Vec<(&str, &str)> = labels.to_vec();
        inf.push(("le", "+Inf"));
        self.sample(&bucket_name, &inf, count as f64);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    /// The exposition text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// The exposition of `set`.
pub fn render(set: &MetricSet) -> String {
    let mut w = MetricsWriter::new();
    for family in set.families() {
        for sample in &family.samples {
            let labels: Vec<(&str, &str)> = sample
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            match (&sample.value, family.kind) {
                (SampleValue::Number(v), MetricKind::Counter) => {
                    w.counter(&family.name, &family.help, &labels, *v)
                }
                (SampleValue::Number(v), _) => w.gauge(&family.name, &family.help, &labels, *v),
                (
                    SampleValue::Histogram {
                        buckets,
                        sum,
                        count,
                    },
                    _,
                ) => w.histogram(&family.name, &family.help, &labels, buckets, *sum, *count),
            }
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_once_labels_escaped_histograms_cumulative() {
        let mut w = MetricsWriter::new();
        w.counter("x_total", "Xs.", &[("kind", "a\"b\\c\nd")], 3.0);
        w.counter("x_total", "Xs.", &[("kind", "b")], 4.0);
        w.gauge("bad name", "skipped", &[], 1.0);
        w.histogram(
            "lat_seconds",
            "Latency.",
            &[("op", "sign")],
            &[(0.001, 2), (0.01, 5)],
            0.02,
            6,
        );
        let text = w.finish();
        assert_eq!(text.matches("# TYPE x_total counter").count(), 1);
        assert!(text.contains(r#"x_total{kind="a\"b\\c\nd"} 3"#), "{text}");
        assert!(
            text.contains(r#"lat_seconds_bucket{op="sign",le="0.01"} 5"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lat_seconds_bucket{op="sign",le="+Inf"} 6"#),
            "{text}"
        );
        assert!(text.contains("lat_seconds_count{op=\"sign\"} 6"));
        assert!(!text.contains("bad name"));
    }

    #[test]
    fn a_set_renders_each_family_in_one_block() {
        let mut set = MetricSet::new();
        set.counter("ops_total", "Ops.", &[("kind", "a")], 1.0);
        set.gauge("scale", "Scale.", &[], 0.5);
        set.counter("ops_total", "Ops.", &[("kind", "b")], 2.0);
        set.histogram("lat_seconds", "Latency.", &[], vec![(0.1, 1)], 0.05, 1);
        let text = render(&set);
        let ops: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("ops_total"))
            .collect();
        assert_eq!(ops, ["ops_total{kind=\"a\"} 1", "ops_total{kind=\"b\"} 2"]);
        let first = text.find("ops_total{kind=\"b\"}").unwrap();
        assert!(first < text.find("# TYPE scale").unwrap(), "{text}");
        assert!(text.contains("lat_seconds_count 1"));
    }
}
