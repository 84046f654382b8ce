//! The raw shape of the TOML file, key for key, before any path is resolved
//! or any file is read.
//!
//! Every table refuses keys it does not know (so a typo is an error that
//! names the key) and accepts every key Sozu 2.3.3 accepts in the same place,
//! with the same value forms: protocols in lowercase (`"https"`), enum values
//! of the protocol in SCREAMING_SNAKE_CASE (`"LEAST_LOADED"`, `"TLS_V13"`,
//! `"TREE"`), addresses as `"ip:port"`.
//!
//! Two differences with Sozu, both on purpose: unknown *top-level* keys are
//! refused (Sozu ignores them silently), and a listener's `config` key (a
//! whole serialized Sozu `Config` nested in a listener, an implementation
//! detail of Sozu's builder that no hand-written file uses) is not accepted.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::h2_settings::{for_each_h2_setting, impl_h2_fields};
use crate::proto::command::{
    HealthCheckMode, LoadBalancingAlgorithms, LoadMetric, RulePosition, ShardMode, TlsVersion,
    UdpAffinityKey, UdpHealthMode,
};

/// Declares a struct with the `h2_*` fields of the table between the fields
/// written before and after them.
macro_rules! struct_with_h2_fields {
    (
        [$(($variant:ident, $field:ident, $ty:ty, $minimum:literal, $help:literal)),* $(,)?]
        $(#[$meta:meta])* $vis:vis struct $name:ident { $($head:tt)* } { $($tail:tt)* }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($head)*
            $(#[doc = $help] pub $field: Option<$ty>,)*
            $($tail)*
        }
    };
}

/// A struct literal with every `h2_*` field of the table `None`.
macro_rules! literal_with_h2_none {
    (
        [$(($variant:ident, $field:ident, $ty:ty, $minimum:literal, $help:literal)),* $(,)?]
        $name:ident { $($head:tt)* } { $($tail:tt)* }
    ) => {
        $name {
            $($head)*
            $($field: None,)*
            $($tail)*
        }
    };
}

/// A socket address written `"127.0.0.1:8080"` or `"[::1]:8080"`; refused
/// with a message that shows the expected form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub SocketAddr);

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AddressVisitor;
        impl Visitor<'_> for AddressVisitor {
            type Value = Address;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a socket address such as \"127.0.0.1:8080\" or \"[::1]:8080\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Address, E> {
                text.parse().map(Address).map_err(|_| {
                    E::custom(format!(
                        "{text:?} is not a socket address: expected an IP and a port such as \"127.0.0.1:8080\" or \"[::1]:8080\""
                    ))
                })
            }
        }
        deserializer.deserialize_str(AddressVisitor)
    }
}

/// The top level of the configuration file.
///
/// In this module every field is the TOML key of the same name, `None` (or
/// empty) when the key is absent; [`super::Config`] documents what each
/// setting means and its default.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub command_socket: Option<String>,
    pub command_socket_mode: Option<String>,
    pub command_buffer_size: Option<u64>,
    pub max_command_buffer_size: Option<u64>,
    pub max_connections: Option<u64>,
    pub min_buffers: Option<u64>,
    pub max_buffers: Option<u64>,
    pub buffer_size: Option<u64>,
    pub slab_entries_per_connection: Option<u64>,
    pub basic_auth_max_credential_bytes: Option<u64>,
    pub max_connections_per_ip: Option<u64>,
    pub max_connections_per_subnet: Option<u64>,
    pub subnet_ipv4_prefix: Option<u32>,
    pub subnet_ipv6_prefix: Option<u32>,
    pub retry_after: Option<u32>,
    pub max_connection_attempts: Option<u32>,
    pub splice_pipe_capacity_bytes: Option<u64>,
    pub command_allowed_uids: Option<Vec<u32>>,
    pub saved_state: Option<String>,
    pub automatic_state_save: Option<bool>,
    pub max_state_file_size: Option<u64>,
    pub state_directory: Option<String>,
    pub log_level: Option<String>,
    pub log_target: Option<String>,
    pub log_colored: Option<bool>,
    pub audit_logs_target: Option<String>,
    pub audit_logs_json_target: Option<String>,
    pub access_logs_target: Option<String>,
    pub access_logs_format: Option<AccessLogFormat>,
    pub access_logs_colored: Option<bool>,
    pub worker_count: Option<u16>,
    pub worker_automatic_restart: Option<bool>,
    pub worker_timeout: Option<u32>,
    pub metrics: Option<FileMetricsConfig>,
    pub disable_cluster_metrics: Option<bool>,
    #[serde(default)]
    pub listeners: Vec<FileListenerConfig>,
    #[serde(default)]
    pub clusters: BTreeMap<String, FileClusterConfig>,
    pub handle_process_affinity: Option<bool>,
    pub ctl_command_timeout: Option<u64>,
    pub pid_file_path: Option<String>,
    pub activate_listeners: Option<bool>,
    pub front_timeout: Option<u32>,
    pub back_timeout: Option<u32>,
    pub connect_timeout: Option<u32>,
    pub request_timeout: Option<u32>,
    pub zombie_check_interval: Option<u32>,
    pub accept_queue_timeout: Option<u32>,
    pub evict_on_queue_full: Option<bool>,
}

