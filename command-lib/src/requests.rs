//! The requests a client sends, built from values it has already parsed.
//!
//! Every program that drives a daemon (the `sozu` command line, the console,
//! scripts written in Rust) builds its requests here, so that the same order
//! is always the same bytes on the wire. The values match what Sozu 2.3.3's
//! command line sends for the same command, field for field: frontends are
//! sent with position TREE, a backend without an explicit weight carries
//! `weight: 0`, certificates travel with an empty `names` list (the daemon
//! fills it), fingerprints travel as lowercase hex.
//!
//! Functions that only wrap values are infallible. Functions that read files
//! (certificates, keys, answer templates) or interpret text (tags, TLS
//! versions, fingerprints, `code=body` answers) check everything before a
//! request exists and fail with a [`RequestError`] that names the field; a
//! command line maps that field to its flag.
//!
//! Nothing here knows about argument parsers, terminals or sockets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::certificate::{self, CertificateError, Fingerprint, ParsedCertificate};
use crate::config::{
    Config, DEFAULT_ALPN_PROTOCOLS, DEFAULT_BACK_TIMEOUT, DEFAULT_CIPHER_LIST,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_FRONT_TIMEOUT, DEFAULT_GROUPS_LIST, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SEND_TLS13_TICKETS, DEFAULT_SIGNATURE_ALGORITHMS, DEFAULT_STICKY_NAME,
};
use crate::proto::command::{
    ActivateListener, AddBackend, AddCertificate, CertificateAndKey, Cluster, CountRequests,
    CustomHttpAnswers, DeactivateListener, ForwardedHeaders, FrontendFilters, HardStop,
    HealthCheckConfig, HstsConfig, HttpListenerConfig, HttpStatusRange, HttpsListenerConfig,
    ListListeners, ListWorkers, ListenerType, LoadBalancingAlgorithms, LoadBalancingParams,
    MetricsConfiguration, PathRule, PathRuleKind, ProxyProtocolConfig, QueryCertificatesFilters,
    QueryClusterByDomain, QueryClustersHashes, QueryHealthChecks, QueryMaxConnectionsPerIp,
    QueryMetricsOptions, RemoveBackend, RemoveCertificate, RemoveListener, ReplaceCertificate,
    Request, RequestHttpFrontend, RequestTcpFrontend, RulePosition, SetHealthCheck, SoftStop,
    Status, SubscribeEvents, TcpListenerConfig, TlsVersion, UpdateHttpListenerConfig,
    UpdateHttpsListenerConfig, UpdateTcpListenerConfig, UpgradeMain, request::RequestType,
};

/// A TCP listener's `sni_preread_timeout` when not given, seconds.
pub const DEFAULT_SNI_PREREAD_TIMEOUT: u32 = 5;
/// A TCP listener's `sni_preread_max_bytes` when not given.
pub const DEFAULT_SNI_PREREAD_MAX_BYTES: u32 = 16_384;

/// Why a request could not be built. Nothing was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A file named by the request could not be read.
    #[error("could not read the {field} file {}: {source}", path.display())]
    ReadFile {
        /// Which input the file was for (`certificate`, `key`, `answer`, …).
        field: &'static str,
        /// The path as given.
        path: PathBuf,
        /// What the system reported.
        #[source]
        source: std::io::Error,
    },
    /// Certificate material was refused before sending.
    #[error("{field}: {source}")]
    Certificate {
        /// Which input was wrong (`certificate`, `certificate_chain`, `key`,
        /// `fingerprint`).
        field: &'static str,
        /// What was wrong with it.
        #[source]
        source: CertificateError,
    },
    /// A value cannot be used.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, named as the protocol names it.
        field: &'static str,
        /// What is wrong and, where it helps, what was expected.
        reason: String,
    },
}

impl RequestError {
    /// The field the error is about, as the protocol names it; callers map
    /// it to their own vocabulary (a command line flag, a form field).
    pub fn field(&self) -> &'static str {
        match self {
            RequestError::ReadFile { field, .. }
            | RequestError::Certificate { field, .. }
            | RequestError::Invalid { field, .. } => field,
        }
    }

    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        RequestError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

fn read_text(field: &'static str, path: &Path) -> Result<String, RequestError> {
    std::fs::read_to_string(path).map_err(|source| RequestError::ReadFile {
        field,
        path: path.to_owned(),
        source,
    })
}

// ---------------------------------------------------------------------------
// The main process and its workers

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

// ---------------------------------------------------------------------------
// Clusters

/// Which clusters `cluster list` asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterQuery {
    /// Every cluster, as a hash per cluster.
    All,
    /// One cluster in full.
    Id(String),
    /// The clusters a hostname (and optionally a path) routes to.
    Domain {
        /// The exact hostname of the frontends.
        hostname: String,
        /// The exact path value of the frontends, starting with `/`.
        path: Option<String>,
    },
}

impl ClusterQuery {
    /// `HOST` or `HOST/PATH`, as `cluster list -d` takes it: the part after
    /// the first `/` is the path, sent with its leading `/`.
    pub fn domain(text: &str) -> Result<Self, RequestError> {
        let (hostname, path) = match text.split_once('/') {
            Some((hostname, path)) => (hostname, Some(format!("/{path}"))),
            None => (text, None),
        };
        if hostname.is_empty() {
            return Err(RequestError::invalid(
                "hostname",
                "the domain is empty; expected HOST or HOST/PATH",
            ));
        }
        Ok(ClusterQuery::Domain {
            hostname: hostname.to_owned(),
            path,
        })
    }
}

/// `cluster list`, `cluster list -i ID` or `cluster list -d HOST[/PATH]`.
pub fn query_clusters(query: &ClusterQuery) -> Request {
    match query {
        ClusterQuery::All => query_clusters_hashes(),
        ClusterQuery::Id(cluster_id) => query_cluster_by_id(cluster_id),
        ClusterQuery::Domain { hostname, path } => {
            RequestType::QueryClustersByDomain(QueryClusterByDomain {
                hostname: hostname.clone(),
                path: path.clone(),
            })
            .into()
        }
    }
}

/// A hash of each cluster's configuration, per worker.
pub fn query_clusters_hashes() -> Request {
    RequestType::QueryClustersHashes(QueryClustersHashes {}).into()
}

