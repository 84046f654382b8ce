//! Process-wide settings of a proxy server.

use std::time::Duration;

use sozu_command::proto::command::ServerConfig;

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
}

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
            ..ProxyOptions::default()
        }
    }
}
