//! The metrics port: every layer reports its counters, gauges and histograms into a
//! [`MetricSet`]; the composer's `/metrics` is a loop over the layers' [`MetricsSource`]s, and
//! the monitor renders the set as Prometheus text.
//!
//! A set keeps each family's samples together whatever order they arrive in (the exposition
//! format requires it), so a source may report family by family or sample by sample.

use async_trait::async_trait;

/// What kind of metric a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in cumulative buckets, with their sum and count.
    Histogram,
}

/// The value of one sample.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    /// A counter's or gauge's value.
    Number(f64),
    /// A histogram: (upper bound, cumulative count) ascending, the sum of observations and
    /// their count (the `+Inf` bucket).
    Histogram {
        /// Upper bounds with cumulative counts.
        buckets: Vec<(f64, u64)>,
        /// Sum of the observations.
        sum: f64,
        /// Number of observations.
        count: u64,
    },
}

/// One labelled sample of a family.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label names and values.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: SampleValue,
}

/// A metric name with its help, kind and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    /// The metric name (`dsmil_tpm_operations_total`).
    pub name: String,
    /// One line saying what it measures.
    pub help: String,
    /// Its kind.
    pub kind: MetricKind,
    /// Its samples, in the order reported.
    pub samples: Vec<Sample>,
}

/// Families reported by the sources of one scrape, grouped by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSet {
    families: Vec<MetricFamily>,
}

fn labels(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl MetricSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `sample` to the family `name`, creating it. A sample whose kind differs from the
    /// family's first one is dropped (one name, one kind).
    pub fn push(&mut self, name: &str, help: &str, kind: MetricKind, sample: Sample) {
        match self.families.iter_mut().find(|f| f.name == name) {
            Some(family) if family.kind == kind => family.samples.push(sample),
            Some(_) => {}
            None => self.families.push(MetricFamily {
                name: name.to_owned(),
                help: help.to_owned(),
                kind,
                samples: vec![sample],
            }),
        }
    }

    /// A counter sample.
    pub fn counter(&mut self, name: &str, help: &str, label_pairs: &[(&str, &str)], value: f64) {
        self.push(
            name,
            help,
            MetricKind::Counter,
            Sample {
                labels: labels(label_pairs),
                value: SampleValue::Number(value),
            },
        );
    }

    /// A gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, label_pairs: &[(&str, &str)], value: f64) {
        self.push(
            name,
            help,
            MetricKind::Gauge,
            Sample {
                labels: labels(label_pairs),
                value: SampleValue::Number(value),
            },
        );
    }

    /// A histogram sample (`buckets` cumulative and ascending, without `+Inf`).
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        label_pairs: &[(&str, &str)],
        buckets: Vec<(f64, u64)>,
        sum: f64,
        count: u64,
    ) {
        self.push(
            name,
            help,
            MetricKind::Histogram,
            Sample {
                labels: labels(label_pairs),
                value: SampleValue::Histogram {
                    buckets,
                    sum,
                    count,
                },
            },
        );
    }

    /// The families, in the order their first sample arrived.
    pub fn families(&self) -> &[MetricFamily] {
        &self.families
    }

    /// The family `name`, if reported.
    pub fn family(&self, name: &str) -> Option<&MetricFamily> {
        self.families.iter().find(|f| f.name == name)
    }
}

/// Something that reports metrics: a layer's engine, log, hub or store.
#[async_trait]
pub trait MetricsSource: Send + Sync {
    /// Adds this source's current figures to `out`. Never fails: a figure that cannot be read
    /// now is left out.
    async fn collect(&self, out: &mut MetricSet);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_of_a_family_stay_together() {
        let mut set = MetricSet::new();
        set.counter("ops_total", "Ops.", &[("kind", "a")], 1.0);
        set.gauge("scale", "Scale.", &[], 0.5);
        set.counter("ops_total", "Ops.", &[("kind", "b")], 2.0);
        set.gauge("ops_total", "Wrong kind.", &[], 9.0);
        let names: Vec<_> = set.families().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ops_total", "scale"]);
        assert_eq!(set.family("ops_total").unwrap().samples.len(), 2);
    }
}
