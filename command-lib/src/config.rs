//! The TOML configuration file, and the requests it stands for.
//!
//! A configuration file is read in two steps:
//!
//! 1. [`FileConfig::parse`] checks the TOML against the shape of Sozu 2.3.3's
//!    configuration file: every key Sozu accepts is accepted with the same
//!    value forms, and an unknown key is an error naming it;
//! 2. the resulting [`Config`] resolves defaults, reads every file the
//!    configuration names (certificates, keys, chains, answer templates),
//!    validates what can be validated without running anything, and holds the
//!    listeners and clusters as protocol messages.
//!
//! [`Config::load`] does both. [`Config::requests`] then gives the ordered
//! requests a daemon applies at start, the same ones Sozu generates for the
//! same file: listeners (HTTP, HTTPS, TCP, UDP), then each cluster with its
//! frontends (an HTTPS frontend's certificate just before it) and backends,
//! then an `ActivateListener` per listener when `activate_listeners` is true.
//!
//! # Relative paths
//!
//! Relative paths in the file are resolved against **the folder of the
//! configuration file**, whatever the working directory: `command_socket`,
//! `saved_state`, `pid_file_path`, every `certificate`, `key` and
//! `certificate_chain`, the client CA and CRL files of HTTPS listeners, and
//! answer template files (`answer_NNN`, `answer_503`, and `file://` values
//! of `answers`). Sozu 2.3.3 does so for `saved_state` and `command_socket`
//! only and reads the other files from its working directory; a file that
//! works with Sozu when started from the configuration's folder works here
//! from anywhere. An absent `command_socket` is `sozu.sock` in the working
//! directory at load time, as in Sozu.
//!
//! Loading never creates or modifies a file (Sozu creates an empty
//! `saved_state` file at load; here that is left to whoever saves state).
//!
//! # Keys that are accepted and only stored
//!
//! These keys are parsed, checked for type, kept in [`Config`] or its
//! [`ServerConfig`], and acted upon by nothing in this project:
//! `handle_process_affinity`, `zombie_check_interval`, `accept_queue_timeout`,
//! `evict_on_queue_full`, `slab_entries_per_connection`,
//! `basic_auth_max_credential_bytes`. Those a
//! file sets are listed in [`Config::inert_keys`] and named by
//! [`Config::warnings`], which the daemon prints at start and `sozu config
//! check` prints too. Keys that do not apply where they are written (TLS keys
//! on an HTTP listener, `sticky_session` on a TCP cluster, `method` on a TCP
//! frontend, ...) are ignored, as Sozu ignores them. Everything else becomes
//! a field of a request; whether a daemon enforces it is the daemon's
//! business (this project's refuses what it does not enforce).
//!
//! # Where this differs from Sozu 2.3.3
//!
//! - Unknown top-level keys are refused (Sozu ignores them).
//! - A certificate, key, chain or answer file that cannot be read or does not
//!   parse is an error (Sozu logs it and starts without it for listener
//!   certificates and `answer_503`).
//! - A frontend's key must match its certificate, checked at load.
//! - `certificate` and `key` go together on a frontend or a listener.
//! - A frontend without certificate on an HTTPS listener that has none
//!   either becomes an HTTPS frontend (its certificate can be added later);
//!   Sozu refuses the whole file.
//! - Clusters are generated in the order of their ids (Sozu: hash order), and
//!   an `AddCertificate` repeated for the same address and certificate is
//!   sent once (Sozu sends it again; the state ignores the repeat).
//! - `AddCertificate.certificate.names` is filled from the certificate (Sozu
//!   leaves it empty and fills it when applying; the saved state is the same).

mod build;
mod checks;
mod clusters;
mod error;
mod file;
mod frontends;
pub mod initial;
mod listeners;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, Position};
pub use file::{
    AccessLogFormat, Address, ClientAuthConfig, ClusterProtocol, FileBackendConfig,
    FileClusterConfig, FileConfig, FileFrontendConfig, FileHeaderEdit, FileHeaderPredicate,
    FileHealthCheckConfig, FileHealthCheckHeader, FileHstsConfig, FileListenerConfig,
    FileMetricsConfig, FileUdpClusterConfig, FileUdpHealthConfig, ForwardedHeadersMode,
    ListenerProtocol, MetricDetailLevel, PathType,
};

