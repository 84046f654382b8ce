//! Configuration changes: the state first, then the runtime (listeners,
//! certificates, clusters, backends, routes) to match it.

use std::net::SocketAddr;
use std::rc::Rc;

use sozu_command::proto::command::{
    AddBackend, Cluster, HttpListenerConfig, HttpsListenerConfig, RemoveBackend, Request,
    TcpListenerConfig, request::RequestType,
};

use super::Server;
use crate::context::{ClusterRuntime, HttpListener, TlsListener};
use crate::health;
use crate::listener::ListenerKind;
use crate::router::Router;
use crate::settings::ListenerSettings;
use crate::tcp::TcpListener;
use crate::tls;

impl Server {
    /// Applies a configuration change whole or not at all.
    ///
    /// The state accepts or refuses the change first (it is atomic on its
    /// own). The runtime part then does everything that can fail (binding a
    /// socket, loading a certificate, building a TLS configuration,
    /// compiling routes) before it changes anything connections can see,
    /// so when it fails the runtime is as it was, and the state change is
    /// taken back with the undo computed before it was made.
    pub(super) fn apply_change(&mut self, request: &Request) -> Result<(), String> {
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

    /// Makes the runtime match a change the state has just accepted.
    fn apply_to_runtime(&mut self, request: &Request) -> Result<(), String> {
        let Some(request_type) = &request.request_type else {
            return Ok(());
        };
        match request_type {
            RequestType::AddHttpListener(config) => self.add_http_listener(config),
            RequestType::AddHttpsListener(config) => self.add_https_listener(config),
            RequestType::AddTcpListener(config) => self.add_tcp_listener(config),
            RequestType::UpdateHttpListener(update) => {
                self.update_http_listener(update.address.to_socket_addr());
                Ok(())
            }
            RequestType::UpdateHttpsListener(update) => {
                self.update_https_listener(update.address.to_socket_addr())
            }
            RequestType::UpdateTcpListener(update) => {
                self.update_tcp_listener(update.address.to_socket_addr());
                Ok(())
            }
            RequestType::RemoveListener(remove) => {
                self.listeners.remove(remove.address.to_socket_addr());
                Ok(())
            }
            RequestType::ActivateListener(activate) => self.listeners.activate(
                activate.address.to_socket_addr(),
                activate.from_scm,
                &self.shared,
            ),
            RequestType::DeactivateListener(deactivate) => {
                self.listeners
                    .deactivate(deactivate.address.to_socket_addr());
                Ok(())
            }
            RequestType::AddCertificate(add) => {
                let https = self.listeners.https(add.address.to_socket_addr())?;
                let certificate = tls::load(&add.certificate)?;
                tls_side(&https)?.add_certificate(certificate)
            }
            RequestType::ReplaceCertificate(replace) => {
                let https = self.listeners.https(replace.address.to_socket_addr())?;
                let certificate = tls::load(&replace.new_certificate)?;
                tls_side(&https)?.replace_certificate(&replace.old_fingerprint, certificate)
            }
            RequestType::RemoveCertificate(remove) => {
                let https = self.listeners.https(remove.address.to_socket_addr())?;
                tls_side(&https)?.remove_certificate(&remove.fingerprint)
            }
            RequestType::AddCluster(cluster) => self.add_cluster(cluster),
            RequestType::SetHealthCheck(set) => {
                self.refresh_cluster(&set.cluster_id);
                Ok(())
            }
            RequestType::RemoveHealthCheck(cluster_id) => {
                self.refresh_cluster(cluster_id);
                Ok(())
            }
            RequestType::RemoveCluster(cluster_id) => {
                self.shared.clusters.borrow_mut().remove(cluster_id);
                self.rebuild_routes();
                self.sync_tcp_frontends();
                Ok(())
            }
            RequestType::AddBackend(backend) => self.add_backend(backend),
            RequestType::RemoveBackend(backend) => {
                self.remove_backend(backend);
                Ok(())
            }
            RequestType::AddHttpFrontend(frontend) | RequestType::AddHttpsFrontend(frontend) => {
                let http = self.listeners.http(frontend.address.to_socket_addr())?;
                let mut router = http.router.borrow_mut();
                router
                    .add_frontend(frontend)
                    .map_err(|error| error.to_string())
            }
            RequestType::RemoveHttpFrontend(frontend)
            | RequestType::RemoveHttpsFrontend(frontend) => {
                let http = self.listeners.http(frontend.address.to_socket_addr())?;
                let mut router = http.router.borrow_mut();
                router
                    .remove_frontend(frontend)
                    .map_err(|error| error.to_string())
            }
            RequestType::AddTcpFrontend(_) | RequestType::RemoveTcpFrontend(_) => {
                self.sync_tcp_frontends();
                Ok(())
            }
            // Accepted by the enforceability check only once they are
            // enforced.
            _ => Ok(()),
        }
    }

    fn add_http_listener(&mut self, config: &HttpListenerConfig) -> Result<(), String> {
        let http = HttpListener::new(ListenerSettings::from(config), None);
        self.listeners.insert(
            config.address.to_socket_addr(),
            ListenerKind::Http(Rc::new(http)),
            config.active,
            &self.shared,
        )
    }

    fn add_https_listener(&mut self, config: &HttpsListenerConfig) -> Result<(), String> {
        let tls = TlsListener::new(config)?;
        let https = HttpListener::new(ListenerSettings::from(config), Some(tls));
        self.listeners.insert(
            config.address.to_socket_addr(),
            ListenerKind::Http(Rc::new(https)),
            config.active,
            &self.shared,
        )
    }

    fn add_tcp_listener(&mut self, config: &TcpListenerConfig) -> Result<(), String> {
        self.listeners.insert(
            config.address.to_socket_addr(),
            ListenerKind::Tcp(Rc::new(TcpListener::new(config))),
            config.active,
            &self.shared,
        )
    }

    /// Copies an HTTP listener's settings from the state to its runtime.
    fn update_http_listener(&self, address: SocketAddr) {
        if let (Some(listener), Some(config)) = (
            self.listeners.get(&address),
            self.state.http_listeners.get(&address),
        ) && let Some(http) = listener.http()
        {
            *http.settings.borrow_mut() = Rc::new(ListenerSettings::from(config));
        }
    }

    /// Copies an HTTPS listener's settings from the state to its runtime,
    /// TLS configuration first: a refusal leaves the listener as it was.
    fn update_https_listener(&self, address: SocketAddr) -> Result<(), String> {
        if let (Some(listener), Some(config)) = (
            self.listeners.get(&address),
            self.state.https_listeners.get(&address),
        ) && let Some(https) = listener.http()
            && let Some(tls) = &https.tls
        {
            tls.update(config)?;
            *https.settings.borrow_mut() = Rc::new(ListenerSettings::from(config));
        }
        Ok(())
    }

    /// Copies a TCP listener's settings from the state to its runtime.
    fn update_tcp_listener(&self, address: SocketAddr) {
        if let (Some(listener), Some(config)) = (
            self.listeners.get(&address),
            self.state.tcp_listeners.get(&address),
        ) && let Some(tcp) = listener.tcp()
        {
            *tcp.config.borrow_mut() = Rc::new(config.clone());
        }
    }

    /// Adds a cluster, or reconfigures the one with the same id, and
    /// (re)starts its health check.
    fn add_cluster(&mut self, cluster: &Cluster) -> Result<(), String> {
        let runtime = {
            let mut clusters = self.shared.clusters.borrow_mut();
            match clusters.get(&cluster.cluster_id) {
                Some(existing) => {
                    existing.configure(cluster)?;
                    existing.clone()
                }
                None => {
                    let runtime = Rc::new(ClusterRuntime::new(cluster)?);
                    clusters.insert(cluster.cluster_id.clone(), runtime.clone());
                    runtime
                }
            }
        };
        health::sync(&self.shared, &runtime);
        Ok(())
    }

    /// Copies a cluster's settings from the state to its runtime (after a
    /// health check change) and restarts what depends on them.
    fn refresh_cluster(&self, cluster_id: &str) {
        let runtime = self.shared.clusters.borrow().get(cluster_id).cloned();
        if let (Some(runtime), Some(cluster)) = (runtime, self.state.clusters.get(cluster_id)) {
            *runtime.config.borrow_mut() = Rc::new(cluster.clone());
            health::sync(&self.shared, &runtime);
        }
    }

    fn add_backend(&self, backend: &AddBackend) -> Result<(), String> {
        if let Some(cluster) = self.shared.clusters.borrow().get(&backend.cluster_id) {
            cluster
                .balancer
                .borrow_mut()
                .add_backend(backend)
                .map_err(|error| error.to_string())?;
        }
        Ok(())
    }

    fn remove_backend(&self, backend: &RemoveBackend) {
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

    /// Rebuilds every router from the state, after a change that removed
    /// frontends in bulk (a cluster removal takes its frontends along).
    fn rebuild_routes(&mut self) {
        for (address, listener) in self.listeners.iter() {
            let Some(http) = listener.http() else {
                continue;
            };
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
        for (address, listener) in self.listeners.iter() {
            let Some(tcp) = listener.tcp() else { continue };
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
}

/// The TLS side of a listener [`Listeners::https`] returned.
///
/// [`Listeners::https`]: crate::listener::Listeners::https
fn tls_side(https: &HttpListener) -> Result<&TlsListener, String> {
    https
        .tls
        .as_ref()
        .ok_or_else(|| "not an HTTPS listener".to_owned())
}
