//! The server: one event loop that owns listeners, routes and backends, and
//! applies configuration requests as they arrive.
//!
//! Everything runs on the current thread: state is shared between the
//! command loop and the connection tasks with `Rc`/`RefCell`, never locks.
//! A configuration request is applied between two steps of the connection
//! tasks, so every request sees either the old configuration or the new one.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use sozu_command::proto::command::{
    CertificateSummary, CertificatesByAddress, ClusterHashes, ClusterInformations, Event,
    HttpsListenerConfig, ListOfCertificatesByAddress, ListenerType, MaxConnectionsPerIpLimit,
    Request, ResponseContent, ResponseStatus, WorkerRequest, WorkerResponse, request::RequestType,
    response_content::ContentType,
};
use sozu_command::state::ConfigState;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::balancer::{Balancer, BalancerEvent};
use crate::error::ProxyError;
use crate::handle::{Command, EVENT_ID, ListenSocket, ProxyHandle, command_channel};
use crate::listener;
use crate::metrics::Metrics;
use crate::options::ProxyOptions;
use crate::pool::BackendPool;
use crate::router::Router;
use crate::settings::ListenerSettings;
use crate::support;
use crate::tcp::TcpListener;
use crate::tls::{self, CertificateSet};

/// An HTTP listener's settings and routes, shared with its connections.
pub(crate) struct HttpListener {
    pub(crate) settings: RefCell<Rc<ListenerSettings>>,
    pub(crate) router: RefCell<Router>,
    /// Certificates and TLS configuration, on HTTPS listeners.
    pub(crate) tls: Option<TlsListener>,
}

/// The TLS side of an HTTPS listener.
pub(crate) struct TlsListener {
    pub(crate) certificates: RefCell<CertificateSet>,
    /// The configuration new handshakes use; replaced on every change.
    pub(crate) server_config: RefCell<Arc<rustls::ServerConfig>>,
    pub(crate) config: RefCell<HttpsListenerConfig>,
}

impl TlsListener {
    fn new(config: &HttpsListenerConfig) -> Result<TlsListener, String> {
        tls::check_listener(config)?;
        let mut certificates = CertificateSet::default();
        certificates.set_default(tls::listener_default(config)?);
        let server_config = tls::server_config(config, certificates.resolver())?;
        Ok(TlsListener {
            certificates: RefCell::new(certificates),
            server_config: RefCell::new(server_config),
            config: RefCell::new(config.clone()),
        })
    }

    /// Builds the configuration for the next handshakes.
    fn rebuild(&self) -> Result<(), String> {
        let server_config =
            tls::server_config(&self.config.borrow(), self.certificates.borrow().resolver())?;
        *self.server_config.borrow_mut() = server_config;
        Ok(())
    }
}

/// A cluster's settings and backends.
pub(crate) struct ClusterRuntime {
    pub(crate) config: RefCell<Rc<sozu_command::proto::command::Cluster>>,
    pub(crate) balancer: RefCell<Balancer>,
    /// The health check task, when the cluster has a health check.
    pub(crate) health_check: RefCell<Option<JoinHandle<()>>>,
}

impl Drop for ClusterRuntime {
    fn drop(&mut self) {
        if let Some(task) = self.health_check.get_mut().take() {
            task.abort();
        }
    }
}

impl Shared {
    /// Starts, replaces or stops the health check of a cluster to match its
    /// configuration.
    pub(crate) fn sync_health_check(self: &Rc<Self>, cluster: &ClusterRuntime) {
        if let Some(task) = cluster.health_check.borrow_mut().take() {
            task.abort();
        }
        let config = cluster.config.borrow().clone();
        match &config.health_check {
            Some(health_check) => {
                let task = crate::health::spawn(
                    self.clone(),
                    config.cluster_id.clone(),
                    health_check.clone(),
                );
                *cluster.health_check.borrow_mut() = Some(task);
            }
            None => {
                // Without a health check every backend counts as healthy.
                let mut balancer = cluster.balancer.borrow_mut();
                let backends: Vec<_> = balancer.backends().cloned().collect();
                for backend in backends {
                    balancer.set_health(&backend, crate::balancer::Health::Unknown);
                }
            }
        }
    }
}

