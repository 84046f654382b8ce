//! Counters and latency histograms of one server, answered through
//! `query_metrics` in Sozu's shape.
//!
//! Updating a metric is a few integer operations on structures owned by the
//! event loop (no locks, no string building on the request path). Names and
//! shapes are built only when someone asks.
//!
//! Times are recorded in microseconds and reported in milliseconds, as Sozu
//! does: percentiles (p50 … p100, sum, samples) and a cumulative histogram
//! whose buckets are `le = 2^k - 1` milliseconds.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use foldhash::HashMap as FastMap;
use hdrhistogram::Histogram;
use sozu_command::proto::command::{
    BackendMetrics, Bucket, ClusterMetrics, FilteredHistogram, FilteredMetrics,
    MetricsConfiguration, Percentiles, QueryMetricsOptions, WorkerMetrics, filtered_metrics::Inner,
    response_content::ContentType,
};
use sozu_command::state::ConfigState;

/// What `query_metrics` reports that the metrics do not count themselves:
/// gauges of the running server, read when the query arrives.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveGauges {
    /// Open client connections.
    pub(crate) connections: usize,
    /// The server's limit of client connections.
    pub(crate) max_connections: usize,
    /// Idle connections kept to backends.
    pub(crate) idle_backend_connections: usize,
    /// Backends each cluster's balancer can hand out now, by cluster id.
    pub(crate) available_backends: HashMap<String, usize>,
    /// Each backend of each cluster, and whether it can be handed out now.
    pub(crate) backends_up: HashMap<String, Vec<(String, bool)>>,
}

/// Which latency a sample waiting for the StatsD sender measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timing {
    /// `backend_connection_time`.
    Connect,
    /// `backend_response_time`.
    Response,
}

impl Timing {
    /// Sozu's name of the metric.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Timing::Connect => "backend_connection_time",
            Timing::Response => "backend_response_time",
        }
    }
}

/// Most latency samples a cluster or backend keeps between two StatsD
/// sends; beyond, samples are not sent (and counted as dropped).
const MAX_PENDING_TIMINGS: usize = 512;

/// A latency distribution.
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
    sum_micros: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            // Microseconds up to one hour, two significant digits: within
            // 1% (reports are in whole milliseconds, and the Prometheus
            // bucket edges, 2^n ms, fall on the histogram's own edges).
            // Three digits took 190 KB per histogram, six of them touched
            // per request: a cache miss each on the relay's hot path.
            histogram: Histogram::new_with_bounds(1, 3_600_000_000, 2)
                .expect("static histogram bounds are valid"),
            sum_micros: 0,
        }
    }
}

impl Latency {
    /// Adds one sample.
    pub fn record(&mut self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = self.histogram.record(micros.min(self.histogram.high()));
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }

    /// Samples recorded.
    pub fn samples(&self) -> u64 {
        self.histogram.len()
    }

    fn percentiles(&self) -> Percentiles {
        let millis = |quantile: f64| self.histogram.value_at_quantile(quantile) / 1000;
        Percentiles {
            samples: self.histogram.len(),
            p_50: millis(0.5),
            p_90: millis(0.9),
            p_99: millis(0.99),
            p_99_9: millis(0.999),
            p_99_99: millis(0.9999),
            p_99_999: millis(0.99999),
            p_100: self.histogram.max() / 1000,
            sum: self.sum_micros / 1000,
        }
    }

    fn buckets(&self) -> FilteredHistogram {
        let mut buckets = Vec::new();
        if !self.histogram.is_empty() {
            let max_millis = self.histogram.max() / 1000;
            let mut le: u64 = 0;
            loop {
                // Samples below (le + 1) ms, i.e. at most `le` whole ms.
                let below = self.histogram.count_between(0, (le + 1) * 1000 - 1);
                buckets.push(Bucket { count: below, le });
                if le >= max_millis {
                    break;
                }
                le = le * 2 + 1;
            }
        }
        FilteredHistogram {
            sum: self.sum_micros / 1000,
            count: self.histogram.len(),
            buckets,
        }
    }
}

