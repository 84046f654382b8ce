//! What the console knows of the daemon: the latest answer of every data
//! source, the metrics samples and the windows computed from them, the
//! events received, and the health of each source.
//!
//! Everything here is plain data updated by [`Data::apply`]; nothing does
//! I/O, so the views and the tests build it freely.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sozu_command::proto::command::{
    AggregatedMetrics, ClusterInformation, Event, EventKind, FilteredMetrics, ListenersList,
    WorkerInfo, WorkerMetrics,
};

use crate::window::{Counters, Samples, Windowed, is_gauge, number};

/// How far back rates and percentiles look.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Points kept for the overview's sparklines (one per refresh).
pub const HISTORY_POINTS: usize = 300;
/// Events kept; the oldest are dropped past this.
pub const EVENTS_KEPT: usize = 10_000;

/// One connection to the daemon, each polling at its own pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceId {
    /// `metrics get`, aggregated and per worker.
    Metrics,
    /// `status`: the workers.
    Workers,
    /// Cluster hashes, then the details of changed clusters.
    Clusters,
    /// `listener list`.
    Listeners,
    /// Certificates of the workers, with their expiry.
    Certificates,
    /// The event subscription.
    Events,
}

impl SourceId {
    /// Every source, in display order.
    pub const ALL: [SourceId; 6] = [
        SourceId::Metrics,
        SourceId::Workers,
        SourceId::Clusters,
        SourceId::Listeners,
        SourceId::Certificates,
        SourceId::Events,
    ];

    /// Its name in the status line.
    pub fn name(self) -> &'static str {
        match self {
            SourceId::Metrics => "metrics",
            SourceId::Workers => "status",
            SourceId::Clusters => "clusters",
            SourceId::Listeners => "listeners",
            SourceId::Certificates => "certificates",
            SourceId::Events => "events",
        }
    }
}

/// How a source is doing.
#[derive(Debug, Clone, Default)]
pub struct SourceHealth {
    /// When it last answered.
    pub last_ok: Option<Instant>,
    /// Since when it fails, and why, while it does.
    pub failing: Option<(SystemTime, String)>,
}

impl SourceHealth {
    /// Whether its data is current.
    pub fn is_live(&self) -> bool {
        self.failing.is_none() && self.last_ok.is_some()
    }
}

/// A listener, whatever its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerRow {
    /// `HTTP`, `HTTPS` or `TCP`.
    pub kind: sozu_command::proto::command::ListenerType,
    /// Where it listens.
    pub address: std::net::SocketAddr,
    /// Whether it accepts connections.
    pub active: bool,
    /// The address announced to clients, if another.
    pub public_address: Option<String>,
    /// Whether it expects a PROXY protocol header.
    pub expect_proxy: bool,
    /// Sticky session cookie name (HTTP and HTTPS).
    pub sticky_name: String,
    /// Front and back timeouts, seconds.
    pub timeouts: (u32, u32),
}

/// Flattens `listener list` into rows, sorted by address.
pub fn listener_rows(list: &ListenersList) -> Vec<ListenerRow> {
    use sozu_command::proto::command::ListenerType;
    let mut rows = Vec::new();
    for http in list.http_listeners.values() {
        rows.push(ListenerRow {
            kind: ListenerType::Http,
            address: http.address.to_socket_addr(),
            active: http.active,
            public_address: http.public_address.map(|address| address.to_string()),
            expect_proxy: http.expect_proxy,
            sticky_name: http.sticky_name.clone(),
            timeouts: (http.front_timeout, http.back_timeout),
        });
    }
    for https in list.https_listeners.values() {
        rows.push(ListenerRow {
            kind: ListenerType::Https,
            address: https.address.to_socket_addr(),
            active: https.active,
            public_address: https.public_address.map(|address| address.to_string()),
            expect_proxy: https.expect_proxy,
            sticky_name: https.sticky_name.clone(),
            timeouts: (https.front_timeout, https.back_timeout),
        });
    }
    for tcp in list.tcp_listeners.values() {
        rows.push(ListenerRow {
            kind: ListenerType::Tcp,
            address: tcp.address.to_socket_addr(),
            active: tcp.active,
            public_address: tcp.public_address.map(|address| address.to_string()),
            expect_proxy: tcp.expect_proxy,
            sticky_name: String::new(),
            timeouts: (tcp.front_timeout, tcp.back_timeout),
        });
    }
    rows.sort_by_key(|row| (row.address, row.kind as i32));
    rows
}