use crate::certificate::Fingerprint;
use crate::proto::command::{
    ActivateListener, AddBackend, AddCertificate, Cluster, HttpListenerConfig, HttpsListenerConfig,
    ListenerType, MetricDetail, MetricsConfiguration, ProtobufAccessLogFormat, RedirectPolicy,
    Request, RequestHttpFrontend, RequestTcpFrontend, RequestUdpFrontend, ServerConfig,
    ServerMetricsConfig, TcpListenerConfig, UdpListenerConfig, WorkerRequest, request::RequestType,
};

/// `command_buffer_size` when absent, bytes.
pub const DEFAULT_COMMAND_BUFFER_SIZE: u64 = 1_000_000;
/// `max_command_buffer_size` when absent, bytes.
pub const DEFAULT_MAX_COMMAND_BUFFER_SIZE: u64 = 2_000_000;
/// `max_state_file_size` when absent, bytes: 256 MiB, thirty times the
/// state of 5,000 clusters with their frontends, backends and certificates.
pub const DEFAULT_MAX_STATE_FILE_SIZE: u64 = 256 * 1024 * 1024;
/// `worker_count` when absent.
pub const DEFAULT_WORKER_COUNT: u16 = 2;
/// `worker_timeout` when absent, seconds.
pub const DEFAULT_WORKER_TIMEOUT: u32 = 10;
/// `max_connections` when absent.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;
/// `buffer_size` when absent, bytes.
pub const DEFAULT_BUFFER_SIZE: u64 = 16_393;
/// Smallest `buffer_size` that holds a full HTTP/2 frame; required when an
/// HTTPS listener offers `h2`.
pub const H2_MIN_BUFFER_SIZE: u64 = 16_393;
/// `min_buffers` when absent: the HTTP/1.1 relay buffers a worker allocates
/// when it starts.
pub const DEFAULT_MIN_BUFFERS: u64 = 1;
/// `max_buffers` when absent: the most idle relay buffers a worker keeps.
pub const DEFAULT_MAX_BUFFERS: u64 = 1_000;
/// `ctl_command_timeout` when absent, milliseconds.
pub const DEFAULT_CTL_COMMAND_TIMEOUT: u64 = 1_000;
/// `front_timeout` when absent, seconds.
pub const DEFAULT_FRONT_TIMEOUT: u32 = 60;
/// `back_timeout` when absent, seconds.
pub const DEFAULT_BACK_TIMEOUT: u32 = 30;
/// `connect_timeout` when absent, seconds.
pub const DEFAULT_CONNECT_TIMEOUT: u32 = 3;
/// `request_timeout` when absent, seconds.
pub const DEFAULT_REQUEST_TIMEOUT: u32 = 10;
/// `zombie_check_interval` when absent, seconds.
pub const DEFAULT_ZOMBIE_CHECK_INTERVAL: u32 = 1_800;
/// `accept_queue_timeout` when absent, seconds.
pub const DEFAULT_ACCEPT_QUEUE_TIMEOUT: u32 = 60;
/// `max_connection_attempts` when absent.
pub const DEFAULT_MAX_CONNECTION_ATTEMPTS: u32 = 5;
/// `retry_after` when absent, seconds.
pub const DEFAULT_RETRY_AFTER: u32 = 60;
/// Permission bits of the command socket when `command_socket_mode` is
/// absent.
pub const DEFAULT_COMMAND_SOCKET_MODE: u32 = 0o600;
/// A listener's `sticky_name` when absent.
pub const DEFAULT_STICKY_NAME: &str = "SOZUBALANCEID";
/// An HTTPS listener's `send_tls13_tickets` when absent.
pub const DEFAULT_SEND_TLS13_TICKETS: u64 = 4;
/// A backend's `weight` when absent.
pub const DEFAULT_BACKEND_WEIGHT: u8 = 100;
/// An HTTPS listener's `cipher_list` and `cipher_suites` when absent.
pub const DEFAULT_CIPHER_LIST: [&str; 9] = [
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];
/// An HTTPS listener's `signature_algorithms` (not configurable in the file).
pub const DEFAULT_SIGNATURE_ALGORITHMS: [&str; 9] = [
    "ECDSA+SHA256",
    "ECDSA+SHA384",
    "ECDSA+SHA512",
    "RSA+SHA256",
    "RSA+SHA384",
    "RSA+SHA512",
    "RSA-PSS+SHA256",
    "RSA-PSS+SHA384",
    "RSA-PSS+SHA512",
];
/// An HTTPS listener's `groups_list` when absent.
pub const DEFAULT_GROUPS_LIST: [&str; 4] = ["X25519MLKEM768", "x25519", "P-256", "P-384"];
/// An HTTPS listener's `alpn_protocols` when absent or empty.
pub const DEFAULT_ALPN_PROTOCOLS: [&str; 2] = ["h2", "http/1.1"];