/// One cluster's full configuration, per worker.
pub fn query_cluster_by_id(cluster_id: &str) -> Request {
    RequestType::QueryClusterById(cluster_id.to_owned()).into()
}

/// Everything `cluster add` can set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The cluster id.
    pub cluster_id: String,
    /// How requests are spread over backends.
    pub load_balancing: LoadBalancingAlgorithms,
    /// Keep a client on the same backend with a cookie.
    pub sticky_session: bool,
    /// Redirect plain HTTP requests to HTTPS.
    pub https_redirect: bool,
    /// The port of the redirect's `Location`, when not the listener's.
    pub https_redirect_port: Option<u16>,
    /// Send a PROXY protocol header to backends.
    pub send_proxy: bool,
    /// Expect a PROXY protocol header from clients (TCP clusters).
    pub expect_proxy: bool,
    /// Speak HTTP/2 to backends.
    pub http2: bool,
    /// Answer templates by status code, already loaded (see
    /// [`answer_entry`]).
    pub answers: BTreeMap<String, String>,
    /// `WWW-Authenticate` realm of 401 answers.
    pub www_authenticate: Option<String>,
    /// `user:hex(sha256(password))` credentials.
    pub authorized_hashes: Vec<String>,
    /// Backend connection attempts per request (1 to 255).
    pub max_connection_attempts: Option<u32>,
}

impl ClusterSettings {
    /// A cluster with that id and policy and every option off.
    pub fn new(cluster_id: impl Into<String>, load_balancing: LoadBalancingAlgorithms) -> Self {
        ClusterSettings {
            cluster_id: cluster_id.into(),
            load_balancing,
            sticky_session: false,
            https_redirect: false,
            https_redirect_port: None,
            send_proxy: false,
            expect_proxy: false,
            http2: false,
            answers: BTreeMap::new(),
            www_authenticate: None,
            authorized_hashes: Vec::new(),
            max_connection_attempts: None,
        }
    }
}

/// The load balancing policy named `text`, in any case:
/// `round_robin`, `random`, `least_loaded`, `power_of_two`, `hrw`, `maglev`.
pub fn load_balancing(text: &str) -> Result<LoadBalancingAlgorithms, RequestError> {
    match text.to_ascii_lowercase().as_str() {
        "round_robin" => Ok(LoadBalancingAlgorithms::RoundRobin),
        "random" => Ok(LoadBalancingAlgorithms::Random),
        "least_loaded" => Ok(LoadBalancingAlgorithms::LeastLoaded),
        "power_of_two" => Ok(LoadBalancingAlgorithms::PowerOfTwo),
        "hrw" => Ok(LoadBalancingAlgorithms::Hrw),
        "maglev" => Ok(LoadBalancingAlgorithms::Maglev),
        _ => Err(RequestError::invalid(
            "load_balancing",
            format!(
                "unknown policy {text:?}; expected round_robin, random, least_loaded, power_of_two, hrw or maglev"
            ),
        )),
    }
}

/// One `CODE=BODY` or `CODE=file://PATH` answer: the status code and the
/// template, read from the file in the second form.
pub fn answer_entry(text: &str) -> Result<(String, String), RequestError> {
    let Some((code, value)) = text.split_once('=').filter(|(_, value)| !value.is_empty()) else {
        return Err(RequestError::invalid(
            "answers",
            format!("{text:?} is not CODE=BODY or CODE=file://PATH"),
        ));
    };
    let valid_code = code.len() == 3 && code.bytes().all(|byte| byte.is_ascii_digit());
    if !valid_code {
        return Err(RequestError::invalid(
            "answers",
            format!("{code:?} is not a three-digit HTTP status code"),
        ));
    }
    let body = match value.strip_prefix("file://") {
        Some(path) => read_text("answers", Path::new(path))?,
        None => value.to_owned(),
    };
    Ok((code.to_owned(), body))
}

/// `cluster add`: the cluster as Sozu's command line sends it.
pub fn cluster_add(settings: &ClusterSettings) -> Result<Request, RequestError> {
    if let Some(attempts) = settings.max_connection_attempts
        && !(1..=255).contains(&attempts)
    {
        return Err(RequestError::invalid(
            "max_connection_attempts",
            format!("{attempts} is outside 1..=255"),
        ));
    }
    if settings.https_redirect_port == Some(0) {
        return Err(RequestError::invalid(
            "https_redirect_port",
            "0 is not a TCP port; expected 1..=65535",
        ));
    }
    for hash in &settings.authorized_hashes {
        let valid = hash.split_once(':').is_some_and(|(user, digest)| {
            !user.is_empty()
                && digest.len() == 64
                && digest.bytes().all(|byte| byte.is_ascii_hexdigit())
        });
        if !valid {
            return Err(RequestError::invalid(
                "authorized_hashes",
                format!("{hash:?} is not USER:HEX(SHA256(PASSWORD))"),
            ));
        }
    }
    let proxy_protocol = match (settings.send_proxy, settings.expect_proxy) {
        (true, true) => Some(ProxyProtocolConfig::RelayHeader),
        (true, false) => Some(ProxyProtocolConfig::SendHeader),
        (false, true) => Some(ProxyProtocolConfig::ExpectHeader),
        (false, false) => None,
    };
    let cluster = Cluster {
        cluster_id: settings.cluster_id.clone(),
        sticky_session: settings.sticky_session,
        https_redirect: settings.https_redirect,
        proxy_protocol: proxy_protocol.map(|protocol| protocol as i32),
        load_balancing: settings.load_balancing as i32,
        // Sozu sends `http2` only when it is asked for.
        http2: settings.http2.then_some(true),
        answers: settings.answers.clone(),
        https_redirect_port: settings.https_redirect_port.map(u32::from),
        authorized_hashes: settings.authorized_hashes.clone(),
        www_authenticate: settings.www_authenticate.clone(),
        max_connection_attempts: settings.max_connection_attempts,
        ..Cluster::default()
    };
    Ok(RequestType::AddCluster(cluster).into())
}

