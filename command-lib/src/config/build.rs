//! From the raw file to a [`Config`]: defaults, paths, files, validation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::file::{FileConfig, FileListenerConfig, ListenerProtocol};
use super::{
    Config, ConfigError, DEFAULT_ACCEPT_QUEUE_TIMEOUT, DEFAULT_BACK_TIMEOUT, DEFAULT_BUFFER_SIZE,
    DEFAULT_COMMAND_BUFFER_SIZE, DEFAULT_COMMAND_SOCKET_MODE, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_CTL_COMMAND_TIMEOUT, DEFAULT_FRONT_TIMEOUT, DEFAULT_MAX_BUFFERS,
    DEFAULT_MAX_COMMAND_BUFFER_SIZE, DEFAULT_MAX_CONNECTION_ATTEMPTS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_STATE_FILE_SIZE, DEFAULT_MIN_BUFFERS, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRY_AFTER,
    DEFAULT_WORKER_COUNT, DEFAULT_WORKER_TIMEOUT, DEFAULT_ZOMBIE_CHECK_INTERVAL,
    H2_MIN_BUFFER_SIZE, ListenerConfig, Position,
};

/// Bounds of `slab_entries_per_connection`, clamped like Sozu.
const SLAB_ENTRIES_RANGE: (u64, u64) = (2, 32);

/// Bounds of `splice_pipe_capacity_bytes`: one page, and the most
/// `F_SETPIPE_SZ` takes (an `int`; the kernel's `fs.pipe-max-size`, 1 MiB by
/// default, bounds what an unprivileged worker gets).
const MIN_PIPE_CAPACITY: u64 = 4096;
const MAX_PIPE_CAPACITY: u64 = i32::MAX as u64;

pub(super) fn parse_file_config(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|error| ConfigError::Syntax {
        path: path.to_owned(),
        position: error
            .span()
            .map(|span| Position::of_offset(text, span.start)),
        message: error.message().trim().to_owned(),
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = error.path().to_string();
        let inner = error.into_inner();
        ConfigError::Key {
            path: path.to_owned(),
            key,
            position: inner
                .span()
                .map(|span| Position::of_offset(text, span.start)),
            message: inner.message().trim().to_owned(),
        }
    })
}

pub(super) fn default_for_start() -> Config {
    let mut file = FileConfig {
        worker_count: Some(DEFAULT_WORKER_COUNT),
        ..FileConfig::default()
    };
    file.listeners.push(FileListenerConfig::implicit(
        SocketAddr::from(([127, 0, 0, 1], 8080)),
        ListenerProtocol::Http,
    ));
    let mut builder = Builder::new(Path::new("sozu.toml"));
    builder.config_path = None;
    match builder.build(file) {
        Ok(config) => config,
        // An HTTP listener with defaults reads no file and breaks no rule.
        Err(error) => unreachable!("the built-in configuration is valid: {error}"),
    }
}

/// Resolves one file; carries what every error message needs.
pub(super) struct Builder {
    /// The file as named by the caller, for messages.
    pub(super) path: PathBuf,
    /// The file made absolute, stored in [`Config::config_path`].
    pub(super) config_path: Option<PathBuf>,
    /// The folder relative paths are resolved against.
    pub(super) base: PathBuf,
    /// Protocol of every listener address known so far.
    pub(super) known_addresses: HashMap<SocketAddr, ListenerProtocol>,
    /// Addresses of listeners with `expect_proxy = true`.
    pub(super) expect_proxy: HashSet<SocketAddr>,
    /// How many listeners the file declares (the others were created for
    /// frontends and have no key of their own).
    pub(super) declared_listeners: usize,
}

/// The global values listeners and clusters fall back on.
pub(super) struct Defaults {
    pub(super) front_timeout: u32,
    pub(super) back_timeout: u32,
    pub(super) connect_timeout: u32,
    pub(super) request_timeout: u32,
    pub(super) buffer_size: u64,
}

impl Builder {
    pub(super) fn new(path: &Path) -> Builder {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let base = absolute
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        Builder {
            path: path.to_owned(),
            config_path: Some(absolute),
            base,
            known_addresses: HashMap::new(),
            expect_proxy: HashSet::new(),
            declared_listeners: 0,
        }
    }

