//! Frontend tables of clusters to HTTP, HTTPS and TCP frontend messages,
//! with the listener each one needs.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::build::{Builder, Defaults};
use super::checks::{has_forbidden_controls, is_token, normalize_sni};
use super::file::{FileFrontendConfig, FileListenerConfig, ListenerProtocol, PathType};
use super::listeners::{
    DEFAULT_SNI_PREREAD_MAX_BYTES, DEFAULT_SNI_PREREAD_TIMEOUT, MIN_SNI_PREREAD_MAX_BYTES,
    listener_certificate,
};
use super::{Config, ConfigError, FrontendCertificate, FrontendConfig, ListenerConfig};
use crate::proto::command::{
    AddBackend, Header, HeaderMatchKind, HeaderPosition, HeaderPredicate, PathRule, PathRuleKind,
    RedirectPolicy, RedirectScheme, RequestHttpFrontend, RequestTcpFrontend, RequestUdpFrontend,
};

impl Builder {
    pub(super) fn http_frontend(
        &mut self,
        cluster_id: &str,
        key: &str,
        frontend: &FileFrontendConfig,
        listeners: &mut Vec<ListenerConfig>,
        defaults: &Defaults,
    ) -> Result<FrontendConfig, ConfigError> {
        let address = frontend.address.0;
        let Some(hostname) = frontend.hostname.clone() else {
            return Err(self.invalid(
                format!("{key}.hostname"),
                "an http cluster's frontend needs a hostname",
            ));
        };
        if !frontend.alpn.is_empty() {
            return Err(self.invalid(
                format!("{key}.alpn"),
                "alpn is for frontends of tcp clusters; HTTPS listeners negotiate ALPN with alpn_protocols",
            ));
        }
        let own_certificate = self.certificate_files(
            key,
            &frontend.certificate,
            &frontend.key,
            &frontend.certificate_chain,
        )?;

        let https =
            self.frontend_listener(key, address, own_certificate.is_some(), listeners, defaults)?;

        let path = path_rule(frontend);
        let redirect = match &frontend.redirect {
            Some(value) => Some(self.redirect_policy(&format!("{key}.redirect"), value)? as i32),
            None => None,
        };
        let redirect_scheme = match &frontend.redirect_scheme {
            Some(value) => {
                Some(self.redirect_scheme(&format!("{key}.redirect_scheme"), value)? as i32)
            }
            None => None,
        };
        let headers = self.header_edits(key, frontend)?;
        let mut header_predicates = Vec::new();
        for (index, predicate) in frontend.header_predicates.iter().flatten().enumerate() {
            let predicate_key = format!("{key}.header_predicates[{index}]");
            header_predicates.push(self.header_predicate(&predicate_key, predicate)?);
        }
        let hsts = match &frontend.hsts {
            Some(_) if !https => {
                return Err(self.invalid(
                    format!("{key}.hsts"),
                    "HSTS is for HTTPS only (RFC 6797 §7.2): this frontend is on an http listener",
                ));
            }
            Some(hsts) => Some(self.hsts(&format!("{key}.hsts"), hsts)?),
            None => None,
        };

        let request = RequestHttpFrontend {
            cluster_id: Some(cluster_id.to_owned()),
            address: address.into(),
            hostname,
            path,
            method: frontend.method.clone(),
            position: frontend.position as i32,
            tags: frontend.tags.clone().unwrap_or_default(),
            redirect,
            required_auth: frontend.required_auth,
            redirect_scheme,
            redirect_template: frontend.redirect_template.clone(),
            rewrite_host: frontend.rewrite_host.clone(),
            rewrite_path: frontend.rewrite_path.clone(),
            rewrite_port: frontend.rewrite_port,
            headers,
            hsts,
            header_predicates,
        };
        if !https {
            return Ok(FrontendConfig::Http(request));
        }

        let certificate = match own_certificate {
            Some(checked) => Some(checked.into_add_certificate(address, &frontend.tls_versions)),
            None => https_listener_certificate(listeners, address),
        };
        Ok(FrontendConfig::Https {
            frontend: request,
            certificate,
        })
    }