/// `cluster remove -i ID`: the cluster and everything that names it.
pub fn cluster_remove(cluster_id: &str) -> Request {
    RequestType::RemoveCluster(cluster_id.to_owned()).into()
}

/// `cluster health-check set`: the check's settings, checked.
pub fn health_check_set(
    cluster_id: &str,
    config: HealthCheckConfig,
) -> Result<Request, RequestError> {
    if config.interval == 0 {
        return Err(RequestError::invalid(
            "interval",
            "must be at least 1 second",
        ));
    }
    if config.timeout == 0 {
        return Err(RequestError::invalid(
            "timeout",
            "must be at least 1 second",
        ));
    }
    if config.healthy_threshold == 0 || config.unhealthy_threshold == 0 {
        return Err(RequestError::invalid(
            "threshold",
            "thresholds must be at least 1",
        ));
    }
    if !config.uri.starts_with('/') {
        return Err(RequestError::invalid(
            "uri",
            format!("{:?} must start with '/'", config.uri),
        ));
    }
    if config.expected_status != 0 && !config.accepted_statuses.is_empty() {
        return Err(RequestError::invalid(
            "accepted_statuses",
            "an expected status and accepted statuses cannot both be given",
        ));
    }
    if let Some(port) = config.port
        && !(1..=65535).contains(&port)
    {
        return Err(RequestError::invalid(
            "port",
            format!("{port} is outside 1..=65535"),
        ));
    }
    Ok(RequestType::SetHealthCheck(SetHealthCheck {
        cluster_id: cluster_id.to_owned(),
        config,
    })
    .into())
}

/// One accepted status of a health check: a code (`404`), a range
/// (`200-399`), a class (`2xx`) or `any` (100 to 599).
pub fn status_range(text: &str) -> Result<HttpStatusRange, RequestError> {
    let invalid = || {
        RequestError::invalid(
            "accepted_statuses",
            format!("{text:?} is not a code (404), a range (200-399), a class (2xx) or any"),
        )
    };
    let code = |part: &str| {
        let part = part.trim();
        (!part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
    };
    let spec = text.trim();
    let bytes = spec.as_bytes();
    let (start, end) = if spec.eq_ignore_ascii_case("any") {
        (100, 599)
    } else if bytes.len() == 3
        && (b'1'..=b'5').contains(&bytes[0])
        && bytes[1..].eq_ignore_ascii_case(b"xx")
    {
        let start = u32::from(bytes[0] - b'0') * 100;
        (start, start + 99)
    } else if let Some((start, end)) = spec.split_once('-') {
        (
            code(start).ok_or_else(invalid)?,
            code(end).ok_or_else(invalid)?,
        )
    } else {
        let single = code(spec).ok_or_else(invalid)?;
        (single, single)
    };
    if start < 100 || end > 599 || start > end {
        return Err(invalid());
    }
    Ok(HttpStatusRange { start, end })
}

/// `cluster health-check remove -i ID`.
pub fn health_check_remove(cluster_id: &str) -> Request {
    RequestType::RemoveHealthCheck(cluster_id.to_owned()).into()
}

/// `cluster health-check list [-i ID]`.
pub fn health_check_list(cluster_id: Option<&str>) -> Request {
    RequestType::QueryHealthChecks(QueryHealthChecks {
        cluster_id: cluster_id.map(str::to_owned),
    })
    .into()
}

// ---------------------------------------------------------------------------
// Backends

/// Everything `backend add` can set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSettings {
    /// The cluster the backend serves.
    pub cluster_id: String,
    /// The backend's id inside its cluster.
    pub backend_id: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// The sticky session cookie value that selects it.
    pub sticky_id: Option<String>,
    /// Whether it only serves when no primary backend is up; `None` leaves
    /// the field out, as Sozu does without `-b`.
    pub backup: Option<bool>,
    /// Its load balancing weight; `None` sends 0, Sozu's value, which
    /// balances like 100.
    pub weight: Option<u8>,
}

/// `backend add`.
pub fn backend_add(settings: &BackendSettings) -> Request {
    RequestType::AddBackend(AddBackend {
        cluster_id: settings.cluster_id.clone(),
        backend_id: settings.backend_id.clone(),
        address: settings.address.into(),
        sticky_id: settings.sticky_id.clone(),
        load_balancing_parameters: Some(LoadBalancingParams {
            weight: i32::from(settings.weight.unwrap_or(0)),
        }),
        backup: settings.backup,
        unix_path: None,
    })
    .into()
}

/// `backend remove`.
pub fn backend_remove(cluster_id: &str, backend_id: &str, address: SocketAddr) -> Request {
    RequestType::RemoveBackend(RemoveBackend {
        cluster_id: cluster_id.to_owned(),
        backend_id: backend_id.to_owned(),
        address: address.into(),
    })
    .into()
}

// ---------------------------------------------------------------------------
// Frontends

/// Where an HTTP or HTTPS frontend sends its traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendTarget {
    /// To the backends of this cluster.
    Cluster(String),
    /// Nowhere: matching requests are refused.
    Deny,
}

/// An HTTP or HTTPS frontend as `frontend http|https add|remove` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFrontendSettings {
    /// The listener address.
    pub address: SocketAddr,
    /// Where matching traffic goes.
    pub target: FrontendTarget,
    /// The hostname pattern.
    pub hostname: String,
    /// The path rule (see [`path_rule`]).
    pub path: PathRule,
    /// The HTTP method to match, if any.
    pub method: Option<String>,
    /// Tags written in access logs (ignored by removals).
    pub tags: BTreeMap<String, String>,
}

/// The path rule from the three mutually exclusive path options: a prefix,
/// a regular expression, or an exact path; none is the empty prefix (every
/// path).
pub fn path_rule(
    prefix: Option<&str>,
    regex: Option<&str>,
    equals: Option<&str>,
) -> Result<PathRule, RequestError> {
    let given = [prefix, regex, equals].iter().flatten().count();
    if given > 1 {
        return Err(RequestError::invalid(
            "path",
            "give at most one of a prefix, a regex and an exact path",
        ));
    }
    let (kind, value) = match (prefix, regex, equals) {
        (Some(prefix), _, _) => (PathRuleKind::Prefix, prefix),
        (_, Some(regex), _) => (PathRuleKind::Regex, regex),
        (_, _, Some(equals)) => (PathRuleKind::Equals, equals),
        _ => (PathRuleKind::Prefix, ""),
    };
    Ok(PathRule {
        kind: kind as i32,
        value: value.to_owned(),
    })
}

