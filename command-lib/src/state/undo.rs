//! Taking a change back: [`ConfigState::undo_of`] computes, before a change
//! is applied, what puts the state back as it was; [`ConfigState::undo`]
//! does it.
//!
//! A daemon needs this when a change the state accepted cannot be carried
//! through: a worker could not bind a listener's address, a worker stayed
//! silent, the automatic save failed. The main process then restores its own
//! state with [`ConfigState::undo`] and sends [`Undo::requests`] to the
//! workers that applied the change, so every process ends where it began.

use std::net::SocketAddr;

use super::{ConfigState, FrontendKey};
use crate::certificate;
use crate::proto::command::{
    ActivateListener, AddCertificate, DeactivateListener, HttpListenerConfig, HttpsListenerConfig,
    ListenerType, RemoveBackend, RemoveCertificate, RemoveListener, ReplaceCertificate, Request,
    SetHealthCheck, SocketAddress, TcpListenerConfig, UpdateHttpListenerConfig,
    UpdateHttpsListenerConfig, UpdateTcpListenerConfig, request::RequestType,
};

/// What takes one change back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Undo {
    /// The requests that reverse the change, in order, as sent to workers.
    pub requests: Vec<Request>,
    /// A listener's settings before an update, restored exactly in the state
    /// (an update request can set fields but not clear them, so the
    /// requests above restore every field that had a value).
    listener: Option<OldListener>,
}

#[derive(Debug, Clone, PartialEq)]
enum OldListener {
    Http(Box<HttpListenerConfig>),
    Https(Box<HttpsListenerConfig>),
    Tcp(Box<TcpListenerConfig>),
}

fn request(request_type: RequestType) -> Request {
    request_type.into()
}

fn remove_listener(address: SocketAddress, proxy: ListenerType) -> Request {
    request(RequestType::RemoveListener(RemoveListener {
        address,
        proxy: proxy as i32,
        interface: None,
    }))
}

impl ConfigState {
    /// What reverses `change` once it is applied to this state. Call it
    /// before applying the change; if the change is then refused, the undo
    /// is meaningless and must not be used.
    pub fn undo_of(&self, change: &Request) -> Undo {
        let mut undo = Undo::default();
        let Some(request_type) = &change.request_type else {
            return undo;
        };
        match request_type {
            RequestType::AddHttpListener(_)
            | RequestType::AddHttpsListener(_)
            | RequestType::AddTcpListener(_)
            | RequestType::UpdateHttpListener(_)
            | RequestType::UpdateHttpsListener(_)
            | RequestType::UpdateTcpListener(_)
            | RequestType::RemoveListener(_)
            | RequestType::ActivateListener(_)
            | RequestType::DeactivateListener(_) => {
                self.undo_listener_change(request_type, &mut undo)
            }
            RequestType::AddCluster(_)
            | RequestType::RemoveCluster(_)
            | RequestType::SetHealthCheck(_)
            | RequestType::RemoveHealthCheck(_) => {
                self.undo_cluster_change(request_type, &mut undo.requests)
            }
            RequestType::AddHttpFrontend(_)
            | RequestType::AddHttpsFrontend(_)
            | RequestType::AddTcpFrontend(_)
            | RequestType::RemoveHttpFrontend(_)
            | RequestType::RemoveHttpsFrontend(_)
            | RequestType::RemoveTcpFrontend(_) => {
                self.undo_frontend_change(request_type, &mut undo.requests)
            }
            RequestType::AddBackend(_) | RequestType::RemoveBackend(_) => {
                self.undo_backend_change(request_type, &mut undo.requests)
            }
            RequestType::AddCertificate(_)
            | RequestType::ReplaceCertificate(_)
            | RequestType::RemoveCertificate(_) => {
                self.undo_certificate_change(request_type, &mut undo.requests)
            }
            _ => {}
        }
        undo
    }