/// A configuration, resolved: every default applied, every path absolute,
/// every named file read into the messages that carry it.
///
/// Built by [`Config::load`], [`Config::from_toml`] or
/// [`Config::default_for_start`]. Fields are public for reading; a `Config`
/// changed by hand is not re-validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file this configuration was read from (absolute), `None` for
    /// the built-in default.
    pub config_path: Option<PathBuf>,
    /// Where the command socket listens.
    pub command_socket: PathBuf,
    /// Permission bits of the command socket (at most 0o777, always
    /// including 0o600).
    pub command_socket_mode: u32,
    /// Initial size of command channel buffers, bytes.
    pub command_buffer_size: u64,
    /// Largest size command channel buffers may grow to, bytes; never below
    /// `command_buffer_size`.
    pub max_command_buffer_size: u64,
    /// Most client connections a worker accepts.
    pub max_connections: u64,
    /// HTTP/1.1 relay buffers a worker preallocates (never above
    /// `max_buffers`).
    pub min_buffers: u64,
    /// Most idle relay buffers a worker keeps for reuse (beyond, buffers
    /// given back are freed; connections are not refused for want of one).
    pub max_buffers: u64,
    /// Size of one buffer, bytes.
    pub buffer_size: u64,
    /// Where the state is saved and loaded from, if anywhere.
    pub saved_state: Option<PathBuf>,
    /// Whether every change is saved to `saved_state` (then `saved_state`
    /// is set).
    pub automatic_state_save: bool,
    /// Largest state file read (`load_state`, `saved_state` at start, the
    /// command line's `state load`), bytes; at least 1.
    pub max_state_file_size: u64,
    /// The folder that holds the state files named by clients running as
    /// another user than the daemon (absolute); `None`: such clients cannot
    /// name a state file.
    pub state_directory: Option<PathBuf>,
    /// Log filter, e.g. `info` or `error`.
    pub log_level: String,
    /// Log destination: `stdout`, `udp://...`, `tcp://...`, `unix://...`,
    /// `file://...`.
    pub log_target: String,
    /// Whether logs are colored.
    pub log_colored: bool,
    /// Access log destination, when different from `log_target`.
    pub access_logs_target: Option<String>,
    /// Access log format.
    pub access_logs_format: Option<AccessLogFormat>,
    /// Whether access logs are colored.
    pub access_logs_colored: Option<bool>,
    /// Audit log file.
    pub audit_logs_target: Option<String>,
    /// JSON audit log file.
    pub audit_logs_json_target: Option<String>,
    /// Number of worker processes.
    pub worker_count: u16,
    /// Whether a worker that dies is started again.
    pub worker_automatic_restart: bool,
    /// Seconds the main process waits for a worker's answer.
    pub worker_timeout: u32,
    /// Where workers send metrics.
    pub metrics: Option<FileMetricsConfig>,
    /// Whether per-cluster metrics are turned off at start.
    pub disable_cluster_metrics: bool,
    /// Whether workers are pinned to CPU cores.
    pub handle_process_affinity: bool,
    /// Milliseconds the CLI waits for an answer.
    pub ctl_command_timeout: u64,
    /// Where the main process writes its pid.
    pub pid_file_path: Option<PathBuf>,
    /// Whether listeners are activated at start.
    pub activate_listeners: bool,
    /// Default inactivity timeout of client sockets, seconds.
    pub front_timeout: u32,
    /// Default inactivity timeout of backend sockets, seconds.
    pub back_timeout: u32,
    /// Default backend connection timeout, seconds.
    pub connect_timeout: u32,
    /// Default time allowed for a whole request, seconds.
    pub request_timeout: u32,
    /// Seconds between checks for stuck sessions.
    pub zombie_check_interval: u32,
    /// Seconds a connection may wait in the accept queue.
    pub accept_queue_timeout: u32,
    /// Whether the oldest connections are evicted when the queue is full.
    pub evict_on_queue_full: bool,
    /// Slab entries per connection (2 to 32 when set).
    pub slab_entries_per_connection: Option<u64>,
    /// Largest decoded Basic authorization credential, bytes.
    pub basic_auth_max_credential_bytes: Option<u64>,
    /// Uids allowed to use the command socket; `None` lets the socket's
    /// file permissions decide. (Sozu 2.3.3 has the same key.)
    pub command_allowed_uids: Option<Vec<u32>>,
    /// Default per-cluster, per-source-IP connection limit (0: none).
    pub max_connections_per_ip: u64,
    /// Default per-cluster, per-source-subnet connection limit (0: none).
    pub max_connections_per_subnet: u64,
    /// IPv4 prefix length of a subnet (0 to 32).
    pub subnet_ipv4_prefix: u32,
    /// IPv6 prefix length of a subnet (0 to 128).
    pub subnet_ipv6_prefix: u32,
    /// `Retry-After` seconds of a 429 answer (0: no header).
    pub retry_after: u32,
    /// Backend connections a request may try (1 to 255).
    pub max_connection_attempts: u32,
    /// Capacity of the pipes that splice HTTP/1.1 bodies, bytes (4096 to
    /// 2^31-1); workers ask for 1 MiB (or `pipe-max-size`) when absent.
    pub splice_pipe_capacity_bytes: Option<u64>,
    /// The keys the file set that only tune Sozu's internals and that this
    /// daemon does not act upon (they still reach workers in
    /// `ServerConfig`): each is named in [`Config::warnings`].
    pub inert_keys: Vec<&'static str>,
    /// Every listener: the declared ones in file order, then those created
    /// for frontends whose address had no listener.
    pub listeners: Vec<ListenerConfig>,
    /// Every cluster, by id.
    pub clusters: BTreeMap<String, ClusterConfig>,
}

