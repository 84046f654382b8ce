//! The difference between two states, as the requests that turn one into the
//! other.
//!
//! [`diff`] is what `reload_configuration` and `sozu apply` send. Its order
//! keeps traffic flowing: everything new is added before anything old is
//! removed, so a route that moves from one place to another is never missing
//! in between. Only three kinds of change cannot be made without a moment
//! where the old object is gone and the new one not yet there, and they are
//! done as late as possible, right after the removal they depend on:
//!
//! - an HTTP(S) frontend whose routing key stays but whose target or options
//!   change (the protocol has no "update frontend"),
//! - a TCP frontend that moves its address to another cluster,
//! - a listener whose kind changes, or whose settings change in a way no
//!   `Update*Listener` request can express (TLS versions, ciphers…): it is
//!   removed with everything bound to it and built again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::{ClusterBackends, ConfigState, FrontendKey};
use crate::h2_settings::H2Fields;
use crate::proto::command::{
    ActivateListener, AddCertificate, AlpnProtocols, ClientAuthPolicy, DeactivateListener,
    HttpListenerConfig, HttpsListenerConfig, ListenerType, RemoveBackend, RemoveCertificate,
    RemoveListener, ReplaceCertificate, Request, RequestHttpFrontend, RequestTcpFrontend,
    SocketAddress, TcpListenerConfig, UpdateHttpListenerConfig, UpdateHttpsListenerConfig,
    UpdateTcpListenerConfig, request::RequestType,
};

/// A listener of any kind, borrowed from a state.
#[derive(Clone, Copy, PartialEq)]
enum Listener<'a> {
    Http(&'a HttpListenerConfig),
    Https(&'a HttpsListenerConfig),
    Tcp(&'a TcpListenerConfig),
}

impl Listener<'_> {
    fn kind(self) -> ListenerType {
        match self {
            Listener::Http(_) => ListenerType::Http,
            Listener::Https(_) => ListenerType::Https,
            Listener::Tcp(_) => ListenerType::Tcp,
        }
    }

    fn active(self) -> bool {
        match self {
            Listener::Http(listener) => listener.active,
            Listener::Https(listener) => listener.active,
            Listener::Tcp(listener) => listener.active,
        }
    }

    fn add_request(self) -> Request {
        match self {
            Listener::Http(listener) => RequestType::AddHttpListener(listener.clone()),
            Listener::Https(listener) => RequestType::AddHttpsListener(listener.clone()),
            Listener::Tcp(listener) => RequestType::AddTcpListener(listener.clone()),
        }
        .into()
    }
}

fn listeners(state: &ConfigState) -> BTreeMap<SocketAddr, Listener<'_>> {
    let mut all = BTreeMap::new();
    all.extend(
        state
            .http_listeners
            .iter()
            .map(|(a, l)| (*a, Listener::Http(l))),
    );
    all.extend(
        state
            .https_listeners
            .iter()
            .map(|(a, l)| (*a, Listener::Https(l))),
    );
    all.extend(
        state
            .tcp_listeners
            .iter()
            .map(|(a, l)| (*a, Listener::Tcp(l))),
    );
    all
}

fn activate(address: SocketAddr, kind: ListenerType) -> Request {
    RequestType::ActivateListener(ActivateListener {
        address: address.into(),
        proxy: kind as i32,
        from_scm: false,
        interface: None,
    })
    .into()
}

fn deactivate(address: SocketAddr, kind: ListenerType) -> Request {
    RequestType::DeactivateListener(DeactivateListener {
        address: address.into(),
        proxy: kind as i32,
        to_scm: false,
        interface: None,
    })
    .into()
}

/// How a listener present on both sides goes from `old` to `new`.
enum ListenerChange {
    /// Nothing to do besides, maybe, (de)activation.
    Same,
    /// One update request does it.
    Update(Box<Request>),
    /// It must be removed and built again.
    Rebuild,
}

