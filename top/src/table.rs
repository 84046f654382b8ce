//! The rows of every tabular view, built from [`Data`]: the cells the view
//! prints, the values it sorts on, the warning level that colours a row,
//! and the thing a row stands for (what an action acts on).
//!
//! The app and the views build the same tables, so what is selected is
//! always what is shown.

use std::cmp::Ordering;
use std::time::SystemTime;

use sozu_command::proto::command::{
    AddBackend, EventKind, ListenerType, LoadBalancingAlgorithms, PathRuleKind,
    RequestHttpFrontend, RequestTcpFrontend, RunState,
};

use crate::data::{BackendState, Data, EventRow, ListenerRow};
use crate::format;
use crate::window::Windowed;

/// How a row is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing to say.
    Normal,
    /// Good news (a backend came back).
    Good,
    /// Needs a look soon (a certificate expiring in weeks, a backend of a
    /// cluster down).
    Warn,
    /// Wrong now (a backend down, a cluster without backends, an expired
    /// certificate, a worker not running).
    Bad,
}

/// A frontend, whichever its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Frontend {
    /// On an HTTP listener.
    Http(RequestHttpFrontend),
    /// On an HTTPS listener.
    Https(RequestHttpFrontend),
    /// On a TCP listener.
    Tcp(RequestTcpFrontend),
}

/// What a row stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum RowKey {
    /// A cluster, by id.
    Cluster(String),
    /// A backend.
    Backend(AddBackend),
    /// A frontend.
    Frontend(Frontend),
    /// A listener.
    Listener(ListenerRow),
    /// Anything no action applies to.
    Other,
}

impl RowKey {
    /// The cluster this row belongs to, for a drill-down.
    pub fn cluster(&self) -> Option<&str> {
        match self {
            RowKey::Cluster(id) => Some(id),
            RowKey::Backend(backend) => Some(&backend.cluster_id),
            RowKey::Frontend(Frontend::Http(front) | Frontend::Https(front)) => {
                front.cluster_id.as_deref()
            }
            RowKey::Frontend(Frontend::Tcp(front)) => Some(&front.cluster_id),
            RowKey::Listener(_) | RowKey::Other => None,
        }
    }
}

/// A value to sort on.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    /// Text, compared as is.
    Text(String),
    /// A number; unknown values sort first.
    Number(Option<f64>),
}

impl SortKey {
    fn compare(&self, other: &SortKey) -> Ordering {
        match (self, other) {
            (SortKey::Number(a), SortKey::Number(b)) => match (a, b) {
                (Some(a), Some(b)) => a.total_cmp(b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            },
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            (SortKey::Text(_), SortKey::Number(_)) => Ordering::Greater,
            (SortKey::Number(_), SortKey::Text(_)) => Ordering::Less,
        }
    }
}

/// A column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its header.
    pub title: &'static str,
    /// Its least width; the rest is shared among flexible columns.
    pub width: u16,
    /// Whether it takes a share of the spare width.
    pub flexible: bool,
}

const fn fixed(title: &'static str, width: u16) -> Column {
    Column {
        title,
        width,
        flexible: false,
    }
}

const fn flexible(title: &'static str, width: u16) -> Column {
    Column {
        title,
        width,
        flexible: true,
    }
}

/// A row.
#[derive(Debug, Clone)]
pub struct Row {
    /// One cell per column.
    pub cells: Vec<String>,
    /// One sort value per column.
    pub sort: Vec<SortKey>,
    /// Its colour.
    pub level: Level,
    /// What it stands for.
    pub key: RowKey,
}

impl Row {
    fn new(cells: Vec<(String, SortKey)>, level: Level, key: RowKey) -> Row {
        let (cells, sort) = cells.into_iter().unzip();
        Row {
            cells,
            sort,
            level,
            key,
        }
    }