    pub(super) fn invalid(
        &self,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    pub(super) fn resolve(&self, relative: &str) -> PathBuf {
        let path = Path::new(relative);
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base.join(path)
        }
    }

    /// Reads a file the configuration names at `key`.
    pub(super) fn read(&self, key: &str, relative: &str) -> Result<(PathBuf, String), ConfigError> {
        let file = self.resolve(relative);
        match std::fs::read_to_string(&file) {
            Ok(text) => Ok((file, text)),
            Err(source) => Err(ConfigError::File {
                path: self.path.clone(),
                key: key.to_owned(),
                file,
                source,
            }),
        }
    }

    pub(super) fn build(mut self, file: FileConfig) -> Result<Config, ConfigError> {
        let defaults = Defaults {
            front_timeout: file.front_timeout.unwrap_or(DEFAULT_FRONT_TIMEOUT),
            back_timeout: file.back_timeout.unwrap_or(DEFAULT_BACK_TIMEOUT),
            connect_timeout: file.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            request_timeout: file.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            buffer_size: file.buffer_size.unwrap_or(DEFAULT_BUFFER_SIZE),
        };
        let mut config = self.top_level(&file, &defaults)?;

        let mut declared: HashSet<(SocketAddr, Option<String>)> = HashSet::new();
        for (index, listener) in file.listeners.iter().enumerate() {
            let key = format!("listeners[{index}]");
            let address = listener.address.0;
            if !declared.insert((address, listener.interface.clone())) {
                return Err(self.invalid(
                    format!("{key}.address"),
                    format!("a listener on {address} is already declared"),
                ));
            }
            if let Some(known) = self.known_addresses.get(&address)
                && *known != listener.protocol
            {
                return Err(self.invalid(
                    format!("{key}.protocol"),
                    format!(
                        "listeners sharing {address} on different interfaces must have the same protocol (found {known} and {})",
                        listener.protocol
                    ),
                ));
            }
            self.known_addresses.insert(address, listener.protocol);
            if listener.expect_proxy == Some(true) {
                self.expect_proxy.insert(address);
            }
            config
                .listeners
                .push(self.listener(&key, listener, &defaults)?);
        }

        self.declared_listeners = config.listeners.len();
        for (id, cluster) in &file.clusters {
            let built = self.cluster(id, cluster, &mut config.listeners, &defaults)?;
            config.clusters.insert(id.clone(), built);
        }

        self.check_tcp_sni_routing(&config)?;

        let h2_listeners = config.listeners.iter().any(|listener| {
            matches!(listener, ListenerConfig::Https(https)
                if https.alpn_protocols.iter().any(|protocol| protocol == "h2"))
        });
        if h2_listeners && config.buffer_size < H2_MIN_BUFFER_SIZE {
            return Err(self.invalid(
                "buffer_size",
                format!(
                    "{} is too small for HTTP/2, which an HTTPS listener offers: it must be at least {H2_MIN_BUFFER_SIZE}",
                    config.buffer_size
                ),
            ));
        }
        Ok(config)
    }

