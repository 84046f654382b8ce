//! Human rendering of response contents: boxed tables sized to their content.
//!
//! This is the second renderer of the same values the JSON output prints
//! whole; it chooses columns and order for reading, never data. Contents it
//! has no table for are shown as indented JSON rather than dropped.

use std::collections::BTreeMap;

use prettytable::format::{FormatBuilder, LinePosition, LineSeparator, TableFormat};
use prettytable::{Cell, Row, Table};
use sozu_command::certificate;
use sozu_command::proto::command::{
    AddBackend, AggregatedMetrics, AvailableMetrics, CertificatesWithFingerprints, ClusterHashes,
    ClusterInformation, ClusterMetrics, Event, EventKind, FilteredMetrics, HealthCheckMode,
    HealthChecksList, ListOfCertificatesByAddress, ListedFrontends, ListenersList,
    LoadBalancingAlgorithms, PathRule, PathRuleKind, ProxyProtocolConfig, RequestCounts,
    RequestHttpFrontend, RequestTcpFrontend, RunState, TlsVersion, WorkerInfos, WorkerResponses,
    filtered_metrics::Inner, response_content::ContentType,
};

use crate::output::Block;

/// Box characters around the table and under the titles, none between rows,
/// so long listings stay compact.
fn boxed() -> TableFormat {
    FormatBuilder::new()
        .column_separator('│')
        .borders('│')
        .separators(&[LinePosition::Top], LineSeparator::new('─', '┬', '┌', '┐'))
        .separators(
            &[LinePosition::Title],
            LineSeparator::new('─', '┼', '├', '┤'),
        )
        .separators(
            &[LinePosition::Bottom],
            LineSeparator::new('─', '┴', '└', '┘'),
        )
        .padding(1, 1)
        .build()
}

/// A table with bold column titles, boxed.
pub fn table(titles: &[&str]) -> Table {
    let mut table = Table::new();
    table.set_format(boxed());
    table.set_titles(Row::new(
        titles
            .iter()
            .map(|title| Cell::new(title).style_spec("b"))
            .collect(),
    ));
    table
}

/// Adds a row of text cells.
pub fn add_row<S: AsRef<str>>(table: &mut Table, cells: &[S]) {
    table.add_row(Row::new(
        cells.iter().map(|cell| Cell::new(cell.as_ref())).collect(),
    ));
}

/// The tables for one response content.
pub fn content(content: &ContentType) -> Vec<Block> {
    match content {
        ContentType::Workers(workers) => vec![Block::Table(workers_table(workers))],
        ContentType::ListenersList(list) => listeners(list),
        ContentType::FrontendList(list) => frontends(list),
        ContentType::WorkerResponses(responses) => worker_responses(responses),
        ContentType::Clusters(clusters) => clusters
            .vec
            .iter()
            .flat_map(|information| cluster_information(information, None))
            .collect(),
        ContentType::ClusterHashes(hashes) => {
            let mut by_worker = BTreeMap::new();
            by_worker.insert("main".to_owned(), hashes);
            vec![Block::Table(cluster_hashes(&by_worker))]
        }
        ContentType::CertificatesWithFingerprints(certificates)
            if certificates.certs.is_empty() =>
        {
            vec![Block::Text("no certificates".to_owned())]
        }
        ContentType::CertificatesWithFingerprints(certificates) => {
            vec![Block::Table(certificates_table(certificates))]
        }
        ContentType::CertificatesByAddress(certificates) => {
            vec![Block::Table(certificates_by_address(certificates))]
        }
        ContentType::RequestCounts(counts) => vec![Block::Table(request_counts(counts))],
        ContentType::Metrics(metrics) => aggregated_metrics(metrics),
        ContentType::AvailableMetrics(available) => {
            vec![Block::Table(available_metrics(available))]
        }
        ContentType::HealthChecksList(list) if list.map.is_empty() => {
            vec![Block::Text("no health checks".to_owned())]
        }
        ContentType::HealthChecksList(list) => vec![Block::Table(health_checks(list))],
        ContentType::MaxConnectionsPerIpLimit(limit) => vec![Block::Text(match limit.limit {
            0 => "connections per (cluster, source IP): unlimited".to_owned(),
            limit => format!("connections per (cluster, source IP): at most {limit}"),
        })],
        ContentType::Event(event) => vec![Block::Text(event_line("", event))],
        ContentType::ClosedSessions(closed) => vec![Block::Text(format!(
            "{} sessions closed, {} draining",
            closed.closed, closed.draining
        ))],
        other => vec![Block::Text(
            serde_json::to_string_pretty(other).unwrap_or_default(),
        )],
    }
}