/// A certificate served on a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRow {
    /// The listener serving it.
    pub address: String,
    /// The names it answers for.
    pub names: Vec<String>,
    /// SHA-256 of the leaf, hex.
    pub fingerprint: String,
    /// End of validity, unix seconds, when it could be read.
    pub not_after: Option<i64>,
}

/// One scope's metrics in a sample: a cluster's, with its backends.
#[derive(Debug, Clone, Default)]
pub struct ClusterSample {
    /// The cluster's own counters.
    pub counters: Counters,
    /// `cluster.available_backends`.
    pub available: Option<u64>,
    /// `cluster.total_backends`.
    pub total: Option<u64>,
    /// Each backend's counters and open connections.
    pub backends: HashMap<String, (Counters, Option<u64>)>,
}

/// One reading of the daemon's metrics, reduced to what the console shows.
#[derive(Debug, Clone, Default)]
pub struct MetricsSample {
    /// The whole proxy.
    pub proxy: Counters,
    /// Open client connections.
    pub connections: Option<u64>,
    /// Per cluster.
    pub clusters: HashMap<String, ClusterSample>,
    /// Per worker (by the daemon's worker key): counters and connections.
    pub workers: BTreeMap<String, (Counters, Option<u64>)>,
    /// Every proxy-wide HTTP/2 metric (`h2.*`, `http.alpn.h2`, …): its
    /// value and whether it is a gauge (a level) rather than a counter.
    pub h2: BTreeMap<String, (u64, bool)>,
    /// The main process's gauges (`configuration.*`).
    pub main: BTreeMap<String, u64>,
}

const CONNECTION_NAMES: [&str; 2] = ["client.connections", "http.active_requests"];
const BACKEND_CONNECTION_NAMES: [&str; 2] = ["connections", "connections_per_backend"];

fn first_number(metrics: &BTreeMap<String, FilteredMetrics>, names: &[&str]) -> Option<u64> {
    names
        .iter()
        .find_map(|name| metrics.get(*name).and_then(number))
}