    fn matches(&self, filter: &str) -> bool {
        filter.is_empty()
            || self
                .cells
                .iter()
                .any(|cell| cell.to_lowercase().contains(filter))
    }
}

/// A table to show.
#[derive(Debug, Clone)]
pub struct Table {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows, filtered and sorted.
    pub rows: Vec<Row>,
    /// Rows before filtering.
    pub total: usize,
    /// What to say when there is no row at all.
    pub empty: &'static str,
}

/// Sort order of a table: which column, which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    /// Column index.
    pub column: usize,
    /// Descending.
    pub reverse: bool,
}

/// The tables the console shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// Every cluster.
    Clusters,
    /// Backends, of every cluster or of one.
    Backends,
    /// Frontends, of every cluster or of one.
    Frontends,
    /// Listeners.
    Listeners,
    /// Certificates.
    Certificates,
    /// Workers.
    Workers,
    /// HTTP/2 counters.
    H2,
    /// Events.
    Events,
}

impl Table {
    /// Builds a table: `cluster` keeps one cluster's rows (a drill-down),
    /// `filter` keeps rows with a cell containing it (any case).
    pub fn build(
        kind: TableKind,
        data: &Data,
        cluster: Option<&str>,
        filter: &str,
        sort: Sort,
        now: SystemTime,
    ) -> Table {
        let (columns, rows, empty) = match kind {
            TableKind::Clusters => (CLUSTER_COLUMNS.to_vec(), clusters(data), "no cluster"),
            TableKind::Backends => (
                BACKEND_COLUMNS.to_vec(),
                backends(data, cluster),
                "no backend",
            ),
            TableKind::Frontends => (
                FRONTEND_COLUMNS.to_vec(),
                frontends(data, cluster),
                "no frontend",
            ),
            TableKind::Listeners => (LISTENER_COLUMNS.to_vec(), listeners(data), "no listener"),
            TableKind::Certificates => (
                CERTIFICATE_COLUMNS.to_vec(),
                certificates(data, now),
                "no certificate",
            ),
            TableKind::Workers => (WORKER_COLUMNS.to_vec(), workers(data), "no worker"),
            TableKind::H2 => (
                H2_COLUMNS.to_vec(),
                h2(data),
                "the daemon reports no HTTP/2 counter",
            ),
            TableKind::Events => (
                EVENT_COLUMNS.to_vec(),
                events(data),
                "no event received since the console started",
            ),
        };
        let total = rows.len();
        let filter = filter.to_lowercase();
        let mut rows: Vec<Row> = rows
            .into_iter()
            .filter(|row| row.matches(&filter))
            .collect();
        let column = sort.column.min(columns.len().saturating_sub(1));
        // Events keep their arrival order unless asked otherwise.
        if kind != TableKind::Events || sort != Sort::default() {
            rows.sort_by(|a, b| {
                let order = a.sort[column].compare(&b.sort[column]);
                if sort.reverse { order.reverse() } else { order }
            });
        }
        Table {
            columns,
            rows,
            total,
            empty,
        }
    }
}

fn text(value: impl Into<String>) -> (String, SortKey) {
    let value = value.into();
    (value.clone(), SortKey::Text(value))
}

fn num(shown: String, value: Option<f64>) -> (String, SortKey) {
    (shown, SortKey::Number(value))
}

fn windowed_cells(windowed: Option<&Windowed>) -> [(String, SortKey); 4] {
    let rps = windowed.map(|w| w.requests_per_second);
    let errors = windowed.and_then(|w| w.error_ratio);
    let p50 = windowed.and_then(|w| w.p50_ms);
    let p99 = windowed.and_then(|w| w.p99_ms);
    [
        num(format::rate(rps), rps),
        num(format::percent(errors), errors),
        num(format::latency(p50), p50.map(|v| v as f64)),
        num(format::latency(p99), p99.map(|v| v as f64)),
    ]
}