fn enum_name<T: TryFrom<i32>>(value: i32, name: impl Fn(&T) -> &'static str) -> String {
    T::try_from(value)
        .map(|known| name(&known).to_owned())
        .unwrap_or_else(|_| format!("unknown ({value})"))
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// `status`: one row per worker, by id.
pub fn workers_table(workers: &WorkerInfos) -> Table {
    let mut table = table(&["worker", "pid", "run state"]);
    let mut sorted = workers.vec.clone();
    sorted.sort_by_key(|worker| worker.id);
    for worker in &sorted {
        add_row(
            &mut table,
            &[
                worker.id.to_string(),
                worker.pid.to_string(),
                enum_name::<RunState>(worker.run_state, RunState::as_str_name),
            ],
        );
    }
    table
}

fn versions_text(versions: &[i32]) -> String {
    versions
        .iter()
        .map(|version| match TlsVersion::try_from(*version) {
            Ok(TlsVersion::TlsV12) => "TLSv1.2".to_owned(),
            Ok(TlsVersion::TlsV13) => "TLSv1.3".to_owned(),
            Ok(TlsVersion::TlsV11) => "TLSv1.1".to_owned(),
            Ok(TlsVersion::TlsV10) => "TLSv1.0".to_owned(),
            Ok(other) => other.as_str_name().to_owned(),
            Err(_) => format!("unknown ({version})"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `listener list`: one table per kind that has listeners.
pub fn listeners(list: &ListenersList) -> Vec<Block> {
    let mut blocks = Vec::new();
    let public = |address: &Option<sozu_command::proto::command::SocketAddress>| {
        address
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "-".to_owned())
    };
    let timeouts = |front: u32, back: u32, connect: u32, request: Option<u32>| match request {
        Some(request) => format!("{front}/{back}/{connect}/{request}"),
        None => format!("{front}/{back}/{connect}"),
    };
    if !list.http_listeners.is_empty() {
        let mut http = table(&[
            "HTTP listener",
            "public address",
            "active",
            "expect proxy",
            "sticky name",
            "timeouts front/back/connect/request (s)",
        ]);
        for (address, listener) in &list.http_listeners {
            add_row(
                &mut http,
                &[
                    address.clone(),
                    public(&listener.public_address),
                    yes_no(listener.active).to_owned(),
                    yes_no(listener.expect_proxy).to_owned(),
                    listener.sticky_name.clone(),
                    timeouts(
                        listener.front_timeout,
                        listener.back_timeout,
                        listener.connect_timeout,
                        Some(listener.request_timeout),
                    ),
                ],
            );
        }
        blocks.push(Block::Table(http));
    }
    if !list.https_listeners.is_empty() {
        let mut https = table(&[
            "HTTPS listener",
            "public address",
            "active",
            "expect proxy",
            "sticky name",
            "TLS versions",
            "ALPN",
            "timeouts front/back/connect/request (s)",
        ]);
        for (address, listener) in &list.https_listeners {
            add_row(
                &mut https,
                &[
                    address.clone(),
                    public(&listener.public_address),
                    yes_no(listener.active).to_owned(),
                    yes_no(listener.expect_proxy).to_owned(),
                    listener.sticky_name.clone(),
                    versions_text(&listener.versions),
                    listener.alpn_protocols.join(", "),
                    timeouts(
                        listener.front_timeout,
                        listener.back_timeout,
                        listener.connect_timeout,
                        Some(listener.request_timeout),
                    ),
                ],
            );
        }
        blocks.push(Block::Table(https));
    }
    if !list.tcp_listeners.is_empty() {
        let mut tcp = table(&[
            "TCP listener",
            "public address",
            "active",
            "expect proxy",
            "timeouts front/back/connect (s)",
        ]);
        for (address, listener) in &list.tcp_listeners {
            add_row(
                &mut tcp,
                &[
                    address.clone(),
                    public(&listener.public_address),
                    yes_no(listener.active).to_owned(),
                    yes_no(listener.expect_proxy).to_owned(),
                    timeouts(
                        listener.front_timeout,
                        listener.back_timeout,
                        listener.connect_timeout,
                        None,
                    ),
                ],
            );
        }
        blocks.push(Block::Table(tcp));
    }
    if blocks.is_empty() {
        blocks.push(Block::Text("no listeners".to_owned()));
    }
    blocks
}

/// A path rule as people write it: `/api` (prefix), `~ ^/v[0-9]` (regex),
/// `= /health` (exact), `*` for every path.
pub fn path_text(path: &PathRule) -> String {
    match PathRuleKind::try_from(path.kind) {
        Ok(PathRuleKind::Prefix) if path.value.is_empty() => "*".to_owned(),
        Ok(PathRuleKind::Prefix) => path.value.clone(),
        Ok(PathRuleKind::Regex) => format!("~ {}", path.value),
        Ok(PathRuleKind::Equals) => format!("= {}", path.value),
        Err(_) => format!("? {}", path.value),
    }
}

fn tags_text(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn http_frontends_table(title: &str, frontends: &[RequestHttpFrontend]) -> Table {
    let mut table = table(&[title, "hostname", "path", "method", "cluster", "tags"]);
    for frontend in frontends {
        add_row(
            &mut table,
            &[
                frontend.address.to_string(),
                frontend.hostname.clone(),
                path_text(&frontend.path),
                frontend.method.clone().unwrap_or_else(|| "*".to_owned()),
                frontend
                    .cluster_id
                    .clone()
                    .unwrap_or_else(|| "(deny)".to_owned()),
                tags_text(&frontend.tags),
            ],
        );
    }
    table
}

fn tcp_frontends_table(frontends: &[RequestTcpFrontend]) -> Table {
    let mut table = table(&["TCP frontend", "SNI", "ALPN", "cluster", "tags"]);
    for frontend in frontends {
        add_row(
            &mut table,
            &[
                frontend.address.to_string(),
                frontend.sni.clone().unwrap_or_else(|| "*".to_owned()),
                frontend.alpn.join(", "),
                frontend.cluster_id.clone(),
                tags_text(&frontend.tags),
            ],
        );
    }
    table
}

/// `frontend list`: one table per kind that has frontends.
pub fn frontends(list: &ListedFrontends) -> Vec<Block> {
    let mut blocks = Vec::new();
    if !list.http_frontends.is_empty() {
        blocks.push(Block::Table(http_frontends_table(
            "HTTP frontend",
            &list.http_frontends,
        )));
    }
    if !list.https_frontends.is_empty() {
        blocks.push(Block::Table(http_frontends_table(
            "HTTPS frontend",
            &list.https_frontends,
        )));
    }
    if !list.tcp_frontends.is_empty() {
        blocks.push(Block::Table(tcp_frontends_table(&list.tcp_frontends)));
    }
    if blocks.is_empty() {
        blocks.push(Block::Text("no frontends".to_owned()));
    }
    blocks
}

fn backends_table(backends: &[AddBackend]) -> Table {
    let mut table = table(&["backend", "address", "weight", "sticky id", "backup"]);
    for backend in backends {
        let weight = backend
            .load_balancing_parameters
            .map(|parameters| parameters.weight.to_string())
            .unwrap_or_else(|| "-".to_owned());
        add_row(
            &mut table,
            &[
                backend.backend_id.clone(),
                backend.address.to_string(),
                weight,
                backend.sticky_id.clone().unwrap_or_else(|| "-".to_owned()),
                yes_no(backend.backup.unwrap_or(false)).to_owned(),
            ],
        );
    }
    table
}

/// One cluster: its settings, frontends and backends. `workers` names the
/// workers that answered with exactly this view.
pub fn cluster_information(information: &ClusterInformation, workers: Option<&str>) -> Vec<Block> {
    let mut blocks = Vec::new();
    let Some(cluster) = &information.configuration else {
        return vec![Block::Text("a cluster without configuration".to_owned())];
    };
    let mut settings = table(&["cluster", &cluster.cluster_id]);
    let mut setting = |name: &str, value: String| add_row(&mut settings, &[name, &value]);
    setting(
        "load balancing",
        enum_name::<LoadBalancingAlgorithms>(cluster.load_balancing, |policy| policy.as_str_name()),
    );
    setting("sticky session", yes_no(cluster.sticky_session).to_owned());
    setting("https redirect", yes_no(cluster.https_redirect).to_owned());
    if let Some(port) = cluster.https_redirect_port {
        setting("https redirect port", port.to_string());
    }
    if let Some(protocol) = cluster.proxy_protocol {
        setting(
            "proxy protocol",
            enum_name::<ProxyProtocolConfig>(protocol, |p| p.as_str_name()),
        );
    }
    if let Some(http2) = cluster.http2 {
        setting("http2", yes_no(http2).to_owned());
    }
    if !cluster.answers.is_empty() {
        let codes: Vec<&str> = cluster.answers.keys().map(String::as_str).collect();
        setting("answers", codes.join(", "));
    }
    if let Some(attempts) = cluster.max_connection_attempts {
        setting("max connection attempts", attempts.to_string());
    }
    if let Some(check) = &cluster.health_check {
        setting("health check", health_check_text(check));
    }
    if let Some(workers) = workers {
        setting("answered by", workers.to_owned());
    }
    blocks.push(Block::Table(settings));
    if !information.http_frontends.is_empty() {
        blocks.push(Block::Table(http_frontends_table(
            "HTTP frontend",
            &information.http_frontends,
        )));
    }
    if !information.https_frontends.is_empty() {
        blocks.push(Block::Table(http_frontends_table(
            "HTTPS frontend",
            &information.https_frontends,
        )));
    }
    if !information.tcp_frontends.is_empty() {
        blocks.push(Block::Table(tcp_frontends_table(
            &information.tcp_frontends,
        )));
    }
    if !information.backends.is_empty() {
        blocks.push(Block::Table(backends_table(&information.backends)));
    }
    blocks
}

/// `cluster list`: one row per cluster, one hash column per worker.
pub fn cluster_hashes(by_worker: &BTreeMap<String, &ClusterHashes>) -> Table {
    let workers: Vec<&String> = by_worker.keys().collect();
    let mut titles = vec!["cluster".to_owned()];
    titles.extend(workers.iter().map(|worker| format!("hash on {worker}")));
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    let mut table = table(&titles);
    let mut clusters: Vec<&String> = by_worker
        .values()
        .flat_map(|hashes| hashes.map.keys())
        .collect();
    clusters.sort();
    clusters.dedup();
    for cluster in clusters {
        let mut row = vec![cluster.clone()];
        for worker in &workers {
            row.push(
                by_worker[*worker]
                    .map
                    .get(cluster)
                    .map(|hash| hash.to_string())
                    .unwrap_or_else(|| "missing".to_owned()),
            );
        }
        add_row(&mut table, &row);
    }
    table
}

/// Answers gathered from every worker: cluster views are merged where the
/// workers agree; other contents are shown per worker.
pub fn worker_responses(responses: &WorkerResponses) -> Vec<Block> {
    let hashes: BTreeMap<String, &ClusterHashes> = responses
        .map
        .iter()
        .filter_map(|(worker, content)| match &content.content_type {
            Some(ContentType::ClusterHashes(hashes)) => Some((worker.clone(), hashes)),
            _ => None,
        })
        .collect();
    if !hashes.is_empty() && hashes.len() == responses.map.len() {
        if hashes.values().all(|hashes| hashes.map.is_empty()) {
            return vec![Block::Text("no clusters".to_owned())];
        }
        return vec![Block::Table(cluster_hashes(&hashes))];
    }
    // Cluster views: the same view from several workers is shown once.
    let mut views: Vec<(&ClusterInformation, Vec<&str>)> = Vec::new();
    let mut others = Vec::new();
    for (worker, content) in &responses.map {
        match &content.content_type {
            Some(ContentType::Clusters(clusters)) => {
                for information in &clusters.vec {
                    match views.iter_mut().find(|(view, _)| *view == information) {
                        Some((_, workers)) => workers.push(worker),
                        None => views.push((information, vec![worker])),
                    }
                }
            }
            other => others.push((worker, other.as_ref())),
        }
    }
    let mut blocks = Vec::new();
    for (information, workers) in &views {
        blocks.extend(cluster_information(information, Some(&workers.join(", "))));
    }
    for (worker, content) in others {
        match content {
            Some(content) => {
                blocks.push(Block::Text(format!("{worker}:")));
                blocks.extend(self::content(content));
            }
            None => blocks.push(Block::Text(format!("{worker}: no content"))),
        }
    }
    if blocks.is_empty() {
        // Every worker answered, with no cluster: the query matched nothing.
        let text = if responses.map.is_empty() {
            "no answer from any worker"
        } else {
            "no cluster matches"
        };
        blocks.push(Block::Text(text.to_owned()));
    }
    blocks
}

/// `certificate list`: fingerprint, names, TLS versions, expiry.
pub fn certificates_table(certificates: &CertificatesWithFingerprints) -> Table {
    let mut table = table(&["fingerprint", "names", "TLS versions", "valid until"]);
    for (fingerprint, certificate) in &certificates.certs {
        let info = certificate::certificate_info(&certificate.certificate).ok();
        let names = if certificate.names.is_empty() {
            info.as_ref()
                .map(|info| info.names.join(", "))
                .unwrap_or_default()
        } else {
            certificate.names.join(", ")
        };
        let until = info
            .as_ref()
            .map(|info| format_unix_date(info.not_after))
            .unwrap_or_else(|| "?".to_owned());
        add_row(
            &mut table,
            &[
                fingerprint.clone(),
                names,
                versions_text(&certificate.versions),
                until,
            ],
        );
    }
    table
}

/// `certificate list -w`: per worker, the certificates of each listener.
pub fn certificates_by_address(certificates: &ListOfCertificatesByAddress) -> Table {
    let mut table = table(&["listener", "domain", "fingerprint"]);
    for by_address in &certificates.certificates {
        for summary in &by_address.certificate_summaries {
            add_row(
                &mut table,
                &[
                    by_address.address.to_string(),
                    summary.domain.clone(),
                    summary.fingerprint.clone(),
                ],
            );
        }
    }
    table
}

/// A unix time as `YYYY-MM-DD` (UTC).
///
/// Times outside the years -9999 to 9999 (which no certificate carries)
/// print as the number of seconds.
pub fn format_unix_date(seconds: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(moment) => format!(
            "{:04}-{:02}-{:02}",
            moment.year(),
            u8::from(moment.month()),
            moment.day()
        ),
        Err(_) => seconds.to_string(),
    }
}

/// `state stats`: requests received by kind, most frequent first.
pub fn request_counts(counts: &RequestCounts) -> Table {
    let mut table = table(&["request", "count"]);
    let mut sorted: Vec<(&String, &i32)> = counts.map.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (kind, count) in sorted {
        add_row(&mut table, &[kind.clone(), count.to_string()]);
    }
    table
}

/// One metric value, readable.
pub fn metric_text(metric: &FilteredMetrics) -> String {
    match &metric.inner {
        Some(Inner::Gauge(value)) => value.to_string(),
        Some(Inner::Count(value)) => value.to_string(),
        Some(Inner::Time(value)) => format!("{value} ms"),
        Some(Inner::Percentiles(p)) => format!(
            "n={} p50={} p90={} p99={} p99.9={} max={}",
            p.samples, p.p_50, p.p_90, p.p_99, p.p_99_9, p.p_100
        ),
        Some(Inner::TimeSerie(serie)) => format!("last second: {}", serie.last_second),
        Some(Inner::Histogram(histogram)) => {
            format!("count={} sum={}", histogram.count, histogram.sum)
        }
        None => "-".to_owned(),
    }
}

fn metrics_table(title: &str, metrics: &BTreeMap<String, FilteredMetrics>) -> Table {
    let mut table = table(&[title, "value"]);
    for (name, metric) in metrics {
        add_row(&mut table, &[name.clone(), metric_text(metric)]);
    }
    table
}

fn cluster_metrics(cluster_id: &str, metrics: &ClusterMetrics, blocks: &mut Vec<Block>) {
    if !metrics.cluster.is_empty() {
        blocks.push(Block::Table(metrics_table(
            &format!("cluster {cluster_id}"),
            &metrics.cluster,
        )));
    }
    if !metrics.backends.is_empty() {
        let mut table = table(&[&format!("backend of {cluster_id}"), "metric", "value"]);
        for backend in &metrics.backends {
            for (name, metric) in &backend.metrics {
                add_row(
                    &mut table,
                    &[
                        backend.backend_id.clone(),
                        name.clone(),
                        metric_text(metric),
                    ],
                );
            }
        }
        blocks.push(Block::Table(table));
    }
}

/// `metrics get`: the main process, the proxies, then each cluster.
pub fn aggregated_metrics(metrics: &AggregatedMetrics) -> Vec<Block> {
    let mut blocks = Vec::new();
    if !metrics.main.is_empty() {
        blocks.push(Block::Table(metrics_table("main process", &metrics.main)));
    }
    if !metrics.proxying.is_empty() {
        blocks.push(Block::Table(metrics_table("proxy", &metrics.proxying)));
    }
    for (worker, worker_metrics) in &metrics.workers {
        if !worker_metrics.proxy.is_empty() {
            blocks.push(Block::Table(metrics_table(
                &format!("worker {worker}"),
                &worker_metrics.proxy,
            )));
        }
        for (cluster_id, cluster) in &worker_metrics.clusters {
            cluster_metrics(
                &format!("{cluster_id} on worker {worker}"),
                cluster,
                &mut blocks,
            );
        }
    }
    for (cluster_id, cluster) in &metrics.clusters {
        cluster_metrics(cluster_id, cluster, &mut blocks);
    }
    if blocks.is_empty() {
        blocks.push(Block::Text("no metrics".to_owned()));
    }
    blocks
}

/// `metrics get --list`.
pub fn available_metrics(available: &AvailableMetrics) -> Table {
    let mut table = table(&["proxy metrics", "cluster metrics"]);
    let rows = available
        .proxy_metrics
        .len()
        .max(available.cluster_metrics.len());
    for index in 0..rows {
        let cell = |list: &Vec<String>| list.get(index).cloned().unwrap_or_default();
        add_row(
            &mut table,
            &[
                cell(&available.proxy_metrics),
                cell(&available.cluster_metrics),
            ],
        );
    }
    table
}

fn health_check_text(check: &sozu_command::proto::command::HealthCheckConfig) -> String {
    let mode = match HealthCheckMode::try_from(check.mode) {
        Ok(HealthCheckMode::Tcp) => "tcp".to_owned(),
        _ => format!("http {}", check.uri),
    };
    format!(
        "{mode} every {}s, timeout {}s, up after {}, down after {}",
        check.interval, check.timeout, check.healthy_threshold, check.unhealthy_threshold
    )
}

/// `cluster health-check list`.
pub fn health_checks(list: &HealthChecksList) -> Table {
    let mut table = table(&["cluster", "health check", "accepted statuses", "port"]);
    for (cluster_id, check) in &list.map {
        let statuses = if !check.accepted_statuses.is_empty() {
            check
                .accepted_statuses
                .iter()
                .map(|range| match range.start == range.end {
                    true => range.start.to_string(),
                    false => format!("{}-{}", range.start, range.end),
                })
                .collect::<Vec<_>>()
                .join(", ")
        } else if check.expected_status != 0 {
            check.expected_status.to_string()
        } else {
            "2xx".to_owned()
        };
        add_row(
            &mut table,
            &[
                cluster_id.clone(),
                health_check_text(check),
                statuses,
                check
                    .port
                    .map(|port| port.to_string())
                    .unwrap_or_else(|| "backend's".to_owned()),
            ],
        );
    }
    table
}

/// One event on one line: `worker: KIND cluster=… backend=… address=…`.
pub fn event_line(worker: &str, event: &Event) -> String {
    let kind = enum_name::<EventKind>(event.kind, EventKind::as_str_name);
    let mut line = if worker.is_empty() {
        kind
    } else {
        format!("{worker}: {kind}")
    };
    if let Some(cluster_id) = &event.cluster_id {
        line.push_str(&format!(" cluster={cluster_id}"));
    }
    if let Some(backend_id) = &event.backend_id {
        line.push_str(&format!(" backend={backend_id}"));
    }
    if let Some(address) = &event.address {
        line.push_str(&format!(" address={address}"));
    }
    line
}

#[cfg(test)]
mod tests;
