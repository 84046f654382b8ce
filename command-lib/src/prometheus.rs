//! The Prometheus text exposition (format 0.0.4) of aggregated metrics: what
//! the daemon serves on `GET /metrics` and what `sozu metrics get
//! --prometheus` prints, from the same [`AggregatedMetrics`].
//!
//! Names follow Prometheus's conventions: a `sozu_` prefix, `_total` on
//! counters, base units (`_seconds`, `_bytes`). Proxy-wide families are
//! `sozu_…`, per-cluster ones `sozu_cluster_…{cluster_id}`, per-backend
//! ones `sozu_backend_…{cluster_id,backend_id}`. Latencies are histograms
//! with fixed buckets from 1 ms to 131.072 s (powers of two), built from the
//! workers' millisecond buckets. Label values are escaped (`\\`, `"`,
//! newline). `doc/metrics.md` lists every family.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::proto::command::{
    AggregatedMetrics, FilteredHistogram, FilteredMetrics, filtered_metrics::Inner,
};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the histogram buckets, in whole milliseconds as workers
/// count them: a sample of `k` whole ms (under `k + 1` ms) is at most `k`.
/// Exposed in seconds as `(k + 1) / 1000`: 0.001, 0.002, 0.004, … 131.072.
const BUCKET_BOUNDS_MS: [u64; 18] = [
    0, 1, 3, 7, 15, 31, 63, 127, 255, 511, 1023, 2047, 4095, 8191, 16383, 32767, 65535, 131_071,
];

/// What one name of the workers' metrics becomes.
struct Mapping {
    /// The worker-side name.
    from: &'static str,
    /// The family name after the scope's prefix.
    to: &'static str,
    kind: &'static str,
    help: &'static str,
}

const fn map(
    from: &'static str,
    to: &'static str,
    kind: &'static str,
    help: &'static str,
) -> Mapping {
    Mapping {
        from,
        to,
        kind,
        help,
    }
}

/// Names every scope (proxy, cluster, backend) has.
const TRAFFIC: [Mapping; 6] = [
    map(
        "bytes_in",
        "received_bytes_total",
        "counter",
        "Bytes received from clients.",
    ),
    map(
        "bytes_out",
        "sent_bytes_total",
        "counter",
        "Bytes sent to clients.",
    ),
    map(
        "tcp.sessions",
        "tcp_sessions_total",
        "counter",
        "TCP sessions ended.",
    ),
    map(
        "backend_connection_time_histogram",
        "connect_seconds",
        "histogram",
        "Time to connect to a backend.",
    ),
    map(
        "backend_response_time_histogram",
        "response_seconds",
        "histogram",
        "Time from sending a request to a backend to its response head.",
    ),
    map(
        "service_time_histogram",
        "service_seconds",
        "histogram",
        "Time from a request's first byte to the end of its response.",
    ),
];

/// Proxy-wide names besides [`TRAFFIC`].
const PROXY: [Mapping; 11] = [
    map(
        "http.requests",
        "requests_total",
        "counter",
        "Requests answered, whether forwarded to a backend or answered by the proxy.",
    ),
    map(
        "client.connections",
        "client_connections",
        "gauge",
        "Open client connections.",
    ),
    map(
        "client.connections_max",
        "client_connections_limit",
        "gauge",
        "Most client connections open at once, summed over workers.",
    ),
    map(
        "listener.accepted.total",
        "accepted_connections_total",
        "counter",
        "Client connections accepted.",
    ),
    map(
        "http.failed_backend_matching",
        "unrouted_requests_total",
        "counter",
        "Requests that matched no frontend.",
    ),
    map(
        "tls.handshake.failures",
        "tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed or timed out.",
    ),
    map(
        "http.spliced_bytes",
        "http_spliced_bytes_total",
        "counter",
        "Body bytes the HTTP/1.1 relay moved between sockets with splice(2).",
    ),
    map(
        "tcp.requests",
        "tcp_accepted_connections_total",
        "counter",
        "Connections accepted on TCP listeners.",
    ),
    map(
        "proxy_protocol.errors",
        "proxy_protocol_errors_total",
        "counter",
        "Connections closed for a bad or missing PROXY protocol header.",
    ),
    map(
        "backend.pool.size",
        "idle_backend_connections",
        "gauge",
        "Idle connections kept open to backends.",
    ),
    map(
        "statsd.dropped_datagrams",
        "statsd_dropped_datagrams_total",
        "counter",
        "StatsD datagrams dropped because the socket could not take them.",
    ),
];

