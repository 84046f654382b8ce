//! What this data plane enforces, and the refusal of everything else.
//!
//! A request is only acknowledged when the proxy will act on it. Whatever it
//! cannot enforce (a feature of the protocol not built here, or a field set
//! to something other than its default) is refused with a message naming the
//! feature or field. The daemon runs the same check before changing its own
//! state, so the main process and the workers never disagree.

use sozu_command::h2_settings::{H2Fields, H2Setting};
use sozu_command::proto::command::{
    Cluster, HttpListenerConfig, LoadBalancingAlgorithms, ProxyProtocolConfig, Request,
    RequestHttpFrontend, RequestTcpFrontend, request::RequestType,
};

/// Why a request cannot be enforced.
pub type Unsupported = String;

fn refuse(what: impl std::fmt::Display) -> Result<(), Unsupported> {
    Err(format!("{what} is not supported by this proxy"))
}

/// Refuses a field that holds something other than its default.
macro_rules! refuse_if_set {
    ($message:ident . $field:ident, $context:literal) => {
        if $message.$field.is_some() {
            return refuse(format_args!("{} field '{}'", $context, stringify!($field)));
        }
    };
}

/// Every HTTP/2 setting of a listener message (the one list,
/// [`H2Setting::ALL`]), by name, and whether it is set.
fn h2_settings(message: &impl H2Fields) -> Vec<(&'static str, bool)> {
    H2Setting::ALL
        .iter()
        .map(|&setting| (setting.name(), message.h2(setting).is_some()))
        .collect()
}

/// Checks that the proxy can enforce `request`.
pub fn check(request: &Request) -> Result<(), Unsupported> {
    let Some(request_type) = &request.request_type else {
        return Ok(());
    };
    match request_type {
        RequestType::AddHttpListener(listener) => check_http_listener(listener),
        RequestType::AddHttpsListener(listener) => check_https_listener(listener),
        RequestType::UpdateHttpsListener(update) => {
            refuse_if_set!(update.public_address, "update_https_listener");
            refuse_if_set!(update.hsts, "update_https_listener");
            if update.client_auth_policy.is_some() {
                return refuse("mutual TLS (client certificates)");
            }
            check_unenforced_h2(&h2_settings(update), "update_https_listener")?;
            check_h2_limits(
                update.h2_max_concurrent_streams,
                update.h2_max_header_list_size,
            )
        }
        RequestType::AddTcpListener(listener) => {
            // The SNI preread settings only matter to SNI routing, which
            // `check_tcp_frontend` refuses: they are accepted and unused.
            refuse_if_set!(listener.interface, "add_tcp_listener");
            Ok(())
        }
        RequestType::AddTcpFrontend(frontend) => check_tcp_frontend(frontend),
        RequestType::UpdateHttpListener(update) => {
            refuse_if_set!(update.public_address, "update_http_listener");
            check_http_listener_h2(&h2_settings(update), "update_http_listener")
        }
        RequestType::AddCluster(cluster) => check_cluster(cluster),
        RequestType::AddHttpFrontend(frontend) | RequestType::AddHttpsFrontend(frontend) => {
            check_frontend(frontend)
        }
        RequestType::AddBackend(backend) => {
            refuse_if_set!(backend.unix_path, "add_backend");
            Ok(())
        }
        RequestType::SetHealthCheck(set) => check_health_check(&set.config),
        RequestType::ActivateListener(activate) => {
            refuse_if_set!(activate.interface, "activate_listener");
            Ok(())
        }
        RequestType::AddUdpListener(_)
        | RequestType::UpdateUdpListener(_)
        | RequestType::AddUdpFrontend(_)
        | RequestType::RemoveUdpFrontend(_) => refuse("UDP proxying"),
        RequestType::SetMaxConnectionsPerSubnet(_)
        | RequestType::QueryMaxConnectionsPerSubnet(_) => refuse("per-subnet connection limits"),
        RequestType::AddHttpsListenerWithClientAuth(_)
        | RequestType::UpdateHttpsListenerWithClientAuth(_) => {
            refuse("mutual TLS (client certificates)")
        }
        RequestType::AddHttpFrontendWithHeaderPredicates(_)
        | RequestType::RemoveHttpFrontendWithHeaderPredicates(_)
        | RequestType::AddHttpsFrontendWithHeaderPredicates(_)
        | RequestType::RemoveHttpsFrontendWithHeaderPredicates(_) => {
            refuse("routing on header predicates")
        }
        RequestType::AddHttpFrontendWithSilentClose(_)
        | RequestType::AddHttpsFrontendWithSilentClose(_) => refuse("silent-close frontends"),
        RequestType::AddUnixBackend(_) => refuse("unix-socket backends"),
        RequestType::SetProtectedHealthCheck(_)
        | RequestType::QueryProtectedHealthCheckSupport(_)
        | RequestType::ProtectedHealthCheckOrder(_) => refuse("protected health checks"),
        _ => Ok(()),
    }
}

