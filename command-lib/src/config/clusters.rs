//! Cluster tables to cluster, frontend and backend messages.

use std::net::{SocketAddr, ToSocketAddrs};

use super::build::{Builder, Defaults};
use super::checks::{check_unix_path, is_numeric_shorthand, is_token, parse_status_range};
use super::file::{ClusterProtocol, FileBackendConfig, FileClusterConfig, FileHealthCheckConfig};
use super::{ClusterConfig, ConfigError, DEFAULT_BACKEND_WEIGHT, ListenerConfig};
use crate::proto::command::{
    AddBackend, Cluster, HealthCheckConfig, HealthCheckMode, LoadBalancingParams,
    ProxyProtocolConfig, UdpClusterConfig, UdpHealthConfig,
};

impl Builder {
    pub(super) fn cluster(
        &mut self,
        id: &str,
        file: &FileClusterConfig,
        listeners: &mut Vec<ListenerConfig>,
        defaults: &Defaults,
    ) -> Result<ClusterConfig, ConfigError> {
        let key = format!("clusters.{id}");
        self.check_affinity(&key, file)?;
        self.check_sharding(&key, file)?;
        if let Some(attempts) = file.max_connection_attempts {
            self.check_connection_attempts(&format!("{key}.max_connection_attempts"), attempts)?;
        }
        let health_check = match &file.health_check {
            Some(health_check) => {
                Some(self.health_check(&format!("{key}.health_check"), health_check)?)
            }
            None => None,
        };
        let backends = self.backends(id, &key, file)?;
        if health_check
            .as_ref()
            .is_some_and(|check| check.port.is_some())
            && file
                .backends
                .iter()
                .any(|backend| backend.unix_path.is_some())
        {
            return Err(self.invalid(
                format!("{key}.health_check.port"),
                "a health check port targets a backend IP and cannot be combined with unix_path backends",
            ));
        }

        let answers = self.answers(&format!("{key}.answers"), &file.answers)?;
        let mut cluster = Cluster {
            cluster_id: id.to_owned(),
            load_balancing: file.load_balancing as i32,
            load_metric: file.load_metric.map(|metric| metric as i32),
            answers,
            https_redirect_port: file.https_redirect_port,
            authorized_hashes: file.authorized_hashes.clone().unwrap_or_default(),
            www_authenticate: file.www_authenticate.clone(),
            max_connections_per_ip: file.max_connections_per_ip,
            retry_after: file.retry_after,
            health_check,
            udp: file.udp.as_ref().map(udp_cluster),
            max_connections_per_subnet: file.max_connections_per_subnet,
            shard_percent: file.shard_percent,
            shard_min_backends: file.shard_min_backends,
            shard_mode: file.shard_mode.map(|mode| mode as i32),
            max_connection_attempts: file.max_connection_attempts,
            ..Cluster::default()
        };

        let mut frontends = Vec::with_capacity(file.frontends.len());
        match file.protocol {
            ClusterProtocol::Http => {
                cluster.sticky_session = file.sticky_session.unwrap_or(false);
                cluster.https_redirect = file.https_redirect.unwrap_or(false);
                cluster.http2 = file.http2;
                cluster.affinity_header = file.affinity_header.clone();
                cluster.affinity_cookie = file.affinity_cookie.clone();
                cluster.answer_503 = match &file.answer_503 {
                    Some(answer) => Some(self.read(&format!("{key}.answer_503"), answer)?.1),
                    None => None,
                };
                for (index, frontend) in file.frontends.iter().enumerate() {
                    let frontend_key = format!("{key}.frontends[{index}]");
                    frontends.push(self.http_frontend(
                        id,
                        &frontend_key,
                        frontend,
                        listeners,
                        defaults,
                    )?);
                }
            }
            ClusterProtocol::Tcp => {
                if file.affinity_header.is_some() || file.affinity_cookie.is_some() {
                    let name = if file.affinity_header.is_some() {
                        "affinity_header"
                    } else {
                        "affinity_cookie"
                    };
                    return Err(self.invalid(
                        format!("{key}.{name}"),
                        "a tcp cluster always keys on the client's IP: affinity_header and affinity_cookie are for http clusters",
                    ));
                }
                let mut expects_proxy: Option<bool> = None;
                for (index, frontend) in file.frontends.iter().enumerate() {
                    let frontend_key = format!("{key}.frontends[{index}]");
                    let expects = self.expect_proxy.contains(&frontend.address.0);
                    if expects_proxy.is_some_and(|earlier| earlier != expects) {
                        return Err(self.invalid(
                            format!("{frontend_key}.address"),
                            "the frontends of a tcp cluster must all be on listeners with expect_proxy, or all without",
                        ));
                    }
                    expects_proxy = Some(expects);
                    frontends.push(self.tcp_frontend(
                        id,
                        &frontend_key,
                        frontend,
                        &backends,
                        listeners,
                        defaults,
                    )?);
                }
                let send_proxy = file.send_proxy.unwrap_or(false);
                cluster.proxy_protocol = match (send_proxy, expects_proxy.unwrap_or(false)) {
                    (true, true) => Some(ProxyProtocolConfig::RelayHeader as i32),
                    (true, false) => Some(ProxyProtocolConfig::SendHeader as i32),
                    (false, true) => Some(ProxyProtocolConfig::ExpectHeader as i32),
                    (false, false) => None,
                };
            }
        }

        Ok(ClusterConfig {
            protocol: file.protocol,
            cluster,
            frontends,
            backends,
        })
    }