/// A listener, as the request that adds it carries it (`active` false).
#[derive(Clone, Debug, PartialEq)]
// A configuration holds a handful of listeners, built once: boxing the
// larger variants would only make matching on them clumsier.
#[allow(clippy::large_enum_variant)]
pub enum ListenerConfig {
    /// `protocol = "http"`.
    Http(HttpListenerConfig),
    /// `protocol = "https"`.
    Https(HttpsListenerConfig),
    /// `protocol = "tcp"`.
    Tcp(TcpListenerConfig),
    /// `protocol = "udp"`.
    Udp(UdpListenerConfig),
}

impl ListenerConfig {
    /// The address the listener binds.
    pub fn address(&self) -> SocketAddr {
        match self {
            ListenerConfig::Http(listener) => listener.address.to_socket_addr(),
            ListenerConfig::Https(listener) => listener.address.to_socket_addr(),
            ListenerConfig::Tcp(listener) => listener.address.to_socket_addr(),
            ListenerConfig::Udp(listener) => listener.address.to_socket_addr(),
        }
    }

    /// The network interface the listener is bound to, if any.
    pub fn interface(&self) -> Option<&str> {
        match self {
            ListenerConfig::Http(listener) => listener.interface.as_deref(),
            ListenerConfig::Https(listener) => listener.interface.as_deref(),
            ListenerConfig::Tcp(listener) => listener.interface.as_deref(),
            ListenerConfig::Udp(listener) => listener.interface.as_deref(),
        }
    }

    /// The listener's kind, as `ActivateListener.proxy` names it.
    pub fn listener_type(&self) -> ListenerType {
        match self {
            ListenerConfig::Http(_) => ListenerType::Http,
            ListenerConfig::Https(_) => ListenerType::Https,
            ListenerConfig::Tcp(_) => ListenerType::Tcp,
            ListenerConfig::Udp(_) => ListenerType::Udp,
        }
    }