/// Tags written `key=value, other=value`: keys and values are trimmed of
/// surrounding spaces; a value may contain `=`.
pub fn parse_tags(text: &str) -> Result<BTreeMap<String, String>, RequestError> {
    let mut tags = BTreeMap::new();
    for pair in text.split(',') {
        let pair = pair.trim();
        let Some((key, value)) = pair.split_once('=') else {
            return Err(RequestError::invalid(
                "tags",
                format!("{pair:?} is not KEY=VALUE; expected 'key=value, other=value'"),
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(RequestError::invalid(
                "tags",
                format!("{pair:?} has an empty key"),
            ));
        }
        tags.insert(key.to_owned(), value.trim().to_owned());
    }
    Ok(tags)
}

fn http_frontend(settings: &HttpFrontendSettings, with_tags: bool) -> RequestHttpFrontend {
    RequestHttpFrontend {
        cluster_id: match &settings.target {
            FrontendTarget::Cluster(id) => Some(id.clone()),
            FrontendTarget::Deny => None,
        },
        address: settings.address.into(),
        hostname: settings.hostname.clone(),
        path: settings.path.clone(),
        method: settings.method.clone(),
        position: RulePosition::Tree as i32,
        tags: if with_tags {
            settings.tags.clone()
        } else {
            BTreeMap::new()
        },
        ..RequestHttpFrontend::default()
    }
}

/// `frontend http add` (`https` false) or `frontend https add` (`https`
/// true). Sozu's command line always sends position TREE.
pub fn frontend_http_add(settings: &HttpFrontendSettings, https: bool) -> Request {
    let frontend = http_frontend(settings, true);
    if https {
        RequestType::AddHttpsFrontend(frontend)
    } else {
        RequestType::AddHttpFrontend(frontend)
    }
    .into()
}

/// `frontend http remove` or `frontend https remove`: the routing key
/// (address, hostname, path, method) and the target identify the frontend.
pub fn frontend_http_remove(settings: &HttpFrontendSettings, https: bool) -> Request {
    let frontend = http_frontend(settings, false);
    if https {
        RequestType::RemoveHttpsFrontend(frontend)
    } else {
        RequestType::RemoveHttpFrontend(frontend)
    }
    .into()
}

/// A TCP frontend as `frontend tcp add|remove` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpFrontendSettings {
    /// The cluster it sends connections to.
    pub cluster_id: String,
    /// The listener address.
    pub address: SocketAddr,
    /// Tags written in access logs (ignored by removals).
    pub tags: BTreeMap<String, String>,
    /// The TLS SNI hostname to match, if any.
    pub sni: Option<String>,
    /// The ALPN protocols to match.
    pub alpn: Vec<String>,
}

/// `frontend tcp add`.
pub fn frontend_tcp_add(settings: &TcpFrontendSettings) -> Request {
    RequestType::AddTcpFrontend(RequestTcpFrontend {
        cluster_id: settings.cluster_id.clone(),
        address: settings.address.into(),
        tags: settings.tags.clone(),
        sni: settings.sni.clone(),
        alpn: settings.alpn.clone(),
    })
    .into()
}

/// `frontend tcp remove`.
pub fn frontend_tcp_remove(settings: &TcpFrontendSettings) -> Request {
    RequestType::RemoveTcpFrontend(RequestTcpFrontend {
        cluster_id: settings.cluster_id.clone(),
        address: settings.address.into(),
        tags: BTreeMap::new(),
        sni: settings.sni.clone(),
        alpn: settings.alpn.clone(),
    })
    .into()
}

/// `frontend list`: no kind selected means every kind.
pub fn list_frontends(filters: FrontendFilters) -> Request {
    RequestType::ListFrontends(filters).into()
}

// ---------------------------------------------------------------------------
// Listeners

/// The values a new listener takes when its own are not given: the
/// configuration's defaults, or Sozu's when there is no configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerDefaults {
    /// Client socket inactivity timeout, seconds.
    pub front_timeout: u32,
    /// Backend socket inactivity timeout, seconds.
    pub back_timeout: u32,
    /// Backend connection timeout, seconds.
    pub connect_timeout: u32,
    /// Time allowed for a whole request, seconds.
    pub request_timeout: u32,
}