    /// Listener changes: a listener added is removed, an update or a
    /// (de)activation is reversed, a removed listener comes back.
    fn undo_listener_change(&self, request_type: &RequestType, undo: &mut Undo) {
        match request_type {
            RequestType::AddHttpListener(listener) => {
                undo.requests
                    .push(remove_listener(listener.address, ListenerType::Http));
            }
            RequestType::AddHttpsListener(listener) => {
                undo.requests
                    .push(remove_listener(listener.address, ListenerType::Https));
            }
            RequestType::AddTcpListener(listener) => {
                undo.requests
                    .push(remove_listener(listener.address, ListenerType::Tcp));
            }
            RequestType::UpdateHttpListener(update) => {
                if let Some(old) = self.http_listeners.get(&update.address.to_socket_addr()) {
                    undo.requests
                        .push(request(RequestType::UpdateHttpListener(http_update_from(
                            old,
                        ))));
                    undo.listener = Some(OldListener::Http(Box::new(old.clone())));
                }
            }
            RequestType::UpdateHttpsListener(update) => {
                if let Some(old) = self.https_listeners.get(&update.address.to_socket_addr()) {
                    undo.requests.push(request(RequestType::UpdateHttpsListener(
                        https_update_from(old),
                    )));
                    undo.listener = Some(OldListener::Https(Box::new(old.clone())));
                }
            }
            RequestType::UpdateTcpListener(update) => {
                if let Some(old) = self.tcp_listeners.get(&update.address.to_socket_addr()) {
                    undo.requests.push(request(RequestType::UpdateTcpListener(
                        UpdateTcpListenerConfig {
                            address: old.address,
                            public_address: None,
                            expect_proxy: Some(old.expect_proxy),
                            front_timeout: Some(old.front_timeout),
                            back_timeout: Some(old.back_timeout),
                            connect_timeout: Some(old.connect_timeout),
                        },
                    )));
                    undo.listener = Some(OldListener::Tcp(Box::new(old.clone())));
                }
            }
            RequestType::RemoveListener(remove) => {
                let address = remove.address.to_socket_addr();
                if let Some(old) = self.http_listeners.get(&address) {
                    undo.requests
                        .push(request(RequestType::AddHttpListener(old.clone())));
                } else if let Some(old) = self.https_listeners.get(&address) {
                    undo.requests
                        .push(request(RequestType::AddHttpsListener(old.clone())));
                } else if let Some(old) = self.tcp_listeners.get(&address) {
                    undo.requests
                        .push(request(RequestType::AddTcpListener(old.clone())));
                }
            }
            RequestType::ActivateListener(activate)
                if self.is_active(activate.address.to_socket_addr()) == Some(false) =>
            {
                undo.requests.push(request(RequestType::DeactivateListener(
                    DeactivateListener {
                        address: activate.address,
                        proxy: activate.proxy,
                        to_scm: false,
                        interface: None,
                    },
                )));
            }
            RequestType::DeactivateListener(deactivate)
                if self.is_active(deactivate.address.to_socket_addr()) == Some(true) =>
            {
                undo.requests
                    .push(request(RequestType::ActivateListener(ActivateListener {
                        address: deactivate.address,
                        proxy: deactivate.proxy,
                        from_scm: false,
                        interface: None,
                    })));
            }
            _ => {}
        }
    }

    /// Cluster and health check changes: a removed cluster comes back with
    /// its frontends and backends.
    fn undo_cluster_change(&self, request_type: &RequestType, requests: &mut Vec<Request>) {
        match request_type {
            RequestType::AddCluster(cluster) => match self.clusters.get(&cluster.cluster_id) {
                Some(old) => requests.push(request(RequestType::AddCluster(old.clone()))),
                None => requests.push(request(RequestType::RemoveCluster(
                    cluster.cluster_id.clone(),
                ))),
            },
            RequestType::RemoveCluster(cluster_id) => {
                if let Some(old) = self.clusters.get(cluster_id) {
                    requests.push(request(RequestType::AddCluster(old.clone())));
                    let names_it = |front: &&crate::proto::command::RequestHttpFrontend| {
                        front.cluster_id.as_deref() == Some(cluster_id.as_str())
                    };
                    for front in self.http_frontends.values().filter(names_it) {
                        requests.push(request(RequestType::AddHttpFrontend(front.clone())));
                    }
                    for front in self.https_frontends.values().filter(names_it) {
                        requests.push(request(RequestType::AddHttpsFrontend(front.clone())));
                    }
                    for front in self.tcp_frontends.get(cluster_id).into_iter().flatten() {
                        requests.push(request(RequestType::AddTcpFrontend(front.clone())));
                    }
                    for backend in self.backends.get(cluster_id).into_iter().flatten() {
                        requests.push(request(RequestType::AddBackend(backend.clone())));
                    }
                }
            }
            RequestType::SetHealthCheck(set) => {
                if let Some(cluster) = self.clusters.get(&set.cluster_id) {
                    requests.push(health_check_as_it_was(&set.cluster_id, cluster));
                }
            }
            RequestType::RemoveHealthCheck(cluster_id) => {
                if let Some(cluster) = self.clusters.get(cluster_id) {
                    requests.push(health_check_as_it_was(cluster_id, cluster));
                }
            }
            _ => {}
        }
    }