/// A listener and, while it is active, its accepting task.
struct ListenerRuntime {
    kind: ListenerType,
    http: Option<Rc<HttpListener>>,
    tcp: Option<Rc<TcpListener>>,
    active: Option<ActiveListener>,
}

struct ActiveListener {
    accept_task: JoinHandle<()>,
    /// A duplicate of the listening socket, kept to hand over on upgrade.
    socket: std::os::fd::OwnedFd,
}

/// State shared by the command loop and every connection task.
pub(crate) struct Shared {
    pub(crate) options: ProxyOptions,
    pub(crate) clusters: RefCell<HashMap<String, Rc<ClusterRuntime>>>,
    pub(crate) pool: BackendPool,
    pub(crate) metrics: RefCell<Metrics>,
    pub(crate) max_connection_attempts: Cell<u32>,
    pub(crate) max_connections_per_ip: Cell<u64>,
    /// Client connections per cluster and IP, for that limit.
    pub(crate) connections_per_ip: crate::per_ip::ConnectionsPerIp,
    /// Open client connections.
    pub(crate) connections: Cell<usize>,
    /// Woken each time a client connection ends (soft stop waits on it).
    pub(crate) connection_closed: Notify,
    /// Live backend sessions, for `close_sessions`.
    pub(crate) sessions: Rc<crate::sessions::SessionRegistry>,
    /// Flips to true when the server starts stopping; connection tasks
    /// close their keep-alive connections gracefully when they see it.
    pub(crate) stopping: watch::Sender<bool>,
    events: mpsc::UnboundedSender<WorkerResponse>,
}

impl Shared {
    /// Reports balancer events as protocol events.
    pub(crate) fn report(&self, events: impl IntoIterator<Item = BalancerEvent>) {
        for event in events {
            self.send_event(event.to_event());
        }
    }

    pub(crate) fn send_event(&self, event: Event) {
        let _ = self.events.send(WorkerResponse {
            id: EVENT_ID.to_owned(),
            status: ResponseStatus::Processing as i32,
            message: String::new(),
            content: Some(ContentType::Event(event).into()),
        });
    }

    /// The attempt budget of a request to `cluster`.
    pub(crate) fn connection_attempts(
        &self,
        cluster: &sozu_command::proto::command::Cluster,
    ) -> u32 {
        cluster
            .max_connection_attempts
            .unwrap_or_else(|| self.max_connection_attempts.get())
            .max(1)
    }
}

/// Starts a server on a thread of its own and returns its handle and the
/// thread. The thread ends when the server is stopped (a soft or hard stop
/// request) or every clone of the handle's sender is dropped; it returns
/// what [`Server::run`] returned.
pub fn spawn(
    options: ProxyOptions,
) -> Result<(ProxyHandle, std::thread::JoinHandle<Result<(), ProxyError>>), ProxyError> {
    let (handle, commands, responses) = command_channel();
    let name = format!("proxy-{}", options.name);
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || Server::from_channel(options, commands, responses).run_blocking())
        .map_err(ProxyError::Runtime)?;
    Ok((handle, thread))
}

/// A proxy server: build it with [`Server::new`], send it configuration
/// through the [`ProxyHandle`], and run it with [`Server::run`] (inside a
/// `tokio::task::LocalSet` on a current-thread runtime) or
/// [`Server::run_blocking`] (which makes that runtime itself).
pub struct Server {
    shared: Rc<Shared>,
    state: ConfigState,
    listeners: HashMap<SocketAddr, ListenerRuntime>,
    adopted: Vec<ListenSocket>,
    commands: mpsc::UnboundedReceiver<Command>,
    responses: mpsc::UnboundedSender<WorkerResponse>,
}

/// How the command loop should go on after a request.
enum Flow {
    Continue,
    SoftStop(String),
    HardStop(String),
}