impl Default for ListenerDefaults {
    fn default() -> Self {
        ListenerDefaults {
            front_timeout: DEFAULT_FRONT_TIMEOUT,
            back_timeout: DEFAULT_BACK_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl From<&Config> for ListenerDefaults {
    fn from(config: &Config) -> Self {
        ListenerDefaults {
            front_timeout: config.front_timeout,
            back_timeout: config.back_timeout,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
        }
    }
}

/// What `listener http add` and `listener https add` share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpListenerSettings {
    /// Where it binds.
    pub address: Option<SocketAddr>,
    /// The network interface it binds to, if any.
    pub interface: Option<String>,
    /// The address shown in logs and forwarded headers, if not `address`.
    pub public_address: Option<SocketAddr>,
    /// Expect a PROXY protocol header from clients.
    pub expect_proxy: bool,
    /// The sticky session cookie name (default `SOZUBALANCEID`).
    pub sticky_name: Option<String>,
    /// Client socket inactivity timeout, seconds.
    pub front_timeout: Option<u32>,
    /// Backend socket inactivity timeout, seconds.
    pub back_timeout: Option<u32>,
    /// Backend connection timeout, seconds.
    pub connect_timeout: Option<u32>,
    /// Time allowed for a whole request, seconds.
    pub request_timeout: Option<u32>,
    /// File holding the 404 answer.
    pub answer_404: Option<PathBuf>,
    /// File holding the 503 answer.
    pub answer_503: Option<PathBuf>,
    /// Which forwarding headers are added (default: both families).
    pub forwarded_headers: Option<ForwardedHeaders>,
}

/// The answers of a listener: the legacy per-status fields and the `answers`
/// map, both holding the same templates (Sozu fills both).
fn listener_answers(
    answer_404: Option<&Path>,
    answer_503: Option<&Path>,
) -> Result<(CustomHttpAnswers, BTreeMap<String, String>), RequestError> {
    let read = |path: Option<&Path>| path.map(|path| read_text("answer", path)).transpose();
    let answers = CustomHttpAnswers {
        answer_404: read(answer_404)?,
        answer_503: read(answer_503)?,
        ..CustomHttpAnswers::default()
    };
    let mut map = BTreeMap::new();
    if let Some(body) = &answers.answer_404 {
        map.insert("404".to_owned(), body.clone());
    }
    if let Some(body) = &answers.answer_503 {
        map.insert("503".to_owned(), body.clone());
    }
    Ok((answers, map))
}

fn required_address(address: Option<SocketAddr>) -> Result<SocketAddr, RequestError> {
    address.ok_or_else(|| RequestError::invalid("address", "a listener needs an address"))
}

fn check_public_address(settings: &HttpListenerSettings) -> Result<(), RequestError> {
    if settings.public_address.is_some() && settings.expect_proxy {
        return Err(RequestError::invalid(
            "public_address",
            "a listener that expects a PROXY header takes its public address from it",
        ));
    }
    Ok(())
}

/// The HTTP listener `listener http add` creates (inactive).
pub fn http_listener(
    settings: &HttpListenerSettings,
    defaults: &ListenerDefaults,
) -> Result<HttpListenerConfig, RequestError> {
    let address = required_address(settings.address)?;
    check_public_address(settings)?;
    let (http_answers, answers) = listener_answers(
        settings.answer_404.as_deref(),
        settings.answer_503.as_deref(),
    )?;
    Ok(HttpListenerConfig {
        address: address.into(),
        public_address: settings.public_address.map(Into::into),
        expect_proxy: settings.expect_proxy,
        sticky_name: settings
            .sticky_name
            .clone()
            .unwrap_or_else(|| DEFAULT_STICKY_NAME.to_owned()),
        front_timeout: settings.front_timeout.unwrap_or(defaults.front_timeout),
        back_timeout: settings.back_timeout.unwrap_or(defaults.back_timeout),
        connect_timeout: settings.connect_timeout.unwrap_or(defaults.connect_timeout),
        request_timeout: settings.request_timeout.unwrap_or(defaults.request_timeout),
        active: false,
        http_answers: Some(http_answers),
        answers,
        elide_x_real_ip: Some(false),
        send_x_real_ip: Some(false),
        interface: settings.interface.clone(),
        forwarded_headers: Some(settings.forwarded_headers.unwrap_or_default() as i32),
        ..HttpListenerConfig::default()
    })
}

/// `listener http add`.
pub fn listener_http_add(
    settings: &HttpListenerSettings,
    defaults: &ListenerDefaults,
) -> Result<Request, RequestError> {
    Ok(RequestType::AddHttpListener(http_listener(settings, defaults)?).into())
}

/// What `listener https add` adds to the HTTP settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// TLS versions offered (default: 1.2 and 1.3).
    pub versions: Vec<TlsVersion>,
    /// Cipher list (default: Sozu's).
    pub cipher_list: Option<Vec<String>>,
}

/// The HTTPS listener `listener https add` creates (inactive, without a
/// default certificate).
pub fn https_listener(
    settings: &HttpListenerSettings,
    tls: &TlsSettings,
    defaults: &ListenerDefaults,
) -> Result<HttpsListenerConfig, RequestError> {
    let http = http_listener(settings, defaults)?;
    let strings = |list: &[&str]| list.iter().map(|item| (*item).to_owned()).collect();
    let versions = if tls.versions.is_empty() {
        vec![TlsVersion::TlsV12 as i32, TlsVersion::TlsV13 as i32]
    } else {
        tls.versions.iter().map(|version| *version as i32).collect()
    };
    Ok(HttpsListenerConfig {
        address: http.address,
        public_address: http.public_address,
        expect_proxy: http.expect_proxy,
        sticky_name: http.sticky_name,
        front_timeout: http.front_timeout,
        back_timeout: http.back_timeout,
        connect_timeout: http.connect_timeout,
        request_timeout: http.request_timeout,
        active: false,
        versions,
        cipher_list: tls
            .cipher_list
            .clone()
            .unwrap_or_else(|| strings(&DEFAULT_CIPHER_LIST)),
        cipher_suites: strings(&DEFAULT_CIPHER_LIST),
        signature_algorithms: strings(&DEFAULT_SIGNATURE_ALGORITHMS),
        groups_list: strings(&DEFAULT_GROUPS_LIST),
        send_tls13_tickets: DEFAULT_SEND_TLS13_TICKETS,
        http_answers: http.http_answers,
        alpn_protocols: strings(&DEFAULT_ALPN_PROTOCOLS),
        answers: http.answers,
        elide_x_real_ip: Some(false),
        send_x_real_ip: Some(false),
        interface: http.interface,
        forwarded_headers: http.forwarded_headers,
        ..HttpsListenerConfig::default()
    })
}

/// `listener https add`.
pub fn listener_https_add(
    settings: &HttpListenerSettings,
    tls: &TlsSettings,
    defaults: &ListenerDefaults,
) -> Result<Request, RequestError> {
    Ok(RequestType::AddHttpsListener(https_listener(settings, tls, defaults)?).into())
}

/// Everything `listener tcp add` can set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpListenerSettings {
    /// Where it binds.
    pub address: Option<SocketAddr>,
    /// The network interface it binds to, if any.
    pub interface: Option<String>,
    /// The address shown in logs, if not `address`.
    pub public_address: Option<SocketAddr>,
    /// Expect a PROXY protocol header from clients.
    pub expect_proxy: bool,
    /// Seconds allowed to read the TLS ClientHello for SNI routing.
    pub sni_preread_timeout: Option<u32>,
    /// Bytes read at most to find the SNI.
    pub sni_preread_max_bytes: Option<u32>,
}