    /// The request that adds this listener. An HTTPS listener that asks for
    /// client certificates is `AddHttpsListenerWithClientAuth`, as in Sozu,
    /// so that a daemon that does not know mutual TLS refuses it.
    pub fn add_request(&self) -> Request {
        let request_type = match self {
            ListenerConfig::Http(listener) => RequestType::AddHttpListener(listener.clone()),
            ListenerConfig::Https(listener) => {
                let asks_for_client_certificates = listener.client_auth.is_some_and(|mode| {
                    mode != crate::proto::command::ClientAuthMode::ClientAuthNone as i32
                });
                if asks_for_client_certificates {
                    RequestType::AddHttpsListenerWithClientAuth(listener.clone())
                } else {
                    RequestType::AddHttpsListener(listener.clone())
                }
            }
            ListenerConfig::Tcp(listener) => RequestType::AddTcpListener(listener.clone()),
            ListenerConfig::Udp(listener) => RequestType::AddUdpListener(listener.clone()),
        };
        request_type.into()
    }

    /// The request that activates this listener.
    pub fn activate_request(&self) -> Request {
        RequestType::ActivateListener(ActivateListener {
            address: self.address().into(),
            proxy: self.listener_type() as i32,
            from_scm: false,
            interface: self.interface().map(str::to_owned),
        })
        .into()
    }
}

/// A cluster, its frontends and its backends, as requests carry them.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// Whether the file declared an `http` or a `tcp` cluster.
    pub protocol: ClusterProtocol,
    /// The `AddCluster` payload.
    pub cluster: Cluster,
    /// Frontends in file order.
    pub frontends: Vec<FrontendConfig>,
    /// Backends in file order (a `host:port` entry expanded to one backend
    /// per resolved address, sorted).
    pub backends: Vec<AddBackend>,
}

/// A frontend of a cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum FrontendConfig {
    /// A frontend on an HTTP listener.
    Http(RequestHttpFrontend),
    /// A frontend on an HTTPS listener, with the certificate it brings (its
    /// own, or its listener's), if any.
    Https {
        /// The routing rule.
        frontend: RequestHttpFrontend,
        /// The certificate sent before the frontend.
        certificate: Option<FrontendCertificate>,
    },
    /// A frontend on a TCP listener.
    Tcp(RequestTcpFrontend),
    /// A frontend of a TCP cluster on a UDP listener.
    Udp(RequestUdpFrontend),
}

/// A certificate that goes with an HTTPS frontend, checked at load.
#[derive(Clone, Debug, PartialEq)]
pub struct FrontendCertificate {
    /// Fingerprint of its leaf.
    pub fingerprint: Fingerprint,
    /// The request that adds it (`names` filled from the certificate).
    pub add: AddCertificate,
}

impl FileConfig {
    /// Parses TOML text. `path` is only used in error messages.
    ///
    /// Errors are [`ConfigError::Syntax`] for text that is not TOML and
    /// [`ConfigError::Key`] for a key that is unknown, missing or of the
    /// wrong type or form, with the key's dotted path and position.
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        build::parse_file_config(text, path)
    }
}