    pub(super) fn check_affinity(
        &self,
        key: &str,
        file: &FileClusterConfig,
    ) -> Result<(), ConfigError> {
        match (&file.affinity_header, &file.affinity_cookie) {
            (Some(_), Some(_)) => Err(self.invalid(
                format!("{key}.affinity_cookie"),
                "affinity_header and affinity_cookie cannot both be set",
            )),
            (Some(header), None) => {
                if !is_token(header) {
                    Err(self.invalid(
                        format!("{key}.affinity_header"),
                        format!("{header:?} is not a header name"),
                    ))
                } else if header.eq_ignore_ascii_case("host")
                    || header.eq_ignore_ascii_case("cookie")
                {
                    Err(self.invalid(
                        format!("{key}.affinity_header"),
                        format!(
                            "{header} cannot key affinity: requests do not keep it as a header (use the hostname, or affinity_cookie)"
                        ),
                    ))
                } else {
                    Ok(())
                }
            }
            (None, Some(cookie)) if !is_token(cookie) => Err(self.invalid(
                format!("{key}.affinity_cookie"),
                format!("{cookie:?} is not a cookie name"),
            )),
            _ => Ok(()),
        }
    }

    pub(super) fn check_sharding(
        &self,
        key: &str,
        file: &FileClusterConfig,
    ) -> Result<(), ConfigError> {
        let Some(percent) = file.shard_percent else {
            if file.shard_min_backends.is_some() || file.shard_mode.is_some() {
                return Err(self.invalid(
                    format!("{key}.shard_percent"),
                    "shard_min_backends and shard_mode need shard_percent",
                ));
            }
            return Ok(());
        };
        if !(1..=100).contains(&percent) {
            return Err(self.invalid(
                format!("{key}.shard_percent"),
                format!("{percent} is not within 1 to 100"),
            ));
        }
        if let Some(minimum) = file.shard_min_backends
            && minimum < 2
        {
            return Err(self.invalid(
                format!("{key}.shard_min_backends"),
                format!("{minimum} is below 2, the smallest shard"),
            ));
        }
        Ok(())
    }

    pub(super) fn health_check(
        &self,
        key: &str,
        file: &FileHealthCheckConfig,
    ) -> Result<HealthCheckConfig, ConfigError> {
        if !file.headers.is_empty() {
            return Err(self.invalid(
                format!("{key}.headers"),
                "health check headers read from value_file are not supported (Sozu 2.3.3 refuses them in a configuration file too)",
            ));
        }
        let mode = file.mode.unwrap_or(HealthCheckMode::Http);
        let mut accepted_statuses = Vec::new();
        for (index, spec) in file.accepted_statuses.iter().enumerate() {
            let range = parse_status_range(spec).ok_or_else(|| {
                self.invalid(
                    format!("{key}.accepted_statuses[{index}]"),
                    format!(
                        "{spec:?} is not a status (\"404\"), a range (\"200-399\"), a class (\"2xx\") or \"any\", within 100-599"
                    ),
                )
            })?;
            accepted_statuses.push(range);
        }
        let fail = |name: &str, message: &str| Err(self.invalid(format!("{key}.{name}"), message));
        for (name, value) in [
            ("interval", file.interval),
            ("timeout", file.timeout),
            ("healthy_threshold", file.healthy_threshold),
            ("unhealthy_threshold", file.unhealthy_threshold),
        ] {
            if value == 0 {
                return fail(name, "must be above 0");
            }
        }
        if mode == HealthCheckMode::Http && !file.uri.starts_with('/') {
            return fail("uri", "an HTTP health check URI must start with '/'");
        }
        if file.uri.bytes().any(|b| b < 0x20 && b != b'\t') {
            return fail("uri", "the URI must not hold control characters");
        }
        if file.expected_status != 0 && !accepted_statuses.is_empty() {
            return fail(
                "accepted_statuses",
                "expected_status and accepted_statuses cannot both be set",
            );
        }
        if mode == HealthCheckMode::Tcp
            && (file.expected_status != 0 || !accepted_statuses.is_empty())
        {
            return fail(
                "mode",
                "a TCP health check judges no status: leave expected_status and accepted_statuses unset",
            );
        }
        if let Some(port) = file.port
            && !(1..=65_535).contains(&port)
        {
            return fail("port", "a port is within 1 to 65535");
        }
        Ok(HealthCheckConfig {
            uri: file.uri.clone(),
            interval: file.interval,
            timeout: file.timeout,
            healthy_threshold: file.healthy_threshold,
            unhealthy_threshold: file.unhealthy_threshold,
            expected_status: file.expected_status,
            mode: mode as i32,
            accepted_statuses,
            port: file.port,
            headers: Vec::new(),
        })
    }

