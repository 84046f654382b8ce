//! Cluster, health check, frontend, backend and certificate changes of
//! [`ConfigState::dispatch`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::certificate;
use crate::proto::command::{
    AddBackend, AddCertificate, CertificateAndKey, Cluster, PathRule, PathRuleKind, RemoveBackend,
    RemoveCertificate, ReplaceCertificate, RequestHttpFrontend, RequestTcpFrontend, SetHealthCheck,
    SocketAddress,
};

use super::listeners::{HTTP, HTTPS, TCP, check_enum, checked_address};
use super::{ClusterBackends, ConfigState, FrontendKey, StateError};

impl ConfigState {
    // ---- clusters ----

    /// Adds a cluster, or replaces the settings of an existing one (Sozu's
    /// behaviour: `cluster add` on an existing id updates it; its frontends
    /// and backends stay).
    pub(super) fn add_cluster(&mut self, cluster: &Cluster) -> Result<(), StateError> {
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
    pub(super) fn remove_cluster(&mut self, cluster_id: &str) -> Result<(), StateError> {
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

    pub(super) fn set_health_check(&mut self, set: &SetHealthCheck) -> Result<(), StateError> {
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

    pub(super) fn remove_health_check(&mut self, cluster_id: &str) -> Result<(), StateError> {
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

    pub(super) fn check_frontend_cluster(
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

    pub(super) fn add_http_frontend(
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

    pub(super) fn remove_http_frontend(
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

    pub(super) fn add_tcp_frontend(
        &mut self,
        frontend: &RequestTcpFrontend,
    ) -> Result<(), StateError> {
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

    pub(super) fn remove_tcp_frontend(
        &mut self,
        frontend: &RequestTcpFrontend,
    ) -> Result<(), StateError> {
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
    pub(super) fn add_backend(&mut self, backend: &AddBackend) -> Result<(), StateError> {
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

    pub(super) fn remove_backend(&mut self, backend: &RemoveBackend) -> Result<(), StateError> {
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

    pub(super) fn https_listener_address(
        &self,
        address: &SocketAddress,
    ) -> Result<SocketAddr, StateError> {
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
    pub(super) fn checked_certificate(
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
    pub(super) fn add_certificate(&mut self, add: &AddCertificate) -> Result<(), StateError> {
        let address = self.https_listener_address(&add.address)?;
        let (fingerprint, stored) = Self::checked_certificate(&add.certificate)?;
        self.certificates
            .entry(address)
            .or_default()
            .entry(fingerprint)
            .or_insert(stored);
        Ok(())
    }

    pub(super) fn replace_certificate(
        &mut self,
        replace: &ReplaceCertificate,
    ) -> Result<(), StateError> {
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

    pub(super) fn remove_certificate(
        &mut self,
        remove: &RemoveCertificate,
    ) -> Result<(), StateError> {
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