impl Server {
    /// A server with no listener and no cluster, and the handle that drives
    /// it. Requests sent before [`Server::run`] are applied first thing.
    ///
    /// The server is bound to the thread that runs it (it is not `Send`);
    /// to run it on a thread of its own, use [`spawn`], which builds it
    /// there. The handle can go anywhere.
    pub fn new(options: ProxyOptions) -> (Server, ProxyHandle) {
        let (handle, commands, responses) = command_channel();
        (Server::from_channel(options, commands, responses), handle)
    }

    fn from_channel(
        options: ProxyOptions,
        commands: mpsc::UnboundedReceiver<Command>,
        responses: mpsc::UnboundedSender<WorkerResponse>,
    ) -> Server {
        let (stopping, _) = watch::channel(false);
        let max_connection_attempts = options.max_connection_attempts.max(1);
        let max_connections_per_ip = options.max_connections_per_ip;
        let shared = Rc::new(Shared {
            metrics: RefCell::new(Metrics::new(&options.name)),
            options,
            clusters: RefCell::new(HashMap::new()),
            pool: BackendPool::default(),
            max_connection_attempts: Cell::new(max_connection_attempts),
            max_connections_per_ip: Cell::new(max_connections_per_ip),
            connections_per_ip: Default::default(),
            connections: Cell::new(0),
            connection_closed: Notify::new(),
            sessions: Rc::default(),
            stopping,
            events: responses.clone(),
        });
        Server {
            shared,
            state: ConfigState::new(),
            listeners: HashMap::new(),
            adopted: Vec::new(),
            commands,
            responses,
        }
    }