/// `access_logs_format`: `"ascii"` (default), `"protobuf"` (both as Sozu
/// writes them) or `"json"` (one JSON object a line; a file format of this
/// daemon, sent to workers outside the Sozu schema).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    Ascii,
    Protobuf,
    Json,
}

/// `[metrics]`: where workers send StatsD lines (`address`) and where the
/// main process serves Prometheus's `/metrics` (`prometheus_address`); at
/// least one of the two.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMetricsConfig {
    pub address: Option<Address>,
    pub prometheus_address: Option<Address>,
    #[serde(default)]
    pub tagged_metrics: bool,
    pub prefix: Option<String>,
    /// Which StatsD lines are sent; Sozu's default (`cluster`) when absent.
    pub detail: Option<MetricDetailLevel>,
}

/// `metrics.detail`: how fine-grained metric labels are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricDetailLevel {
    Process,
    Frontend,
    #[default]
    Cluster,
    Backend,
}

/// A listener's `protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    Http,
    Https,
    Tcp,
    Udp,
}

impl fmt::Display for ListenerProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenerProtocol::Http => "http",
            ListenerProtocol::Https => "https",
            ListenerProtocol::Tcp => "tcp",
            ListenerProtocol::Udp => "udp",
        })
    }
}

/// A cluster's `protocol`: `"http"` clusters serve HTTP and HTTPS
/// frontends, `"tcp"` clusters serve TCP (and UDP) frontends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterProtocol {
    Http,
    Tcp,
}

/// `forwarded_headers` of HTTP and HTTPS listeners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedHeadersMode {
    #[default]
    Both,
    XForwarded,
    Rfc7239,
    None,
}

/// `client_auth` of HTTPS listeners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthConfig {
    #[default]
    None,
    Optional,
    Required,
}

for_each_h2_setting!(struct_with_h2_fields
/// One `[[listeners]]` table. Keys that do not apply to the listener's
/// protocol (TLS keys on an HTTP listener, `sticky_name` on TCP, ...) are
/// accepted and ignored, as Sozu does; `hsts` and client authentication
/// outside HTTPS are refused.
///
/// The `h2_*` keys are the fields of
/// [`H2Setting`](crate::h2_settings::H2Setting), added to the struct from
/// that one table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileListenerConfig {
    pub address: Address,
    pub protocol: ListenerProtocol,
    pub interface: Option<String>,
    pub public_address: Option<Address>,
    pub answer_301: Option<String>,
    pub answer_400: Option<String>,
    pub answer_401: Option<String>,
    pub answer_404: Option<String>,
    pub answer_408: Option<String>,
    pub answer_413: Option<String>,
    pub answer_421: Option<String>,
    pub answer_429: Option<String>,
    pub answer_502: Option<String>,
    pub answer_503: Option<String>,
    pub answer_504: Option<String>,
    pub answer_507: Option<String>,
    pub answers: Option<BTreeMap<String, String>>,
    pub tls_versions: Option<Vec<TlsVersion>>,
    pub cipher_list: Option<Vec<String>>,
    pub cipher_suites: Option<Vec<String>>,
    pub groups_list: Option<Vec<String>>,
    pub expect_proxy: Option<bool>,
    pub sticky_name: Option<String>,
    pub certificate: Option<String>,
    pub certificate_chain: Option<String>,
    pub key: Option<String>,
    pub front_timeout: Option<u32>,
    pub back_timeout: Option<u32>,
    pub connect_timeout: Option<u32>,
    pub request_timeout: Option<u32>,
    pub send_tls13_tickets: Option<u64>,
    pub alpn_protocols: Option<Vec<String>>,
} {
    pub sozu_id_header: Option<String>,
    pub strict_sni_binding: Option<bool>,
    pub disable_http11: Option<bool>,
    pub elide_x_real_ip: Option<bool>,
    pub send_x_real_ip: Option<bool>,
    pub forwarded_headers: Option<ForwardedHeadersMode>,
    pub hsts: Option<FileHstsConfig>,
    pub max_rx_datagram_size: Option<u32>,
    pub max_flows: Option<u32>,
    pub sni_preread_timeout: Option<u32>,
    pub sni_preread_max_bytes: Option<u32>,
    pub client_auth: Option<ClientAuthConfig>,
    pub client_ca_certificates: Option<Vec<String>>,
    pub client_ca_crls: Option<Vec<String>>,
}
);