    /// Whether the listener serving a frontend at `address` is HTTPS,
    /// creating one if none is declared there (HTTPS when the frontend
    /// brings a certificate).
    fn frontend_listener(
        &mut self,
        key: &str,
        address: SocketAddr,
        has_certificate: bool,
        listeners: &mut Vec<ListenerConfig>,
        defaults: &Defaults,
    ) -> Result<bool, ConfigError> {
        match self.known_addresses.get(&address) {
            Some(ListenerProtocol::Http) => {
                if has_certificate {
                    return Err(self.invalid(
                        format!("{key}.certificate"),
                        format!("{address} is an http listener: a frontend there cannot carry a certificate"),
                    ));
                }
                Ok(false)
            }
            Some(ListenerProtocol::Https) => Ok(true),
            Some(protocol @ (ListenerProtocol::Tcp | ListenerProtocol::Udp)) => Err(self.invalid(
                format!("{key}.address"),
                format!("{address} is a {protocol} listener: an http cluster's frontend needs an http or https listener"),
            )),
            None => {
                let protocol = if has_certificate {
                    ListenerProtocol::Https
                } else {
                    ListenerProtocol::Http
                };
                let implicit = FileListenerConfig::implicit(address, protocol);
                listeners.push(self.listener(key, &implicit, defaults)?);
                self.known_addresses.insert(address, protocol);
                Ok(has_certificate)
            }
        }
    }

    /// A frontend's `headers` edits, each checked.
    fn header_edits(
        &self,
        key: &str,
        frontend: &FileFrontendConfig,
    ) -> Result<Vec<Header>, ConfigError> {
        let mut headers = Vec::new();
        for (index, edit) in frontend.headers.iter().flatten().enumerate() {
            let edit_key = format!("{key}.headers[{index}]");
            let position = match edit.position.to_ascii_lowercase().as_str() {
                "request" => HeaderPosition::Request,
                "response" => HeaderPosition::Response,
                "both" => HeaderPosition::Both,
                _ => {
                    return Err(self.invalid(
                        format!("{edit_key}.position"),
                        format!(
                            "{:?} is not a position: use \"request\", \"response\" or \"both\"",
                            edit.position
                        ),
                    ));
                }
            };
            if !is_token(&edit.key) {
                return Err(self.invalid(
                    format!("{edit_key}.key"),
                    format!("{:?} is not a header name", edit.key),
                ));
            }
            if has_forbidden_controls(&edit.value) {
                return Err(self.invalid(
                    format!("{edit_key}.value"),
                    "a header value cannot hold control characters",
                ));
            }
            headers.push(Header {
                position: position as i32,
                key: edit.key.clone(),
                val: edit.value.clone(),
            });
        }
        Ok(headers)
    }

    pub(super) fn redirect_policy(
        &self,
        key: &str,
        value: &str,
    ) -> Result<RedirectPolicy, ConfigError> {
        match value.to_ascii_lowercase().as_str() {
            "forward" => Ok(RedirectPolicy::Forward),
            "permanent" => Ok(RedirectPolicy::Permanent),
            "unauthorized" => Ok(RedirectPolicy::Unauthorized),
            "silent_close" => Ok(RedirectPolicy::SilentClose),
            _ => Err(self.invalid(
                key,
                format!(
                    "{value:?} is not a redirect policy: use \"forward\", \"permanent\", \"unauthorized\" or \"silent_close\""
                ),
            )),
        }
    }

    pub(super) fn redirect_scheme(
        &self,
        key: &str,
        value: &str,
    ) -> Result<RedirectScheme, ConfigError> {
        match value.to_ascii_lowercase().replace('_', "-").as_str() {
            "use-same" => Ok(RedirectScheme::UseSame),
            "use-http" => Ok(RedirectScheme::UseHttp),
            "use-https" => Ok(RedirectScheme::UseHttps),
            _ => Err(self.invalid(
                key,
                format!(
                    "{value:?} is not a redirect scheme: use \"use-same\", \"use-http\" or \"use-https\""
                ),
            )),
        }
    }