/// The HTTP/2 settings HTTPS listeners enforce (through hyper's server).
const ENFORCED_H2_SETTINGS: [H2Setting; 2] = [
    H2Setting::MaxConcurrentStreams,
    H2Setting::MaxHeaderListSize,
];

/// Refuses, by name, the HTTP/2 settings an HTTPS listener cannot enforce.
fn check_unenforced_h2(settings: &[(&str, bool)], context: &str) -> Result<(), Unsupported> {
    match settings.iter().find(|(name, set)| {
        *set && !ENFORCED_H2_SETTINGS
            .iter()
            .any(|enforced| enforced.name() == *name)
    }) {
        Some((name, _)) => refuse(format_args!("{context} field '{name}'")),
        None => Ok(()),
    }
}

/// HTTP listeners speak HTTP/1.1 only: every HTTP/2 setting is refused.
fn check_http_listener_h2(settings: &[(&str, bool)], context: &str) -> Result<(), Unsupported> {
    match settings.iter().find(|(_, set)| *set) {
        Some((name, _)) => refuse(format_args!(
            "{context} field '{name}' (HTTP listeners speak HTTP/1.1 only)"
        )),
        None => Ok(()),
    }
}

/// The enforced HTTP/2 limits must leave room for a request.
fn check_h2_limits(
    max_concurrent_streams: Option<u32>,
    max_header_list_size: Option<u32>,
) -> Result<(), Unsupported> {
    if max_concurrent_streams == Some(0) {
        return Err("h2_max_concurrent_streams must be at least 1".into());
    }
    if max_header_list_size == Some(0) {
        return Err("h2_max_header_list_size must be at least 1".into());
    }
    Ok(())
}

fn check_http_listener(listener: &HttpListenerConfig) -> Result<(), Unsupported> {
    refuse_if_set!(listener.interface, "add_http_listener");
    check_http_listener_h2(&h2_settings(listener), "add_http_listener")
}

fn check_https_listener(
    listener: &sozu_command::proto::command::HttpsListenerConfig,
) -> Result<(), Unsupported> {
    refuse_if_set!(listener.interface, "add_https_listener");
    refuse_if_set!(listener.hsts, "add_https_listener");
    if listener.client_auth.is_some_and(|mode| mode != 0)
        || !listener.client_ca_certificates.is_empty()
    {
        return refuse("mutual TLS (client certificates)");
    }
    check_unenforced_h2(&h2_settings(listener), "add_https_listener")?;
    check_h2_limits(
        listener.h2_max_concurrent_streams,
        listener.h2_max_header_list_size,
    )?;
    // Versions, ciphers, groups and ALPN are checked against what rustls
    // offers, with the names that are missing.
    crate::tls::check_listener(listener)
}