for_each_h2_setting!(impl_h2_fields FileListenerConfig);

impl FileListenerConfig {
    /// A listener with only an address and a protocol: what a frontend
    /// creates when no listener is declared at its address.
    pub fn implicit(address: SocketAddr, protocol: ListenerProtocol) -> Self {
        for_each_h2_setting!(literal_with_h2_none FileListenerConfig {
            address: Address(address),
            protocol,
            interface: None,
            public_address: None,
            answer_301: None,
            answer_400: None,
            answer_401: None,
            answer_404: None,
            answer_408: None,
            answer_413: None,
            answer_421: None,
            answer_429: None,
            answer_502: None,
            answer_503: None,
            answer_504: None,
            answer_507: None,
            answers: None,
            tls_versions: None,
            cipher_list: None,
            cipher_suites: None,
            groups_list: None,
            expect_proxy: None,
            sticky_name: None,
            certificate: None,
            certificate_chain: None,
            key: None,
            front_timeout: None,
            back_timeout: None,
            connect_timeout: None,
            request_timeout: None,
            send_tls13_tickets: None,
            alpn_protocols: None,
        } {
            sozu_id_header: None,
            strict_sni_binding: None,
            disable_http11: None,
            elide_x_real_ip: None,
            send_x_real_ip: None,
            forwarded_headers: None,
            hsts: None,
            max_rx_datagram_size: None,
            max_flows: None,
            sni_preread_timeout: None,
            sni_preread_max_bytes: None,
            client_auth: None,
            client_ca_certificates: None,
            client_ca_crls: None,
        })
    }
}

/// An `hsts` table (HTTPS listeners and HTTPS frontends).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHstsConfig {
    pub enabled: Option<bool>,
    pub max_age: Option<u32>,
    pub include_subdomains: Option<bool>,
    pub preload: Option<bool>,
    pub force_replace_backend: Option<bool>,
}

/// One `[clusters.<id>]` table.
///
/// On a `tcp` cluster, `sticky_session`, `https_redirect`, `answer_503` and
/// `http2` are accepted and ignored, as Sozu does; on an `http` cluster,
/// `send_proxy` is.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileClusterConfig {
    pub protocol: ClusterProtocol,
    #[serde(default)]
    pub frontends: Vec<FileFrontendConfig>,
    #[serde(default)]
    pub backends: Vec<FileBackendConfig>,
    pub sticky_session: Option<bool>,
    pub https_redirect: Option<bool>,
    pub https_redirect_port: Option<u32>,
    pub send_proxy: Option<bool>,
    #[serde(default)]
    pub load_balancing: LoadBalancingAlgorithms,
    pub load_metric: Option<LoadMetric>,
    pub answer_503: Option<String>,
    pub answers: Option<BTreeMap<String, String>>,
    pub http2: Option<bool>,
    pub authorized_hashes: Option<Vec<String>>,
    pub www_authenticate: Option<String>,
    pub max_connections_per_ip: Option<u64>,
    pub max_connections_per_subnet: Option<u64>,
    pub retry_after: Option<u32>,
    pub health_check: Option<FileHealthCheckConfig>,
    pub udp: Option<FileUdpClusterConfig>,
    pub affinity_header: Option<String>,
    pub affinity_cookie: Option<String>,
    pub shard_percent: Option<u32>,
    pub shard_min_backends: Option<u32>,
    pub shard_mode: Option<ShardMode>,
    pub max_connection_attempts: Option<u32>,
}