/// Traffic of a cluster or a backend.
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    /// Requests sent to a backend (for the whole server: every request).
    /// As in Sozu, answers the proxy makes itself (redirects, 401, 503
    /// without backend) only count in their status.
    pub requests: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients.
    pub bytes_out: u64,
    /// Time to connect to the backend.
    pub connect_time: Latency,
    /// Time from sending the request to the backend's response head.
    pub response_time: Latency,
    /// Whole request, from its first byte to the end of the response.
    pub service_time: Latency,
    /// Open connections to this backend (backends only).
    pub connections: u64,
    /// TCP sessions ended.
    pub sessions: u64,
    /// Latency samples in whole milliseconds not yet sent as StatsD
    /// timings (kept only when a StatsD target is set).
    pub(crate) pending: Vec<(Timing, u64)>,
    /// Samples left out of `pending` because it was full.
    pub(crate) pending_dropped: u64,
}

impl Traffic {
    fn keep_timing(&mut self, timing: Timing, duration: Duration) {
        if self.pending.len() < MAX_PENDING_TIMINGS {
            let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
            self.pending.push((timing, millis));
        } else {
            self.pending_dropped += 1;
        }
    }

    fn record_answer(&mut self, answer: &Answered, forwarded: bool, keep: bool) {
        if keep {
            if let Some(connect) = answer.connect_time {
                self.keep_timing(Timing::Connect, connect);
            }
            if let Some(response) = answer.response_time {
                self.keep_timing(Timing::Response, response);
            }
        }
        if forwarded {
            self.requests += 1;
        }
        *self.statuses.entry(answer.status).or_default() += 1;
        self.bytes_in += answer.bytes_in;
        self.bytes_out += answer.bytes_out;
        if let Some(connect) = answer.connect_time {
            self.connect_time.record(connect);
        }
        if let Some(response) = answer.response_time {
            self.response_time.record(response);
        }
        self.service_time.record(answer.service_time);
    }

    fn record_session(&mut self, piped: &Piped, keep: bool) {
        if keep && let Some(connect) = piped.connect_time {
            self.keep_timing(Timing::Connect, connect);
        }
        self.sessions += 1;
        self.add_bytes(piped.bytes_in, piped.bytes_out);
        if let Some(connect) = piped.connect_time {
            self.connect_time.record(connect);
        }
    }

    fn add_bytes(&mut self, bytes_in: u64, bytes_out: u64) {
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
    }

    /// Whether anything went through: HTTP answers, TCP sessions, or the
    /// bytes of a TCP session still running.
    fn has_traffic(&self) -> bool {
        self.requests > 0
            || self.sessions > 0
            || !self.statuses.is_empty()
            || self.bytes_in > 0
            || self.bytes_out > 0
    }

    fn report(&self, into: &mut BTreeMap<String, FilteredMetrics>, requests_name: &str) {
        into.insert(requests_name.into(), count(self.requests));
        if self.sessions > 0 {
            into.insert("tcp.sessions".into(), count(self.sessions));
        }
        let mut classes = [0u64; 6];
        for (status, times) in &self.statuses {
            into.insert(format!("http.status.{status}"), count(*times));
            classes[usize::from((status / 100).min(5))] += times;
        }
        for (class, times) in classes.iter().enumerate().skip(1) {
            if *times > 0 {
                into.insert(format!("http.status.{class}xx"), count(*times));
            }
        }
        into.insert("bytes_in".into(), count(self.bytes_in));
        into.insert("bytes_out".into(), count(self.bytes_out));
        latency(into, "backend_connection_time", &self.connect_time);
        latency(into, "backend_response_time", &self.response_time);
        latency(into, "service_time", &self.service_time);
    }
}

fn count(value: u64) -> FilteredMetrics {
    FilteredMetrics {
        inner: Some(Inner::Count(i64::try_from(value).unwrap_or(i64::MAX))),
    }
}

fn gauge(value: u64) -> FilteredMetrics {
    FilteredMetrics {
        inner: Some(Inner::Gauge(value)),
    }
}