    pub(super) fn header_predicate(
        &self,
        key: &str,
        predicate: &super::file::FileHeaderPredicate,
    ) -> Result<HeaderPredicate, ConfigError> {
        let kind = match predicate.kind.to_ascii_lowercase().as_str() {
            "exact" => HeaderMatchKind::Exact,
            "regex" => HeaderMatchKind::Regex,
            "present" => HeaderMatchKind::Present,
            _ => {
                return Err(self.invalid(
                    format!("{key}.match"),
                    format!(
                        "{:?} is not a match kind: use \"exact\", \"regex\" or \"present\"",
                        predicate.kind
                    ),
                ));
            }
        };
        let name = &predicate.name;
        if !is_token(name) {
            return Err(self.invalid(
                format!("{key}.name"),
                format!("{name:?} is not a header name"),
            ));
        }
        if name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("cookie") {
            return Err(self.invalid(
                format!("{key}.name"),
                format!("{name} is not kept as a header: a predicate on it never matches"),
            ));
        }
        match (kind, &predicate.value) {
            (HeaderMatchKind::Present, Some(_)) => {
                return Err(self.invalid(
                    format!("{key}.value"),
                    "a \"present\" predicate takes no value",
                ));
            }
            (HeaderMatchKind::Exact | HeaderMatchKind::Regex, None) => {
                return Err(self.invalid(
                    format!("{key}.value"),
                    "an \"exact\" or \"regex\" predicate needs a value",
                ));
            }
            (HeaderMatchKind::Exact, Some(value)) if has_forbidden_controls(value) => {
                return Err(self.invalid(
                    format!("{key}.value"),
                    "a header value cannot hold control characters",
                ));
            }
            _ => {}
        }
        Ok(HeaderPredicate {
            name: name.clone(),
            kind: kind as i32,
            value: predicate.value.clone(),
        })
    }

    pub(super) fn tcp_frontend(
        &mut self,
        cluster_id: &str,
        key: &str,
        frontend: &FileFrontendConfig,
        backends: &[AddBackend],
        listeners: &mut Vec<ListenerConfig>,
        defaults: &Defaults,
    ) -> Result<FrontendConfig, ConfigError> {
        let address = frontend.address.0;
        let http_only = [
            ("path", frontend.path.is_some()),
            ("certificate", frontend.certificate.is_some()),
            ("certificate_chain", frontend.certificate_chain.is_some()),
            ("header_predicates", frontend.header_predicates.is_some()),
        ];
        if let Some((name, _)) = http_only.iter().find(|(_, present)| *present) {
            return Err(self.invalid(
                format!("{key}.{name}"),
                format!("{name} is for frontends of http clusters, not tcp ones"),
            ));
        }
        let sni = match &frontend.hostname {
            Some(hostname) => Some(
                normalize_sni(hostname)
                    .map_err(|reason| self.invalid(format!("{key}.hostname"), reason))?,
            ),
            None => None,
        };
        if sni.is_none() && !frontend.alpn.is_empty() {
            return Err(self.invalid(
                format!("{key}.alpn"),
                "alpn is matched only together with an SNI: set hostname too",
            ));
        }
        let tags = frontend.tags.clone().unwrap_or_default();
        match self.known_addresses.get(&address) {
            Some(protocol @ (ListenerProtocol::Http | ListenerProtocol::Https)) => {
                Err(self.invalid(
                    format!("{key}.address"),
                    format!("{address} is an {protocol} listener: a tcp cluster's frontend needs a tcp (or udp) listener"),
                ))
            }
            Some(ListenerProtocol::Udp) => {
                if backends.iter().any(|backend| backend.unix_path.is_some()) {
                    return Err(self.invalid(
                        format!("{key}.address"),
                        "a cluster with a frontend on a udp listener cannot have unix_path backends",
                    ));
                }
                Ok(FrontendConfig::Udp(RequestUdpFrontend {
                    cluster_id: cluster_id.to_owned(),
                    address: address.into(),
                    tags,
                }))
            }
            known => {
                if known.is_none() {
                    let implicit = FileListenerConfig::implicit(address, ListenerProtocol::Tcp);
                    listeners.push(self.listener(key, &implicit, defaults)?);
                    self.known_addresses.insert(address, ListenerProtocol::Tcp);
                }
                Ok(FrontendConfig::Tcp(RequestTcpFrontend {
                    cluster_id: cluster_id.to_owned(),
                    address: address.into(),
                    tags,
                    sni,
                    alpn: frontend.alpn.clone(),
                }))
            }
        }
    }

