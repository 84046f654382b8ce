//! What this data plane enforces, and the refusal of everything else.
//!
//! A request is only acknowledged when the proxy will act on it. Whatever it
//! cannot enforce (a feature of the protocol not built here, or a field set
//! to something other than its default) is refused with a message naming the
//! feature or field. The daemon runs the same check before changing its own
//! state, so the main process and the workers never disagree.

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
            check_h2_fields_absent(update.h2_max_concurrent_streams.is_some())
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
            check_h2_fields_absent(update.h2_max_concurrent_streams.is_some())
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

fn check_h2_fields_absent(any_set: bool) -> Result<(), Unsupported> {
    if any_set {
        return refuse("HTTP/2 tuning on HTTP listeners");
    }
    Ok(())
}

fn check_http_listener(listener: &HttpListenerConfig) -> Result<(), Unsupported> {
    refuse_if_set!(listener.interface, "add_http_listener");
    let h2_tuning = [
        listener.h2_max_rst_stream_per_window,
        listener.h2_max_ping_per_window,
        listener.h2_max_settings_per_window,
        listener.h2_max_empty_data_per_window,
        listener.h2_max_continuation_frames,
        listener.h2_max_glitch_count,
        listener.h2_initial_connection_window,
        listener.h2_max_concurrent_streams,
        listener.h2_stream_shrink_ratio,
        listener.h2_max_header_list_size,
        listener.h2_stream_idle_timeout_seconds,
        listener.h2_max_header_table_size,
        listener.h2_graceful_shutdown_deadline_seconds,
        listener.h2_max_window_update_stream0_per_window,
        listener.h2_max_header_fields,
        listener.h2_stream_refusal_percent,
    ];
    let h2_lifetimes = [
        listener.h2_max_rst_stream_lifetime,
        listener.h2_max_rst_stream_abusive_lifetime,
        listener.h2_max_rst_stream_emitted_lifetime,
    ];
    check_h2_fields_absent(
        h2_tuning.iter().any(Option::is_some) || h2_lifetimes.iter().any(Option::is_some),
    )
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
    let h2_tuning = [
        listener.h2_max_rst_stream_per_window,
        listener.h2_max_ping_per_window,
        listener.h2_max_settings_per_window,
        listener.h2_max_empty_data_per_window,
        listener.h2_max_continuation_frames,
        listener.h2_max_glitch_count,
        listener.h2_initial_connection_window,
        listener.h2_max_concurrent_streams,
        listener.h2_stream_shrink_ratio,
        listener.h2_max_header_list_size,
        listener.h2_stream_idle_timeout_seconds,
        listener.h2_max_header_table_size,
        listener.h2_graceful_shutdown_deadline_seconds,
        listener.h2_max_window_update_stream0_per_window,
        listener.h2_max_header_fields,
        listener.h2_stream_refusal_percent,
    ];
    let h2_lifetimes = [
        listener.h2_max_rst_stream_lifetime,
        listener.h2_max_rst_stream_abusive_lifetime,
        listener.h2_max_rst_stream_emitted_lifetime,
    ];
    check_h2_fields_absent(
        h2_tuning.iter().any(Option::is_some) || h2_lifetimes.iter().any(Option::is_some),
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
    if cluster.http2 == Some(true) {
        return refuse("cluster field 'http2' (HTTP/2 to backends is not built yet)");
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