    /// Runs the server on a new current-thread runtime until it is stopped
    /// (soft or hard stop request) or every handle is dropped.
    pub fn run_blocking(self) -> Result<(), ProxyError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ProxyError::Runtime)?;
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, self.run())
    }

    /// Runs the server until it is stopped. Must be awaited inside a
    /// `tokio::task::LocalSet` (connection tasks are spawned locally).
    pub async fn run(mut self) -> Result<(), ProxyError> {
        while let Some(command) = self.commands.recv().await {
            match command {
                Command::Request(request) => match self.handle_request(*request) {
                    Flow::Continue => {}
                    Flow::SoftStop(id) => {
                        self.soft_stop().await;
                        self.answer(&id, Ok(None));
                        return Ok(());
                    }
                    Flow::HardStop(id) => {
                        self.stop_listening();
                        self.answer(&id, Ok(None));
                        return Ok(());
                    }
                },
                Command::AdoptSockets(sockets) => self.adopted.extend(sockets),
                Command::ShareSockets(reply) => {
                    let _ = reply.send(self.share_sockets());
                }
            }
        }
        // Every handle is gone: nobody can configure or stop us any more.
        self.stop_listening();
        Ok(())
    }

    fn answer(&self, id: &str, result: Result<Option<ContentType>, String>) {
        let (status, message, content) = match result {
            Ok(content) => (ResponseStatus::Ok, String::new(), content),
            Err(message) => (ResponseStatus::Failure, message, None),
        };
        let _ = self.responses.send(WorkerResponse {
            id: id.to_owned(),
            status: status as i32,
            message,
            content: content.map(ResponseContent::from),
        });
    }

    fn handle_request(&mut self, request: WorkerRequest) -> Flow {
        let WorkerRequest { id, content } = request;
        match &content.request_type {
            Some(RequestType::SoftStop(_)) => return Flow::SoftStop(id),
            Some(RequestType::HardStop(_)) => return Flow::HardStop(id),
            _ => {}
        }
        let result = self.apply(&content);
        self.answer(&id, result);
        Flow::Continue
    }

    /// Applies one request; `Ok` carries the answer's content, if any.
    fn apply(&mut self, request: &Request) -> Result<Option<ContentType>, String> {
        let Some(request_type) = &request.request_type else {
            return Err("empty request".to_owned());
        };
        support::check(request)?;
        if ConfigState::changes_state(request) {
            return self.apply_change(request).map(|()| None);
        }
        match request_type {
            RequestType::Status(_) => Ok(None),
            RequestType::QueryClustersHashes(_) => {
                Ok(Some(ContentType::ClusterHashes(ClusterHashes {
                    map: self.state.cluster_hashes(),
                })))
            }
            RequestType::QueryClusterById(cluster_id) => {
                Ok(Some(ContentType::Clusters(ClusterInformations {
                    vec: self
                        .state
                        .cluster_information(cluster_id)
                        .into_iter()
                        .collect(),
                })))
            }
            RequestType::QueryClustersByDomain(query) => {
                let vec = self
                    .state
                    .cluster_ids_by_domain(&query.hostname, query.path.as_deref())
                    .iter()
                    .filter_map(|id| self.state.cluster_information(id))
                    .collect();
                Ok(Some(ContentType::Clusters(ClusterInformations { vec })))
            }
            RequestType::QueryCertificatesFromWorkers(filters) => {
                if let Some(fingerprint) = &filters.fingerprint {
                    let certs = self.state.certificates(filters);
                    if certs.is_empty() {
                        return Err(format!("no certificate with fingerprint {fingerprint}"));
                    }
                    return Ok(Some(ContentType::CertificatesWithFingerprints(
                        sozu_command::proto::command::CertificatesWithFingerprints { certs },
                    )));
                }
                Ok(Some(ContentType::CertificatesByAddress(
                    self.certificates_by_address(filters.domain.as_deref()),
                )))
            }
            RequestType::QueryMetrics(options) => Ok(Some(self.shared.metrics.borrow().query(
                options,
                &self.shared,
                &self.state,
            ))),
            RequestType::ConfigureMetrics(configuration) => {
                self.shared.metrics.borrow_mut().configure(*configuration);
                Ok(None)
            }
            RequestType::Logging(filter) => match &self.shared.options.log_filter {
                Some(log_filter) => (log_filter.0)(filter).map(|()| None),
                None => Err("this server does not own the log output of its process: \
                     its embedder sets the log filter"
                    .to_owned()),
            },
            RequestType::SetMaxConnectionsPerIp(limit) => {
                self.shared.max_connections_per_ip.set(*limit);
                Ok(None)
            }
            RequestType::QueryMaxConnectionsPerIp(_) => Ok(Some(
                ContentType::MaxConnectionsPerIpLimit(MaxConnectionsPerIpLimit {
                    limit: self.shared.max_connections_per_ip.get(),
                }),
            )),
            RequestType::SetMaxConnectionAttempts(attempts) => {
                if *attempts == 0 || *attempts > 255 {
                    return Err(format!(
                        "max connection attempts must be between 1 and 255, not {attempts}"
                    ));
                }
                self.shared.max_connection_attempts.set(*attempts);
                Ok(None)
            }
            RequestType::SetMetricDetail(_) => Ok(None),
            RequestType::CloseSessions(close) => {
                if !self.state.clusters.contains_key(&close.cluster_id) {
                    return Err(format!("cluster '{}' does not exist", close.cluster_id));
                }
                let closed = self.shared.sessions.close(
                    &close.cluster_id,
                    close.backend_id.as_deref(),
                    close.address.map(|address| address.to_socket_addr()),
                );
                Ok(Some(ContentType::ClosedSessions(
                    sozu_command::proto::command::ClosedSessions {
                        closed,
                        draining: 0,
                    },
                )))
            }
            _ => Err(format!(
                "{} is not handled by a proxy server",
                request.kind_name()
            )),
        }
    }

    /// Applies a configuration change whole or not at all.
    ///
    /// The state accepts or refuses the change first (it is atomic on its
    /// own). The runtime part then does everything that can fail (binding a
    /// socket, loading a certificate, building a TLS configuration,
    /// compiling routes) before it changes anything connections can see,
    /// so when it fails the runtime is as it was, and the state change is
    /// taken back with the undo computed before it was made.
    fn apply_change(&mut self, request: &Request) -> Result<(), String> {
        let undo = self.state.undo_of(request);
        self.state
            .dispatch(request)
            .map_err(|error| error.to_string())?;
        if let Err(error) = self.apply_to_runtime(request) {
            for left in self.state.undo(&undo) {
                tracing::error!(request = %request.kind_name(), %left, "could not take a refused change back from the worker state");
            }
            return Err(error);
        }
        Ok(())
    }

    fn apply_to_runtime(&mut self, request: &Request) -> Result<(), String> {
        let Some(request_type) = &request.request_type else {
            return Ok(());
        };
        match request_type {
            RequestType::AddHttpListener(config) => {
                let address = config.address.to_socket_addr();
                let http = Rc::new(HttpListener {
                    settings: RefCell::new(Rc::new(ListenerSettings::from(config))),
                    router: RefCell::new(Router::new()),
                    tls: None,
                });
                let runtime = ListenerRuntime {
                    kind: ListenerType::Http,
                    http: Some(http),
                    tcp: None,
                    active: None,
                };
                self.insert_listener(address, runtime, config.active)?;
            }
            RequestType::AddHttpsListener(config) => {
                let address = config.address.to_socket_addr();
                let tls = TlsListener::new(config)?;
                let https = Rc::new(HttpListener {
                    settings: RefCell::new(Rc::new(ListenerSettings::from(config))),
                    router: RefCell::new(Router::new()),
                    tls: Some(tls),
                });
                let runtime = ListenerRuntime {
                    kind: ListenerType::Https,
                    http: Some(https),
                    tcp: None,
                    active: None,
                };
                self.insert_listener(address, runtime, config.active)?;
            }
            RequestType::UpdateHttpListener(update) => {
                let address = update.address.to_socket_addr();
                if let (Some(runtime), Some(config)) = (
                    self.listeners.get(&address),
                    self.state.http_listeners.get(&address),
                ) && let Some(http) = &runtime.http
                {
                    *http.settings.borrow_mut() = Rc::new(ListenerSettings::from(config));
                }
            }
            RequestType::UpdateHttpsListener(update) => {
                let address = update.address.to_socket_addr();
                if let (Some(runtime), Some(config)) = (
                    self.listeners.get(&address),
                    self.state.https_listeners.get(&address),
                ) && let Some(https) = &runtime.http
                    && let Some(tls) = &https.tls
                {
                    // Built before anything is replaced: a refusal leaves
                    // the listener as it was.
                    tls::check_listener(config)?;
                    let server_config =
                        tls::server_config(config, tls.certificates.borrow().resolver())?;
                    *tls.config.borrow_mut() = config.clone();
                    *tls.server_config.borrow_mut() = server_config;
                    *https.settings.borrow_mut() = Rc::new(ListenerSettings::from(config));
                }
            }
            RequestType::AddCertificate(add) => {
                let tls_listener = self.https_listener(add.address.to_socket_addr())?;
                let certificate = tls::load(&add.certificate)?;
                let tls = tls_listener.tls.as_ref().ok_or("not an HTTPS listener")?;
                let fingerprint = certificate.fingerprint.clone();
                let added = tls.certificates.borrow_mut().add(certificate);
                if let Err(error) = tls.rebuild() {
                    if added {
                        tls.certificates.borrow_mut().take(&fingerprint);
                    }
                    return Err(error);
                }
            }
            RequestType::ReplaceCertificate(replace) => {
                let tls_listener = self.https_listener(replace.address.to_socket_addr())?;
                let certificate = tls::load(&replace.new_certificate)?;
                let tls = tls_listener.tls.as_ref().ok_or("not an HTTPS listener")?;
                let fingerprint = certificate.fingerprint.clone();
                let (old, added) = {
                    let mut certificates = tls.certificates.borrow_mut();
                    let old = certificates.take(&replace.old_fingerprint);
                    (old, certificates.add(certificate))
                };
                if let Err(error) = tls.rebuild() {
                    let mut certificates = tls.certificates.borrow_mut();
                    if added {
                        certificates.take(&fingerprint);
                    }
                    if let Some(old) = old {
                        certificates.add(old);
                    }
                    return Err(error);
                }
            }
            RequestType::RemoveCertificate(remove) => {
                let tls_listener = self.https_listener(remove.address.to_socket_addr())?;
                let tls = tls_listener.tls.as_ref().ok_or("not an HTTPS listener")?;
                let old = tls.certificates.borrow_mut().take(&remove.fingerprint);
                if let Err(error) = tls.rebuild() {
                    if let Some(old) = old {
                        tls.certificates.borrow_mut().add(old);
                    }
                    return Err(error);
                }
            }
            RequestType::AddTcpListener(config) => {
                let address = config.address.to_socket_addr();
                let runtime = ListenerRuntime {
                    kind: ListenerType::Tcp,
                    http: None,
                    tcp: Some(Rc::new(TcpListener::new(config))),
                    active: None,
                };
                self.insert_listener(address, runtime, config.active)?;
            }
            RequestType::UpdateTcpListener(update) => {
                let address = update.address.to_socket_addr();
                if let (Some(runtime), Some(config)) = (
                    self.listeners.get(&address),
                    self.state.tcp_listeners.get(&address),
                ) && let Some(tcp) = &runtime.tcp
                {
                    *tcp.config.borrow_mut() = Rc::new(config.clone());
                }
            }
            RequestType::AddTcpFrontend(_) | RequestType::RemoveTcpFrontend(_) => {
                self.sync_tcp_frontends();
            }
            RequestType::RemoveListener(remove) => {
                let address = remove.address.to_socket_addr();
                if let Some(runtime) = self.listeners.remove(&address)
                    && let Some(active) = runtime.active
                {
                    active.accept_task.abort();
                }
            }
            RequestType::ActivateListener(activate) => {
                self.activate(activate.address.to_socket_addr(), activate.from_scm)?;
            }
            RequestType::DeactivateListener(deactivate) => {
                let address = deactivate.address.to_socket_addr();
                if let Some(runtime) = self.listeners.get_mut(&address)
                    && let Some(active) = runtime.active.take()
                {
                    active.accept_task.abort();
                }
            }
            RequestType::AddCluster(cluster) => {
                let runtime = {
                    let mut clusters = self.shared.clusters.borrow_mut();
                    match clusters.get(&cluster.cluster_id) {
                        Some(existing) => {
                            existing
                                .balancer
                                .borrow_mut()
                                .configure(cluster)
                                .map_err(|error| error.to_string())?;
                            *existing.config.borrow_mut() = Rc::new(cluster.clone());
                            existing.clone()
                        }
                        None => {
                            let balancer = Balancer::for_cluster(cluster)
                                .map_err(|error| error.to_string())?;
                            let runtime = Rc::new(ClusterRuntime {
                                config: RefCell::new(Rc::new(cluster.clone())),
                                balancer: RefCell::new(balancer),
                                health_check: RefCell::new(None),
                            });
                            clusters.insert(cluster.cluster_id.clone(), runtime.clone());
                            runtime
                        }
                    }
                };
                self.shared.sync_health_check(&runtime);
            }
            RequestType::SetHealthCheck(set) => {
                self.refresh_cluster(&set.cluster_id);
            }
            RequestType::RemoveHealthCheck(cluster_id) => {
                self.refresh_cluster(cluster_id);
            }
            RequestType::RemoveCluster(cluster_id) => {
                self.shared.clusters.borrow_mut().remove(cluster_id);
                self.rebuild_routes();
                self.sync_tcp_frontends();
            }
            RequestType::AddBackend(backend) => {
                if let Some(cluster) = self.shared.clusters.borrow().get(&backend.cluster_id) {
                    cluster
                        .balancer
                        .borrow_mut()
                        .add_backend(backend)
                        .map_err(|error| error.to_string())?;
                }
            }
            RequestType::RemoveBackend(backend) => {
                let address = backend.address.to_socket_addr();
                let removed = self
                    .shared
                    .clusters
                    .borrow()
                    .get(&backend.cluster_id)
                    .and_then(|cluster| {
                        cluster
                            .balancer
                            .borrow_mut()
                            .remove_backend(&backend.backend_id, address)
                    });
                // A backend with nothing in flight is drained at once; the
                // others report when their last connection closes.
                if let Some(event) = removed.and_then(|backend| backend.drained_event()) {
                    self.shared.report([event]);
                }
                // Idle connections to it are closed; requests in flight on
                // busy connections finish.
                self.shared.pool.forget(address);
            }
            RequestType::AddHttpFrontend(frontend) | RequestType::AddHttpsFrontend(frontend) => {
                let router = self.http_router(frontend.address.to_socket_addr())?;
                router
                    .router
                    .borrow_mut()
                    .add_frontend(frontend)
                    .map_err(|error| error.to_string())?;
            }
            RequestType::RemoveHttpFrontend(frontend)
            | RequestType::RemoveHttpsFrontend(frontend) => {
                let router = self.http_router(frontend.address.to_socket_addr())?;
                router
                    .router
                    .borrow_mut()
                    .remove_frontend(frontend)
                    .map_err(|error| error.to_string())?;
            }
            // Accepted by the support check only once they are enforced.
            _ => {}
        }
        Ok(())
    }

    /// Copies a cluster's settings from the state to its runtime (after a
    /// health check change) and restarts what depends on them.
    fn refresh_cluster(&self, cluster_id: &str) {
        let runtime = self.shared.clusters.borrow().get(cluster_id).cloned();
        if let (Some(runtime), Some(cluster)) = (runtime, self.state.clusters.get(cluster_id)) {
            *runtime.config.borrow_mut() = Rc::new(cluster.clone());
            self.shared.sync_health_check(&runtime);
        }
    }

    fn http_router(&self, address: SocketAddr) -> Result<Rc<HttpListener>, String> {
        self.listeners
            .get(&address)
            .and_then(|runtime| runtime.http.clone())
            .ok_or_else(|| format!("no HTTP or HTTPS listener on {address}"))
    }

    fn https_listener(&self, address: SocketAddr) -> Result<Rc<HttpListener>, String> {
        self.listeners
            .get(&address)
            .and_then(|runtime| runtime.http.clone())
            .filter(|listener| listener.tls.is_some())
            .ok_or_else(|| format!("no HTTPS listener on {address}"))
    }

    /// Certificates of every HTTPS listener, optionally only those for a
    /// domain, as `query_certificates_from_workers` answers them.
    fn certificates_by_address(&self, domain: Option<&str>) -> ListOfCertificatesByAddress {
        let mut certificates = Vec::new();
        for (address, runtime) in &self.listeners {
            let Some(tls) = runtime.http.as_ref().and_then(|http| http.tls.as_ref()) else {
                continue;
            };
            let mut certificate_summaries = Vec::new();
            for certificate in tls.certificates.borrow().certificates() {
                for name in &certificate.names {
                    if domain.is_none_or(|domain| domain.eq_ignore_ascii_case(name)) {
                        certificate_summaries.push(CertificateSummary {
                            domain: name.clone(),
                            fingerprint: certificate.fingerprint.clone(),
                        });
                    }
                }
            }
            certificates.push(CertificatesByAddress {
                address: (*address).into(),
                certificate_summaries,
            });
        }
        ListOfCertificatesByAddress { certificates }
    }

    /// Rebuilds every router from the state, after a change that removed
    /// frontends in bulk (a cluster removal takes its frontends along).
    fn rebuild_routes(&mut self) {
        for (address, runtime) in &self.listeners {
            let Some(http) = &runtime.http else { continue };
            let mut router = Router::new();
            let frontends = if http.tls.is_some() {
                &self.state.https_frontends
            } else {
                &self.state.http_frontends
            };
            for (key, frontend) in frontends {
                if key.address == *address {
                    // Frontends in the state were accepted by a router before.
                    let _ = router.add_frontend(frontend);
                }
            }
            *http.router.borrow_mut() = router;
        }
    }

    /// Gives every TCP listener the frontend the state has on its address
    /// (the state allows one per address), or none.
    fn sync_tcp_frontends(&self) {
        for (address, runtime) in &self.listeners {
            let Some(tcp) = &runtime.tcp else { continue };
            let frontend = self
                .state
                .tcp_frontends
                .values()
                .flatten()
                .find(|frontend| frontend.address.to_socket_addr() == *address)
                .map(|frontend| Rc::new(frontend.clone()));
            *tcp.frontend.borrow_mut() = frontend;
        }
    }

    /// Adds a listener's runtime, listening first when it is active: when
    /// the address cannot be listened on, nothing is added.
    fn insert_listener(
        &mut self,
        address: SocketAddr,
        mut runtime: ListenerRuntime,
        active: bool,
    ) -> Result<(), String> {
        if active {
            runtime.active = Some(open_listener(
                &mut self.adopted,
                &self.shared,
                address,
                &runtime,
                false,
            )?);
        }
        if let Some(replaced) = self.listeners.insert(address, runtime)
            && let Some(active) = replaced.active
        {
            active.accept_task.abort();
        }
        Ok(())
    }

    fn activate(&mut self, address: SocketAddr, from_scm: bool) -> Result<(), String> {
        let Some(runtime) = self.listeners.get(&address) else {
            return Err(format!("no listener on {address}"));
        };
        if runtime.active.is_some() {
            return Ok(());
        }
        let active = open_listener(&mut self.adopted, &self.shared, address, runtime, from_scm)?;
        if let Some(runtime) = self.listeners.get_mut(&address) {
            runtime.active = Some(active);
        }
        Ok(())
    }

    fn share_sockets(&self) -> Vec<ListenSocket> {
        self.listeners
            .iter()
            .filter_map(|(address, runtime)| {
                let active = runtime.active.as_ref()?;
                let fd = active.socket.try_clone().ok()?;
                Some(ListenSocket {
                    address: *address,
                    fd,
                })
            })
            .collect()
    }

    /// Stops accepting, tells keep-alive connections to close, and closes
    /// the idle backend connections (kept by none from now on).
    fn stop_listening(&mut self) {
        for runtime in self.listeners.values_mut() {
            if let Some(active) = runtime.active.take() {
                active.accept_task.abort();
            }
        }
        let _ = self.shared.stopping.send(true);
        self.shared.pool.close();
    }

    /// Stops accepting, lets every open connection finish its current
    /// request, and returns when none is left or the deadline passes.
    async fn soft_stop(&mut self) {
        self.stop_listening();
        let deadline = Instant::now() + self.shared.options.soft_stop_deadline;
        while self.shared.connections.get() > 0 {
            let closed = self.shared.connection_closed.notified();
            if tokio::time::timeout_at(deadline.into(), closed)
                .await
                .is_err()
            {
                break;
            }
        }
    }
}

