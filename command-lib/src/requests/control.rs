//! Requests to the main process and its workers: status, stops, upgrades,
//! logging, reloads, events, state files, metrics and connection limits.

use std::path::Path;

use crate::proto::command::{
    CountRequests, HardStop, ListWorkers, MetricsConfiguration, QueryMaxConnectionsPerIp,
    QueryMetricsOptions, Request, SoftStop, Status, SubscribeEvents, UpgradeMain,
    request::RequestType,
};

/// `status`: the state of every worker.
pub fn status() -> Request {
    RequestType::Status(Status {}).into()
}

/// The workers the main process knows (used around upgrades).
pub fn list_workers() -> Request {
    RequestType::ListWorkers(ListWorkers {}).into()
}

/// `shutdown`: stop accepting, let connections finish, then exit.
pub fn soft_stop() -> Request {
    RequestType::SoftStop(SoftStop {}).into()
}

/// `shutdown --hard`: exit now.
pub fn hard_stop() -> Request {
    RequestType::HardStop(HardStop {}).into()
}

/// `upgrade`: replace the main process binary.
pub fn upgrade_main() -> Request {
    RequestType::UpgradeMain(UpgradeMain {}).into()
}

/// `upgrade --worker ID`: replace one worker.
pub fn upgrade_worker(worker_id: u32) -> Request {
    RequestType::UpgradeWorker(worker_id).into()
}

/// `logging FILTER`: change the log filter of every process.
pub fn logging(filter: &str) -> Request {
    RequestType::Logging(filter.to_owned()).into()
}

/// `reload [-f FILE]`: apply a configuration file; `None` reloads the file
/// the daemon was started with (sent as an empty path, as Sozu does).
pub fn reload_configuration(path: Option<&Path>) -> Request {
    let path = path
        .map(|path| path.to_string_lossy().into_owned())
        .unwrap_or_default();
    RequestType::ReloadConfiguration(path).into()
}

/// `events`: subscribe to the event stream. The daemon never sends a final
/// answer to this request: every event is a PROCESSING answer.
pub fn subscribe_events() -> Request {
    RequestType::SubscribeEvents(SubscribeEvents {}).into()
}

/// `state save -f FILE`. The daemon resolves a relative path against its
/// own working directory, so callers should pass an absolute one.
pub fn save_state(path: &Path) -> Request {
    RequestType::SaveState(path.to_string_lossy().into_owned()).into()
}

/// `state load -f FILE`. As for [`save_state`], pass an absolute path.
pub fn load_state(path: &Path) -> Request {
    RequestType::LoadState(path.to_string_lossy().into_owned()).into()
}

/// `state stats`: how many requests of each kind the daemon received.
pub fn count_requests() -> Request {
    RequestType::CountRequests(CountRequests {}).into()
}

// ---------------------------------------------------------------------------
// Metrics and limits

/// `metrics enable|disable|clear`.
pub fn configure_metrics(configuration: MetricsConfiguration) -> Request {
    RequestType::ConfigureMetrics(configuration as i32).into()
}

/// `metrics get`: what to ask for. Empty lists mean "everything".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsQuery {
    /// Only list the names of the available metrics.
    pub list: bool,
    /// Metric names to keep.
    pub names: Vec<String>,
    /// Cluster ids to keep.
    pub cluster_ids: Vec<String>,
    /// Backend ids to keep.
    pub backend_ids: Vec<String>,
    /// Leave cluster metrics out.
    pub no_clusters: bool,
    /// Keep each worker's metrics apart instead of merging them.
    pub workers: bool,
}

/// `metrics get …`.
pub fn query_metrics(query: &MetricsQuery) -> Request {
    RequestType::QueryMetrics(QueryMetricsOptions {
        list: query.list,
        cluster_ids: query.cluster_ids.clone(),
        backend_ids: query.backend_ids.clone(),
        metric_names: query.names.clone(),
        no_clusters: query.no_clusters,
        workers: query.workers,
    })
    .into()
}

/// `connection-limit set N` (`0` lifts the limit, as `remove` does).
pub fn set_max_connections_per_ip(limit: u64) -> Request {
    RequestType::SetMaxConnectionsPerIp(limit).into()
}

/// `connection-limit show`.
pub fn query_max_connections_per_ip() -> Request {
    RequestType::QueryMaxConnectionsPerIp(QueryMaxConnectionsPerIp {}).into()
}
