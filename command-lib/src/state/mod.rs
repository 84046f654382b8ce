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
//! - save and load state files ([`file`]);
//! - reverse a change it accepted ([`undo`]).
//!
//! [`ConfigState::dispatch`] itself is spread by family: listener changes in
//! `listeners.rs`, clusters, frontends, backends and certificates in
//! `objects.rs`.
//!
//! Settings that are not configuration objects (logging level, metrics
//! switches, connection limits, request counters) are not part of the state:
//! [`ConfigState::dispatch`] refuses them with [`StateError::NotAStateChange`]
//! and the daemon keeps them itself.

pub mod diff;
pub mod file;
mod listeners;
mod objects;
pub mod query;
pub mod undo;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::proto::command::{
    ActivateListener, AddBackend, AddCertificate, CertificateAndKey, Cluster, HttpListenerConfig,
    HttpsListenerConfig, ListenerType, PathRuleKind, Request, RequestHttpFrontend,
    RequestTcpFrontend, SocketAddress, TcpListenerConfig, request::RequestType,
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