/// Starts accepting on a listener's address: a socket handed over by the
/// server this one replaces when there is one, else a new one. Changes
/// nothing but `adopted` (the socket taken from it), so a failure leaves
/// the listener as it was.
fn open_listener(
    adopted: &mut Vec<ListenSocket>,
    shared: &Rc<Shared>,
    address: SocketAddr,
    runtime: &ListenerRuntime,
    from_scm: bool,
) -> Result<ActiveListener, String> {
    // A socket handed over by the server this one replaces is used
    // whenever there is one: connections already queued on it must be
    // accepted here, not lost with a fresh socket.
    let handed_over = adopted
        .iter()
        .position(|socket| socket.address == address)
        .map(|position| adopted.swap_remove(position));
    let socket = match handed_over {
        Some(adopted) => std::net::TcpListener::from(adopted.fd),
        None if from_scm => return Err(format!("no handed-over socket for {address}")),
        None => listener::bind(address).map_err(|error| error.to_string())?,
    };
    let duplicate = socket
        .try_clone()
        .map_err(|error| format!("could not duplicate the socket of {address}: {error}"))?;
    let accept_task = match (&runtime.http, runtime.kind) {
        (Some(http), ListenerType::Http | ListenerType::Https) => {
            listener::spawn_http_accept(socket, address, http.clone(), shared.clone())
                .map_err(|error| format!("could not listen on {address}: {error}"))?
        }
        (_, ListenerType::Tcp) => {
            let Some(tcp) = &runtime.tcp else {
                return Err(format!("no TCP listener on {address}"));
            };
            listener::spawn_tcp_accept(socket, address, tcp.clone(), shared.clone())
                .map_err(|error| format!("could not listen on {address}: {error}"))?
        }
        _ => return Err(format!("listener kind of {address} cannot be activated")),
    };
    Ok(ActiveListener {
        accept_task,
        socket: duplicate.into(),
    })
}