    /// Frontend changes: an add is removed, a removed frontend comes back.
    fn undo_frontend_change(&self, request_type: &RequestType, requests: &mut Vec<Request>) {
        match request_type {
            RequestType::AddHttpFrontend(front) => {
                requests.push(request(RequestType::RemoveHttpFrontend(front.clone())));
            }
            RequestType::AddHttpsFrontend(front) => {
                requests.push(request(RequestType::RemoveHttpsFrontend(front.clone())));
            }
            RequestType::AddTcpFrontend(front) => {
                requests.push(request(RequestType::RemoveTcpFrontend(front.clone())));
            }
            RequestType::RemoveHttpFrontend(front) => {
                if let Some(old) = self.http_frontends.get(&FrontendKey::of(front)) {
                    requests.push(request(RequestType::AddHttpFrontend(old.clone())));
                }
            }
            RequestType::RemoveHttpsFrontend(front) => {
                if let Some(old) = self.https_frontends.get(&FrontendKey::of(front)) {
                    requests.push(request(RequestType::AddHttpsFrontend(old.clone())));
                }
            }
            RequestType::RemoveTcpFrontend(front) => {
                let address = front.address.to_socket_addr();
                if let Some(old) = self
                    .tcp_frontends
                    .get(&front.cluster_id)
                    .into_iter()
                    .flatten()
                    .find(|old| old.address.to_socket_addr() == address && old.sni == front.sni)
                {
                    requests.push(request(RequestType::AddTcpFrontend(old.clone())));
                }
            }
            _ => {}
        }
    }

    /// Backend changes: an add restores the old backend or removes the new one.
    fn undo_backend_change(&self, request_type: &RequestType, requests: &mut Vec<Request>) {
        match request_type {
            RequestType::AddBackend(backend) => {
                let address = backend.address.to_socket_addr();
                let old = self
                    .backends
                    .get(&backend.cluster_id)
                    .and_then(|backends| backends.get(&backend.backend_id, address));
                requests.push(match old {
                    Some(old) => request(RequestType::AddBackend(old.clone())),
                    None => request(RequestType::RemoveBackend(RemoveBackend {
                        cluster_id: backend.cluster_id.clone(),
                        backend_id: backend.backend_id.clone(),
                        address: backend.address,
                    })),
                });
            }
            RequestType::RemoveBackend(backend) => {
                if let Some(old) = self.backends.get(&backend.cluster_id).and_then(|backends| {
                    backends.get(&backend.backend_id, backend.address.to_socket_addr())
                }) {
                    requests.push(request(RequestType::AddBackend(old.clone())));
                }
            }
            _ => {}
        }
    }

    /// Certificate changes: added, replaced or removed certificates are
    /// put back as they were.
    fn undo_certificate_change(&self, request_type: &RequestType, requests: &mut Vec<Request>) {
        match request_type {
            RequestType::AddCertificate(add) => {
                if let Some(fingerprint) = fingerprint_of(&add.certificate)
                    && !self.has_certificate(add.address.to_socket_addr(), &fingerprint)
                {
                    requests.push(request(RequestType::RemoveCertificate(RemoveCertificate {
                        address: add.address,
                        fingerprint,
                    })));
                }
            }
            RequestType::ReplaceCertificate(replace) => {
                let address = replace.address.to_socket_addr();
                let old_fingerprint = replace.old_fingerprint.to_ascii_lowercase();
                if let (Some(old), Some(new_fingerprint)) = (
                    self.certificates
                        .get(&address)
                        .and_then(|certificates| certificates.get(&old_fingerprint)),
                    fingerprint_of(&replace.new_certificate),
                ) {
                    requests.push(request(RequestType::ReplaceCertificate(
                        ReplaceCertificate {
                            address: replace.address,
                            new_certificate: old.clone(),
                            old_fingerprint: new_fingerprint,
                            new_expired_at: None,
                        },
                    )));
                }
            }
            RequestType::RemoveCertificate(remove) => {
                let fingerprint = remove.fingerprint.to_ascii_lowercase();
                if let Some(old) = self
                    .certificates
                    .get(&remove.address.to_socket_addr())
                    .and_then(|certificates| certificates.get(&fingerprint))
                {
                    requests.push(request(RequestType::AddCertificate(AddCertificate {
                        address: remove.address,
                        certificate: old.clone(),
                        expired_at: None,
                    })));
                }
            }
            _ => {}
        }
    }