/// Compares everything but the `active` flag, which activation requests
/// handle.
fn listener_change(old: Listener<'_>, new: Listener<'_>) -> ListenerChange {
    let update = match (old, new) {
        (Listener::Http(old), Listener::Http(new)) => {
            let (mut old, mut new) = (old.clone(), new.clone());
            old.active = false;
            new.active = false;
            if old == new {
                return ListenerChange::Same;
            }
            RequestType::UpdateHttpListener(http_update(&new))
        }
        (Listener::Https(old), Listener::Https(new)) => {
            let (mut old, mut new) = (old.clone(), new.clone());
            old.active = false;
            new.active = false;
            if old == new {
                return ListenerChange::Same;
            }
            RequestType::UpdateHttpsListener(https_update(&new))
        }
        (Listener::Tcp(old), Listener::Tcp(new)) => {
            let (mut old, mut new) = (old.clone(), new.clone());
            old.active = false;
            new.active = false;
            if old == new {
                return ListenerChange::Same;
            }
            RequestType::UpdateTcpListener(UpdateTcpListenerConfig {
                address: new.address,
                public_address: new.public_address,
                expect_proxy: Some(new.expect_proxy),
                front_timeout: Some(new.front_timeout),
                back_timeout: Some(new.back_timeout),
                connect_timeout: Some(new.connect_timeout),
            })
        }
        _ => return ListenerChange::Rebuild,
    };
    // Check the update really produces the new listener: some fields have
    // no update form, and an update can add answers but never drop one.
    let update: Request = update.into();
    let mut probe = ConfigState::default();
    let address = old_address(old);
    let added = probe.dispatch(&old.add_request());
    let updated = probe.dispatch(&update);
    let reached = added.is_ok()
        && updated.is_ok()
        && listeners(&probe)
            .get(&address)
            .is_some_and(|probed| listener_change_is_only_activity(*probed, new));
    if reached {
        ListenerChange::Update(Box::new(update))
    } else {
        ListenerChange::Rebuild
    }
}

fn old_address(listener: Listener<'_>) -> SocketAddr {
    match listener {
        Listener::Http(l) => l.address.to_socket_addr(),
        Listener::Https(l) => l.address.to_socket_addr(),
        Listener::Tcp(l) => l.address.to_socket_addr(),
    }
}

fn listener_change_is_only_activity(a: Listener<'_>, b: Listener<'_>) -> bool {
    match (a, b) {
        (Listener::Http(a), Listener::Http(b)) => {
            HttpListenerConfig {
                active: b.active,
                ..a.clone()
            } == *b
        }
        (Listener::Https(a), Listener::Https(b)) => {
            HttpsListenerConfig {
                active: b.active,
                ..a.clone()
            } == *b
        }
        (Listener::Tcp(a), Listener::Tcp(b)) => {
            TcpListenerConfig {
                active: b.active,
                ..a.clone()
            } == *b
        }
        _ => false,
    }
}

/// The patch that turns any HTTP listener into `new`: every field set.
fn http_update(new: &HttpListenerConfig) -> UpdateHttpListenerConfig {
    let mut patch = UpdateHttpListenerConfig {
        address: new.address,
        public_address: new.public_address,
        expect_proxy: Some(new.expect_proxy),
        sticky_name: Some(new.sticky_name.clone()),
        front_timeout: Some(new.front_timeout),
        back_timeout: Some(new.back_timeout),
        connect_timeout: Some(new.connect_timeout),
        request_timeout: Some(new.request_timeout),
        http_answers: new.http_answers.clone(),
        sozu_id_header: new.sozu_id_header.clone(),
        answers: new.answers.clone(),
        elide_x_real_ip: new.elide_x_real_ip,
        send_x_real_ip: new.send_x_real_ip,
        forwarded_headers: new.forwarded_headers,
        ..UpdateHttpListenerConfig::default()
    };
    patch.copy_h2_from(new);
    patch
}

/// The patch that turns any HTTPS listener into `new`: every field set.
fn https_update(new: &HttpsListenerConfig) -> UpdateHttpsListenerConfig {
    let mut patch = UpdateHttpsListenerConfig {
        address: new.address,
        public_address: new.public_address,
        expect_proxy: Some(new.expect_proxy),
        sticky_name: Some(new.sticky_name.clone()),
        front_timeout: Some(new.front_timeout),
        back_timeout: Some(new.back_timeout),
        connect_timeout: Some(new.connect_timeout),
        request_timeout: Some(new.request_timeout),
        http_answers: new.http_answers.clone(),
        alpn_protocols: Some(AlpnProtocols {
            values: new.alpn_protocols.clone(),
        }),
        strict_sni_binding: new.strict_sni_binding,
        disable_http11: new.disable_http11,
        sozu_id_header: new.sozu_id_header.clone(),
        answers: new.answers.clone(),
        elide_x_real_ip: new.elide_x_real_ip,
        send_x_real_ip: new.send_x_real_ip,
        hsts: new.hsts,
        forwarded_headers: new.forwarded_headers,
        client_auth_policy: Some(ClientAuthPolicy {
            client_auth: new.client_auth,
            client_ca_certificates: new.client_ca_certificates.clone(),
            client_ca_crls: new.client_ca_crls.clone(),
        }),
        ..UpdateHttpsListenerConfig::default()
    };
    patch.copy_h2_from(new);
    patch
}

