//! Cluster, health check and backend requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use crate::proto::command::{
    AddBackend, Cluster, HealthCheckConfig, HttpStatusRange, LoadBalancingAlgorithms,
    LoadBalancingParams, ProxyProtocolConfig, QueryClusterByDomain, QueryClustersHashes,
    QueryHealthChecks, RemoveBackend, Request, SetHealthCheck, request::RequestType,
};

use super::{RequestError, read_text};

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