/// Error share above which a row is a warning, and above which it is bad.
const ERRORS_WARN: f64 = 0.01;
const ERRORS_BAD: f64 = 0.05;

fn errors_level(windowed: Option<&Windowed>) -> Level {
    match windowed.and_then(|w| w.error_ratio) {
        Some(ratio) if ratio >= ERRORS_BAD => Level::Bad,
        Some(ratio) if ratio >= ERRORS_WARN => Level::Warn,
        _ => Level::Normal,
    }
}

const CLUSTER_COLUMNS: [Column; 9] = [
    flexible("CLUSTER", 12),
    fixed("FRONT", 5),
    fixed("BACKENDS", 8),
    fixed("REQ/S", 7),
    fixed("5XX", 5),
    fixed("P50", 7),
    fixed("P99", 7),
    fixed("OUT/S", 9),
    fixed("POLICY", 12),
];

fn policy(value: i32) -> String {
    LoadBalancingAlgorithms::try_from(value)
        .map(|policy| policy.as_str_name().to_lowercase())
        .unwrap_or_else(|_| value.to_string())
}

fn clusters(data: &Data) -> Vec<Row> {
    let sample = data.metrics.latest();
    data.clusters
        .iter()
        .map(|(id, information)| {
            let frontends = information.http_frontends.len()
                + information.https_frontends.len()
                + information.tcp_frontends.len();
            let total = information.backends.len() as u64;
            let gauges = sample.and_then(|sample| sample.clusters.get(id));
            let available = gauges.and_then(|cluster| cluster.available);
            let windowed = data.metrics.clusters.get(id);
            let mut level = errors_level(windowed);
            let backends = match available {
                Some(available) => {
                    if total > 0 && available == 0 {
                        level = Level::Bad;
                    } else if available < total {
                        level = level.max(Level::Warn);
                    }
                    format!("{}/{}", available.min(total), total)
                }
                None => format!("?/{total}"),
            };
            let out = windowed.map(|w| w.bytes_out_per_second);
            let [rps, errors, p50, p99] = windowed_cells(windowed);
            let configuration = information.configuration.as_ref();
            Row::new(
                vec![
                    text(id.clone()),
                    num(frontends.to_string(), Some(frontends as f64)),
                    num(backends, Some(total as f64)),
                    rps,
                    errors,
                    p50,
                    p99,
                    num(format::throughput(out), out),
                    text(configuration.map_or("-".to_owned(), |c| policy(c.load_balancing))),
                ],
                level,
                RowKey::Cluster(id.clone()),
            )
        })
        .collect()
}

const BACKEND_COLUMNS: [Column; 9] = [
    flexible("CLUSTER", 10),
    flexible("BACKEND", 10),
    fixed("ADDRESS", 21),
    fixed("STATE", 6),
    fixed("WEIGHT", 6),
    fixed("CONNS", 5),
    fixed("REQ/S", 6),
    fixed("5XX", 5),
    fixed("P99", 7),
];

/// What the console knows of a backend's health: the last event about
/// it, unless the cluster's gauges say every backend is available now.
pub fn backend_state(data: &Data, backend: &AddBackend) -> (&'static str, Level) {
    let key = (backend.cluster_id.clone(), backend.backend_id.clone());
    let gauges = data
        .metrics
        .latest()
        .and_then(|sample| sample.clusters.get(&backend.cluster_id))
        .and_then(|cluster| Some((cluster.available?, cluster.total?)));
    let all_up = gauges.is_some_and(|(available, total)| available >= total);
    match data.backend_states.get(&key) {
        _ if all_up => ("UP", Level::Normal),
        Some(BackendState { up: true, .. }) => ("UP", Level::Normal),
        Some(BackendState { up: false, .. }) => ("DOWN", Level::Bad),
        // Some backend of the cluster is down; which one was said before
        // the console started.
        None if gauges.is_some() => ("?", Level::Warn),
        None => ("?", Level::Normal),
    }
}