fn remove_frontend(frontend: &RequestHttpFrontend, https: bool) -> Request {
    if https {
        RequestType::RemoveHttpsFrontend(frontend.clone())
    } else {
        RequestType::RemoveHttpFrontend(frontend.clone())
    }
    .into()
}

fn add_frontend(frontend: &RequestHttpFrontend, https: bool) -> Request {
    if https {
        RequestType::AddHttpsFrontend(frontend.clone())
    } else {
        RequestType::AddHttpFrontend(frontend.clone())
    }
    .into()
}

/// The (address, SNI) a TCP frontend claims: no two frontends may share it.
fn tcp_route(frontend: &RequestTcpFrontend) -> (SocketAddr, Option<String>) {
    (frontend.address.to_socket_addr(), frontend.sni.clone())
}

/// The requests that turn `old` into `new`, ordered so that dispatching them
/// one by one into `old` succeeds at every step and ends equal to `new`.
///
/// Empty when the states are equal.
pub fn diff(old: &ConfigState, new: &ConfigState) -> Vec<Request> {
    let mut plan = Plan::new(old, new);
    plan.listeners();
    plan.clusters();
    plan.backends();
    plan.certificates();
    plan.http_frontends();
    plan.tcp_frontends();
    plan.finish()
}

/// The requests of a diff, gathered by phase while walking both states.
///
/// The phases run in this order once dispatched: additions (new listeners,
/// updates, activations, clusters, backends, certificates, frontends),
/// replacements (a removal and an add that must stay together), removals
/// (frontends, backends, certificates, clusters, listeners: from the outside
/// in), then the rebuilt listeners with everything bound to them.
struct Plan<'a> {
    old: &'a ConfigState,
    new: &'a ConfigState,
    old_listeners: BTreeMap<SocketAddr, Listener<'a>>,
    new_listeners: BTreeMap<SocketAddr, Listener<'a>>,
    /// Listeners present on both sides that must be rebuilt: everything
    /// bound to them is removed with them and added back after.
    rebuilt: BTreeSet<SocketAddr>,
    removed_clusters: BTreeSet<&'a String>,
    listener_updates: Vec<Request>,
    additions: Vec<Request>,
    replacements: Vec<Request>,
    removals: Vec<Request>,
    frontend_removals: Vec<Request>,
    certificate_removals: Vec<Request>,
    rebuilds: Vec<Request>,
}

impl<'a> Plan<'a> {
    fn new(old: &'a ConfigState, new: &'a ConfigState) -> Self {
        let old_listeners = listeners(old);
        let new_listeners = listeners(new);
        let mut rebuilt = BTreeSet::new();
        let mut listener_updates = Vec::new();
        for (address, new_listener) in &new_listeners {
            if let Some(old_listener) = old_listeners.get(address) {
                match listener_change(*old_listener, *new_listener) {
                    ListenerChange::Same => {}
                    ListenerChange::Update(update) => listener_updates.push(*update),
                    ListenerChange::Rebuild => {
                        rebuilt.insert(*address);
                    }
                }
            }
        }
        let removed_clusters = old
            .clusters
            .keys()
            .filter(|id| !new.clusters.contains_key(*id))
            .collect();
        Plan {
            old,
            new,
            old_listeners,
            new_listeners,
            rebuilt,
            removed_clusters,
            listener_updates,
            additions: Vec::new(),
            replacements: Vec::new(),
            removals: Vec::new(),
            frontend_removals: Vec::new(),
            certificate_removals: Vec::new(),
            rebuilds: Vec::new(),
        }
    }

