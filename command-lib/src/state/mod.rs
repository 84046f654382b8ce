//! [`ConfigState`]: the configuration a daemon holds, and everything done with it.
//!
//! The main process keeps one `ConfigState` as the truth. Every request that
//! changes the configuration goes through [`ConfigState::dispatch`] first: it
//! is validated against the current state and either applied whole or refused
//! with a [`StateError`] that names what was wrong, leaving the state exactly
//! as it was. From a state one can:
//!
//! - answer the queries a daemon serves from its own state ([`query`]);
//! - list the requests that rebuild it from nothing, in Sozu's order
//!   ([`ConfigState::generate_requests`]), which is also the state file;
//! - compute the requests that turn it into another state ([`diff`]);
//! - save and load state files ([`file`]).
//!
//! Settings that are not configuration objects (logging level, metrics
//! switches, connection limits, request counters) are not part of the state:
//! [`ConfigState::dispatch`] refuses them with [`StateError::NotAStateChange`]
//! and the daemon keeps them itself.

pub mod diff;
pub mod file;
pub mod query;
pub mod undo;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::certificate;
use crate::proto::command::{
    ActivateListener, AddBackend, AddCertificate, CertificateAndKey, Cluster, DeactivateListener,
    HttpListenerConfig, HttpsListenerConfig, ListenerType, PathRule, PathRuleKind, RemoveBackend,
    RemoveCertificate, RemoveListener, ReplaceCertificate, Request, RequestHttpFrontend,
    RequestTcpFrontend, SetHealthCheck, SocketAddress, TcpListenerConfig, UpdateHttpListenerConfig,
    UpdateHttpsListenerConfig, UpdateTcpListenerConfig, request::RequestType,
};

/// Why a request was refused by [`ConfigState::dispatch`]. The state is
/// unchanged whenever one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The request carried no variant at all.
    #[error("the request is empty: it names no operation")]
    EmptyRequest,
    /// The request is valid but does not change configuration objects (a
    /// query, a process setting, a control order).
    #[error("{0} does not change the configuration state")]
    NotAStateChange(String),
    /// An address field cannot be used.
    #[error("invalid {field}: {reason}")]
    InvalidAddress {
        /// Which field, e.g. `address` or `public_address`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A field holds a value the state cannot accept.
    #[error("invalid {field}: {reason}")]
    InvalidValue {
        /// The field name as in the protocol.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A listener (of any kind) already uses this address.
    #[error("a {existing} listener already exists on {address}")]
    ListenerExists {
        /// The address asked for.
        address: SocketAddr,
        /// The kind of the listener already there.
        existing: &'static str,
    },
    /// No listener of that kind on that address.
    #[error("no {kind} listener on {address}")]
    ListenerNotFound {
        /// The address asked for.
        address: SocketAddr,
        /// The kind that was expected.
        kind: &'static str,
    },
    /// A listener cannot go while configuration still depends on it.
    #[error(
        "the {kind} listener on {address} still has {frontends} frontend(s) and {certificates} certificate(s); remove them first"
    )]
    ListenerInUse {
        /// The listener address.
        address: SocketAddr,
        /// The kind of the listener.
        kind: &'static str,
        /// Frontends still bound to it.
        frontends: usize,
        /// Certificates still bound to it.
        certificates: usize,
    },
    /// The cluster named by a frontend, backend or health check is unknown.
    #[error("{what} names cluster '{cluster_id}', which does not exist; add the cluster first")]
    ClusterNotFound {
        /// What referred to the cluster.
        what: &'static str,
        /// The unknown id.
        cluster_id: String,
    },
    /// A cluster id cannot be used.
    #[error("cluster '{0}' does not exist")]
    UnknownCluster(String),
    /// A frontend with the same routing key exists already.
    #[error("{kind} frontend {key} already exists; remove it first")]
    FrontendExists {
        /// `http`, `https` or `tcp`.
        kind: &'static str,
        /// The routing key, readable.
        key: String,
    },
    /// No frontend with that routing key.
    #[error("no {kind} frontend {key}")]
    FrontendNotFound {
        /// `http`, `https` or `tcp`.
        kind: &'static str,
        /// The routing key, readable.
        key: String,
    },
    /// No backend with that id and address in that cluster.
    #[error("no backend '{backend_id}' at {address} in cluster '{cluster_id}'")]
    BackendNotFound {
        /// The cluster asked for.
        cluster_id: String,
        /// The backend id asked for.
        backend_id: String,
        /// The backend address asked for.
        address: SocketAddr,
    },
    /// The certificate material was refused.
    #[error("certificate refused: {0}")]
    Certificate(String),
    /// No certificate with that fingerprint on that listener.
    #[error("no certificate with fingerprint {fingerprint} on {address}")]
    CertificateNotFound {
        /// The listener address.
        address: SocketAddr,
        /// The fingerprint asked for.
        fingerprint: String,
    },
    /// The cluster has no health check to remove.
    #[error("cluster '{0}' has no health check")]
    NoHealthCheck(String),
    /// The change's own content is invalid (see [`crate::validate`]).
    #[error(transparent)]
    Invalid(#[from] crate::validate::Invalid),
}