fn latency(into: &mut BTreeMap<String, FilteredMetrics>, name: &str, value: &Latency) {
    if value.samples() == 0 {
        return;
    }
    into.insert(
        name.to_owned(),
        FilteredMetrics {
            inner: Some(Inner::Percentiles(value.percentiles())),
        },
    );
    into.insert(
        format!("{name}_histogram"),
        FilteredMetrics {
            inner: Some(Inner::Histogram(value.buckets())),
        },
    );
}

/// What is known of a request once it is answered.
#[derive(Debug, Clone)]
pub struct Answered {
    /// Status code sent to the client.
    pub status: u16,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Backend connection time, when a new connection was made.
    pub connect_time: Option<Duration>,
    /// Backend response head time, when a backend answered.
    pub response_time: Option<Duration>,
    /// Whole request time.
    pub service_time: Duration,
}

/// What is known of a TCP session once it is over.
#[derive(Debug, Clone)]
pub struct Piped {
    /// Bytes received from the client (a PROXY header not included).
    pub bytes_in: u64,
    /// Bytes sent to the client.
    pub bytes_out: u64,
    /// Backend connection time, when a backend was connected.
    pub connect_time: Option<Duration>,
}

/// Every metric of one server.
#[derive(Debug)]
pub struct Metrics {
    /// Per-cluster and per-backend metrics are collected (`metrics
    /// enable`); as in Sozu, `metrics disable` and `disable_cluster_metrics`
    /// stop those only, proxy-wide ones go on.
    enabled: bool,
    /// Latency samples are kept for the StatsD sender.
    pub(crate) keep_timings: bool,
    started: Instant,
    /// Traffic of the whole server.
    pub proxy: Traffic,
    /// Traffic by cluster, then by backend.
    pub clusters: FastMap<String, (Traffic, FastMap<String, Traffic>)>,
    /// Client connections accepted since start.
    pub accepted: u64,
    /// Requests that matched no frontend.
    pub unrouted: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_failures: u64,
    /// Connections accepted on TCP listeners.
    pub tcp_accepted: u64,
    /// Connections closed for a missing, malformed, oversized or late
    /// PROXY header.
    pub proxy_protocol_errors: u64,
    /// StatsD datagrams the socket did not take.
    pub(crate) statsd_dropped: u64,
    /// Body bytes the HTTP/1.1 relay moved with splice(2), without copying
    /// them through its buffers (counted in the traffic's bytes as well).
    pub spliced_bytes: u64,
}

impl Metrics {
    /// Empty metrics, enabled.
    pub fn new(_name: &str) -> Self {
        Metrics {
            enabled: true,
            keep_timings: false,
            started: Instant::now(),
            proxy: Traffic::default(),
            clusters: FastMap::default(),
            accepted: 0,
            unrouted: 0,
            tls_failures: 0,
            tcp_accepted: 0,
            proxy_protocol_errors: 0,
            statsd_dropped: 0,
            spliced_bytes: 0,
        }
    }

    /// Applies `configure_metrics`: enable, disable, or clear.
    pub fn configure(&mut self, configuration: i32) {
        match MetricsConfiguration::try_from(configuration) {
            Ok(MetricsConfiguration::Enabled) => self.enabled = true,
            Ok(MetricsConfiguration::Disabled) => self.enabled = false,
            Ok(MetricsConfiguration::Clear) | Err(_) => {
                let (enabled, keep_timings) = (self.enabled, self.keep_timings);
                *self = Metrics::new("");
                self.enabled = enabled;
                self.keep_timings = keep_timings;
            }
        }
    }