    fn top_level(&self, file: &FileConfig, defaults: &Defaults) -> Result<Config, ConfigError> {
        let command_buffer_size = file
            .command_buffer_size
            .unwrap_or(DEFAULT_COMMAND_BUFFER_SIZE);
        let max_command_buffer_size = file
            .max_command_buffer_size
            .unwrap_or(DEFAULT_MAX_COMMAND_BUFFER_SIZE);
        self.check_pipe_capacity(file.splice_pipe_capacity_bytes)?;
        if command_buffer_size > max_command_buffer_size {
            return Err(self.invalid(
                "command_buffer_size",
                format!(
                    "{command_buffer_size} is above max_command_buffer_size ({max_command_buffer_size})"
                ),
            ));
        }
        let subnet_ipv4_prefix = file.subnet_ipv4_prefix.unwrap_or(32);
        if subnet_ipv4_prefix > 32 {
            return Err(self.invalid(
                "subnet_ipv4_prefix",
                format!("{subnet_ipv4_prefix} is not an IPv4 prefix length (0 to 32)"),
            ));
        }
        let subnet_ipv6_prefix = file.subnet_ipv6_prefix.unwrap_or(128);
        if subnet_ipv6_prefix > 128 {
            return Err(self.invalid(
                "subnet_ipv6_prefix",
                format!("{subnet_ipv6_prefix} is not an IPv6 prefix length (0 to 128)"),
            ));
        }
        let max_connection_attempts = file
            .max_connection_attempts
            .unwrap_or(DEFAULT_MAX_CONNECTION_ATTEMPTS);
        self.check_connection_attempts("max_connection_attempts", max_connection_attempts)?;
        let command_socket_mode = match &file.command_socket_mode {
            Some(mode) => self.command_socket_mode(mode)?,
            None => DEFAULT_COMMAND_SOCKET_MODE,
        };
        let automatic_state_save = file.automatic_state_save.unwrap_or(false);
        if automatic_state_save && file.saved_state.is_none() {
            return Err(self.invalid(
                "automatic_state_save",
                "automatic_state_save needs saved_state: the file to save to",
            ));
        }
        let max_state_file_size = file
            .max_state_file_size
            .unwrap_or(DEFAULT_MAX_STATE_FILE_SIZE);
        if max_state_file_size == 0 {
            return Err(self.invalid(
                "max_state_file_size",
                "0 would refuse every state file: give a size in bytes",
            ));
        }
        let command_socket = match &file.command_socket {
            Some(socket) => self.resolve(socket),
            None => std::path::absolute("sozu.sock").unwrap_or_else(|_| "sozu.sock".into()),
        };
        let max_buffers = file.max_buffers.unwrap_or(DEFAULT_MAX_BUFFERS);
        if let Some(metrics) = &file.metrics {
            if metrics.address.is_none() && metrics.prometheus_address.is_none() {
                return Err(self.invalid(
                    "metrics",
                    "[metrics] needs address (a StatsD UDP target), prometheus_address (where to serve /metrics), or both",
                ));
            }
            if metrics.prefix.as_deref().is_some_and(|prefix| {
                prefix.is_empty() || prefix.contains([':', '|', '\n', ' ', ','])
            }) {
                return Err(self.invalid(
                    "metrics.prefix",
                    "a StatsD prefix is a non-empty name without ':', '|', ',', spaces or newlines",
                ));
            }
        }

        Ok(Config {
            config_path: self.config_path.clone(),
            command_socket,
            command_socket_mode,
            command_buffer_size,
            max_command_buffer_size,
            max_connections: file.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            min_buffers: file
                .min_buffers
                .unwrap_or(DEFAULT_MIN_BUFFERS)
                .min(max_buffers),
            max_buffers,
            buffer_size: defaults.buffer_size,
            saved_state: file.saved_state.as_deref().map(|path| self.resolve(path)),
            automatic_state_save,
            max_state_file_size,
            state_directory: file
                .state_directory
                .as_deref()
                .map(|path| self.resolve(path)),
            log_level: file.log_level.clone().unwrap_or_else(|| "info".to_owned()),
            log_target: file
                .log_target
                .clone()
                .unwrap_or_else(|| "stdout".to_owned()),
            log_colored: file.log_colored.unwrap_or(false),
            access_logs_target: file.access_logs_target.clone(),
            access_logs_format: file.access_logs_format,
            access_logs_colored: file.access_logs_colored,
            audit_logs_target: file.audit_logs_target.clone(),
            audit_logs_json_target: file.audit_logs_json_target.clone(),
            worker_count: file.worker_count.unwrap_or(DEFAULT_WORKER_COUNT),
            worker_automatic_restart: file.worker_automatic_restart.unwrap_or(true),
            worker_timeout: file.worker_timeout.unwrap_or(DEFAULT_WORKER_TIMEOUT),
            metrics: file.metrics.clone(),
            disable_cluster_metrics: file.disable_cluster_metrics.unwrap_or(false),
            handle_process_affinity: file.handle_process_affinity.unwrap_or(false),
            ctl_command_timeout: file
                .ctl_command_timeout
                .unwrap_or(DEFAULT_CTL_COMMAND_TIMEOUT),
            pid_file_path: file.pid_file_path.as_deref().map(|path| self.resolve(path)),
            activate_listeners: file.activate_listeners.unwrap_or(true),
            front_timeout: defaults.front_timeout,
            back_timeout: defaults.back_timeout,
            connect_timeout: defaults.connect_timeout,
            request_timeout: defaults.request_timeout,
            zombie_check_interval: file
                .zombie_check_interval
                .unwrap_or(DEFAULT_ZOMBIE_CHECK_INTERVAL),
            accept_queue_timeout: file
                .accept_queue_timeout
                .unwrap_or(DEFAULT_ACCEPT_QUEUE_TIMEOUT),
            evict_on_queue_full: file.evict_on_queue_full.unwrap_or(false),
            slab_entries_per_connection: file
                .slab_entries_per_connection
                .map(|entries| entries.clamp(SLAB_ENTRIES_RANGE.0, SLAB_ENTRIES_RANGE.1)),
            basic_auth_max_credential_bytes: file.basic_auth_max_credential_bytes,
            command_allowed_uids: file.command_allowed_uids.clone(),
            max_connections_per_ip: file.max_connections_per_ip.unwrap_or(0),
            max_connections_per_subnet: file.max_connections_per_subnet.unwrap_or(0),
            subnet_ipv4_prefix,
            subnet_ipv6_prefix,
            retry_after: file.retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            max_connection_attempts,
            splice_pipe_capacity_bytes: file.splice_pipe_capacity_bytes,
            inert_keys: inert_keys(file),
            listeners: Vec::new(),
            clusters: BTreeMap::new(),
        })
    }