fn check_cluster(cluster: &Cluster) -> Result<(), Unsupported> {
    match LoadBalancingAlgorithms::try_from(cluster.load_balancing) {
        Ok(LoadBalancingAlgorithms::Hrw) => return refuse("load balancing policy HRW"),
        Ok(LoadBalancingAlgorithms::Maglev) => return refuse("load balancing policy MAGLEV"),
        _ => {}
    }
    refuse_if_set!(cluster.udp, "cluster");
    refuse_if_set!(cluster.max_connections_per_subnet, "cluster");
    refuse_if_set!(cluster.affinity_header, "cluster");
    refuse_if_set!(cluster.affinity_cookie, "cluster");
    refuse_if_set!(cluster.shard_percent, "cluster");
    refuse_if_set!(cluster.shard_min_backends, "cluster");
    refuse_if_set!(cluster.shard_mode, "cluster");
    if let Some(value) = cluster.proxy_protocol
        && ProxyProtocolConfig::try_from(value).is_err()
    {
        return refuse(format_args!("cluster field 'proxy_protocol' value {value}"));
    }
    if let Some(health_check) = &cluster.health_check {
        check_health_check(health_check)?;
    }
    Ok(())
}

fn check_health_check(
    config: &sozu_command::proto::command::HealthCheckConfig,
) -> Result<(), Unsupported> {
    if !config.headers.is_empty() {
        return refuse("health check field 'headers' (protected health check headers)");
    }
    if sozu_command::proto::command::HealthCheckMode::try_from(config.mode).is_err() {
        return Err(format!("health check mode {} is unknown", config.mode));
    }
    Ok(())
}

fn check_tcp_frontend(frontend: &RequestTcpFrontend) -> Result<(), Unsupported> {
    refuse_if_set!(frontend.sni, "tcp frontend");
    if !frontend.alpn.is_empty() {
        return refuse("tcp frontend field 'alpn'");
    }
    Ok(())
}