/// `listener tcp add`.
pub fn listener_tcp_add(
    settings: &TcpListenerSettings,
    defaults: &ListenerDefaults,
) -> Result<Request, RequestError> {
    let address = required_address(settings.address)?;
    if settings.public_address.is_some() && settings.expect_proxy {
        return Err(RequestError::invalid(
            "public_address",
            "a listener that expects a PROXY header takes its public address from it",
        ));
    }
    Ok(RequestType::AddTcpListener(TcpListenerConfig {
        address: address.into(),
        public_address: settings.public_address.map(Into::into),
        expect_proxy: settings.expect_proxy,
        front_timeout: defaults.front_timeout,
        back_timeout: defaults.back_timeout,
        connect_timeout: defaults.connect_timeout,
        active: false,
        sni_preread_timeout: Some(
            settings
                .sni_preread_timeout
                .unwrap_or(DEFAULT_SNI_PREREAD_TIMEOUT),
        ),
        sni_preread_max_bytes: Some(
            settings
                .sni_preread_max_bytes
                .unwrap_or(DEFAULT_SNI_PREREAD_MAX_BYTES),
        ),
        interface: settings.interface.clone(),
    })
    .into())
}

/// `listener http|https|tcp remove`.
pub fn listener_remove(
    address: SocketAddr,
    kind: ListenerType,
    interface: Option<&str>,
) -> Request {
    RequestType::RemoveListener(RemoveListener {
        address: address.into(),
        proxy: kind as i32,
        interface: interface.map(str::to_owned),
    })
    .into()
}

/// `listener http|https|tcp activate`.
pub fn listener_activate(
    address: SocketAddr,
    kind: ListenerType,
    interface: Option<&str>,
) -> Request {
    RequestType::ActivateListener(ActivateListener {
        address: address.into(),
        proxy: kind as i32,
        from_scm: false,
        interface: interface.map(str::to_owned),
    })
    .into()
}

/// `listener http|https|tcp deactivate`.
pub fn listener_deactivate(
    address: SocketAddr,
    kind: ListenerType,
    interface: Option<&str>,
) -> Request {
    RequestType::DeactivateListener(DeactivateListener {
        address: address.into(),
        proxy: kind as i32,
        to_scm: false,
        interface: interface.map(str::to_owned),
    })
    .into()
}

/// The answer templates `listener http|https update` replaces, one file per
/// status code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerFiles {
    /// Files by status code (`"404"`, `"503"`, …).
    pub files: BTreeMap<&'static str, PathBuf>,
}

impl AnswerFiles {
    /// The templates read into the legacy per-status fields, or `None` when
    /// no file was given (the update then leaves the answers alone).
    pub fn load(&self) -> Result<Option<CustomHttpAnswers>, RequestError> {
        if self.files.is_empty() {
            return Ok(None);
        }
        let mut answers = CustomHttpAnswers::default();
        for (code, path) in &self.files {
            let body = Some(read_text("answer", path)?);
            let slot = match *code {
                "301" => &mut answers.answer_301,
                "400" => &mut answers.answer_400,
                "401" => &mut answers.answer_401,
                "404" => &mut answers.answer_404,
                "408" => &mut answers.answer_408,
                "413" => &mut answers.answer_413,
                "421" => &mut answers.answer_421,
                "429" => &mut answers.answer_429,
                "502" => &mut answers.answer_502,
                "503" => &mut answers.answer_503,
                "504" => &mut answers.answer_504,
                "507" => &mut answers.answer_507,
                other => {
                    return Err(RequestError::invalid(
                        "answer",
                        format!("{other} is not a status a listener has an answer for"),
                    ));
                }
            };
            *slot = body;
        }
        Ok(Some(answers))
    }
}

/// HSTS `max-age` when HSTS is turned on without one: a year, the preload
/// list's minimum.
pub const DEFAULT_HSTS_MAX_AGE: u32 = 31_536_000;

/// The HSTS policy of `listener https update`'s `--hsts-*` options: `None`
/// when none is given (the policy stays), disabled, or enabled with the
/// given directives. Disabling together with an enabling option is refused.
pub fn hsts(
    max_age: Option<u32>,
    include_subdomains: bool,
    preload: bool,
    disabled: bool,
    force_replace_backend: bool,
) -> Result<Option<HstsConfig>, RequestError> {
    let enabling = max_age.is_some() || include_subdomains || preload || force_replace_backend;
    match (disabled, enabling) {
        (true, true) => Err(RequestError::invalid(
            "hsts",
            "HSTS cannot be both disabled and configured",
        )),
        (true, false) => Ok(Some(HstsConfig {
            enabled: Some(false),
            ..HstsConfig::default()
        })),
        (false, false) => Ok(None),
        (false, true) => Ok(Some(HstsConfig {
            enabled: Some(true),
            max_age: Some(max_age.unwrap_or(DEFAULT_HSTS_MAX_AGE)),
            include_subdomains: include_subdomains.then_some(true),
            preload: preload.then_some(true),
            force_replace_backend: force_replace_backend.then_some(true),
        })),
    }
}

/// `listener http update`: only the fields set in `patch` change.
pub fn listener_http_update(patch: UpdateHttpListenerConfig) -> Request {
    RequestType::UpdateHttpListener(patch).into()
}

/// `listener https update`: only the fields set in `patch` change.
pub fn listener_https_update(patch: UpdateHttpsListenerConfig) -> Request {
    RequestType::UpdateHttpsListener(patch).into()
}

/// `listener tcp update`: only the fields set in `patch` change.
pub fn listener_tcp_update(patch: UpdateTcpListenerConfig) -> Request {
    RequestType::UpdateTcpListener(patch).into()
}

/// `listener list`.
pub fn list_listeners() -> Request {
    RequestType::ListListeners(ListListeners {}).into()
}

// ---------------------------------------------------------------------------
// Certificates

/// A TLS version as written on a command line: `TLS_V12`, `TLS_V13` (the
/// configuration file's names), `TLSv1.2`, `TLSv1.3`, `1.2`, `1.3`; older
/// versions as `TLS_V10`/`TLSv1`/`TLS_V11`/`TLSv1.1`. Any case.
pub fn tls_version(text: &str) -> Result<TlsVersion, RequestError> {
    let normalized: String = text
        .to_ascii_uppercase()
        .chars()
        .filter(|c| !matches!(c, '_' | '.' | '-'))
        .collect();
    match normalized.as_str() {
        "TLSV13" | "13" => Ok(TlsVersion::TlsV13),
        "TLSV12" | "12" => Ok(TlsVersion::TlsV12),
        "TLSV11" | "11" => Ok(TlsVersion::TlsV11),
        "TLSV10" | "TLSV1" | "10" => Ok(TlsVersion::TlsV10),
        _ => Err(RequestError::invalid(
            "versions",
            format!("unknown TLS version {text:?}; expected TLS_V12 or TLS_V13"),
        )),
    }
}