/// The routing key of an HTTP or HTTPS frontend: two frontends with equal keys
/// cannot coexist. Ordering follows address, then hostname, then path, which
/// is the order Sozu writes them in state files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrontendKey {
    /// The listener address.
    pub address: SocketAddr,
    /// The hostname pattern as given.
    pub hostname: String,
    /// The path rule kind (prefix, regex, equals) as its protocol number.
    pub path_kind: i32,
    /// The path rule value.
    pub path: String,
    /// The method filter, if any.
    pub method: Option<String>,
}

impl FrontendKey {
    fn of(frontend: &RequestHttpFrontend) -> Self {
        FrontendKey {
            address: frontend.address.to_socket_addr(),
            hostname: frontend.hostname.clone(),
            path_kind: frontend.path.kind,
            path: frontend.path.value.clone(),
            method: frontend.method.clone(),
        }
    }
}

impl std::fmt::Display for FrontendKey {
    /// `127.0.0.1:8080 example.com prefix "/api" [GET]`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match PathRuleKind::try_from(self.path_kind) {
            Ok(PathRuleKind::Prefix) => "prefix",
            Ok(PathRuleKind::Regex) => "regex",
            Ok(PathRuleKind::Equals) => "equals",
            Err(_) => "unknown-kind",
        };
        write!(
            f,
            "{} {} {} {:?}",
            self.address, self.hostname, kind, self.path
        )?;
        if let Some(method) = &self.method {
            write!(f, " [{method}]")?;
        }
        Ok(())
    }
}

/// The key of a backend inside its cluster: Sozu allows one id on several
/// addresses, and adding the same id and address again updates it.
pub type BackendKey = (String, SocketAddr);

/// The backends of one cluster, sorted by [`BackendKey`].
///
/// A sorted vector rather than a map: clusters have a few backends, and the
/// smallest node of a `BTreeMap` has room for eleven (2 KB per cluster for
/// two backends, twice what they hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterBackends(Vec<AddBackend>);

impl ClusterBackends {
    fn search(&self, backend_id: &str, address: SocketAddr) -> Result<usize, usize> {
        self.0.binary_search_by(|backend| {
            (
                backend.backend_id.as_str(),
                backend.address.to_socket_addr(),
            )
                .cmp(&(backend_id, address))
        })
    }

    /// The backend with this id and address.
    pub fn get(&self, backend_id: &str, address: SocketAddr) -> Option<&AddBackend> {
        self.search(backend_id, address)
            .ok()
            .map(|index| &self.0[index])
    }

    /// Adds a backend, or replaces the one with the same id and address.
    pub fn insert(&mut self, backend: AddBackend) {
        let address = backend.address.to_socket_addr();
        match self.search(&backend.backend_id, address) {
            Ok(index) => self.0[index] = backend,
            Err(index) => self.0.insert(index, backend),
        }
    }

    /// Removes the backend with this id and address.
    pub fn remove(&mut self, backend_id: &str, address: SocketAddr) -> Option<AddBackend> {
        let index = self.search(backend_id, address).ok()?;
        Some(self.0.remove(index))
    }