    /// New listeners, updates, activation changes.
    fn listeners(&mut self) {
        for (address, listener) in &self.new_listeners {
            if !self.old_listeners.contains_key(address) {
                self.additions.push(listener.add_request());
                if listener.active() {
                    self.additions.push(activate(*address, listener.kind()));
                }
            }
        }
        self.additions.append(&mut self.listener_updates);
        for (address, new_listener) in &self.new_listeners {
            if let Some(old_listener) = self.old_listeners.get(address)
                && !self.rebuilt.contains(address)
            {
                match (old_listener.active(), new_listener.active()) {
                    (false, true) => self.additions.push(activate(*address, new_listener.kind())),
                    (true, false) => self
                        .removals
                        .push(deactivate(*address, old_listener.kind())),
                    _ => {}
                }
            }
        }
    }

    /// Clusters (an add on an existing id replaces its settings).
    fn clusters(&mut self) {
        for (id, cluster) in &self.new.clusters {
            if self.old.clusters.get(id) != Some(cluster) {
                self.additions
                    .push(RequestType::AddCluster(cluster.clone()).into());
            }
        }
    }

    /// Backends (an add on an existing id and address replaces it); those
    /// of a removed cluster go with it.
    fn backends(&mut self) {
        let no_backends = ClusterBackends::default();
        for (cluster_id, new_backends) in &self.new.backends {
            let old_backends = self.old.backends.get(cluster_id).unwrap_or(&no_backends);
            for backend in new_backends {
                let address = backend.address.to_socket_addr();
                if old_backends.get(&backend.backend_id, address) != Some(backend) {
                    self.additions
                        .push(RequestType::AddBackend(backend.clone()).into());
                }
            }
        }
        for (cluster_id, old_backends) in &self.old.backends {
            if self.removed_clusters.contains(cluster_id) {
                continue;
            }
            let new_backends = self.new.backends.get(cluster_id).unwrap_or(&no_backends);
            for backend in old_backends {
                let address = backend.address.to_socket_addr();
                if new_backends.get(&backend.backend_id, address).is_none() {
                    self.removals.push(
                        RequestType::RemoveBackend(RemoveBackend {
                            cluster_id: cluster_id.clone(),
                            backend_id: backend.backend_id.clone(),
                            address: address.into(),
                        })
                        .into(),
                    );
                }
            }
        }
    }

    /// Certificates, by listener and fingerprint.
    fn certificates(&mut self) {
        let no_certificates = BTreeMap::new();
        for (address, new_certificates) in &self.new.certificates {
            let rebuilt = self.rebuilt.contains(address);
            let target = if rebuilt {
                &mut self.rebuilds
            } else {
                &mut self.additions
            };
            let old_certificates = match rebuilt {
                true => &no_certificates,
                false => self
                    .old
                    .certificates
                    .get(address)
                    .unwrap_or(&no_certificates),
            };
            for (fingerprint, certificate) in new_certificates {
                match old_certificates.get(fingerprint) {
                    None => target.push(
                        RequestType::AddCertificate(AddCertificate {
                            address: (*address).into(),
                            certificate: certificate.clone(),
                            expired_at: None,
                        })
                        .into(),
                    ),
                    // Same certificate, other names or versions: swap in place.
                    Some(old_certificate) if old_certificate != certificate => target.push(
                        RequestType::ReplaceCertificate(ReplaceCertificate {
                            address: (*address).into(),
                            new_certificate: certificate.clone(),
                            old_fingerprint: fingerprint.clone(),
                            new_expired_at: None,
                        })
                        .into(),
                    ),
                    Some(_) => {}
                }
            }
        }
        for (address, old_certificates) in &self.old.certificates {
            let new_certificates = match self.rebuilt.contains(address) {
                true => &no_certificates,
                false => self
                    .new
                    .certificates
                    .get(address)
                    .unwrap_or(&no_certificates),
            };
            for fingerprint in old_certificates.keys() {
                if !new_certificates.contains_key(fingerprint) {
                    self.certificate_removals.push(
                        RequestType::RemoveCertificate(RemoveCertificate {
                            address: (*address).into(),
                            fingerprint: fingerprint.clone(),
                        })
                        .into(),
                    );
                }
            }
        }
    }