fn backends(data: &Data, only: Option<&str>) -> Vec<Row> {
    let sample = data.metrics.latest();
    let mut rows = Vec::new();
    for (cluster_id, information) in data.clusters.iter() {
        if only.is_some_and(|only| only != cluster_id) {
            continue;
        }
        for backend in &information.backends {
            let (state, state_level) = backend_state(data, backend);
            let windowed = data
                .metrics
                .backends
                .get(&(cluster_id.clone(), backend.backend_id.clone()));
            let connections = sample
                .and_then(|sample| sample.clusters.get(cluster_id))
                .and_then(|cluster| cluster.backends.get(&backend.backend_id))
                .and_then(|(_, connections)| *connections);
            let weight = backend
                .load_balancing_parameters
                .map_or(100, |parameters| parameters.weight);
            let weight_text = if backend.backup == Some(true) {
                format!("{weight} b")
            } else {
                weight.to_string()
            };
            let address = match &backend.unix_path {
                Some(path) if !path.is_empty() => path.clone(),
                _ => backend.address.to_string(),
            };
            let [rps, errors, _p50, p99] = windowed_cells(windowed);
            rows.push(Row::new(
                vec![
                    text(cluster_id.clone()),
                    text(backend.backend_id.clone()),
                    text(address),
                    text(state),
                    num(weight_text, Some(f64::from(weight))),
                    num(
                        connections.map_or("-".to_owned(), |c| c.to_string()),
                        connections.map(|c| c as f64),
                    ),
                    rps,
                    errors,
                    p99,
                ],
                state_level.max(errors_level(windowed)),
                RowKey::Backend(backend.clone()),
            ));
        }
    }
    rows
}

const FRONTEND_COLUMNS: [Column; 7] = [
    fixed("KIND", 5),
    fixed("ADDRESS", 21),
    flexible("HOSTNAME", 14),
    flexible("PATH", 8),
    fixed("METHOD", 6),
    flexible("CLUSTER", 10),
    fixed("POSITION", 8),
];

fn path_text(front: &RequestHttpFrontend) -> String {
    let value = &front.path.value;
    match PathRuleKind::try_from(front.path.kind) {
        Ok(PathRuleKind::Prefix) if value.is_empty() => "/*".to_owned(),
        Ok(PathRuleKind::Prefix) => format!("{value}*"),
        Ok(PathRuleKind::Regex) => format!("~{value}"),
        Ok(PathRuleKind::Equals) => format!("={value}"),
        Err(_) => value.clone(),
    }
}

fn frontends(data: &Data, only: Option<&str>) -> Vec<Row> {
    let mut rows = Vec::new();
    for (cluster_id, information) in data.clusters.iter() {
        if only.is_some_and(|only| only != cluster_id) {
            continue;
        }
        let http = information
            .http_frontends
            .iter()
            .map(|front| ("http", Frontend::Http(front.clone())));
        let https = information
            .https_frontends
            .iter()
            .map(|front| ("https", Frontend::Https(front.clone())));
        for (kind, frontend) in http.chain(https) {
            let (Frontend::Http(front) | Frontend::Https(front)) = &frontend else {
                continue;
            };
            let position = sozu_command::proto::command::RulePosition::try_from(front.position)
                .map(|position| position.as_str_name().to_lowercase())
                .unwrap_or_default();
            rows.push(Row::new(
                vec![
                    text(kind),
                    text(front.address.to_string()),
                    text(front.hostname.clone()),
                    text(path_text(front)),
                    text(front.method.clone().unwrap_or_else(|| "*".to_owned())),
                    text(front.cluster_id.clone().unwrap_or_else(|| "-".to_owned())),
                    text(position),
                ],
                Level::Normal,
                RowKey::Frontend(frontend.clone()),
            ));
        }
        for front in &information.tcp_frontends {
            rows.push(Row::new(
                vec![
                    text("tcp"),
                    text(front.address.to_string()),
                    text(front.sni.clone().unwrap_or_else(|| "-".to_owned())),
                    text("-"),
                    text("-"),
                    text(front.cluster_id.clone()),
                    text("-"),
                ],
                Level::Normal,
                RowKey::Frontend(Frontend::Tcp(front.clone())),
            ));
        }
    }
    rows
}