/// `path_type` of an HTTP frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PathType {
    Prefix,
    Regex,
    Equals,
}

/// One entry of a cluster's `frontends`.
///
/// On a TCP cluster, `hostname` is the SNI to match and `alpn` the ALPN
/// protocols; `path`, `certificate`, `certificate_chain` and
/// `header_predicates` are refused there (as Sozu does) and the other
/// HTTP-only keys are ignored.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFrontendConfig {
    pub address: Address,
    pub hostname: Option<String>,
    #[serde(default)]
    pub alpn: Vec<String>,
    pub path: Option<String>,
    pub path_type: Option<PathType>,
    pub method: Option<String>,
    pub certificate: Option<String>,
    pub key: Option<String>,
    pub certificate_chain: Option<String>,
    #[serde(default)]
    pub tls_versions: Vec<TlsVersion>,
    #[serde(default)]
    pub position: RulePosition,
    pub tags: Option<BTreeMap<String, String>>,
    pub redirect: Option<String>,
    pub redirect_scheme: Option<String>,
    pub redirect_template: Option<String>,
    pub rewrite_host: Option<String>,
    pub rewrite_path: Option<String>,
    pub rewrite_port: Option<u32>,
    pub required_auth: Option<bool>,
    pub headers: Option<Vec<FileHeaderEdit>>,
    pub hsts: Option<FileHstsConfig>,
    pub header_predicates: Option<Vec<FileHeaderPredicate>>,
}

/// One entry of a frontend's `headers`: `position` is `request`,
/// `response` or `both`; an empty `value` deletes the header.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHeaderEdit {
    pub position: String,
    pub key: String,
    pub value: String,
}

/// One entry of a frontend's `header_predicates`: `match` is `exact`,
/// `regex` or `present`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHeaderPredicate {
    pub name: String,
    #[serde(rename = "match")]
    pub kind: String,
    pub value: Option<String>,
}

/// One entry of a cluster's `backends`. `address` is a socket address or a
/// `host:port` resolved when the file is loaded; `weight` is 0 to 255 (the
/// range Sozu accepts), 100 when absent.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBackendConfig {
    pub address: String,
    pub weight: Option<u8>,
    pub sticky_id: Option<String>,
    pub backup: Option<bool>,
    pub backend_id: Option<String>,
    pub unix_path: Option<String>,
}

/// A cluster's `health_check` table, with Sozu's defaults.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealthCheckConfig {
    #[serde(default = "default_health_check_uri")]
    pub uri: String,
    #[serde(default = "default_health_check_interval")]
    pub interval: u32,
    #[serde(default = "default_health_check_timeout")]
    pub timeout: u32,
    #[serde(default = "default_health_check_threshold")]
    pub healthy_threshold: u32,
    #[serde(default = "default_health_check_threshold")]
    pub unhealthy_threshold: u32,
    #[serde(default)]
    pub expected_status: u32,
    pub mode: Option<HealthCheckMode>,
    #[serde(default)]
    pub accepted_statuses: Vec<String>,
    pub port: Option<u32>,
    #[serde(default)]
    pub headers: Vec<FileHealthCheckHeader>,
}

/// A health-check header whose value is read from `value_file`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealthCheckHeader {
    pub name: String,
    pub value_file: String,
}

fn default_health_check_uri() -> String {
    "/".to_owned()
}
fn default_health_check_interval() -> u32 {
    10
}
fn default_health_check_timeout() -> u32 {
    5
}
fn default_health_check_threshold() -> u32 {
    3
}

/// A cluster's `udp` table (datagram settings of a UDP cluster).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUdpClusterConfig {
    pub affinity_key: Option<UdpAffinityKey>,
    pub responses: Option<u32>,
    pub requests: Option<u32>,
    pub send_proxy_protocol: Option<bool>,
    pub proxy_protocol_every_datagram: Option<bool>,
    pub health: Option<FileUdpHealthConfig>,
}

/// A cluster's `udp.health` table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUdpHealthConfig {
    pub mode: Option<UdpHealthMode>,
    pub tcp_port: Option<u32>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub fail_open: Option<bool>,
    pub udp_probe_payload: Option<String>,
    pub probe_interval_seconds: Option<u32>,
    pub probe_timeout_seconds: Option<u32>,
}