    /// The backends, in key order.
    pub fn iter(&self) -> std::slice::Iter<'_, AddBackend> {
        self.0.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a ClusterBackends {
    type Item = &'a AddBackend;
    type IntoIter = std::slice::Iter<'a, AddBackend>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The whole configuration: listeners, clusters, frontends, backends and
/// certificates.
///
/// Fields are public for reading; change them only through
/// [`ConfigState::dispatch`], which keeps them consistent (no backend
/// without its cluster, no frontend without its listener, …).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigState {
    /// HTTP listeners by address.
    pub http_listeners: BTreeMap<SocketAddr, HttpListenerConfig>,
    /// HTTPS listeners by address.
    pub https_listeners: BTreeMap<SocketAddr, HttpsListenerConfig>,
    /// TCP listeners by address.
    pub tcp_listeners: BTreeMap<SocketAddr, TcpListenerConfig>,
    /// Clusters by id.
    pub clusters: BTreeMap<String, Cluster>,
    /// Backends by cluster id, then by (backend id, address).
    pub backends: BTreeMap<String, ClusterBackends>,
    /// HTTP frontends by routing key.
    pub http_frontends: BTreeMap<FrontendKey, RequestHttpFrontend>,
    /// HTTPS frontends by routing key.
    pub https_frontends: BTreeMap<FrontendKey, RequestHttpFrontend>,
    /// TCP frontends by cluster id, sorted by address then SNI.
    pub tcp_frontends: BTreeMap<String, Vec<RequestTcpFrontend>>,
    /// Certificates by listener address, then by lowercase hex fingerprint.
    pub certificates: BTreeMap<SocketAddr, BTreeMap<String, CertificateAndKey>>,
}

/// Copies every field an HTTP or HTTPS listener update carries (they share
/// these names) onto the listener.
macro_rules! apply_common_update {
    ($listener:ident, $update:ident) => {
        if $update.public_address.is_some() {
            $listener.public_address = $update.public_address;
        }
        if let Some(value) = $update.expect_proxy {
            $listener.expect_proxy = value;
        }
        if let Some(value) = &$update.sticky_name {
            $listener.sticky_name = value.clone();
        }
        if let Some(value) = $update.front_timeout {
            $listener.front_timeout = value;
        }
        if let Some(value) = $update.back_timeout {
            $listener.back_timeout = value;
        }
        if let Some(value) = $update.connect_timeout {
            $listener.connect_timeout = value;
        }
        if let Some(value) = $update.request_timeout {
            $listener.request_timeout = value;
        }
        if let Some(value) = &$update.sozu_id_header {
            $listener.sozu_id_header = Some(value.clone());
        }
        for (status, template) in &$update.answers {
            $listener.answers.insert(status.clone(), template.clone());
        }
        if $update.elide_x_real_ip.is_some() {
            $listener.elide_x_real_ip = $update.elide_x_real_ip;
        }
        if $update.send_x_real_ip.is_some() {
            $listener.send_x_real_ip = $update.send_x_real_ip;
        }
        if $update.forwarded_headers.is_some() {
            $listener.forwarded_headers = $update.forwarded_headers;
        }
        $crate::h2_settings::H2Fields::patch_h2_from(&mut $listener, $update);
    };
}

const HTTP: &str = "HTTP";
const HTTPS: &str = "HTTPS";
const TCP: &str = "TCP";

fn checked_address(field: &'static str, address: &SocketAddress) -> Result<SocketAddr, StateError> {
    address
        .validate()
        .map_err(|reason| StateError::InvalidAddress { field, reason })
}

fn listener_kind_name(proxy: i32) -> Result<&'static str, StateError> {
    match ListenerType::try_from(proxy) {
        Ok(ListenerType::Http) => Ok(HTTP),
        Ok(ListenerType::Https) => Ok(HTTPS),
        Ok(ListenerType::Tcp) => Ok(TCP),
        Ok(ListenerType::Udp) => Err(StateError::InvalidValue {
            field: "proxy",
            reason: "UDP listeners are not supported".to_owned(),
        }),
        Err(_) => Err(StateError::InvalidValue {
            field: "proxy",
            reason: format!("{proxy} is not a listener type"),
        }),
    }
}

fn check_enum<T: TryFrom<i32>>(field: &'static str, value: i32) -> Result<(), StateError> {
    T::try_from(value)
        .map(|_| ())
        .map_err(|_| StateError::InvalidValue {
            field,
            reason: format!("{value} is not a known value"),
        })
}