const LISTENER_COLUMNS: [Column; 7] = [
    fixed("KIND", 5),
    fixed("ADDRESS", 21),
    fixed("STATE", 8),
    flexible("PUBLIC", 12),
    fixed("PROXY", 5),
    flexible("STICKY", 8),
    fixed("TIMEOUTS", 9),
];

/// The name of a listener kind, lower case.
pub fn listener_kind(kind: ListenerType) -> &'static str {
    match kind {
        ListenerType::Http => "http",
        ListenerType::Https => "https",
        ListenerType::Tcp => "tcp",
        ListenerType::Udp => "udp",
    }
}

fn listeners(data: &Data) -> Vec<Row> {
    data.listeners
        .iter()
        .map(|listener| {
            Row::new(
                vec![
                    text(listener_kind(listener.kind)),
                    text(listener.address.to_string()),
                    text(if listener.active {
                        "active"
                    } else {
                        "inactive"
                    }),
                    text(listener.public_address.clone().unwrap_or_default()),
                    text(if listener.expect_proxy { "yes" } else { "no" }),
                    text(listener.sticky_name.clone()),
                    text(format!("{}s/{}s", listener.timeouts.0, listener.timeouts.1)),
                ],
                if listener.active {
                    Level::Normal
                } else {
                    Level::Warn
                },
                RowKey::Listener(listener.clone()),
            )
        })
        .collect()
}

const CERTIFICATE_COLUMNS: [Column; 5] = [
    fixed("LISTENER", 21),
    flexible("NAMES", 16),
    fixed("FINGERPRINT", 16),
    fixed("EXPIRES", 10),
    fixed("LEFT", 7),
];

/// Days of validity left under which a certificate is a warning, and under
/// which it is an emergency.
pub const CERTIFICATE_WARN_DAYS: i64 = 30;
/// See [`CERTIFICATE_WARN_DAYS`].
pub const CERTIFICATE_BAD_DAYS: i64 = 7;

fn certificates(data: &Data, now: SystemTime) -> Vec<Row> {
    data.certificates
        .iter()
        .map(|certificate| {
            let left = certificate
                .not_after
                .map(|not_after| format::days_left(not_after, now));
            let level = match left {
                Some(days) if days < CERTIFICATE_BAD_DAYS => Level::Bad,
                Some(days) if days < CERTIFICATE_WARN_DAYS => Level::Warn,
                _ => Level::Normal,
            };
            let left_text = match left {
                Some(days) if days < 0 => "expired".to_owned(),
                Some(days) => format!("{days}d"),
                None => "-".to_owned(),
            };
            Row::new(
                vec![
                    text(certificate.address.clone()),
                    text(certificate.names.join(" ")),
                    text(certificate.fingerprint.chars().take(16).collect::<String>()),
                    num(
                        certificate.not_after.map_or("-".to_owned(), format::date),
                        certificate.not_after.map(|n| n as f64),
                    ),
                    num(left_text, left.map(|d| d as f64)),
                ],
                level,
                RowKey::Other,
            )
        })
        .collect()
}

const WORKER_COLUMNS: [Column; 7] = [
    fixed("WORKER", 6),
    fixed("PID", 8),
    flexible("STATE", 13),
    fixed("REQ/S", 7),
    fixed("CONNS", 6),
    fixed("5XX", 5),
    fixed("P99", 7),
];