    /// Takes a change back (see [`ConfigState::undo_of`]). Returns the
    /// errors of the reversing requests, which are empty when the state
    /// was not changed by anything else since.
    pub fn undo(&mut self, undo: &Undo) -> Vec<super::StateError> {
        let errors = undo
            .requests
            .iter()
            .filter_map(|request| self.dispatch(request).err())
            .collect();
        match &undo.listener {
            Some(OldListener::Http(old)) => {
                if let Some(listener) = self.http_listeners.get_mut(&old.address.to_socket_addr()) {
                    *listener = (**old).clone();
                }
            }
            Some(OldListener::Https(old)) => {
                if let Some(listener) = self.https_listeners.get_mut(&old.address.to_socket_addr())
                {
                    *listener = (**old).clone();
                }
            }
            Some(OldListener::Tcp(old)) => {
                if let Some(listener) = self.tcp_listeners.get_mut(&old.address.to_socket_addr()) {
                    *listener = (**old).clone();
                }
            }
            None => {}
        }
        errors
    }

    fn is_active(&self, address: SocketAddr) -> Option<bool> {
        self.http_listeners
            .get(&address)
            .map(|l| l.active)
            .or_else(|| self.https_listeners.get(&address).map(|l| l.active))
            .or_else(|| self.tcp_listeners.get(&address).map(|l| l.active))
    }

    fn has_certificate(&self, address: SocketAddr, fingerprint: &str) -> bool {
        self.certificates
            .get(&address)
            .is_some_and(|certificates| certificates.contains_key(fingerprint))
    }
}

fn fingerprint_of(certificate: &crate::proto::command::CertificateAndKey) -> Option<String> {
    certificate::parse_certificate_and_key(certificate)
        .ok()
        .map(|info| info.fingerprint.to_string())
}

fn health_check_as_it_was(cluster_id: &str, cluster: &crate::proto::command::Cluster) -> Request {
    match &cluster.health_check {
        Some(config) => request(RequestType::SetHealthCheck(SetHealthCheck {
            cluster_id: cluster_id.to_owned(),
            config: config.clone(),
        })),
        None => request(RequestType::RemoveHealthCheck(cluster_id.to_owned())),
    }
}

/// An update that sets back every field an HTTP listener had a value for
/// (fields a worker refuses in updates, like `public_address`, are left
/// out: they cannot have changed). A worker replays it; an update cannot
/// unset a field, so the switches the listener did not set are set to
/// what an unset one means (off, and forwarding header kind 0, as the
/// proxy reads them), which leaves the worker behaving as before.
fn http_update_from(old: &HttpListenerConfig) -> UpdateHttpListenerConfig {
    UpdateHttpListenerConfig {
        address: old.address,
        expect_proxy: Some(old.expect_proxy),
        sticky_name: Some(old.sticky_name.clone()),
        front_timeout: Some(old.front_timeout),
        back_timeout: Some(old.back_timeout),
        connect_timeout: Some(old.connect_timeout),
        request_timeout: Some(old.request_timeout),
        http_answers: old.http_answers.clone(),
        sozu_id_header: old.sozu_id_header.clone(),
        answers: old.answers.clone(),
        elide_x_real_ip: old.elide_x_real_ip.or(Some(false)),
        send_x_real_ip: old.send_x_real_ip.or(Some(false)),
        forwarded_headers: old.forwarded_headers.or(Some(0)),
        ..Default::default()
    }
}

/// As [`http_update_from`], for HTTPS, with the HTTP/2 settings the
/// listener had.
fn https_update_from(old: &HttpsListenerConfig) -> UpdateHttpsListenerConfig {
    let mut update = UpdateHttpsListenerConfig {
        address: old.address,
        expect_proxy: Some(old.expect_proxy),
        sticky_name: Some(old.sticky_name.clone()),
        front_timeout: Some(old.front_timeout),
        back_timeout: Some(old.back_timeout),
        connect_timeout: Some(old.connect_timeout),
        request_timeout: Some(old.request_timeout),
        http_answers: old.http_answers.clone(),
        sozu_id_header: old.sozu_id_header.clone(),
        answers: old.answers.clone(),
        elide_x_real_ip: old.elide_x_real_ip.or(Some(false)),
        send_x_real_ip: old.send_x_real_ip.or(Some(false)),
        forwarded_headers: old.forwarded_headers.or(Some(0)),
        alpn_protocols: Some(crate::proto::command::AlpnProtocols {
            values: old.alpn_protocols.clone(),
        }),
        strict_sni_binding: old.strict_sni_binding,
        disable_http11: old.disable_http11,
        ..Default::default()
    };
    crate::h2_settings::H2Fields::copy_h2_from(&mut update, old);
    update
}