impl MetricsSample {
    /// Reduces the aggregated answer and, when asked, the per-worker one.
    pub fn read(
        aggregated: &AggregatedMetrics,
        workers: Option<&BTreeMap<String, WorkerMetrics>>,
    ) -> MetricsSample {
        let mut clusters = HashMap::with_capacity(aggregated.clusters.len());
        for (cluster_id, cluster) in &aggregated.clusters {
            let backends = cluster
                .backends
                .iter()
                .map(|backend| {
                    (
                        backend.backend_id.clone(),
                        (
                            Counters::from_metrics(&backend.metrics),
                            first_number(&backend.metrics, &BACKEND_CONNECTION_NAMES),
                        ),
                    )
                })
                .collect();
            clusters.insert(
                cluster_id.clone(),
                ClusterSample {
                    counters: Counters::from_metrics(&cluster.cluster),
                    available: cluster
                        .cluster
                        .get("cluster.available_backends")
                        .and_then(number),
                    total: cluster
                        .cluster
                        .get("cluster.total_backends")
                        .and_then(number),
                    backends,
                },
            );
        }
        let h2 = aggregated
            .proxying
            .iter()
            .filter(|(name, _)| name.starts_with("h2.") || name.contains(".h2"))
            .filter_map(|(name, value)| Some((name.clone(), (number(value)?, is_gauge(value)))))
            .collect();
        let main = aggregated
            .main
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), number(value)?)))
            .collect();
        let workers = workers
            .map(|workers| {
                workers
                    .iter()
                    .map(|(id, metrics)| {
                        (
                            id.clone(),
                            (
                                Counters::from_metrics(&metrics.proxy),
                                first_number(&metrics.proxy, &CONNECTION_NAMES),
                            ),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        MetricsSample {
            proxy: Counters::from_metrics(&aggregated.proxying),
            connections: first_number(&aggregated.proxying, &CONNECTION_NAMES),
            clusters,
            workers,
            h2,
            main,
        }
    }
}

/// The metrics samples and everything computed over the window.
#[derive(Debug, Clone)]
pub struct Metrics {
    samples: Samples<Arc<MetricsSample>>,
    /// The whole proxy over the window.
    pub proxy: Option<Windowed>,
    /// Per cluster over the window.
    pub clusters: HashMap<String, Windowed>,
    /// Per backend (cluster, backend) over the window.
    pub backends: HashMap<(String, String), Windowed>,
    /// Per worker over the window.
    pub workers: BTreeMap<String, Windowed>,
    /// Per-second rate of each HTTP/2 counter over the window.
    pub h2_rates: BTreeMap<String, f64>,
    /// Requests per second between consecutive samples, oldest first.
    pub requests_history: VecDeque<u64>,
    /// 5xx answers per second between consecutive samples, oldest first.
    pub errors_history: VecDeque<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            samples: Samples::new(WINDOW),
            proxy: None,
            clusters: HashMap::new(),
            backends: HashMap::new(),
            workers: BTreeMap::new(),
            h2_rates: BTreeMap::new(),
            requests_history: VecDeque::new(),
            errors_history: VecDeque::new(),
        }
    }
}

impl Metrics {
    /// The newest sample.
    pub fn latest(&self) -> Option<&MetricsSample> {
        self.samples.newest().map(|(_, sample)| sample.as_ref())
    }

    /// How many samples the window holds (rates need two).
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// The span the current figures cover, once there are two samples.
    pub fn span(&self) -> Option<Duration> {
        self.samples
            .ends()
            .map(|((old, _), (new, _))| new.saturating_duration_since(*old))
    }

    /// Forgets the samples: the next two start a new window.
    pub fn restart(&mut self) {
        self.samples.restart();
        self.recompute();
    }

    /// Adds a sample and recomputes the windows.
    pub fn push(&mut self, at: Instant, sample: Arc<MetricsSample>) {
        if let Some((previous_at, previous)) = self.samples.newest() {
            let elapsed = at.saturating_duration_since(*previous_at);
            match Windowed::between(&previous.proxy, &sample.proxy, elapsed) {
                Some(step) => {
                    let errors = sample.proxy.errors.saturating_sub(previous.proxy.errors) as f64
                        / elapsed.as_secs_f64().max(f64::EPSILON);
                    push_bounded(
                        &mut self.requests_history,
                        step.requests_per_second.round() as u64,
                    );
                    push_bounded(&mut self.errors_history, errors.round() as u64);
                }
                None => {
                    // Counters went down: the daemon restarted.
                    self.samples.restart();
                }
            }
        }
        self.samples.push(at, sample);
        self.recompute();
    }

    fn recompute(&mut self) {
        self.clusters.clear();
        self.backends.clear();
        self.workers.clear();
        self.h2_rates.clear();
        let Some(((old_at, old), (new_at, new))) = self.samples.ends() else {
            self.proxy = None;
            return;
        };
        let elapsed = new_at.saturating_duration_since(*old_at);
        self.proxy = Windowed::between(&old.proxy, &new.proxy, elapsed);
        for (cluster_id, cluster) in &new.clusters {
            let Some(before) = old.clusters.get(cluster_id) else {
                continue;
            };
            if let Some(windowed) = Windowed::between(&before.counters, &cluster.counters, elapsed)
            {
                self.clusters.insert(cluster_id.clone(), windowed);
            }
            for (backend_id, (counters, _)) in &cluster.backends {
                let Some((old_counters, _)) = before.backends.get(backend_id) else {
                    continue;
                };
                if let Some(windowed) = Windowed::between(old_counters, counters, elapsed) {
                    self.backends
                        .insert((cluster_id.clone(), backend_id.clone()), windowed);
                }
            }
        }
        for (worker, (counters, _)) in &new.workers {
            if let Some((old_counters, _)) = old.workers.get(worker)
                && let Some(windowed) = Windowed::between(old_counters, counters, elapsed)
            {
                self.workers.insert(worker.clone(), windowed);
            }
        }
        let seconds = elapsed.as_secs_f64();
        if seconds > 0.0 {
            for (name, (value, gauge)) in &new.h2 {
                if !gauge
                    && let Some((before, _)) = old.h2.get(name)
                    && value >= before
                {
                    self.h2_rates
                        .insert(name.clone(), (value - before) as f64 / seconds);
                }
            }
        }
    }
}

fn push_bounded(history: &mut VecDeque<u64>, value: u64) {
    if history.len() == HISTORY_POINTS {
        history.pop_front();
    }
    history.push_back(value);
}

/// An event as the console keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum EventRow {
    /// An event from the daemon, with the time it arrived.
    Received(SystemTime, Event),
    /// The subscription was lost from the first time to the second: events
    /// of that span were not received.
    Gap(SystemTime, SystemTime),
}