impl Config {
    /// Reads, parses and resolves a configuration file.
    ///
    /// Relative paths inside it are resolved against its folder (see the
    /// module documentation). Every error names `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and resolves configuration text as if read from `path`:
    /// relative paths are resolved against `path`'s folder and errors name
    /// `path`. Certificate and answer files are read.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file = FileConfig::parse(text, path)?;
        Config::from_file_config(file, path)
    }

    /// Resolves an already parsed file as if read from `path`.
    pub fn from_file_config(file: FileConfig, path: &Path) -> Result<Config, ConfigError> {
        build::Builder::new(path).build(file)
    }

    /// The configuration `sozu start` uses without a file: command socket
    /// `sozu.sock` in the working directory, 2 workers, one HTTP listener on
    /// 127.0.0.1:8080, no clusters, every other setting at its default.
    pub fn default_for_start() -> Config {
        build::default_for_start()
    }

    /// The requests that build this configuration, in the order a daemon
    /// applies them at start: listeners (HTTP, HTTPS, TCP, UDP, each in
    /// `listeners` order), then per cluster in id order: `AddCluster`, each
    /// frontend (an HTTPS frontend's `AddCertificate` first, not repeated
    /// for the same address and certificate), each backend; then an
    /// `ActivateListener` per listener in the same order when
    /// `activate_listeners` is true; then `ConfigureMetrics(DISABLED)` when
    /// `disable_cluster_metrics` is true.
    pub fn requests(&self) -> Vec<Request> {
        let kinds = [
            ListenerType::Http,
            ListenerType::Https,
            ListenerType::Tcp,
            ListenerType::Udp,
        ];
        let listeners_in_order: Vec<&ListenerConfig> = kinds
            .iter()
            .flat_map(|kind| {
                self.listeners
                    .iter()
                    .filter(move |listener| listener.listener_type() == *kind)
            })
            .collect();

        let mut requests: Vec<Request> = listeners_in_order
            .iter()
            .map(|listener| listener.add_request())
            .collect();

        let mut certificates_sent: Vec<(SocketAddr, Fingerprint)> = Vec::new();
        for cluster in self.clusters.values() {
            requests.push(RequestType::AddCluster(cluster.cluster.clone()).into());
            for frontend in &cluster.frontends {
                match frontend {
                    FrontendConfig::Http(frontend) => {
                        requests.push(http_frontend_request(frontend.clone(), false));
                    }
                    FrontendConfig::Https {
                        frontend,
                        certificate,
                    } => {
                        if let Some(certificate) = certificate {
                            let key = (
                                certificate.add.address.to_socket_addr(),
                                certificate.fingerprint,
                            );
                            if !certificates_sent.contains(&key) {
                                certificates_sent.push(key);
                                requests.push(
                                    RequestType::AddCertificate(certificate.add.clone()).into(),
                                );
                            }
                        }
                        requests.push(http_frontend_request(frontend.clone(), true));
                    }
                    FrontendConfig::Tcp(frontend) => {
                        requests.push(RequestType::AddTcpFrontend(frontend.clone()).into());
                    }
                    FrontendConfig::Udp(frontend) => {
                        requests.push(RequestType::AddUdpFrontend(frontend.clone()).into());
                    }
                }
            }
            for backend in &cluster.backends {
                let request_type = if backend.unix_path.is_some() {
                    RequestType::AddUnixBackend(backend.clone())
                } else {
                    RequestType::AddBackend(backend.clone())
                };
                requests.push(request_type.into());
            }
        }

        if self.activate_listeners {
            requests.extend(
                listeners_in_order
                    .iter()
                    .map(|listener| listener.activate_request()),
            );
        }
        if self.disable_cluster_metrics {
            requests
                .push(RequestType::ConfigureMetrics(MetricsConfiguration::Disabled as i32).into());
        }
        requests
    }

    /// [`Config::requests`] wrapped for workers, with ids `CONFIG-0`,
    /// `CONFIG-1`, ... as Sozu numbers them.
    pub fn worker_requests(&self) -> Vec<WorkerRequest> {
        self.requests()
            .into_iter()
            .enumerate()
            .map(|(index, content)| WorkerRequest {
                id: format!("CONFIG-{index}"),
                content,
            })
            .collect()
    }

    /// The process-wide settings a worker needs.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig::from(self)
    }
}

/// The request for an HTTP or HTTPS frontend: frontends that use header
/// predicates or the silent-close redirect have their own request kinds (a
/// daemon that predates them then refuses them instead of dropping the
/// field), as in Sozu.
fn http_frontend_request(frontend: RequestHttpFrontend, https: bool) -> Request {
    let silent_close = frontend.redirect == Some(RedirectPolicy::SilentClose as i32);
    let request_type = match (https, !frontend.header_predicates.is_empty(), silent_close) {
        (false, true, _) => RequestType::AddHttpFrontendWithHeaderPredicates(frontend),
        (false, false, true) => RequestType::AddHttpFrontendWithSilentClose(frontend),
        (false, false, false) => RequestType::AddHttpFrontend(frontend),
        (true, true, _) => RequestType::AddHttpsFrontendWithHeaderPredicates(frontend),
        (true, false, true) => RequestType::AddHttpsFrontendWithSilentClose(frontend),
        (true, false, false) => RequestType::AddHttpsFrontend(frontend),
    };
    request_type.into()
}