impl ConfigState {
    /// For a record loaded on top of a live state, whether the state holds
    /// something under the same key already: `None` when it does not (the
    /// record is applied as usual), `Some(Ok(()))` when it holds exactly
    /// that (the record changes nothing), `Some(Err(..))` naming the fields
    /// that differ when it holds something else.
    ///
    /// Only records that would otherwise be refused as duplicates are
    /// compared (listeners, their activation, frontends); clusters and
    /// backends are updated in place and certificates are idempotent.
    pub fn existing(&self, record: &Request) -> Option<Result<(), String>> {
        match record.request_type.as_ref()? {
            RequestType::AddHttpListener(new) => {
                let address = new.address.to_socket_addr();
                match self.http_listeners.get(&address) {
                    Some(old) => Some(same(
                        &format!("the HTTP listener on {address}"),
                        old,
                        &HttpListenerConfig {
                            active: old.active,
                            ..new.clone()
                        },
                    )),
                    None => self.other_listener(address, "HTTP"),
                }
            }
            RequestType::AddHttpsListener(new) => {
                let address = new.address.to_socket_addr();
                match self.https_listeners.get(&address) {
                    Some(old) => Some(same(
                        &format!("the HTTPS listener on {address}"),
                        old,
                        &HttpsListenerConfig {
                            active: old.active,
                            ..new.clone()
                        },
                    )),
                    None => self.other_listener(address, "HTTPS"),
                }
            }
            RequestType::AddTcpListener(new) => {
                let address = new.address.to_socket_addr();
                match self.tcp_listeners.get(&address) {
                    Some(old) => Some(same(
                        &format!("the TCP listener on {address}"),
                        old,
                        &TcpListenerConfig {
                            active: old.active,
                            ..new.clone()
                        },
                    )),
                    None => self.other_listener(address, "TCP"),
                }
            }
            RequestType::ActivateListener(activate) => self
                .is_active(activate.address.to_socket_addr())
                .filter(|active| *active)
                .map(|_| Ok(())),
            RequestType::AddHttpFrontend(new) => {
                let key = FrontendKey::of(new);
                let old = self.http_frontends.get(&key)?;
                Some(same(&format!("the http frontend {key}"), old, new))
            }
            RequestType::AddHttpsFrontend(new) => {
                let key = FrontendKey::of(new);
                let old = self.https_frontends.get(&key)?;
                Some(same(&format!("the https frontend {key}"), old, new))
            }
            RequestType::AddTcpFrontend(new) => {
                let address = new.address.to_socket_addr();
                let old =
                    self.tcp_frontends.values().flatten().find(|old| {
                        old.address.to_socket_addr() == address && old.sni == new.sni
                    })?;
                Some(same(&format!("the tcp frontend on {address}"), old, new))
            }
            _ => None,
        }
    }

    fn other_listener(&self, address: SocketAddr, kind: &str) -> Option<Result<(), String>> {
        let existing = self.listener_kind_at(&address)?;
        Some(Err(format!(
            "a {existing} listener exists on {address}, the record adds a {kind} listener there"
        )))
    }
}

/// `Ok` when `old` and `new` are equal, else the fields that differ with
/// both values.
fn same<T: PartialEq + serde::Serialize>(what: &str, old: &T, new: &T) -> Result<(), String> {
    if old == new {
        return Ok(());
    }
    let (Ok(serde_json::Value::Object(old)), Ok(serde_json::Value::Object(new))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Err(format!("{what} exists with other settings"));
    };
    let mut fields: Vec<&String> = old.keys().chain(new.keys()).collect();
    fields.sort();
    fields.dedup();
    let differences: Vec<String> = fields
        .into_iter()
        .filter(|field| old.get(*field) != new.get(*field))
        .map(|field| {
            let show = |value: Option<&serde_json::Value>| {
                value.map_or("unset".to_owned(), |value| {
                    let text = value.to_string();
                    if text.len() > 60 {
                        format!("{}…", text.chars().take(60).collect::<String>())
                    } else {
                        text
                    }
                })
            };
            format!(
                "{field} is {} here, {} in the record",
                show(old.get(field)),
                show(new.get(field))
            )
        })
        .collect();
    Err(format!(
        "{what} exists with other settings: {}",
        differences.join(", ")
    ))
}

#[cfg(test)]
mod tests;