    /// Records one answered request, for a cluster and backend when known.
    pub fn record(&mut self, cluster: Option<&str>, backend: Option<&str>, answer: &Answered) {
        let keep = self.keep_timings;
        self.proxy.record_answer(answer, true, false);
        if !self.enabled {
            return;
        }
        let Some(cluster) = cluster else { return };
        // One lookup each when the names were seen before; they are copied
        // only the first time.
        let (traffic, backends) = match self.clusters.get_mut(cluster) {
            Some(entry) => entry,
            None => self.clusters.entry(cluster.to_owned()).or_default(),
        };
        traffic.record_answer(answer, backend.is_some(), keep);
        if let Some(backend) = backend {
            match backends.get_mut(backend) {
                Some(traffic) => traffic.record_answer(answer, true, keep),
                None => backends
                    .entry(backend.to_owned())
                    .or_default()
                    .record_answer(answer, true, keep),
            }
        }
    }

    /// Records one ended TCP session of `cluster`, on `backend` when one was
    /// connected.
    pub fn record_piped(&mut self, cluster: &str, backend: Option<&str>, piped: &Piped) {
        let keep = self.keep_timings;
        self.proxy.record_session(piped, false);
        if !self.enabled {
            return;
        }
        let (traffic, backends) = self.clusters.entry(cluster.to_owned()).or_default();
        traffic.record_session(piped, keep);
        if let Some(backend) = backend {
            backends
                .entry(backend.to_owned())
                .or_default()
                .record_session(piped, keep);
        }
    }

    /// Adds bytes a TCP session moved while it runs (what is left is
    /// counted by [`Metrics::record_piped`] when it ends).
    pub fn record_piped_bytes(
        &mut self,
        cluster: &str,
        backend: Option<&str>,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        self.proxy.add_bytes(bytes_in, bytes_out);
        if !self.enabled {
            return;
        }
        let (traffic, backends) = self.clusters.entry(cluster.to_owned()).or_default();
        traffic.add_bytes(bytes_in, bytes_out);
        if let Some(backend) = backend {
            backends
                .entry(backend.to_owned())
                .or_default()
                .add_bytes(bytes_in, bytes_out);
        }
    }

    /// Adjusts the open-connection gauge of a backend.
    pub fn backend_connection(&mut self, cluster: &str, backend: &str, opened: bool) {
        let (_, backends) = self.clusters.entry(cluster.to_owned()).or_default();
        let traffic = backends.entry(backend.to_owned()).or_default();
        if opened {
            traffic.connections += 1;
        } else {
            traffic.connections = traffic.connections.saturating_sub(1);
        }
    }