impl From<&Config> for ServerConfig {
    /// The worker's share of the configuration, as Sozu fills it.
    fn from(config: &Config) -> Self {
        let access_log_format = match config.access_logs_format {
            Some(AccessLogFormat::Protobuf) => ProtobufAccessLogFormat::Protobuf,
            // The schema has no JSON format: workers learn it outside the
            // `ServerConfig` (see the daemon's logging).
            Some(AccessLogFormat::Ascii | AccessLogFormat::Json) | None => {
                ProtobufAccessLogFormat::Ascii
            }
        };
        ServerConfig {
            max_connections: config.max_connections,
            front_timeout: config.front_timeout,
            back_timeout: config.back_timeout,
            connect_timeout: config.connect_timeout,
            zombie_check_interval: config.zombie_check_interval,
            accept_queue_timeout: config.accept_queue_timeout,
            min_buffers: config.min_buffers,
            max_buffers: config.max_buffers,
            buffer_size: config.buffer_size,
            log_level: config.log_level.clone(),
            log_target: config.log_target.clone(),
            access_logs_target: config.access_logs_target.clone(),
            command_buffer_size: config.command_buffer_size,
            max_command_buffer_size: config.max_command_buffer_size,
            metrics: config.metrics.as_ref().and_then(|metrics| {
                Some(ServerMetricsConfig {
                    address: metrics.address.as_ref()?.0.to_string(),
                    tagged_metrics: metrics.tagged_metrics,
                    prefix: metrics.prefix.clone(),
                    detail: metrics.detail.map(|detail| metric_detail(detail) as i32),
                })
            }),
            access_log_format: access_log_format as i32,
            log_colored: config.log_colored,
            audit_logs_target: config.audit_logs_target.clone(),
            audit_logs_json_target: config.audit_logs_json_target.clone(),
            slab_entries_per_connection: config.slab_entries_per_connection,
            basic_auth_max_credential_bytes: config.basic_auth_max_credential_bytes,
            evict_on_queue_full: Some(config.evict_on_queue_full),
            max_connections_per_ip: Some(config.max_connections_per_ip),
            retry_after: Some(config.retry_after),
            max_connections_per_subnet: Some(config.max_connections_per_subnet),
            subnet_ipv4_prefix: Some(config.subnet_ipv4_prefix),
            subnet_ipv6_prefix: Some(config.subnet_ipv6_prefix),
            splice_pipe_capacity_bytes: config.splice_pipe_capacity_bytes,
            max_connection_attempts: Some(config.max_connection_attempts),
        }
    }
}

impl Config {
    /// Keys that are set but have no effect with the rest of this
    /// configuration, each named with the reason, for the daemon to warn
    /// about at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self
            .inert_keys
            .iter()
            .map(|key| {
                format!("{key} tunes an internal of Sozu that this daemon does not have: ignored")
            })
            .collect();
        if let Some(metrics) = &self.metrics
            && metrics.address.is_none()
        {
            let ignored = [
                (metrics.detail.is_some(), "metrics.detail", "selects"),
                (metrics.tagged_metrics, "metrics.tagged_metrics", "shapes"),
                (metrics.prefix.is_some(), "metrics.prefix", "names"),
            ];
            for (set, key, what) in ignored {
                if set {
                    warnings.push(format!(
                        "{key} only {what} StatsD lines and metrics.address is not set: ignored"
                    ));
                }
            }
        }
        warnings
    }

    /// Serves Prometheus's `/metrics` at `address` (`sozu start
    /// --prometheus-address`), whatever the file said.
    pub fn set_prometheus_address(&mut self, address: SocketAddr) {
        let metrics = self.metrics.get_or_insert(FileMetricsConfig {
            address: None,
            prometheus_address: None,
            tagged_metrics: false,
            prefix: None,
            detail: None,
        });
        metrics.prometheus_address = Some(file::Address(address));
    }

    /// Where the main process serves Prometheus's `/metrics`, if anywhere.
    pub fn prometheus_address(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|metrics| metrics.prometheus_address.as_ref())
            .map(|address| address.0)
    }
}

fn metric_detail(level: MetricDetailLevel) -> MetricDetail {
    match level {
        MetricDetailLevel::Process => MetricDetail::DetailProcess,
        MetricDetailLevel::Frontend => MetricDetail::DetailFrontend,
        MetricDetailLevel::Cluster => MetricDetail::DetailCluster,
        MetricDetailLevel::Backend => MetricDetail::DetailBackend,
    }
}