/// Per-cluster names besides [`TRAFFIC`].
const CLUSTER: [Mapping; 3] = [
    map(
        "requests",
        "requests_total",
        "counter",
        "Requests of a cluster forwarded to a backend.",
    ),
    map(
        "cluster.total_backends",
        "backends",
        "gauge",
        "Backends of a cluster.",
    ),
    map(
        "cluster.available_backends",
        "available_backends",
        "gauge",
        "Backends of a cluster that can be tried now.",
    ),
];

/// Per-backend names besides [`TRAFFIC`].
const BACKEND: [Mapping; 3] = [
    map(
        "requests",
        "requests_total",
        "counter",
        "Requests sent to a backend.",
    ),
    map(
        "connections",
        "connections",
        "gauge",
        "Open connections to a backend.",
    ),
    map(
        "backend.available",
        "up",
        "gauge",
        "1 when a backend can be tried now (not waiting out failures), in any worker.",
    ),
];

/// Families being built, in the order they first appear.
#[derive(Default)]
struct Exposition {
    families: Vec<Family>,
    index: HashMap<String, usize>,
}

struct Family {
    name: String,
    kind: &'static str,
    help: &'static str,
    samples: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &'static str, help: &'static str) -> &mut Family {
        let index = match self.index.get(name) {
            Some(index) => *index,
            None => {
                self.families.push(Family {
                    name: name.to_owned(),
                    kind,
                    help,
                    samples: String::new(),
                });
                self.index.insert(name.to_owned(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        &mut self.families[index]
    }

    fn sample(
        &mut self,
        name: &str,
        kind: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) {
        let family = self.family(name, kind, help);
        let _ = writeln!(family.samples, "{name}{} {value}", label_set(labels, None));
    }

    fn histogram(
        &mut self,
        name: &str,
        help: &'static str,
        labels: &[(&str, &str)],
        histogram: &FilteredHistogram,
    ) {
        let family = self.family(name, "histogram", help);
        for bound in BUCKET_BOUNDS_MS {
            let seconds = (bound + 1) as f64 / 1000.0;
            let count = cumulative_at(histogram, bound);
            let le = format!("{seconds}");
            let _ = writeln!(
                family.samples,
                "{name}_bucket{} {count}",
                label_set(labels, Some(&le))
            );
        }
        let _ = writeln!(
            family.samples,
            "{name}_bucket{} {}",
            label_set(labels, Some("+Inf")),
            histogram.count
        );
        let _ = writeln!(
            family.samples,
            "{name}_sum{} {}",
            label_set(labels, None),
            histogram.sum as f64 / 1000.0
        );
        let _ = writeln!(
            family.samples,
            "{name}_count{} {}",
            label_set(labels, None),
            histogram.count
        );
    }

    /// One map of worker metrics under `prefix`, with `labels`.
    fn scope(
        &mut self,
        prefix: &str,
        labels: &[(&str, &str)],
        metrics: &BTreeMap<String, FilteredMetrics>,
        own: &[Mapping],
    ) {
        for mapping in own.iter().chain(TRAFFIC.iter()) {
            let Some(value) = metrics.get(mapping.from) else {
                continue;
            };
            let name = format!("{prefix}{}", mapping.to);
            match &value.inner {
                Some(Inner::Histogram(histogram)) => {
                    self.histogram(&name, mapping.help, labels, histogram);
                }
                Some(inner) => {
                    if let Some(number) = number(inner) {
                        self.sample(&name, mapping.kind, mapping.help, labels, number);
                    }
                }
                None => {}
            }
        }
        // Answers by status class (`http.status.2xx` …), from the classes
        // the workers count.
        let responses = format!("{prefix}responses_total");
        for class in 1..=5 {
            let key = format!("http.status.{class}xx");
            if let Some(count) = metrics
                .get(&key)
                .and_then(|v| v.inner.as_ref())
                .and_then(number)
            {
                let class = format!("{class}xx");
                let mut with_class = labels.to_vec();
                with_class.push(("status_class", &class));
                self.sample(
                    &responses,
                    "counter",
                    "Answers sent to clients, by status class.",
                    &with_class,
                    count,
                );
            }
        }
    }

    fn text(self) -> String {
        let mut text = String::new();
        for family in self.families {
            let _ = writeln!(text, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(text, "# TYPE {} {}", family.name, family.kind);
            text.push_str(&family.samples);
        }
        text
    }
}

fn number(inner: &Inner) -> Option<u64> {
    match inner {
        Inner::Count(count) => Some(u64::try_from(*count).unwrap_or(0)),
        Inner::Gauge(gauge) => Some(*gauge),
        _ => None,
    }
}

/// Samples of a cumulative histogram at or below `le` (its own unit:
/// milliseconds for the workers' time histograms).
pub fn cumulative_at(histogram: &FilteredHistogram, le: u64) -> u64 {
    histogram
        .buckets
        .iter()
        .filter(|bucket| bucket.le <= le)
        .map(|bucket| bucket.count)
        .max()
        .unwrap_or(0)
}

/// A label value with `\`, `"` and newlines escaped.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn label_set(labels: &[(&str, &str)], le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut text = String::from("{");
    let pairs = labels.iter().copied().chain(le.map(|le| ("le", le)));
    for (index, (name, value)) in pairs.enumerate() {
        if index > 0 {
            text.push(',');
        }
        let _ = write!(text, "{name}=\"{}\"", escape_label_value(value));
    }
    text.push('}');
    text
}

/// The main process's own metrics (the `main` map), by key shape.
fn main_process(exposition: &mut Exposition, main: &BTreeMap<String, FilteredMetrics>) {
    for (key, value) in main {
        let Some(value) = value.inner.as_ref().and_then(number) else {
            continue;
        };
        let parts: Vec<&str> = key.split('.').collect();
        match parts.as_slice() {
            ["configuration", "changes"] => exposition.sample(
                "sozu_configuration_changes_total",
                "counter",
                "Configuration changes applied since the main process started.",
                &[],
                value,
            ),
            ["configuration", what] => {
                let (name, help) = match *what {
                    "clusters" => ("sozu_state_clusters", "Clusters in the state."),
                    "frontends" => ("sozu_state_frontends", "Frontends in the state."),
                    "backends" => ("sozu_state_backends", "Backends in the state."),
                    "certificates" => ("sozu_state_certificates", "Certificates in the state."),
                    _ => continue,
                };
                exposition.sample(name, "gauge", help, &[], value);
            }
            ["state", "last_save_timestamp"] => exposition.sample(
                "sozu_state_last_save_timestamp_seconds",
                "gauge",
                "When the state was last saved to a file, unix time.",
                &[],
                value,
            ),
            ["worker", id, "up"] => exposition.sample(
                "sozu_worker_up",
                "gauge",
                "1 when a worker runs and answers, else 0.",
                &[("worker_id", id)],
                value,
            ),
            ["worker", id, "restarts"] => exposition.sample(
                "sozu_worker_restarts_total",
                "counter",
                "Times a worker was restarted after it died.",
                &[("worker_id", id)],
                value,
            ),
            ["certificate", fingerprint, "not_after"] => exposition.sample(
                "sozu_certificate_expiry_timestamp_seconds",
                "gauge",
                "When a certificate of the state expires, unix time.",
                &[("fingerprint", fingerprint)],
                value,
            ),
            _ => {}
        }
    }
}

/// The exposition text of `metrics`.
pub fn render(metrics: &AggregatedMetrics) -> String {
    let mut exposition = Exposition::default();
    main_process(&mut exposition, &metrics.main);
    exposition.scope("sozu_", &[], &metrics.proxying, &PROXY);
    for (cluster_id, cluster) in &metrics.clusters {
        exposition.scope(
            "sozu_cluster_",
            &[("cluster_id", cluster_id)],
            &cluster.cluster,
            &CLUSTER,
        );
        for backend in &cluster.backends {
            exposition.scope(
                "sozu_backend_",
                &[
                    ("cluster_id", cluster_id),
                    ("backend_id", &backend.backend_id),
                ],
                &backend.metrics,
                &BACKEND,
            );
        }
    }
    exposition.text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::{BackendMetrics, Bucket, ClusterMetrics};

    fn count(value: i64) -> FilteredMetrics {
        FilteredMetrics {
            inner: Some(Inner::Count(value)),
        }
    }

    #[test]
    fn families_labels_and_histograms() {
        let mut cluster = BTreeMap::new();
        cluster.insert("requests".to_owned(), count(5));
        cluster.insert("http.status.2xx".to_owned(), count(4));
        cluster.insert("http.status.5xx".to_owned(), count(1));
        cluster.insert(
            "backend_response_time_histogram".to_owned(),
            FilteredMetrics {
                inner: Some(Inner::Histogram(FilteredHistogram {
                    sum: 12,
                    count: 5,
                    buckets: vec![
                        Bucket { le: 0, count: 2 },
                        Bucket { le: 1, count: 3 },
                        Bucket { le: 3, count: 5 },
                    ],
                })),
            },
        );
        let mut backend = BTreeMap::new();
        backend.insert("requests".to_owned(), count(5));
        let mut metrics = AggregatedMetrics::default();
        metrics.clusters.insert(
            "we\"b\\1\n".to_owned(),
            ClusterMetrics {
                cluster,
                backends: vec![BackendMetrics {
                    backend_id: "b0".to_owned(),
                    metrics: backend,
                }],
            },
        );
        metrics.main.insert(
            "worker.0.up".to_owned(),
            FilteredMetrics {
                inner: Some(Inner::Gauge(1)),
            },
        );
        let text = render(&metrics);
        let label = r#"cluster_id="we\"b\\1\n""#;
        assert!(text.contains(&format!("sozu_cluster_requests_total{{{label}}} 5\n")));
        assert!(text.contains(&format!(
            "sozu_cluster_responses_total{{{label},status_class=\"5xx\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "sozu_cluster_response_seconds_bucket{{{label},le=\"0.001\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "sozu_cluster_response_seconds_bucket{{{label},le=\"0.004\"}} 5\n"
        )));
        assert!(text.contains(&format!(
            "sozu_cluster_response_seconds_bucket{{{label},le=\"+Inf\"}} 5\n"
        )));
        assert!(text.contains(&format!(
            "sozu_cluster_response_seconds_sum{{{label}}} 0.012\n"
        )));
        assert!(text.contains(&format!(
            "sozu_backend_requests_total{{{label},backend_id=\"b0\"}} 5\n"
        )));
        assert!(text.contains("# TYPE sozu_cluster_response_seconds histogram\n"));
        assert!(text.contains("sozu_worker_up{worker_id=\"0\"} 1\n"));
        // One HELP and TYPE per family.
        assert_eq!(
            text.matches("# TYPE sozu_cluster_responses_total ").count(),
            1
        );
    }
}