    /// The answer to `query_metrics`, filtered as asked.
    pub(crate) fn query(
        &self,
        options: &QueryMetricsOptions,
        live: &LiveGauges,
        state: &ConfigState,
    ) -> ContentType {
        let mut proxy = BTreeMap::new();
        self.proxy.report(&mut proxy, "http.requests");
        proxy.insert("client.connections".into(), gauge(live.connections as u64));
        proxy.insert(
            "client.connections_max".into(),
            gauge(live.max_connections as u64),
        );
        proxy.insert("listener.accepted.total".into(), count(self.accepted));
        proxy.insert("http.failed_backend_matching".into(), count(self.unrouted));
        proxy.insert("tls.handshake.failures".into(), count(self.tls_failures));
        proxy.insert("tcp.requests".into(), count(self.tcp_accepted));
        proxy.insert("http.spliced_bytes".into(), count(self.spliced_bytes));
        proxy.insert(
            "proxy_protocol.errors".into(),
            count(self.proxy_protocol_errors),
        );
        if self.keep_timings {
            proxy.insert(
                "statsd.dropped_datagrams".into(),
                count(self.statsd_dropped),
            );
        }
        proxy.insert(
            "process.uptime_seconds".into(),
            gauge(self.started.elapsed().as_secs()),
        );
        proxy.insert(
            "backend.pool.size".into(),
            gauge(live.idle_backend_connections as u64),
        );

        let mut clusters = BTreeMap::new();
        if !options.no_clusters {
            for (cluster_id, configuration) in &state.clusters {
                if !options.cluster_ids.is_empty() && !options.cluster_ids.contains(cluster_id) {
                    continue;
                }
                let mut cluster = BTreeMap::new();
                let mut backends = Vec::new();
                let no_backends = FastMap::default();
                let by_backend = match self.clusters.get(cluster_id) {
                    Some((traffic, by_backend)) => {
                        if traffic.has_traffic() {
                            traffic.report(&mut cluster, "requests");
                        }
                        by_backend
                    }
                    None => &no_backends,
                };
                let up = live.backends_up.get(cluster_id);
                let mut backend_ids: Vec<&String> = by_backend.keys().collect();
                backend_ids.extend(up.into_iter().flatten().map(|(id, _)| id));
                backend_ids.sort();
                backend_ids.dedup();
                for backend_id in backend_ids {
                    if !options.backend_ids.is_empty() && !options.backend_ids.contains(backend_id)
                    {
                        continue;
                    }
                    let mut metrics = BTreeMap::new();
                    if let Some(traffic) = by_backend.get(backend_id) {
                        if traffic.has_traffic() {
                            traffic.report(&mut metrics, "requests");
                        }
                        metrics.insert("connections".into(), gauge(traffic.connections));
                    }
                    if let Some((_, available)) =
                        up.into_iter().flatten().find(|(id, _)| id == backend_id)
                    {
                        metrics.insert("backend.available".into(), gauge(u64::from(*available)));
                    }
                    backends.push(BackendMetrics {
                        backend_id: backend_id.clone(),
                        metrics: filter_names(metrics, &options.metric_names),
                    });
                }
                let total = state
                    .backends
                    .get(cluster_id)
                    .map_or(0, sozu_command::state::ClusterBackends::len)
                    as u64;
                let available = live
                    .available_backends
                    .get(cluster_id)
                    .map_or(0, |available| *available as u64);
                cluster.insert("cluster.total_backends".into(), gauge(total));
                cluster.insert("cluster.available_backends".into(), gauge(available));
                let _ = configuration;
                backends.sort_by(|a, b| a.backend_id.cmp(&b.backend_id));
                clusters.insert(
                    cluster_id.clone(),
                    ClusterMetrics {
                        cluster: filter_names(cluster, &options.metric_names),
                        backends,
                    },
                );
            }
        }
        ContentType::WorkerMetrics(WorkerMetrics {
            proxy: filter_names(proxy, &options.metric_names),
            clusters,
        })
    }
}

fn filter_names(
    metrics: BTreeMap<String, FilteredMetrics>,
    names: &[String],
) -> BTreeMap<String, FilteredMetrics> {
    if names.is_empty() {
        return metrics;
    }
    metrics
        .into_iter()
        .filter(|(name, _)| names.iter().any(|wanted| wanted == name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabling_stops_cluster_metrics_only_as_in_sozu() {
        let answer = Answered {
            status: 200,
            bytes_in: 1,
            bytes_out: 2,
            connect_time: None,
            response_time: None,
            service_time: Duration::from_millis(1),
        };
        let mut metrics = Metrics::new("w");
        metrics.configure(MetricsConfiguration::Disabled as i32);
        metrics.record(Some("web"), Some("web-0"), &answer);
        assert_eq!(metrics.proxy.requests, 1);
        assert!(metrics.clusters.is_empty());
        metrics.configure(MetricsConfiguration::Enabled as i32);
        metrics.record(Some("web"), Some("web-0"), &answer);
        assert_eq!(metrics.proxy.requests, 2);
        assert_eq!(metrics.clusters["web"].0.requests, 1);
    }

    #[test]
    fn histogram_buckets_are_cumulative_powers_of_two() {
        let mut latency = Latency::default();
        for millis in [0u64, 0, 1, 2, 5, 40] {
            latency.record(Duration::from_millis(millis));
        }
        let buckets = latency.buckets();
        assert_eq!(buckets.count, 6);
        let pairs: Vec<(u64, u64)> = buckets.buckets.iter().map(|b| (b.le, b.count)).collect();
        assert_eq!(
            pairs,
            [(0, 2), (1, 3), (3, 4), (7, 5), (15, 5), (31, 5), (63, 6)]
        );
        let percentiles = latency.percentiles();
        assert_eq!(percentiles.samples, 6);
        assert_eq!(percentiles.p_100, 40);
    }
}