    /// SNI routing on a TCP listener must be unambiguous: no mix of SNI
    /// and SNI-less frontends on one address, one ALPN catch-all and no
    /// shared ALPN protocol per SNI; and the preread must fit the listener.
    pub(super) fn check_tcp_sni_routing(&self, config: &Config) -> Result<(), ConfigError> {
        type Route<'a> = (String, Option<&'a str>, &'a [String]);
        let mut by_address: BTreeMap<SocketAddr, Vec<Route<'_>>> = BTreeMap::new();
        for (id, cluster) in &config.clusters {
            for (index, frontend) in cluster.frontends.iter().enumerate() {
                if let FrontendConfig::Tcp(frontend) = frontend {
                    by_address
                        .entry(frontend.address.to_socket_addr())
                        .or_default()
                        .push((
                            format!("clusters.{id}.frontends[{index}]"),
                            frontend.sni.as_deref(),
                            &frontend.alpn,
                        ));
                }
            }
        }
        for (address, routes) in &by_address {
            if routes.iter().all(|(_, sni, _)| sni.is_none()) {
                continue;
            }
            if let Some((key, _, _)) = routes.iter().find(|(_, sni, _)| sni.is_none()) {
                return Err(self.invalid(
                    format!("{key}.hostname"),
                    format!(
                        "other frontends on {address} route by SNI: this one needs a hostname too"
                    ),
                ));
            }
            for (position, (key, sni, alpn)) in routes.iter().enumerate() {
                for (_, other_sni, other_alpn) in &routes[..position] {
                    if other_sni != sni {
                        continue;
                    }
                    if alpn.is_empty() && other_alpn.is_empty() {
                        return Err(self.invalid(
                            format!("{key}.alpn"),
                            format!(
                                "another frontend on {address} for {} already matches any ALPN",
                                sni.unwrap_or_default()
                            ),
                        ));
                    }
                    if let Some(shared) = alpn.iter().find(|protocol| other_alpn.contains(protocol))
                    {
                        return Err(self.invalid(
                            format!("{key}.alpn"),
                            format!(
                                "another frontend on {address} for {} already matches ALPN {shared:?}",
                                sni.unwrap_or_default()
                            ),
                        ));
                    }
                }
            }
            for (index, listener) in config.listeners.iter().enumerate() {
                let ListenerConfig::Tcp(tcp) = listener else {
                    continue;
                };
                if tcp.address.to_socket_addr() != *address {
                    continue;
                }
                let timeout = tcp
                    .sni_preread_timeout
                    .unwrap_or(DEFAULT_SNI_PREREAD_TIMEOUT);
                let max_bytes = tcp
                    .sni_preread_max_bytes
                    .unwrap_or(DEFAULT_SNI_PREREAD_MAX_BYTES);
                // A listener created for a frontend has default settings:
                // only the global buffer_size can be at fault.
                let declared = index < self.declared_listeners;
                let key = format!("listeners[{index}]");
                if timeout > tcp.front_timeout {
                    return Err(self.invalid(
                        format!("{key}.sni_preread_timeout"),
                        format!(
                            "{timeout} is above the listener's front_timeout ({})",
                            tcp.front_timeout
                        ),
                    ));
                }
                if max_bytes < MIN_SNI_PREREAD_MAX_BYTES
                    || u64::from(max_bytes) > config.buffer_size
                {
                    let key = if declared {
                        format!("{key}.sni_preread_max_bytes")
                    } else {
                        "buffer_size".to_owned()
                    };
                    return Err(self.invalid(
                        key,
                        format!(
                            "{max_bytes} must be within {MIN_SNI_PREREAD_MAX_BYTES} and buffer_size ({})",
                            config.buffer_size
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A frontend's path rule: every path when none is given, a prefix unless
/// `path_type` says otherwise.
fn path_rule(frontend: &FileFrontendConfig) -> PathRule {
    match (&frontend.path, frontend.path_type) {
        (None, _) => PathRule {
            kind: PathRuleKind::Prefix as i32,
            value: String::new(),
        },
        (Some(value), kind) => PathRule {
            kind: match kind {
                None | Some(PathType::Prefix) => PathRuleKind::Prefix,
                Some(PathType::Regex) => PathRuleKind::Regex,
                Some(PathType::Equals) => PathRuleKind::Equals,
            } as i32,
            value: value.clone(),
        },
    }
}

/// Without its own certificate, a frontend on an HTTPS listener brings the
/// listener's, as in Sozu.
fn https_listener_certificate(
    listeners: &[ListenerConfig],
    address: SocketAddr,
) -> Option<FrontendCertificate> {
    listeners.iter().find_map(|listener| match listener {
        ListenerConfig::Https(https)
            if https.address.to_socket_addr() == address && https.certificate.is_some() =>
        {
            listener_certificate(https)
        }
        _ => None,
    })
}