    pub(super) fn backends(
        &self,
        cluster_id: &str,
        key: &str,
        file: &FileClusterConfig,
    ) -> Result<Vec<AddBackend>, ConfigError> {
        let mut backends = Vec::with_capacity(file.backends.len());
        for (index, backend) in file.backends.iter().enumerate() {
            let backend_key = format!("{key}.backends[{index}]");
            if let Some(unix_path) = &backend.unix_path {
                check_unix_path(unix_path)
                    .map_err(|reason| self.invalid(format!("{backend_key}.unix_path"), reason))?;
            }
            backends.extend(self.backend(cluster_id, &backend_key, index, backend)?);
        }
        // A unix backend's address only names it: it must be unique.
        for (index, backend) in file.backends.iter().enumerate() {
            if backend.unix_path.is_some()
                && file
                    .backends
                    .iter()
                    .enumerate()
                    .any(|(other, b)| other != index && b.address == backend.address)
            {
                return Err(self.invalid(
                    format!("{key}.backends[{index}].address"),
                    "a unix_path backend is identified by its address, which must be unique in the cluster",
                ));
            }
        }
        Ok(backends)
    }

    /// One backend entry: a socket address gives one backend, a `host:port`
    /// one per address it resolves to (sorted), named as Sozu names them.
    pub(super) fn backend(
        &self,
        cluster_id: &str,
        key: &str,
        index: usize,
        backend: &FileBackendConfig,
    ) -> Result<Vec<AddBackend>, ConfigError> {
        let weight = LoadBalancingParams {
            weight: i32::from(backend.weight.unwrap_or(DEFAULT_BACKEND_WEIGHT)),
        };
        let make =
            |address: SocketAddr, backend_id: String, sticky_id: Option<String>| AddBackend {
                cluster_id: cluster_id.to_owned(),
                backend_id,
                address: address.into(),
                sticky_id,
                load_balancing_parameters: Some(weight),
                backup: backend.backup,
                unix_path: backend.unix_path.clone(),
            };
        if let Ok(address) = backend.address.parse::<SocketAddr>() {
            let backend_id = backend
                .backend_id
                .clone()
                .unwrap_or_else(|| format!("{cluster_id}-{index}-{address}"));
            return Ok(vec![make(address, backend_id, backend.sticky_id.clone())]);
        }

        let unresolvable = |reason: String| {
            self.invalid(
                format!("{key}.address"),
                format!("{:?}: {reason}", backend.address),
            )
        };
        let Some((host, port)) = backend.address.rsplit_once(':') else {
            return Err(unresolvable(
                "not an address: expected \"ip:port\", \"[ipv6]:port\" or \"host:port\"".into(),
            ));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(unresolvable(
                "not an address: expected \"ip:port\", \"[ipv6]:port\" or \"host:port\"".into(),
            ));
        }
        if host.contains(':') {
            return Err(unresolvable(
                "IPv6 addresses are written in brackets: \"[::1]:8080\"".into(),
            ));
        }
        // getaddrinfo reads "010.0.0.1" or "1.2.3" as legacy shorthands for
        // other addresses; refuse them rather than connect somewhere else.
        if is_numeric_shorthand(host) {
            return Err(unresolvable("not a valid IP address".into()));
        }
        let mut addresses: Vec<SocketAddr> = backend
            .address
            .to_socket_addrs()
            .map_err(|error| unresolvable(format!("cannot resolve the name: {error}")))?
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        if addresses.is_empty() {
            return Err(unresolvable("the name resolved to no address".into()));
        }
        Ok(addresses
            .into_iter()
            .map(|address| {
                let backend_id = match &backend.backend_id {
                    Some(id) => format!("{id}-{address}"),
                    None => format!("{cluster_id}-{}-{address}", backend.address),
                };
                let sticky_id = backend
                    .sticky_id
                    .as_ref()
                    .map(|sticky| format!("{sticky}-{address}"));
                make(address, backend_id, sticky_id)
            })
            .collect())
    }
}

fn udp_cluster(file: &super::file::FileUdpClusterConfig) -> UdpClusterConfig {
    UdpClusterConfig {
        affinity_key: file.affinity_key.map(|key| key as i32),
        responses: file.responses,
        requests: file.requests,
        send_proxy_protocol: file.send_proxy_protocol,
        proxy_protocol_every_datagram: file.proxy_protocol_every_datagram,
        health: file.health.as_ref().map(|health| UdpHealthConfig {
            mode: health.mode.map(|mode| mode as i32),
            tcp_port: health.tcp_port,
            rise: health.rise,
            fall: health.fall,
            fail_open: health.fail_open,
            udp_probe_payload: health
                .udp_probe_payload
                .as_ref()
                .map(|payload| payload.as_bytes().to_vec()),
            probe_interval_seconds: health.probe_interval_seconds,
            probe_timeout_seconds: health.probe_timeout_seconds,
        }),
    }
}