/// The three files of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The leaf certificate (PEM; further blocks are taken as chain).
    pub certificate: PathBuf,
    /// The intermediate certificates (PEM, any number of blocks).
    pub chain: PathBuf,
    /// The private key (PEM, unencrypted).
    pub key: PathBuf,
}

/// Reads and checks a certificate, its chain and its key: every PEM block
/// must parse and the key must match the certificate. The result carries the
/// files' text as Sozu's command line sends it: the chain split into one PEM
/// per certificate, `names` empty (the daemon fills them).
pub fn load_certificate(
    files: &CertificateFiles,
    versions: &[TlsVersion],
) -> Result<CertificateAndKey, RequestError> {
    let certificate = read_text("certificate", &files.certificate)?;
    let chain_text = read_text("certificate_chain", &files.chain)?;
    let key = read_text("key", &files.key)?;
    let certificate_chain = certificate::split_certificate_chain(&chain_text);
    // Check each input alone first so the error names the right file.
    certificate::certificate_info(&certificate).map_err(|source| RequestError::Certificate {
        field: "certificate",
        source,
    })?;
    if !chain_text.trim().is_empty() {
        ParsedCertificate::from_pem(&certificate, std::slice::from_ref(&chain_text), &key)
            .map_err(|source| RequestError::Certificate {
                field: certificate_field(&source, "certificate_chain"),
                source,
            })?;
    } else {
        ParsedCertificate::from_pem(&certificate, &[], &key).map_err(|source| {
            RequestError::Certificate {
                field: certificate_field(&source, "certificate"),
                source,
            }
        })?;
    }
    Ok(CertificateAndKey {
        certificate,
        certificate_chain,
        key,
        versions: versions.iter().map(|version| *version as i32).collect(),
        names: Vec::new(),
    })
}

