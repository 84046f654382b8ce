//! A console filled with realistic data, as the sources would report it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sozu_command::proto::command::filtered_metrics::Inner;
use sozu_command::proto::command::{
    AddBackend, AggregatedMetrics, BackendMetrics, Bucket, Cluster, ClusterInformation,
    ClusterMetrics, Event, EventKind, FilteredHistogram, FilteredMetrics, ListenerType,
    LoadBalancingParams, PathRule, PathRuleKind, RequestHttpFrontend, RequestTcpFrontend,
    RulePosition, RunState, SocketAddress, WorkerInfo, WorkerMetrics,
};
use sozu_top::app::{App, Settings, ViewId};
use sozu_top::data::{CertificateRow, ListenerRow, MetricsSample, SourceId, Update};

/// The wall clock the tests pretend it is: 2026-12-02 12:00:00 UTC.
pub fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_764_676_800 + 365 * 86_400)
}

pub fn settings(read_only: bool) -> Settings {
    Settings {
        socket: "/run/sozu/sozu.sock".to_owned(),
        refresh_ms: 1000,
        read_only,
        color: true,
    }
}

pub fn address(port: u16) -> SocketAddress {
    SocketAddress::from(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

pub fn cluster_id(index: usize) -> String {
    format!("app{index:03}")
}

/// Cluster `index`: two backends (the second of cluster 1 down), an HTTP
/// and an HTTPS frontend; cluster 0 also has a TCP frontend.
pub fn cluster(index: usize) -> ClusterInformation {
    let id = cluster_id(index);
    let front = |https: bool| RequestHttpFrontend {
        cluster_id: Some(id.clone()),
        address: address(if https { 8443 } else { 8080 }),
        hostname: format!("{id}.example.com"),
        path: PathRule {
            kind: PathRuleKind::Prefix as i32,
            value: "/".to_owned(),
        },
        position: RulePosition::Tree as i32,
        ..Default::default()
    };
    let backend = |n: usize| AddBackend {
        cluster_id: id.clone(),
        backend_id: format!("{id}-b{n}"),
        address: address(9000 + (index * 2 + n) as u16),
        load_balancing_parameters: Some(LoadBalancingParams { weight: 100 }),
        ..Default::default()
    };
    ClusterInformation {
        configuration: Some(Cluster {
            cluster_id: id.clone(),
            ..Default::default()
        }),
        http_frontends: vec![front(false)],
        https_frontends: vec![front(true)],
        tcp_frontends: if index == 0 {
            vec![RequestTcpFrontend {
                cluster_id: id.clone(),
                address: address(5432),
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
        backends: vec![backend(0), backend(1)],
        udp_frontends: Vec::new(),
    }
}

fn count(value: u64) -> FilteredMetrics {
    FilteredMetrics {
        inner: Some(Inner::Count(value as i64)),
    }
}

fn gauge(value: u64) -> FilteredMetrics {
    FilteredMetrics {
        inner: Some(Inner::Gauge(value)),
    }
}

fn histogram(buckets: &[(u64, u64)]) -> FilteredMetrics {
    FilteredMetrics {
        inner: Some(Inner::Histogram(FilteredHistogram {
            sum: 0,
            count: buckets.last().map_or(0, |(_, count)| *count),
            buckets: buckets
                .iter()
                .map(|(le, count)| Bucket {
                    le: *le,
                    count: *count,
                })
                .collect(),
        })),
    }
}

/// Traffic counters after `requests` requests, `errors` of them 5xx, the
/// slow ones (<= 63 ms) being `slow`.
fn traffic(requests: u64, errors: u64, slow: u64) -> BTreeMap<String, FilteredMetrics> {
    let mut metrics = BTreeMap::new();
    metrics.insert("requests".to_owned(), count(requests));
    metrics.insert("http.requests".to_owned(), count(requests));
    metrics.insert("http.status.2xx".to_owned(), count(requests - errors));
    metrics.insert("http.status.5xx".to_owned(), count(errors));
    metrics.insert("bytes_in".to_owned(), count(requests * 200));
    metrics.insert("bytes_out".to_owned(), count(requests * 2000));
    metrics.insert(
        "service_time_histogram".to_owned(),
        histogram(&[(1, requests - slow), (63, requests)]),
    );
    metrics
}

/// The aggregated metrics of `clusters` clusters after `round` rounds of
/// traffic: each round, 100 requests per cluster; cluster 1 answers 5xx
/// to half of them.
pub fn metrics(clusters: usize, round: u64) -> MetricsSample {
    let mut aggregated = AggregatedMetrics::default();
    let mut total = (0, 0);
    for index in 0..clusters {
        let requests = 100 * round;
        let errors = if index == 1 { requests / 2 } else { 0 };
        total.0 += requests;
        total.1 += errors;
        let mut cluster = traffic(requests, errors, 0);
        cluster.insert("cluster.total_backends".to_owned(), gauge(2));
        cluster.insert(
            "cluster.available_backends".to_owned(),
            gauge(if index == 1 { 1 } else { 2 }),
        );
        let backends = (0..2)
            .map(|n| {
                let mut metrics = traffic(requests / 2, errors / 2, 0);
                metrics.insert("connections".to_owned(), gauge(n as u64 + 1));
                BackendMetrics {
                    backend_id: format!("{}-b{n}", cluster_id(index)),
                    metrics,
                }
            })
            .collect();
        aggregated
            .clusters
            .insert(cluster_id(index), ClusterMetrics { cluster, backends });
    }
    aggregated.proxying = traffic(total.0, total.1, total.0 / 50);
    aggregated
        .proxying
        .insert("client.connections".to_owned(), gauge(57));
    aggregated
        .proxying
        .insert("h2.frames.rx.headers".to_owned(), count(round * 30));
    let mut workers = BTreeMap::new();
    for worker in 0..2u64 {
        let mut proxy = traffic(total.0 / 2, total.1 / 2, 0);
        proxy.insert("client.connections".to_owned(), gauge(20 + worker));
        workers.insert(
            worker.to_string(),
            WorkerMetrics {
                proxy,
                clusters: Default::default(),
            },
        );
    }
    MetricsSample::read(&aggregated, Some(&workers))
}

pub fn listeners() -> Vec<ListenerRow> {
    let row = |kind, port, active| ListenerRow {
        kind,
        address: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        active,
        public_address: None,
        expect_proxy: false,
        sticky_name: "SOZUBALANCEID".to_owned(),
        timeouts: (60, 30),
    };
    vec![
        row(ListenerType::Http, 8080, true),
        row(ListenerType::Https, 8443, true),
        row(ListenerType::Tcp, 5432, false),
    ]
}

pub fn certificates() -> Vec<CertificateRow> {
    let now = sozu_top::format::unix_seconds(wall());
    let row = |name: &str, days: i64, fingerprint: char| CertificateRow {
        address: "127.0.0.1:8443".to_owned(),
        names: vec![name.to_owned()],
        fingerprint: std::iter::repeat_n(fingerprint, 64).collect(),
        not_after: Some(now + days * 86_400 + 3600),
    };
    vec![
        row("soon.example.com", 3, 'a'),
        row("month.example.com", 20, 'b'),
        row("fine.example.com", 300, 'c'),
    ]
}

pub fn workers() -> Vec<WorkerInfo> {
    vec![
        WorkerInfo {
            id: 0,
            pid: 4100,
            run_state: RunState::Running as i32,
        },
        WorkerInfo {
            id: 1,
            pid: 4101,
            run_state: RunState::NotAnswering as i32,
        },
    ]
}

pub fn event(kind: EventKind, cluster: Option<&str>, backend: Option<&str>) -> Event {
    Event {
        kind: kind as i32,
        cluster_id: cluster.map(str::to_owned),
        backend_id: backend.map(str::to_owned),
        address: None,
        metric_detail: None,
    }
}

/// A console that received everything, with `clusters` clusters and two
/// metrics samples ten seconds apart.
pub fn populated(clusters: usize, view: ViewId) -> (App, Instant) {
    let mut app = App::new(settings(false), view);
    let start = Instant::now();
    let wall = wall();
    let all: BTreeMap<String, ClusterInformation> = (0..clusters)
        .map(|index| (cluster_id(index), cluster(index)))
        .collect();
    app.report(
        SourceId::Clusters,
        Update::Clusters(Arc::new(all)),
        start,
        wall,
    );
    app.report(
        SourceId::Listeners,
        Update::Listeners(listeners()),
        start,
        wall,
    );
    app.report(
        SourceId::Certificates,
        Update::Certificates(certificates()),
        start,
        wall,
    );
    app.report(SourceId::Workers, Update::Workers(workers()), start, wall);
    app.report(
        SourceId::Metrics,
        Update::Metrics(Arc::new(metrics(clusters, 1))),
        start,
        wall,
    );
    let later = start + Duration::from_secs(10);
    app.report(
        SourceId::Metrics,
        Update::Metrics(Arc::new(metrics(clusters, 2))),
        later,
        wall,
    );
    let app1 = cluster_id(1);
    app.report(
        SourceId::Events,
        Update::Event(
            wall,
            event(
                EventKind::BackendDown,
                Some(&app1),
                Some(&format!("{app1}-b1")),
            ),
        ),
        later,
        wall,
    );
    app.report(
        SourceId::Events,
        Update::Event(
            wall,
            event(EventKind::ClusterAdded, Some(&cluster_id(0)), None),
        ),
        later,
        wall,
    );
    (app, later)
}
