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
    let old_listeners = listeners(old);
    let new_listeners = listeners(new);

    // Listeners present on both sides that must be rebuilt: everything bound
    // to them is removed with them and added back after.
    let mut rebuilt: BTreeSet<SocketAddr> = BTreeSet::new();
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
    let removed_clusters: BTreeSet<&String> = old
        .clusters
        .keys()
        .filter(|id| !new.clusters.contains_key(*id))
        .collect();

    let mut additions = Vec::new();
    let mut replacements = Vec::new();
    let mut removals = Vec::new();
    let mut rebuilds = Vec::new();

    // -- listeners: new ones, updates, activation changes
    for (address, listener) in &new_listeners {
        if !old_listeners.contains_key(address) {
            additions.push(listener.add_request());
            if listener.active() {
                additions.push(activate(*address, listener.kind()));
            }
        }
    }
    additions.extend(listener_updates);
    for (address, new_listener) in &new_listeners {
        if let Some(old_listener) = old_listeners.get(address)
            && !rebuilt.contains(address)
        {
            match (old_listener.active(), new_listener.active()) {
                (false, true) => additions.push(activate(*address, new_listener.kind())),
                (true, false) => removals.push(deactivate(*address, old_listener.kind())),
                _ => {}
            }
        }
    }

    // -- clusters (an add on an existing id replaces its settings)
    for (id, cluster) in &new.clusters {
        if old.clusters.get(id) != Some(cluster) {
            additions.push(RequestType::AddCluster(cluster.clone()).into());
        }
    }

    // -- backends (an add on an existing id and address replaces it)
    let no_backends = ClusterBackends::default();
    for (cluster_id, new_backends) in &new.backends {
        let old_backends = old.backends.get(cluster_id).unwrap_or(&no_backends);
        for backend in new_backends {
            let address = backend.address.to_socket_addr();
            if old_backends.get(&backend.backend_id, address) != Some(backend) {
                additions.push(RequestType::AddBackend(backend.clone()).into());
            }
        }
    }
    for (cluster_id, old_backends) in &old.backends {
        if removed_clusters.contains(cluster_id) {
            continue;
        }
        let new_backends = new.backends.get(cluster_id).unwrap_or(&no_backends);
        for backend in old_backends {
            let address = backend.address.to_socket_addr();
            if new_backends.get(&backend.backend_id, address).is_none() {
                removals.push(
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

    // -- certificates, by listener and fingerprint
    let no_certificates = BTreeMap::new();
    for (address, new_certificates) in &new.certificates {
        let target = if rebuilt.contains(address) {
            &mut rebuilds
        } else {
            &mut additions
        };
        let old_certificates = match rebuilt.contains(address) {
            true => &no_certificates,
            false => old.certificates.get(address).unwrap_or(&no_certificates),
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
    let mut certificate_removals = Vec::new();
    for (address, old_certificates) in &old.certificates {
        let new_certificates = match rebuilt.contains(address) {
            true => &no_certificates,
            false => new.certificates.get(address).unwrap_or(&no_certificates),
        };
        for fingerprint in old_certificates.keys() {
            if !new_certificates.contains_key(fingerprint) {
                certificate_removals.push(
                    RequestType::RemoveCertificate(RemoveCertificate {
                        address: (*address).into(),
                        fingerprint: fingerprint.clone(),
                    })
                    .into(),
                );
            }
        }
    }

    // -- HTTP and HTTPS frontends
    let mut frontend_removals = Vec::new();
    for (https, old_frontends, new_frontends) in [
        (false, &old.http_frontends, &new.http_frontends),
        (true, &old.https_frontends, &new.https_frontends),
    ] {
        let gone_with_cluster = |front: &RequestHttpFrontend| {
            front
                .cluster_id
                .as_ref()
                .is_some_and(|id| removed_clusters.contains(id))
        };
        for (key, frontend) in new_frontends {
            if rebuilt.contains(&key.address) {
                rebuilds.push(add_frontend(frontend, https));
                continue;
            }
            match old_frontends.get(key) {
                None => additions.push(add_frontend(frontend, https)),
                Some(old_frontend) if old_frontend != frontend => {
                    replacements.push(remove_frontend(old_frontend, https));
                    replacements.push(add_frontend(frontend, https));
                }
                Some(_) => {}
            }
        }
        for (key, frontend) in old_frontends {
            let FrontendKey { address, .. } = key;
            let here_rebuilt = rebuilt.contains(address);
            let kept = !here_rebuilt && new_frontends.contains_key(key);
            // Frontends of a removed cluster go with it, unless their
            // listener is rebuilt and must be emptied first.
            let goes_with_cluster = gone_with_cluster(frontend) && !here_rebuilt;
            if !kept && !goes_with_cluster {
                frontend_removals.push(remove_frontend(frontend, https));
            }
        }
    }

    // -- TCP frontends
    let old_tcp: Vec<&RequestTcpFrontend> = old.tcp_frontends.values().flatten().collect();
    let new_tcp: Vec<&RequestTcpFrontend> = new.tcp_frontends.values().flatten().collect();
    for frontend in &new_tcp {
        let address = frontend.address.to_socket_addr();
        if rebuilt.contains(&address) {
            rebuilds.push(RequestType::AddTcpFrontend((*frontend).clone()).into());
            continue;
        }
        if old_tcp.contains(frontend) {
            continue;
        }
        let route = tcp_route(frontend);
        let request: Request = RequestType::AddTcpFrontend((*frontend).clone()).into();
        // The route is still held by another frontend: it goes first.
        if let Some(holder) = old_tcp.iter().find(|old| tcp_route(old) == route) {
            replacements.push(RequestType::RemoveTcpFrontend((*holder).clone()).into());
            replacements.push(request);
        } else {
            additions.push(request);
        }
    }
    for frontend in &old_tcp {
        let address = frontend.address.to_socket_addr();
        let rebuilt_here = rebuilt.contains(&address);
        if !rebuilt_here && new_tcp.contains(frontend) {
            continue;
        }
        let taken_over = new_tcp
            .iter()
            .any(|new| !old_tcp.contains(new) && tcp_route(new) == tcp_route(frontend));
        if !rebuilt_here && taken_over {
            continue; // removed by its replacement pair above
        }
        if !rebuilt_here && removed_clusters.contains(&frontend.cluster_id) {
            continue; // removed with its cluster
        }
        frontend_removals.push(RequestType::RemoveTcpFrontend((*frontend).clone()).into());
    }

    // -- removals, from the outside in
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

    // -- rebuilt listeners come back with what is bound to them
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