fn workers(data: &Data) -> Vec<Row> {
    let sample = data.metrics.latest();
    data.workers
        .iter()
        .map(|worker| {
            let key = worker.id.to_string();
            let state = RunState::try_from(worker.run_state)
                .map(|state| state.as_str_name().to_lowercase().replace('_', " "))
                .unwrap_or_else(|_| worker.run_state.to_string());
            let windowed = data.metrics.workers.get(&key);
            let connections = sample
                .and_then(|sample| sample.workers.get(&key))
                .and_then(|(_, connections)| *connections);
            let [rps, errors, _p50, p99] = windowed_cells(windowed);
            Row::new(
                vec![
                    num(key, Some(f64::from(worker.id))),
                    num(worker.pid.to_string(), Some(f64::from(worker.pid))),
                    text(state),
                    rps,
                    num(
                        connections.map_or("-".to_owned(), |c| c.to_string()),
                        connections.map(|c| c as f64),
                    ),
                    errors,
                    p99,
                ],
                if worker.run_state == RunState::Running as i32 {
                    errors_level(windowed)
                } else {
                    Level::Bad
                },
                RowKey::Other,
            )
        })
        .collect()
}

const H2_COLUMNS: [Column; 3] = [
    flexible("METRIC", 30),
    fixed("VALUE", 12),
    fixed("PER SECOND", 10),
];

fn h2(data: &Data) -> Vec<Row> {
    let Some(sample) = data.metrics.latest() else {
        return Vec::new();
    };
    sample
        .h2
        .iter()
        .map(|(name, (value, gauge))| {
            let rate = data.metrics.h2_rates.get(name).copied();
            Row::new(
                vec![
                    text(name.clone()),
                    num(value.to_string(), Some(*value as f64)),
                    if *gauge {
                        text("(level)")
                    } else {
                        num(format::rate(rate), rate)
                    },
                ],
                Level::Normal,
                RowKey::Other,
            )
        })
        .collect()
}

const EVENT_COLUMNS: [Column; 5] = [
    fixed("TIME (UTC)", 19),
    fixed("EVENT", 33),
    flexible("CLUSTER", 10),
    flexible("BACKEND", 10),
    fixed("ADDRESS", 21),
];

fn event_level(kind: i32) -> Level {
    match EventKind::try_from(kind) {
        Ok(
            EventKind::BackendDown
            | EventKind::NoAvailableBackends
            | EventKind::HealthCheckUnhealthy
            | EventKind::WorkerKilled,
        ) => Level::Bad,
        Ok(EventKind::BackendUp | EventKind::HealthCheckHealthy | EventKind::ClusterRecovered) => {
            Level::Good
        }
        _ => Level::Normal,
    }
}

fn events(data: &Data) -> Vec<Row> {
    data.events
        .iter()
        .map(|row| match row {
            EventRow::Received(at, event) => {
                let unix = format::unix_seconds(*at);
                let kind = EventKind::try_from(event.kind)
                    .map(|kind| kind.as_str_name().to_owned())
                    .unwrap_or_else(|_| format!("kind {}", event.kind));
                Row::new(
                    vec![
                        num(format::date_time(unix), Some(unix as f64)),
                        text(kind),
                        text(event.cluster_id.clone().unwrap_or_default()),
                        text(event.backend_id.clone().unwrap_or_default()),
                        text(
                            event
                                .address
                                .map(|address| address.to_string())
                                .unwrap_or_default(),
                        ),
                    ],
                    event_level(event.kind),
                    RowKey::Other,
                )
            }
            EventRow::Gap(lost, back) => {
                let unix = format::unix_seconds(*back);
                Row::new(
                    vec![
                        num(format::date_time(unix), Some(unix as f64)),
                        text("(SUBSCRIPTION LOST)"),
                        text(format!(
                            "missed {}-{}",
                            format::clock(*lost),
                            format::clock(*back)
                        )),
                        text(""),
                        text(""),
                    ],
                    Level::Warn,
                    RowKey::Other,
                )
            }
        })
        .collect()
}
