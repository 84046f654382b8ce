//! Process-wide settings of a proxy server.

use std::sync::Arc;
use std::time::Duration;

use sozu_command::proto::command::{MetricDetail, ServerConfig, ServerMetricsConfig};

/// Settings that apply to every listener and cluster of one server.
///
/// Listener and cluster settings travel in their own requests; these are the
/// ones that do not belong to any of them. [`ProxyOptions::default`] gives
/// Sozu's defaults.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Name used for this server in events and metrics (a worker id, or any
    /// name an embedder likes).
    pub name: String,
    /// Most client connections open at once; further ones wait in the
    /// kernel's accept queue.
    pub max_connections: usize,
    /// Backend connection attempts per request (the first included) before
    /// answering 503, unless a cluster sets its own.
    pub max_connection_attempts: u32,
    /// Most simultaneous connections from one client IP to one cluster;
    /// 0 means no limit.
    pub max_connections_per_ip: u64,
    /// `Retry-After` seconds sent with 429 answers.
    pub retry_after: u32,
    /// Largest request or response head accepted, in bytes.
    pub max_header_size: usize,
    /// How long a soft stop waits for in-flight work before closing
    /// whatever is left.
    pub soft_stop_deadline: Duration,
    /// Bytes buffered per direction of a TCP session (Sozu's
    /// `buffer_size`): what one read moves, and what a session holds in
    /// memory twice for as long as it lives.
    pub buffer_size: usize,
    /// HTTP/1.1 relay buffers (of `buffer_size` bytes) allocated when the
    /// server starts.
    pub min_buffers: usize,
    /// Most idle relay buffers kept for reuse; beyond, buffers given back
    /// are freed.
    pub max_buffers: usize,
    /// Capacity asked for the pipes that splice relayed bodies between
    /// plain TCP sockets (`splice_pipe_capacity_bytes`); 1 MiB (or
    /// `pipe-max-size` when lower) when `None`.
    pub splice_pipe_capacity: Option<usize>,
    /// What a `logging` request does: the program that owns the process's
    /// log output changes its filter. Without it (the default) the server
    /// refuses `logging` requests rather than acknowledge and ignore them.
    pub log_filter: Option<LogFilter>,
    /// Where and how to send StatsD lines; `None` sends none.
    pub statsd: Option<StatsdOptions>,
}

/// The StatsD target of a server (Sozu's `[metrics]` `address`,
/// `tagged_metrics`, `prefix`, `detail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsdOptions {
    /// UDP address the lines are sent to.
    pub address: std::net::SocketAddr,
    /// Tags (`name,origin=…,cluster_id=…:1|c`) instead of dotted names.
    pub tagged: bool,
    /// First part of every name; Sozu's default is `sozu`.
    pub prefix: String,
    /// Which lines are sent: proxy-wide only, with clusters, or with
    /// backends too.
    pub detail: StatsdDetail,
}

/// `metrics.detail`, as far as StatsD lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatsdDetail {
    /// Proxy-wide lines only (`process` and `frontend`: this proxy has no
    /// per-frontend counters).
    Process,
    /// Proxy-wide and per-cluster lines (Sozu's default).
    Cluster,
    /// Proxy-wide, per-cluster and per-backend lines.
    Backend,
}

/// Changes the log filter of the program embedding a server, given the
/// filter a `logging` request names (`info`, `sozu_proxy=debug`, …); an
/// error says why the filter was not applied.
#[derive(Clone)]
pub struct LogFilter(pub Arc<SetLogFilter>);

/// The function behind a [`LogFilter`].
pub type SetLogFilter = dyn Fn(&str) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for LogFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogFilter")
    }
}

/// Sozu's default `buffer_size`.
const DEFAULT_BUFFER_SIZE: usize = 16_393;

/// Bounds of `buffer_size`: below 1 KiB, copies turn into system call
/// storms; above 1 MiB, a few thousand sessions take gigabytes.
const BUFFER_SIZE_RANGE: std::ops::RangeInclusive<usize> = 1024..=1 << 20;

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            name: "proxy".to_owned(),
            max_connections: 10_000,
            max_connection_attempts: 5,
            max_connections_per_ip: 0,
            retry_after: 60,
            max_header_size: 64 * 1024,
            soft_stop_deadline: Duration::from_secs(60),
            buffer_size: DEFAULT_BUFFER_SIZE,
            min_buffers: 1,
            max_buffers: 1_000,
            splice_pipe_capacity: None,
            log_filter: None,
            statsd: None,
        }
    }
}

impl ProxyOptions {
    /// The options a worker derives from the configuration's `ServerConfig`.
    pub fn from_server_config(name: impl Into<String>, config: &ServerConfig) -> Self {
        ProxyOptions {
            name: name.into(),
            max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
            max_connection_attempts: config.max_connection_attempts.unwrap_or(5).max(1),
            max_connections_per_ip: config.max_connections_per_ip.unwrap_or(0),
            retry_after: config.retry_after.unwrap_or(60),
            buffer_size: usize::try_from(config.buffer_size)
                .unwrap_or(usize::MAX)
                .clamp(*BUFFER_SIZE_RANGE.start(), *BUFFER_SIZE_RANGE.end()),
            // Two buffers per client connection: more than two per
            // connection allowed would only ever sit idle.
            max_buffers: clamp_count(config.max_buffers, config.max_connections),
            min_buffers: clamp_count(config.min_buffers, config.max_connections)
                .min(clamp_count(config.max_buffers, config.max_connections)),
            statsd: config.metrics.as_ref().and_then(statsd_options),
            splice_pipe_capacity: config
                .splice_pipe_capacity_bytes
                .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX)),
            ..ProxyOptions::default()
        }
    }
}

/// A buffer count from the configuration, at most two per connection.
fn clamp_count(count: u64, max_connections: u64) -> usize {
    let cap = max_connections.saturating_mul(2).max(2);
    usize::try_from(count.min(cap)).unwrap_or(usize::MAX)
}

/// The StatsD options of `[metrics]`; `None` when its address does not
/// parse (the configuration loader refuses such a file before).
fn statsd_options(metrics: &ServerMetricsConfig) -> Option<StatsdOptions> {
    let address = metrics.address.parse().ok()?;
    let detail = match metrics.detail.and_then(|d| MetricDetail::try_from(d).ok()) {
        Some(MetricDetail::DetailProcess | MetricDetail::DetailFrontend) => StatsdDetail::Process,
        Some(MetricDetail::DetailBackend) => StatsdDetail::Backend,
        Some(MetricDetail::DetailCluster) | None => StatsdDetail::Cluster,
    };
    Some(StatsdOptions {
        address,
        tagged: metrics.tagged_metrics,
        prefix: metrics.prefix.clone().unwrap_or_else(|| "sozu".to_owned()),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_size_comes_from_the_configuration_within_bounds() {
        let config = |buffer_size| ServerConfig {
            buffer_size,
            ..Default::default()
        };
        assert_eq!(ServerConfig::default().buffer_size, 16_393);
        let options = |buffer_size| ProxyOptions::from_server_config("w", &config(buffer_size));
        assert_eq!(options(16_393).buffer_size, 16_393);
        assert_eq!(options(65_536).buffer_size, 65_536);
        assert_eq!(options(0).buffer_size, 1024);
        assert_eq!(options(u64::MAX).buffer_size, 1 << 20);
    }
}