    /// HTTP and HTTPS frontends.
    fn http_frontends(&mut self) {
        let (old, new) = (self.old, self.new);
        for (https, old_frontends, new_frontends) in [
            (false, &old.http_frontends, &new.http_frontends),
            (true, &old.https_frontends, &new.https_frontends),
        ] {
            for (key, frontend) in new_frontends {
                if self.rebuilt.contains(&key.address) {
                    self.rebuilds.push(add_frontend(frontend, https));
                    continue;
                }
                match old_frontends.get(key) {
                    None => self.additions.push(add_frontend(frontend, https)),
                    Some(old_frontend) if old_frontend != frontend => {
                        self.replacements.push(remove_frontend(old_frontend, https));
                        self.replacements.push(add_frontend(frontend, https));
                    }
                    Some(_) => {}
                }
            }
            for (key, frontend) in old_frontends {
                let FrontendKey { address, .. } = key;
                let here_rebuilt = self.rebuilt.contains(address);
                let kept = !here_rebuilt && new_frontends.contains_key(key);
                // Frontends of a removed cluster go with it, unless their
                // listener is rebuilt and must be emptied first.
                let gone_with_cluster = frontend
                    .cluster_id
                    .as_ref()
                    .is_some_and(|id| self.removed_clusters.contains(id));
                let goes_with_cluster = gone_with_cluster && !here_rebuilt;
                if !kept && !goes_with_cluster {
                    self.frontend_removals
                        .push(remove_frontend(frontend, https));
                }
            }
        }
    }

    /// TCP frontends: a new frontend whose (address, SNI) is still held by
    /// an old one replaces it as a pair.
    fn tcp_frontends(&mut self) {
        let old_tcp: Vec<&RequestTcpFrontend> = self.old.tcp_frontends.values().flatten().collect();
        let new_tcp: Vec<&RequestTcpFrontend> = self.new.tcp_frontends.values().flatten().collect();
        for frontend in &new_tcp {
            let address = frontend.address.to_socket_addr();
            if self.rebuilt.contains(&address) {
                self.rebuilds
                    .push(RequestType::AddTcpFrontend((*frontend).clone()).into());
                continue;
            }
            if old_tcp.contains(frontend) {
                continue;
            }
            let route = tcp_route(frontend);
            let request: Request = RequestType::AddTcpFrontend((*frontend).clone()).into();
            // The route is still held by another frontend: it goes first.
            if let Some(holder) = old_tcp.iter().find(|old| tcp_route(old) == route) {
                self.replacements
                    .push(RequestType::RemoveTcpFrontend((*holder).clone()).into());
                self.replacements.push(request);
            } else {
                self.additions.push(request);
            }
        }
        for frontend in &old_tcp {
            let address = frontend.address.to_socket_addr();
            let rebuilt_here = self.rebuilt.contains(&address);
            if !rebuilt_here && new_tcp.contains(frontend) {
                continue;
            }
            let taken_over = new_tcp
                .iter()
                .any(|new| !old_tcp.contains(new) && tcp_route(new) == tcp_route(frontend));
            if !rebuilt_here && taken_over {
                continue; // removed by its replacement pair above
            }
            if !rebuilt_here && self.removed_clusters.contains(&frontend.cluster_id) {
                continue; // removed with its cluster
            }
            self.frontend_removals
                .push(RequestType::RemoveTcpFrontend((*frontend).clone()).into());
        }
    }

    /// Removals from the outside in, rebuilt listeners with what is bound
    /// to them, and every phase in order.
    fn finish(self) -> Vec<Request> {
        let Plan {
            old_listeners,
            new_listeners,
            rebuilt,
            removed_clusters,
            additions,
            replacements,
            mut removals,
            frontend_removals,
            certificate_removals,
            mut rebuilds,
            ..
        } = self;
        removals.splice(0..0, frontend_removals);
        removals.extend(certificate_removals);
        for id in &removed_clusters {
            removals.push(RequestType::RemoveCluster((*id).clone()).into());
        }
        for (address, listener) in &old_listeners {
            if !new_listeners.contains_key(address) || rebuilt.contains(address) {
                if listener.active() {
                    removals.push(deactivate(*address, listener.kind()));
                }
                removals.push(
                    RequestType::RemoveListener(RemoveListener {
                        address: SocketAddress::from(*address),
                        proxy: listener.kind() as i32,
                        interface: None,
                    })
                    .into(),
                );
            }
        }
        let mut rebuilt_listeners = Vec::new();
        for address in &rebuilt {
            let listener = new_listeners[address];
            rebuilt_listeners.push(listener.add_request());
            if listener.active() {
                rebuilt_listeners.push(activate(*address, listener.kind()));
            }
        }
        rebuilds.splice(0..0, rebuilt_listeners);

        let mut requests = additions;
        requests.extend(replacements);
        requests.extend(removals);
        requests.extend(rebuilds);
        requests
    }
}