/// Which input a certificate error is about.
fn certificate_field(error: &CertificateError, certificates: &'static str) -> &'static str {
    match error {
        CertificateError::NoKey
        | CertificateError::EncryptedKey
        | CertificateError::UnsupportedKey { .. }
        | CertificateError::KeyMismatch => "key",
        CertificateError::NotPem { what, .. }
        | CertificateError::InvalidPem { what, .. }
        | CertificateError::NoCertificate { what }
        | CertificateError::InvalidDer { what, .. } => match *what {
            "certificate" => "certificate",
            "private key" => "key",
            _ => certificates,
        },
        _ => certificates,
    }
}

/// A fingerprint typed by a user (64 hex digits, any case), as the lowercase
/// hex the protocol uses.
pub fn fingerprint(text: &str) -> Result<String, RequestError> {
    text.parse::<Fingerprint>()
        .map(|fingerprint| fingerprint.to_string())
        .map_err(|source| RequestError::Certificate {
            field: "fingerprint",
            source,
        })
}

/// The fingerprint of the first certificate of a PEM file.
pub fn fingerprint_of_file(path: &Path) -> Result<String, RequestError> {
    let pem = read_text("certificate", path)?;
    certificate::certificate_info(&pem)
        .map(|info| info.fingerprint.to_string())
        .map_err(|source| RequestError::Certificate {
            field: "certificate",
            source,
        })
}

/// `certificate add`.
pub fn certificate_add(address: SocketAddr, certificate: CertificateAndKey) -> Request {
    RequestType::AddCertificate(AddCertificate {
        address: address.into(),
        certificate,
        expired_at: None,
    })
    .into()
}

/// `certificate remove`: `fingerprint` as lowercase hex (see
/// [`fingerprint`]).
pub fn certificate_remove(address: SocketAddr, fingerprint: &str) -> Request {
    RequestType::RemoveCertificate(RemoveCertificate {
        address: address.into(),
        fingerprint: fingerprint.to_owned(),
    })
    .into()
}

/// `certificate replace`.
pub fn certificate_replace(
    address: SocketAddr,
    new_certificate: CertificateAndKey,
    old_fingerprint: &str,
) -> Request {
    RequestType::ReplaceCertificate(ReplaceCertificate {
        address: address.into(),
        new_certificate,
        old_fingerprint: old_fingerprint.to_owned(),
        new_expired_at: None,
    })
    .into()
}

/// `certificate list`: from the main process's state, or (`from_workers`)
/// from every worker.
pub fn query_certificates(
    fingerprint: Option<&str>,
    domain: Option<&str>,
    from_workers: bool,
) -> Request {
    let filters = QueryCertificatesFilters {
        domain: domain.map(str::to_owned),
        fingerprint: fingerprint.map(str::to_owned),
    };
    if from_workers {
        RequestType::QueryCertificatesFromWorkers(filters)
    } else {
        RequestType::QueryCertificatesFromTheState(filters)
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn backend_without_weight_sends_zero_like_sozu() {
        let mut settings = BackendSettings {
            cluster_id: "app".into(),
            backend_id: "b1".into(),
            address: address("127.0.0.1:9101"),
            sticky_id: None,
            backup: None,
            weight: None,
        };
        let Some(RequestType::AddBackend(backend)) = backend_add(&settings).request_type else {
            panic!("an AddBackend");
        };
        assert_eq!(backend.load_balancing_parameters.unwrap().weight, 0);
        assert_eq!(backend.backup, None);
        settings.weight = Some(40);
        settings.backup = Some(true);
        let Some(RequestType::AddBackend(backend)) = backend_add(&settings).request_type else {
            panic!("an AddBackend");
        };
        assert_eq!(backend.load_balancing_parameters.unwrap().weight, 40);
        assert_eq!(backend.backup, Some(true));
    }

    #[test]
    fn frontends_go_in_the_tree_and_removals_drop_tags() {
        let settings = HttpFrontendSettings {
            address: address("127.0.0.1:8080"),
            target: FrontendTarget::Deny,
            hostname: "example.com".into(),
            path: path_rule(None, Some("^/api"), None).unwrap(),
            method: Some("GET".into()),
            tags: parse_tags("owner=a, env = prod").unwrap(),
        };
        let Some(RequestType::AddHttpsFrontend(add)) =
            frontend_http_add(&settings, true).request_type
        else {
            panic!("an AddHttpsFrontend");
        };
        assert_eq!(add.position, RulePosition::Tree as i32);
        assert_eq!(add.cluster_id, None);
        assert_eq!(add.path.kind, PathRuleKind::Regex as i32);
        assert_eq!(add.tags["env"], "prod");
        let Some(RequestType::RemoveHttpFrontend(remove)) =
            frontend_http_remove(&settings, false).request_type
        else {
            panic!("a RemoveHttpFrontend");
        };
        assert!(remove.tags.is_empty());
        assert_eq!(remove.hostname, "example.com");
    }

    #[test]
    fn path_rules_are_exclusive_and_default_to_every_path() {
        let every = path_rule(None, None, None).unwrap();
        assert_eq!((every.kind, every.value.as_str()), (0, ""));
        let equals = path_rule(None, None, Some("/health")).unwrap();
        assert_eq!(equals.kind, PathRuleKind::Equals as i32);
        let error = path_rule(Some("/a"), None, Some("/b")).unwrap_err();
        assert_eq!(error.field(), "path");
    }

    #[test]
    fn tags_and_answers_are_checked() {
        assert_eq!(
            parse_tags("a=1=2").unwrap(),
            BTreeMap::from([("a".into(), "1=2".into())])
        );
        assert_eq!(parse_tags("novalue").unwrap_err().field(), "tags");
        assert_eq!(
            answer_entry("503=busy").unwrap(),
            ("503".into(), "busy".into())
        );
        assert!(answer_entry("5x3=busy").is_err());
        assert!(answer_entry("503=").is_err());
        let missing = answer_entry("503=file:///nonexistent/answer").unwrap_err();
        assert!(matches!(missing, RequestError::ReadFile { .. }));
    }

    #[test]
    fn cluster_options_map_to_sozu_fields() {
        let mut settings = ClusterSettings::new("app", load_balancing("ROUND_robin").unwrap());
        settings.send_proxy = true;
        settings.expect_proxy = true;
        settings.http2 = true;
        let Some(RequestType::AddCluster(cluster)) = cluster_add(&settings).unwrap().request_type
        else {
            panic!("an AddCluster");
        };
        assert_eq!(
            cluster.proxy_protocol,
            Some(ProxyProtocolConfig::RelayHeader as i32)
        );
        assert_eq!(cluster.http2, Some(true));
        settings.http2 = false;
        settings.max_connection_attempts = Some(0);
        assert_eq!(
            cluster_add(&settings).unwrap_err().field(),
            "max_connection_attempts"
        );
        assert!(load_balancing("fastest").is_err());
    }

    #[test]
    fn cluster_domains_split_at_the_first_slash() {
        assert_eq!(
            ClusterQuery::domain("example.com/api/v1").unwrap(),
            ClusterQuery::Domain {
                hostname: "example.com".into(),
                path: Some("/api/v1".into())
            }
        );
        assert!(ClusterQuery::domain("/x").is_err());
    }

    #[test]
    fn listeners_take_the_defaults() {
        let settings = HttpListenerSettings {
            address: Some(address("127.0.0.1:8080")),
            ..HttpListenerSettings::default()
        };
        let defaults = ListenerDefaults {
            front_timeout: 12,
            ..ListenerDefaults::default()
        };
        let listener = http_listener(&settings, &defaults).unwrap();
        assert_eq!(listener.front_timeout, 12);
        assert_eq!(listener.sticky_name, DEFAULT_STICKY_NAME);
        assert_eq!(listener.forwarded_headers, Some(0));
        let https = https_listener(&settings, &TlsSettings::default(), &defaults).unwrap();
        assert_eq!(
            https.versions,
            [TlsVersion::TlsV12 as i32, TlsVersion::TlsV13 as i32]
        );
        assert_eq!(https.alpn_protocols, ["h2", "http/1.1"]);
        let refused = HttpListenerSettings {
            public_address: Some(address("1.2.3.4:80")),
            expect_proxy: true,
            ..settings
        };
        assert_eq!(
            http_listener(&refused, &defaults).unwrap_err().field(),
            "public_address"
        );
    }

    #[test]
    fn tls_versions_and_fingerprints_accept_usual_spellings() {
        for text in ["TLS_V12", "tlsv1.2", "1.2"] {
            assert_eq!(tls_version(text).unwrap(), TlsVersion::TlsV12);
        }
        assert!(tls_version("SSLv3").is_err());
        let upper = "A5CA0CE08DEC59C4151910C1439CB84EF7744D571A266D74CDFF8E01605ACFFB";
        assert_eq!(fingerprint(upper).unwrap(), upper.to_ascii_lowercase());
        assert_eq!(fingerprint("abc").unwrap_err().field(), "fingerprint");
    }

    #[test]
    fn status_ranges_take_codes_ranges_classes_and_any() {
        let range = |text| {
            let HttpStatusRange { start, end } = status_range(text).unwrap();
            (start, end)
        };
        assert_eq!(range("404"), (404, 404));
        assert_eq!(range("200-399"), (200, 399));
        assert_eq!(range("2XX"), (200, 299));
        assert_eq!(range("any"), (100, 599));
        for bad in ["6xx", "399-200", "+200", "", "2000"] {
            assert!(status_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn simple_requests_carry_their_values() {
        assert_eq!(status().kind_name(), "STATUS");
        assert_eq!(
            reload_configuration(None).request_type,
            Some(RequestType::ReloadConfiguration(String::new()))
        );
        assert_eq!(
            save_state(Path::new("/tmp/state")).request_type,
            Some(RequestType::SaveState("/tmp/state".into()))
        );
        assert_eq!(
            configure_metrics(MetricsConfiguration::Clear).request_type,
            Some(RequestType::ConfigureMetrics(2))
        );
    }
}