impl ConfigState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one configuration change, or refuses it and changes nothing.
    ///
    /// Handles every request that adds, changes or removes listeners,
    /// clusters, frontends, backends, certificates and health checks.
    /// Anything else is refused with [`StateError::NotAStateChange`]; callers
    /// (the daemon) decide what to do with those.
    pub fn dispatch(&mut self, request: &Request) -> Result<(), StateError> {
        let Some(request_type) = &request.request_type else {
            return Err(StateError::EmptyRequest);
        };
        crate::validate::request(request)?;
        match request_type {
            RequestType::AddHttpListener(listener) => self.add_http_listener(listener),
            RequestType::AddHttpsListener(listener) => self.add_https_listener(listener),
            RequestType::AddTcpListener(listener) => self.add_tcp_listener(listener),
            RequestType::UpdateHttpListener(update) => self.update_http_listener(update),
            RequestType::UpdateHttpsListener(update) => self.update_https_listener(update),
            RequestType::UpdateTcpListener(update) => self.update_tcp_listener(update),
            RequestType::RemoveListener(remove) => self.remove_listener(remove),
            RequestType::ActivateListener(activate) => self.activate_listener(activate),
            RequestType::DeactivateListener(deactivate) => self.deactivate_listener(deactivate),
            RequestType::AddCluster(cluster) => self.add_cluster(cluster),
            RequestType::RemoveCluster(cluster_id) => self.remove_cluster(cluster_id),
            RequestType::AddHttpFrontend(frontend) => self.add_http_frontend(frontend, false),
            RequestType::AddHttpsFrontend(frontend) => self.add_http_frontend(frontend, true),
            RequestType::RemoveHttpFrontend(frontend) => self.remove_http_frontend(frontend, false),
            RequestType::RemoveHttpsFrontend(frontend) => self.remove_http_frontend(frontend, true),
            RequestType::AddTcpFrontend(frontend) => self.add_tcp_frontend(frontend),
            RequestType::RemoveTcpFrontend(frontend) => self.remove_tcp_frontend(frontend),
            RequestType::AddBackend(backend) => self.add_backend(backend),
            RequestType::RemoveBackend(backend) => self.remove_backend(backend),
            RequestType::AddCertificate(add) => self.add_certificate(add),
            RequestType::ReplaceCertificate(replace) => self.replace_certificate(replace),
            RequestType::RemoveCertificate(remove) => self.remove_certificate(remove),
            RequestType::SetHealthCheck(set) => self.set_health_check(set),
            RequestType::RemoveHealthCheck(cluster_id) => self.remove_health_check(cluster_id),
            _ => Err(StateError::NotAStateChange(request.kind_name())),
        }
    }

    /// Whether [`ConfigState::dispatch`] handles this kind of request (as
    /// opposed to refusing it as not a state change).
    pub fn changes_state(request: &Request) -> bool {
        matches!(
            request.request_type,
            Some(
                RequestType::AddHttpListener(_)
                    | RequestType::AddHttpsListener(_)
                    | RequestType::AddTcpListener(_)
                    | RequestType::UpdateHttpListener(_)
                    | RequestType::UpdateHttpsListener(_)
                    | RequestType::UpdateTcpListener(_)
                    | RequestType::RemoveListener(_)
                    | RequestType::ActivateListener(_)
                    | RequestType::DeactivateListener(_)
                    | RequestType::AddCluster(_)
                    | RequestType::RemoveCluster(_)
                    | RequestType::AddHttpFrontend(_)
                    | RequestType::AddHttpsFrontend(_)
                    | RequestType::RemoveHttpFrontend(_)
                    | RequestType::RemoveHttpsFrontend(_)
                    | RequestType::AddTcpFrontend(_)
                    | RequestType::RemoveTcpFrontend(_)
                    | RequestType::AddBackend(_)
                    | RequestType::RemoveBackend(_)
                    | RequestType::AddCertificate(_)
                    | RequestType::ReplaceCertificate(_)
                    | RequestType::RemoveCertificate(_)
                    | RequestType::SetHealthCheck(_)
                    | RequestType::RemoveHealthCheck(_)
            )
        )
    }

    // ---- listeners ----

    fn listener_kind_at(&self, address: &SocketAddr) -> Option<&'static str> {
        if self.http_listeners.contains_key(address) {
            Some(HTTP)
        } else if self.https_listeners.contains_key(address) {
            Some(HTTPS)
        } else if self.tcp_listeners.contains_key(address) {
            Some(TCP)
        } else {
            None
        }
    }

    fn check_new_listener(
        &self,
        address: &SocketAddress,
        public_address: Option<&SocketAddress>,
    ) -> Result<SocketAddr, StateError> {
        let address = checked_address("address", address)?;
        if let Some(public_address) = public_address {
            checked_address("public_address", public_address)?;
        }
        if let Some(existing) = self.listener_kind_at(&address) {
            return Err(StateError::ListenerExists { address, existing });
        }
        Ok(address)
    }

    fn add_http_listener(&mut self, listener: &HttpListenerConfig) -> Result<(), StateError> {
        let address =
            self.check_new_listener(&listener.address, listener.public_address.as_ref())?;
        check_enum::<crate::proto::command::ForwardedHeaders>(
            "forwarded_headers",
            listener.forwarded_headers.unwrap_or_default(),
        )?;
        self.http_listeners.insert(address, listener.clone());
        Ok(())
    }

    fn add_https_listener(&mut self, listener: &HttpsListenerConfig) -> Result<(), StateError> {
        let address =
            self.check_new_listener(&listener.address, listener.public_address.as_ref())?;
        for version in &listener.versions {
            check_enum::<crate::proto::command::TlsVersion>("versions", *version)?;
        }
        check_enum::<crate::proto::command::ForwardedHeaders>(
            "forwarded_headers",
            listener.forwarded_headers.unwrap_or_default(),
        )?;
        self.https_listeners.insert(address, listener.clone());
        Ok(())
    }

    fn add_tcp_listener(&mut self, listener: &TcpListenerConfig) -> Result<(), StateError> {
        let address =
            self.check_new_listener(&listener.address, listener.public_address.as_ref())?;
        self.tcp_listeners.insert(address, listener.clone());
        Ok(())
    }

    fn update_http_listener(
        &mut self,
        update: &UpdateHttpListenerConfig,
    ) -> Result<(), StateError> {
        let address = checked_address("address", &update.address)?;
        if let Some(public_address) = &update.public_address {
            checked_address("public_address", public_address)?;
        }
        let listener =
            self.http_listeners
                .get_mut(&address)
                .ok_or(StateError::ListenerNotFound {
                    address,
                    kind: HTTP,
                })?;
        let mut updated = listener.clone();
        apply_common_update!(updated, update);
        if let Some(answers) = &update.http_answers {
            merge_answers(
                updated.http_answers.get_or_insert_with(Default::default),
                answers,
            );
        }
        *listener = updated;
        Ok(())
    }

    fn update_https_listener(
        &mut self,
        update: &UpdateHttpsListenerConfig,
    ) -> Result<(), StateError> {
        let address = checked_address("address", &update.address)?;
        if let Some(public_address) = &update.public_address {
            checked_address("public_address", public_address)?;
        }
        let listener =
            self.https_listeners
                .get_mut(&address)
                .ok_or(StateError::ListenerNotFound {
                    address,
                    kind: HTTPS,
                })?;
        let mut updated = listener.clone();
        apply_common_update!(updated, update);
        if let Some(answers) = &update.http_answers {
            merge_answers(
                updated.http_answers.get_or_insert_with(Default::default),
                answers,
            );
        }
        if let Some(alpn) = &update.alpn_protocols {
            updated.alpn_protocols = alpn.values.clone();
        }
        if update.strict_sni_binding.is_some() {
            updated.strict_sni_binding = update.strict_sni_binding;
        }
        if update.disable_http11.is_some() {
            updated.disable_http11 = update.disable_http11;
        }
        if update.hsts.is_some() {
            updated.hsts = update.hsts;
        }
        if let Some(policy) = &update.client_auth_policy {
            updated.client_auth = policy.client_auth;
            updated.client_ca_certificates = policy.client_ca_certificates.clone();
            updated.client_ca_crls = policy.client_ca_crls.clone();
        }
        *listener = updated;
        Ok(())
    }

    fn update_tcp_listener(&mut self, update: &UpdateTcpListenerConfig) -> Result<(), StateError> {
        let address = checked_address("address", &update.address)?;
        if let Some(public_address) = &update.public_address {
            checked_address("public_address", public_address)?;
        }
        let listener = self
            .tcp_listeners
            .get_mut(&address)
            .ok_or(StateError::ListenerNotFound { address, kind: TCP })?;
        if update.public_address.is_some() {
            listener.public_address = update.public_address;
        }
        if let Some(value) = update.expect_proxy {
            listener.expect_proxy = value;
        }
        if let Some(value) = update.front_timeout {
            listener.front_timeout = value;
        }
        if let Some(value) = update.back_timeout {
            listener.back_timeout = value;
        }
        if let Some(value) = update.connect_timeout {
            listener.connect_timeout = value;
        }
        Ok(())
    }

    fn remove_listener(&mut self, remove: &RemoveListener) -> Result<(), StateError> {
        let address = checked_address("address", &remove.address)?;
        let kind = listener_kind_name(remove.proxy)?;
        let exists = match kind {
            HTTP => self.http_listeners.contains_key(&address),
            HTTPS => self.https_listeners.contains_key(&address),
            _ => self.tcp_listeners.contains_key(&address),
        };
        if !exists {
            return Err(StateError::ListenerNotFound { address, kind });
        }
        let frontends = match kind {
            HTTP => self
                .http_frontends
                .keys()
                .filter(|key| key.address == address)
                .count(),
            HTTPS => self
                .https_frontends
                .keys()
                .filter(|key| key.address == address)
                .count(),
            _ => self
                .tcp_frontends
                .values()
                .flatten()
                .filter(|front| front.address.to_socket_addr() == address)
                .count(),
        };
        let certificates = self.certificates.get(&address).map_or(0, BTreeMap::len);
        if frontends > 0 || certificates > 0 {
            return Err(StateError::ListenerInUse {
                address,
                kind,
                frontends,
                certificates,
            });
        }
        match kind {
            HTTP => self.http_listeners.remove(&address).map(drop),
            HTTPS => self.https_listeners.remove(&address).map(drop),
            _ => self.tcp_listeners.remove(&address).map(drop),
        };
        Ok(())
    }

    fn set_listener_active(
        &mut self,
        address: &SocketAddress,
        proxy: i32,
        active: bool,
    ) -> Result<(), StateError> {
        let address = checked_address("address", address)?;
        let kind = listener_kind_name(proxy)?;
        let flag = match kind {
            HTTP => self.http_listeners.get_mut(&address).map(|l| &mut l.active),
            HTTPS => self
                .https_listeners
                .get_mut(&address)
                .map(|l| &mut l.active),
            _ => self.tcp_listeners.get_mut(&address).map(|l| &mut l.active),
        };
        let flag = flag.ok_or(StateError::ListenerNotFound { address, kind })?;
        *flag = active;
        Ok(())
    }

    fn activate_listener(&mut self, activate: &ActivateListener) -> Result<(), StateError> {
        self.set_listener_active(&activate.address, activate.proxy, true)
    }

    fn deactivate_listener(&mut self, deactivate: &DeactivateListener) -> Result<(), StateError> {
        self.set_listener_active(&deactivate.address, deactivate.proxy, false)
    }

    // ---- clusters ----

    /// Adds a cluster, or replaces the settings of an existing one (Sozu's
    /// behaviour: `cluster add` on an existing id updates it; its frontends
    /// and backends stay).
    fn add_cluster(&mut self, cluster: &Cluster) -> Result<(), StateError> {
        if cluster.cluster_id.is_empty() {
            return Err(StateError::InvalidValue {
                field: "cluster_id",
                reason: "a cluster id cannot be empty".to_owned(),
            });
        }
        check_enum::<crate::proto::command::LoadBalancingAlgorithms>(
            "load_balancing",
            cluster.load_balancing,
        )?;
        if let Some(metric) = cluster.load_metric {
            check_enum::<crate::proto::command::LoadMetric>("load_metric", metric)?;
        }
        if let Some(proxy_protocol) = cluster.proxy_protocol {
            check_enum::<crate::proto::command::ProxyProtocolConfig>(
                "proxy_protocol",
                proxy_protocol,
            )?;
        }
        self.clusters
            .insert(cluster.cluster_id.clone(), cluster.clone());
        Ok(())
    }

    /// Removes a cluster with every frontend and backend that names it.
    fn remove_cluster(&mut self, cluster_id: &str) -> Result<(), StateError> {
        if self.clusters.remove(cluster_id).is_none() {
            return Err(StateError::UnknownCluster(cluster_id.to_owned()));
        }
        self.backends.remove(cluster_id);
        self.tcp_frontends.remove(cluster_id);
        let names_it =
            |front: &RequestHttpFrontend| front.cluster_id.as_deref() == Some(cluster_id);
        self.http_frontends.retain(|_, front| !names_it(front));
        self.https_frontends.retain(|_, front| !names_it(front));
        Ok(())
    }

    fn set_health_check(&mut self, set: &SetHealthCheck) -> Result<(), StateError> {
        let cluster =
            self.clusters
                .get_mut(&set.cluster_id)
                .ok_or_else(|| StateError::ClusterNotFound {
                    what: "the health check",
                    cluster_id: set.cluster_id.clone(),
                })?;
        if set.config.interval == 0 {
            return Err(StateError::InvalidValue {
                field: "interval",
                reason: "a health check interval must be at least 1 second".to_owned(),
            });
        }
        if set.config.timeout == 0 {
            return Err(StateError::InvalidValue {
                field: "timeout",
                reason: "a health check timeout must be at least 1 second".to_owned(),
            });
        }
        if !set.config.uri.starts_with('/') {
            return Err(StateError::InvalidValue {
                field: "uri",
                reason: format!("'{}' does not start with '/'", set.config.uri),
            });
        }
        cluster.health_check = Some(set.config.clone());
        Ok(())
    }

    fn remove_health_check(&mut self, cluster_id: &str) -> Result<(), StateError> {
        let cluster = self
            .clusters
            .get_mut(cluster_id)
            .ok_or_else(|| StateError::UnknownCluster(cluster_id.to_owned()))?;
        if cluster.health_check.take().is_none() {
            return Err(StateError::NoHealthCheck(cluster_id.to_owned()));
        }
        Ok(())
    }

    // ---- frontends ----

    fn check_frontend_cluster(
        &self,
        what: &'static str,
        cluster_id: Option<&str>,
    ) -> Result<(), StateError> {
        match cluster_id {
            Some(cluster_id) if !self.clusters.contains_key(cluster_id) => {
                Err(StateError::ClusterNotFound {
                    what,
                    cluster_id: cluster_id.to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    fn add_http_frontend(
        &mut self,
        frontend: &RequestHttpFrontend,
        https: bool,
    ) -> Result<(), StateError> {
        let (kind, what) = if https {
            ("https", "the HTTPS frontend")
        } else {
            ("http", "the HTTP frontend")
        };
        let address = checked_address("address", &frontend.address)?;
        let listener_exists = if https {
            self.https_listeners.contains_key(&address)
        } else {
            self.http_listeners.contains_key(&address)
        };
        if !listener_exists {
            return Err(StateError::ListenerNotFound {
                address,
                kind: if https { HTTPS } else { HTTP },
            });
        }
        validate_http_frontend(frontend)?;
        self.check_frontend_cluster(what, frontend.cluster_id.as_deref())?;
        let key = FrontendKey::of(frontend);
        let frontends = if https {
            &mut self.https_frontends
        } else {
            &mut self.http_frontends
        };
        if frontends.contains_key(&key) {
            return Err(StateError::FrontendExists {
                kind,
                key: key.to_string(),
            });
        }
        frontends.insert(key, frontend.clone());
        Ok(())
    }

    fn remove_http_frontend(
        &mut self,
        frontend: &RequestHttpFrontend,
        https: bool,
    ) -> Result<(), StateError> {
        checked_address("address", &frontend.address)?;
        let key = FrontendKey::of(frontend);
        let (frontends, kind) = if https {
            (&mut self.https_frontends, "https")
        } else {
            (&mut self.http_frontends, "http")
        };
        match frontends.remove(&key) {
            Some(_) => Ok(()),
            None => Err(StateError::FrontendNotFound {
                kind,
                key: key.to_string(),
            }),
        }
    }

    fn add_tcp_frontend(&mut self, frontend: &RequestTcpFrontend) -> Result<(), StateError> {
        let address = checked_address("address", &frontend.address)?;
        if !self.tcp_listeners.contains_key(&address) {
            return Err(StateError::ListenerNotFound { address, kind: TCP });
        }
        self.check_frontend_cluster("the TCP frontend", Some(&frontend.cluster_id))?;
        let same_route = |other: &RequestTcpFrontend| {
            other.address.to_socket_addr() == address && other.sni == frontend.sni
        };
        if let Some(other) = self
            .tcp_frontends
            .values()
            .flatten()
            .find(|other| same_route(other))
        {
            return Err(StateError::FrontendExists {
                kind: "tcp",
                key: format!("{address} (routed to cluster '{}')", other.cluster_id),
            });
        }
        // Kept sorted by route, so equal configurations compare equal
        // whatever order their frontends were added in.
        let list = self
            .tcp_frontends
            .entry(frontend.cluster_id.clone())
            .or_default();
        let route =
            |front: &RequestTcpFrontend| (front.address.to_socket_addr(), front.sni.clone());
        let position = list.partition_point(|other| route(other) < route(frontend));
        list.insert(position, frontend.clone());
        Ok(())
    }

    fn remove_tcp_frontend(&mut self, frontend: &RequestTcpFrontend) -> Result<(), StateError> {
        let address = checked_address("address", &frontend.address)?;
        let not_found = || StateError::FrontendNotFound {
            kind: "tcp",
            key: format!("{address} for cluster '{}'", frontend.cluster_id),
        };
        let list = self
            .tcp_frontends
            .get_mut(&frontend.cluster_id)
            .ok_or_else(not_found)?;
        let before = list.len();
        list.retain(|other| other.address.to_socket_addr() != address || other.sni != frontend.sni);
        if list.len() == before {
            return Err(not_found());
        }
        if list.is_empty() {
            self.tcp_frontends.remove(&frontend.cluster_id);
        }
        Ok(())
    }

    // ---- backends ----

    /// Adds a backend, or updates the one with the same id and address.
    fn add_backend(&mut self, backend: &AddBackend) -> Result<(), StateError> {
        checked_address("address", &backend.address)?;
        if !self.clusters.contains_key(&backend.cluster_id) {
            return Err(StateError::ClusterNotFound {
                what: "the backend",
                cluster_id: backend.cluster_id.clone(),
            });
        }
        if backend.backend_id.is_empty() {
            return Err(StateError::InvalidValue {
                field: "backend_id",
                reason: "a backend id cannot be empty".to_owned(),
            });
        }
        if let Some(parameters) = &backend.load_balancing_parameters
            && parameters.weight < 0
        {
            return Err(StateError::InvalidValue {
                field: "weight",
                reason: format!("{} is negative", parameters.weight),
            });
        }
        match self.backends.get_mut(&backend.cluster_id) {
            Some(backends) => backends.insert(backend.clone()),
            None => {
                let mut backends = ClusterBackends::default();
                backends.insert(backend.clone());
                self.backends.insert(backend.cluster_id.clone(), backends);
            }
        }
        Ok(())
    }

    fn remove_backend(&mut self, backend: &RemoveBackend) -> Result<(), StateError> {
        let address = checked_address("address", &backend.address)?;
        let not_found = || StateError::BackendNotFound {
            cluster_id: backend.cluster_id.clone(),
            backend_id: backend.backend_id.clone(),
            address,
        };
        let list = self
            .backends
            .get_mut(&backend.cluster_id)
            .ok_or_else(not_found)?;
        list.remove(&backend.backend_id, address)
            .ok_or_else(not_found)?;
        if list.is_empty() {
            self.backends.remove(&backend.cluster_id);
        }
        Ok(())
    }

    // ---- certificates ----

    fn https_listener_address(&self, address: &SocketAddress) -> Result<SocketAddr, StateError> {
        let address = checked_address("address", address)?;
        if !self.https_listeners.contains_key(&address) {
            return Err(StateError::ListenerNotFound {
                address,
                kind: HTTPS,
            });
        }
        Ok(address)
    }

    /// Checks the material and returns the certificate to store (names
    /// filled from the certificate when the request gave none) and its
    /// fingerprint.
    fn checked_certificate(
        certificate: &CertificateAndKey,
    ) -> Result<(String, CertificateAndKey), StateError> {
        let info = certificate::parse_certificate_and_key(certificate)
            .map_err(|error| StateError::Certificate(error.to_string()))?;
        for version in &certificate.versions {
            check_enum::<crate::proto::command::TlsVersion>("versions", *version)?;
        }
        let mut stored = certificate.clone();
        if stored.names.is_empty() {
            stored.names = info.names.clone();
        }
        Ok((info.fingerprint.to_string(), stored))
    }

    /// Adds a certificate to an HTTPS listener. Adding one that is already
    /// there (same fingerprint) changes nothing and is not an error, as in
    /// Sozu.
    fn add_certificate(&mut self, add: &AddCertificate) -> Result<(), StateError> {
        let address = self.https_listener_address(&add.address)?;
        let (fingerprint, stored) = Self::checked_certificate(&add.certificate)?;
        self.certificates
            .entry(address)
            .or_default()
            .entry(fingerprint)
            .or_insert(stored);
        Ok(())
    }

    fn replace_certificate(&mut self, replace: &ReplaceCertificate) -> Result<(), StateError> {
        let address = self.https_listener_address(&replace.address)?;
        let old = replace.old_fingerprint.to_ascii_lowercase();
        let (fingerprint, stored) = Self::checked_certificate(&replace.new_certificate)?;
        let listener_certificates = self.certificates.get_mut(&address);
        let Some(listener_certificates) =
            listener_certificates.filter(|certificates| certificates.contains_key(&old))
        else {
            return Err(StateError::CertificateNotFound {
                address,
                fingerprint: old,
            });
        };
        listener_certificates.remove(&old);
        listener_certificates.insert(fingerprint, stored);
        Ok(())
    }

    fn remove_certificate(&mut self, remove: &RemoveCertificate) -> Result<(), StateError> {
        let address = checked_address("address", &remove.address)?;
        let fingerprint = remove.fingerprint.to_ascii_lowercase();
        let removed = self
            .certificates
            .get_mut(&address)
            .and_then(|certificates| certificates.remove(&fingerprint));
        if removed.is_none() {
            return Err(StateError::CertificateNotFound {
                address,
                fingerprint,
            });
        }
        if self
            .certificates
            .get(&address)
            .is_some_and(BTreeMap::is_empty)
        {
            self.certificates.remove(&address);
        }
        Ok(())
    }

    // ---- rebuilding ----

    /// The requests that rebuild this state from an empty one, in the order
    /// Sozu writes state files: listeners (HTTP, HTTPS, TCP), each followed
    /// by its activation when active; clusters; HTTP frontends;
    /// certificates; HTTPS frontends; TCP frontends; backends.
    ///
    /// Dispatching them in order into an empty state yields a state equal to
    /// this one.
    pub fn generate_requests(&self) -> Vec<Request> {
        let mut requests = Vec::with_capacity(self.request_count_hint());
        let activate = |address: SocketAddress, proxy: ListenerType| -> Request {
            RequestType::ActivateListener(ActivateListener {
                address,
                proxy: proxy as i32,
                from_scm: false,
                interface: None,
            })
            .into()
        };
        for listener in self.http_listeners.values() {
            requests.push(RequestType::AddHttpListener(listener.clone()).into());
            if listener.active {
                requests.push(activate(listener.address, ListenerType::Http));
            }
        }
        for listener in self.https_listeners.values() {
            requests.push(RequestType::AddHttpsListener(listener.clone()).into());
            if listener.active {
                requests.push(activate(listener.address, ListenerType::Https));
            }
        }
        for listener in self.tcp_listeners.values() {
            requests.push(RequestType::AddTcpListener(listener.clone()).into());
            if listener.active {
                requests.push(activate(listener.address, ListenerType::Tcp));
            }
        }
        for cluster in self.clusters.values() {
            requests.push(RequestType::AddCluster(cluster.clone()).into());
        }
        for frontend in self.http_frontends.values() {
            requests.push(RequestType::AddHttpFrontend(frontend.clone()).into());
        }
        for (address, certificates) in &self.certificates {
            for certificate in certificates.values() {
                requests.push(
                    RequestType::AddCertificate(AddCertificate {
                        address: SocketAddress::from(*address),
                        certificate: certificate.clone(),
                        expired_at: None,
                    })
                    .into(),
                );
            }
        }
        for frontend in self.https_frontends.values() {
            requests.push(RequestType::AddHttpsFrontend(frontend.clone()).into());
        }
        for frontend in self.tcp_frontends.values().flatten() {
            requests.push(RequestType::AddTcpFrontend(frontend.clone()).into());
        }
        for backend in self.backends.values().flatten() {
            requests.push(RequestType::AddBackend(backend.clone()).into());
        }
        requests
    }

    fn request_count_hint(&self) -> usize {
        2 * (self.http_listeners.len() + self.https_listeners.len() + self.tcp_listeners.len())
            + self.clusters.len()
            + self.http_frontends.len()
            + self.https_frontends.len()
            + self.tcp_frontends.values().map(Vec::len).sum::<usize>()
            + self.certificates.values().map(BTreeMap::len).sum::<usize>()
            + self
                .backends
                .values()
                .map(ClusterBackends::len)
                .sum::<usize>()
    }
}

/// Replaces the custom answers given in `update`, keeping the others.
fn merge_answers(
    answers: &mut crate::proto::command::CustomHttpAnswers,
    update: &crate::proto::command::CustomHttpAnswers,
) {
    macro_rules! merge {
        ($($field:ident),+) => {
            $(
                if let Some(value) = &update.$field {
                    answers.$field = Some(value.clone());
                }
            )+
        };
    }
    merge!(
        answer_301, answer_400, answer_401, answer_404, answer_408, answer_413, answer_421,
        answer_502, answer_503, answer_504, answer_507, answer_429
    );
}

fn validate_http_frontend(frontend: &RequestHttpFrontend) -> Result<(), StateError> {
    let PathRule { kind, value } = &frontend.path;
    check_enum::<PathRuleKind>("path.kind", *kind)?;
    check_enum::<crate::proto::command::RulePosition>("position", frontend.position)?;
    if let Some(redirect) = frontend.redirect {
        check_enum::<crate::proto::command::RedirectPolicy>("redirect", redirect)?;
    }
    if let Some(scheme) = frontend.redirect_scheme {
        check_enum::<crate::proto::command::RedirectScheme>("redirect_scheme", scheme)?;
    }
    if frontend.hostname.is_empty() {
        return Err(StateError::InvalidValue {
            field: "hostname",
            reason: "a frontend hostname cannot be empty".to_owned(),
        });
    }
    if *kind == PathRuleKind::Regex as i32 {
        // The data plane compiles the pattern; the state only refuses what
        // can never be a pattern.
        if value.is_empty() {
            return Err(StateError::InvalidValue {
                field: "path",
                reason: "a regex path cannot be empty".to_owned(),
            });
        }
    }
    Ok(())
}