fn check_frontend(frontend: &RequestHttpFrontend) -> Result<(), Unsupported> {
    if !frontend.header_predicates.is_empty() {
        return refuse("frontend field 'header_predicates'");
    }
    refuse_if_set!(frontend.hsts, "frontend");
    // Captures of the matched host or path in rewrites are not substituted
    // yet: refuse them rather than send the template literally.
    for (field, value) in [
        ("rewrite_host", &frontend.rewrite_host),
        ("rewrite_path", &frontend.rewrite_path),
    ] {
        if let Some(value) = value
            && (value.contains("$HOST[") || value.contains("$PATH["))
        {
            return refuse(format_args!(
                "frontend field '{field}' with captures ($HOST[n], $PATH[n])"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sozu_command::proto::command::{Cluster, UdpListenerConfig};

    #[test]
    fn refusals_name_the_feature_or_field() {
        let udp: Request = RequestType::AddUdpListener(UdpListenerConfig::default()).into();
        assert!(check(&udp).unwrap_err().contains("UDP"));
        let cluster: Request = RequestType::AddCluster(Cluster {
            affinity_cookie: Some("x".into()),
            ..Default::default()
        })
        .into();
        assert!(check(&cluster).unwrap_err().contains("'affinity_cookie'"));
        let maglev: Request = RequestType::AddCluster(Cluster {
            load_balancing: LoadBalancingAlgorithms::Maglev as i32,
            ..Default::default()
        })
        .into();
        assert!(check(&maglev).unwrap_err().contains("MAGLEV"));
        let plain: Request = RequestType::AddCluster(Cluster::default()).into();
        assert!(check(&plain).is_ok());
        let captures: Request = RequestType::AddHttpFrontend(RequestHttpFrontend {
            rewrite_host: Some("$HOST[1].example.com".into()),
            ..Default::default()
        })
        .into();
        assert!(check(&captures).unwrap_err().contains("'rewrite_host'"));
        let sends: Request = RequestType::AddCluster(Cluster {
            proxy_protocol: Some(ProxyProtocolConfig::SendHeader as i32),
            ..Default::default()
        })
        .into();
        assert!(check(&sends).is_ok());
        let unknown: Request = RequestType::AddCluster(Cluster {
            proxy_protocol: Some(9),
            ..Default::default()
        })
        .into();
        assert!(check(&unknown).unwrap_err().contains("'proxy_protocol'"));
    }

    #[test]
    fn http2_settings_are_refused_by_name_unless_enforced() {
        use sozu_command::proto::command::{
            HttpsListenerConfig, UpdateHttpListenerConfig, UpdateHttpsListenerConfig,
        };
        let https = |configure: fn(&mut HttpsListenerConfig)| {
            let mut listener = HttpsListenerConfig::default();
            configure(&mut listener);
            check(&RequestType::AddHttpsListener(listener).into())
        };
        assert!(
            https(|l| {
                l.h2_max_concurrent_streams = Some(50);
                l.h2_max_header_list_size = Some(8192);
            })
            .is_ok()
        );
        let refused = https(|l| l.h2_max_ping_per_window = Some(5)).unwrap_err();
        assert!(refused.contains("'h2_max_ping_per_window'"), "{refused}");
        let refused = https(|l| l.h2_max_rst_stream_lifetime = Some(5)).unwrap_err();
        assert!(
            refused.contains("'h2_max_rst_stream_lifetime'"),
            "{refused}"
        );
        assert!(https(|l| l.h2_max_concurrent_streams = Some(0)).is_err());

        let update: Request = RequestType::UpdateHttpsListener(UpdateHttpsListenerConfig {
            h2_max_header_list_size: Some(4096),
            ..Default::default()
        })
        .into();
        assert!(check(&update).is_ok());
        let update: Request = RequestType::UpdateHttpsListener(UpdateHttpsListenerConfig {
            h2_max_glitch_count: Some(4),
            ..Default::default()
        })
        .into();
        assert!(
            check(&update)
                .unwrap_err()
                .contains("'h2_max_glitch_count'")
        );

        // HTTP listeners speak HTTP/1.1 only.
        let http: Request = RequestType::AddHttpListener(HttpListenerConfig {
            h2_max_concurrent_streams: Some(10),
            ..Default::default()
        })
        .into();
        assert!(
            check(&http)
                .unwrap_err()
                .contains("'h2_max_concurrent_streams'")
        );
        let update: Request = RequestType::UpdateHttpListener(UpdateHttpListenerConfig {
            h2_max_header_fields: Some(10),
            ..Default::default()
        })
        .into();
        assert!(
            check(&update)
                .unwrap_err()
                .contains("'h2_max_header_fields'")
        );

        // HTTP/2 to backends is built.
        let cluster: Request = RequestType::AddCluster(Cluster {
            http2: Some(true),
            ..Default::default()
        })
        .into();
        assert!(check(&cluster).is_ok());
    }

    #[test]
    fn tcp_frontends_are_refused_only_for_sni_routing() {
        let plain: Request = RequestType::AddTcpFrontend(RequestTcpFrontend::default()).into();
        assert!(check(&plain).is_ok());
        let sni: Request = RequestType::AddTcpFrontend(RequestTcpFrontend {
            sni: Some("example.com".into()),
            ..Default::default()
        })
        .into();
        assert!(check(&sni).unwrap_err().contains("'sni'"));
        let alpn: Request = RequestType::AddTcpFrontend(RequestTcpFrontend {
            alpn: vec!["h2".into()],
            ..Default::default()
        })
        .into();
        assert!(check(&alpn).unwrap_err().contains("'alpn'"));
        let listener: Request =
            RequestType::AddTcpListener(sozu_command::proto::command::TcpListenerConfig {
                interface: Some("eth0".into()),
                ..Default::default()
            })
            .into();
        assert!(check(&listener).unwrap_err().contains("'interface'"));
    }
}