/// Whether a backend is known up or down, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendState {
    /// Up (true) or down.
    pub up: bool,
    /// When the console learnt it.
    pub since: SystemTime,
}

/// Everything received from the daemon.
#[derive(Debug, Clone, Default)]
pub struct Data {
    /// The workers, by id.
    pub workers: Vec<WorkerInfo>,
    /// Listeners, sorted by address.
    pub listeners: Vec<ListenerRow>,
    /// Clusters with their frontends and backends, by id.
    pub clusters: Arc<BTreeMap<String, ClusterInformation>>,
    /// Certificates, by listener then names.
    pub certificates: Vec<CertificateRow>,
    /// Metrics and their windows.
    pub metrics: Metrics,
    /// Events, newest first.
    pub events: VecDeque<EventRow>,
    /// Backend states learnt from events, by (cluster, backend).
    pub backend_states: HashMap<(String, String), BackendState>,
    /// How each source is doing.
    pub sources: BTreeMap<SourceId, SourceHealth>,
    /// When the events subscription was lost, while it is.
    events_lost_at: Option<SystemTime>,
}

/// What a source reports.
#[derive(Debug, Clone)]
pub enum Update {
    /// The source answered; nothing changed since its last report.
    Unchanged,
    /// The workers.
    Workers(Vec<WorkerInfo>),
    /// A metrics reading.
    Metrics(Arc<MetricsSample>),
    /// Every cluster's details.
    Clusters(Arc<BTreeMap<String, ClusterInformation>>),
    /// The listeners.
    Listeners(Vec<ListenerRow>),
    /// The certificates.
    Certificates(Vec<CertificateRow>),
    /// An event.
    Event(SystemTime, Event),
    /// The source failed (connection lost, refused, timed out).
    Failed(String),
}

impl Data {
    /// Empty, every source not yet heard from.
    pub fn new() -> Data {
        let mut data = Data::default();
        for source in SourceId::ALL {
            data.sources.insert(source, SourceHealth::default());
        }
        data
    }

    /// Applies a source's report received at `at` (monotonic) / `wall`.
    pub fn apply(&mut self, source: SourceId, update: Update, at: Instant, wall: SystemTime) {
        let health = self.sources.entry(source).or_default();
        if let Update::Failed(error) = update {
            if health.failing.is_none() {
                health.failing = Some((wall, error));
                if source == SourceId::Events {
                    self.events_lost_at = Some(wall);
                }
            } else if let Some((_, reason)) = &mut health.failing {
                *reason = error;
            }
            return;
        }
        let was_failing = health.failing.take().is_some();
        health.last_ok = Some(at);
        if source == SourceId::Events
            && let Some(lost) = self.events_lost_at.take()
        {
            self.push_event(EventRow::Gap(lost, wall));
            // Transitions may have been missed: what events said is void.
            self.backend_states.clear();
        }
        match update {
            Update::Unchanged | Update::Failed(_) => {}
            Update::Workers(workers) => self.workers = workers,
            Update::Metrics(sample) => {
                if was_failing {
                    // The window would span the outage: start it again.
                    self.metrics.restart();
                }
                self.metrics.push(at, sample)
            }
            Update::Clusters(clusters) => self.clusters = clusters,
            Update::Listeners(listeners) => self.listeners = listeners,
            Update::Certificates(certificates) => self.certificates = certificates,
            Update::Event(time, event) => {
                self.learn_backend_state(time, &event);
                self.push_event(EventRow::Received(time, event));
            }
        }
    }