    /// `splice_pipe_capacity_bytes` within what a pipe may be given.
    fn check_pipe_capacity(&self, capacity: Option<u64>) -> Result<(), ConfigError> {
        match capacity {
            Some(capacity) if !(MIN_PIPE_CAPACITY..=MAX_PIPE_CAPACITY).contains(&capacity) => {
                Err(self.invalid(
                    "splice_pipe_capacity_bytes",
                    format!(
                        "{capacity} is out of range: a pipe holds from {MIN_PIPE_CAPACITY} bytes (one page) to {MAX_PIPE_CAPACITY}"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// One to four octal digits, at most 0777, keeping the owner's 0600.
    fn command_socket_mode(&self, text: &str) -> Result<u32, ConfigError> {
        let invalid = |reason: &str| {
            self.invalid(
                "command_socket_mode",
                format!("{text:?} is not a valid mode: {reason}"),
            )
        };
        if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(invalid(
                "expected one to four octal digits, such as \"0660\"",
            ));
        }
        let mode = u32::from_str_radix(text, 8).map_err(|_| invalid("not octal"))?;
        if mode > 0o777 {
            return Err(invalid("only permission bits (at most 0777) are allowed"));
        }
        if mode & 0o600 != 0o600 {
            return Err(invalid("the owner must keep read and write (0600)"));
        }
        Ok(mode)
    }

    pub(super) fn check_connection_attempts(
        &self,
        key: &str,
        attempts: u32,
    ) -> Result<(), ConfigError> {
        if (1..=255).contains(&attempts) {
            Ok(())
        } else {
            Err(self.invalid(key, format!("{attempts} is not within 1 to 255")))
        }
    }
}

/// The keys `file` sets that only tune Sozu internals (see
/// [`Config::inert_keys`]).
fn inert_keys(file: &FileConfig) -> Vec<&'static str> {
    [
        (
            "handle_process_affinity",
            file.handle_process_affinity.is_some(),
        ),
        (
            "zombie_check_interval",
            file.zombie_check_interval.is_some(),
        ),
        ("accept_queue_timeout", file.accept_queue_timeout.is_some()),
        ("evict_on_queue_full", file.evict_on_queue_full.is_some()),
        (
            "slab_entries_per_connection",
            file.slab_entries_per_connection.is_some(),
        ),
        (
            "basic_auth_max_credential_bytes",
            file.basic_auth_max_credential_bytes.is_some(),
        ),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect()
}