    fn push_event(&mut self, row: EventRow) {
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_back();
        }
        self.events.push_front(row);
    }

    fn learn_backend_state(&mut self, time: SystemTime, event: &Event) {
        let up = match EventKind::try_from(event.kind) {
            Ok(EventKind::BackendUp | EventKind::HealthCheckHealthy) => true,
            Ok(EventKind::BackendDown | EventKind::HealthCheckUnhealthy) => false,
            _ => return,
        };
        if let (Some(cluster), Some(backend)) = (&event.cluster_id, &event.backend_id) {
            self.backend_states.insert(
                (cluster.clone(), backend.clone()),
                BackendState { up, since: time },
            );
        }
    }

    /// The health of a source.
    pub fn source(&self, source: SourceId) -> SourceHealth {
        self.sources.get(&source).cloned().unwrap_or_default()
    }

    /// Sources failing now, with since when and why.
    pub fn failing(&self) -> Vec<(SourceId, SystemTime, String)> {
        self.sources
            .iter()
            .filter_map(|(source, health)| {
                health
                    .failing
                    .as_ref()
                    .map(|(since, why)| (*source, *since, why.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, backend: &str) -> Event {
        Event {
            kind: kind as i32,
            cluster_id: Some("web".to_owned()),
            backend_id: Some(backend.to_owned()),
            address: None,
            metric_detail: None,
        }
    }

    #[test]
    fn events_teach_backend_states_and_a_lost_subscription_leaves_a_gap() {
        let mut data = Data::new();
        let start = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |seconds: u64| wall + Duration::from_secs(seconds);
        data.apply(SourceId::Events, Update::Unchanged, start, at(0));
        data.apply(
            SourceId::Events,
            Update::Event(at(1), event(EventKind::BackendDown, "b1")),
            start,
            at(1),
        );
        let key = ("web".to_owned(), "b1".to_owned());
        assert!(!data.backend_states[&key].up);
        data.apply(
            SourceId::Events,
            Update::Failed("the daemon closed the event stream".to_owned()),
            start,
            at(5),
        );
        // A second failure keeps the first time.
        data.apply(
            SourceId::Events,
            Update::Failed("refused".to_owned()),
            start,
            at(6),
        );
        assert_eq!(data.failing()[0].1, at(5));
        assert_eq!(data.failing()[0].2, "refused");
        data.apply(SourceId::Events, Update::Unchanged, start, at(9));
        data.apply(
            SourceId::Events,
            Update::Event(at(10), event(EventKind::HealthCheckHealthy, "b1")),
            start,
            at(10),
        );
        assert!(data.backend_states[&key].up);
        assert!(data.failing().is_empty());
        assert_eq!(data.events.len(), 3);
        assert!(matches!(data.events[0], EventRow::Received(..)));
        assert_eq!(data.events[1], EventRow::Gap(at(5), at(9)));
    }

    #[test]
    fn events_are_bounded() {
        let mut data = Data::new();
        let now = Instant::now();
        for _ in 0..EVENTS_KEPT + 10 {
            data.apply(
                SourceId::Events,
                Update::Event(SystemTime::now(), event(EventKind::BackendUp, "b")),
                now,
                SystemTime::now(),
            );
        }
        assert_eq!(data.events.len(), EVENTS_KEPT);
    }
}
