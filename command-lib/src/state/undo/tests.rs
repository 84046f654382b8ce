use super::*;
use crate::proto::command::{
    AddBackend, CertificateAndKey, Cluster, HealthCheckConfig, PathRule, RequestHttpFrontend,
    RequestTcpFrontend,
};

fn address(port: u16) -> SocketAddress {
    SocketAddress::from(SocketAddr::from(([127, 0, 0, 1], port)))
}

fn self_signed(name: &str) -> CertificateAndKey {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    let certificate = params.self_signed(&key).unwrap();
    CertificateAndKey {
        certificate: certificate.pem(),
        key: key.serialize_pem(),
        ..Default::default()
    }
}

fn http_listener(port: u16) -> HttpListenerConfig {
    HttpListenerConfig {
        address: address(port),
        front_timeout: 60,
        ..Default::default()
    }
}

fn frontend(port: u16, host: &str, cluster: &str) -> RequestHttpFrontend {
    RequestHttpFrontend {
        cluster_id: Some(cluster.to_owned()),
        address: address(port),
        hostname: host.to_owned(),
        path: PathRule::default(),
        ..Default::default()
    }
}

fn backend(cluster: &str, id: &str, port: u16) -> AddBackend {
    AddBackend {
        cluster_id: cluster.to_owned(),
        backend_id: id.to_owned(),
        address: address(port),
        ..Default::default()
    }
}

fn populated() -> (ConfigState, CertificateAndKey) {
    let mut state = ConfigState::new();
    let certificate = self_signed("secure.test");
    let health = HealthCheckConfig {
        uri: "/health".to_owned(),
        interval: 5,
        timeout: 2,
        ..Default::default()
    };
    let setup: Vec<RequestType> = vec![
        RequestType::AddHttpListener(HttpListenerConfig {
            active: true,
            ..http_listener(8080)
        }),
        RequestType::AddHttpsListener(HttpsListenerConfig {
            address: address(8443),
            ..Default::default()
        }),
        RequestType::AddTcpListener(TcpListenerConfig {
            address: address(5000),
            ..Default::default()
        }),
        RequestType::AddCluster(Cluster {
            cluster_id: "app".to_owned(),
            ..Default::default()
        }),
        RequestType::AddCluster(Cluster {
            cluster_id: "db".to_owned(),
            ..Default::default()
        }),
        RequestType::SetHealthCheck(SetHealthCheck {
            cluster_id: "db".to_owned(),
            config: health,
        }),
        RequestType::AddHttpFrontend(frontend(8080, "app.test", "app")),
        RequestType::AddHttpsFrontend(frontend(8443, "secure.test", "app")),
        RequestType::AddTcpFrontend(RequestTcpFrontend {
            cluster_id: "db".to_owned(),
            address: address(5000),
            ..Default::default()
        }),
        RequestType::AddBackend(backend("app", "b1", 9001)),
        RequestType::AddBackend(backend("db", "d1", 9002)),
        RequestType::AddCertificate(AddCertificate {
            address: address(8443),
            certificate: certificate.clone(),
            expired_at: None,
        }),
    ];
    for change in setup {
        state.dispatch(&change.into()).unwrap();
    }
    (state, certificate)
}

/// Every kind of change, applied then taken back, leaves the state
/// exactly as it was.
#[test]
fn every_kind_of_change_is_taken_back_exactly() {
    let (state, certificate) = populated();
    let fingerprint = certificate::parse_certificate_and_key(&certificate)
        .unwrap()
        .fingerprint
        .to_string();
    let other = self_signed("other.test");
    let changes: Vec<RequestType> = vec![
        RequestType::AddHttpListener(http_listener(8081)),
        RequestType::UpdateHttpListener(UpdateHttpListenerConfig {
            address: address(8080),
            front_timeout: Some(5),
            sozu_id_header: Some("X-Id".to_owned()),
            ..Default::default()
        }),
        RequestType::UpdateHttpsListener(UpdateHttpsListenerConfig {
            address: address(8443),
            back_timeout: Some(7),
            ..Default::default()
        }),
        RequestType::UpdateTcpListener(UpdateTcpListenerConfig {
            address: address(5000),
            connect_timeout: Some(9),
            ..Default::default()
        }),
        RequestType::DeactivateListener(DeactivateListener {
            address: address(8080),
            proxy: ListenerType::Http as i32,
            to_scm: false,
            interface: None,
        }),
        RequestType::ActivateListener(ActivateListener {
            address: address(5000),
            proxy: ListenerType::Tcp as i32,
            from_scm: false,
            interface: None,
        }),
        RequestType::AddCluster(crate::proto::command::Cluster {
            cluster_id: "new".to_owned(),
            ..Default::default()
        }),
        RequestType::AddCluster(crate::proto::command::Cluster {
            cluster_id: "app".to_owned(),
            sticky_session: true,
            ..Default::default()
        }),
        RequestType::RemoveCluster("app".to_owned()),
        RequestType::RemoveCluster("db".to_owned()),
        RequestType::AddHttpFrontend(frontend(8080, "more.test", "app")),
        RequestType::RemoveHttpFrontend(frontend(8080, "app.test", "app")),
        RequestType::RemoveHttpsFrontend(frontend(8443, "secure.test", "app")),
        RequestType::RemoveTcpFrontend(RequestTcpFrontend {
            cluster_id: "db".to_owned(),
            address: address(5000),
            ..Default::default()
        }),
        RequestType::AddBackend(backend("app", "b2", 9003)),
        RequestType::AddBackend(AddBackend {
            sticky_id: Some("s".to_owned()),
            ..backend("app", "b1", 9001)
        }),
        RequestType::RemoveBackend(RemoveBackend {
            cluster_id: "app".to_owned(),
            backend_id: "b1".to_owned(),
            address: address(9001),
        }),
        RequestType::AddCertificate(AddCertificate {
            address: address(8443),
            certificate: other.clone(),
            expired_at: None,
        }),
        RequestType::ReplaceCertificate(ReplaceCertificate {
            address: address(8443),
            new_certificate: other,
            old_fingerprint: fingerprint.clone(),
            new_expired_at: None,
        }),
        RequestType::RemoveCertificate(RemoveCertificate {
            address: address(8443),
            fingerprint,
        }),
        RequestType::SetHealthCheck(SetHealthCheck {
            cluster_id: "app".to_owned(),
            config: HealthCheckConfig {
                uri: "/up".to_owned(),
                interval: 1,
                timeout: 1,
                ..Default::default()
            },
        }),
        RequestType::RemoveHealthCheck("db".to_owned()),
    ];
    for change in changes {
        let change: Request = change.into();
        let mut changed = state.clone();
        let undo = changed.undo_of(&change);
        changed
            .dispatch(&change)
            .unwrap_or_else(|error| panic!("{}: {error}", change.kind_name()));
        assert_ne!(changed, state, "{} changed nothing", change.kind_name());
        let errors = changed.undo(&undo);
        assert!(errors.is_empty(), "{}: {errors:?}", change.kind_name());
        assert_eq!(changed, state, "{} was not taken back", change.kind_name());
    }
}

/// A worker takes a listener update back by replaying the undo's requests
/// (it cannot restore a snapshot): the settings it reads come back.
#[test]
fn a_worker_replaying_a_listener_update_undo_gets_its_settings_back() {
    let mut state = ConfigState::new();
    let https = HttpsListenerConfig {
        address: address(9443),
        h2_max_concurrent_streams: Some(50),
        ..Default::default()
    };
    state
        .dispatch(&request(RequestType::AddHttpsListener(https.clone())))
        .unwrap();
    let update = request(RequestType::UpdateHttpsListener(
        UpdateHttpsListenerConfig {
            address: address(9443),
            h2_max_concurrent_streams: Some(80),
            elide_x_real_ip: Some(true),
            send_x_real_ip: Some(true),
            forwarded_headers: Some(2),
            ..Default::default()
        },
    ));
    let undo = state.undo_of(&update);
    let mut worker = state.clone();
    worker.dispatch(&update).unwrap();
    for reverse in &undo.requests {
        worker.dispatch(reverse).unwrap();
    }
    let back = &worker.https_listeners[&address(9443).to_socket_addr()];
    assert_eq!(back.h2_max_concurrent_streams, Some(50));
    assert!(!back.elide_x_real_ip.unwrap_or(false));
    assert!(!back.send_x_real_ip.unwrap_or(false));
    assert_eq!(back.forwarded_headers.unwrap_or(0), 0);
}

#[test]
fn records_for_what_exists_are_compared() {
    let (state, _) = populated();
    let same = RequestType::AddHttpListener(http_listener(8080)).into();
    assert_eq!(state.existing(&same), Some(Ok(())));
    let other = RequestType::AddHttpListener(HttpListenerConfig {
        front_timeout: 61,
        ..http_listener(8080)
    })
    .into();
    let difference = state.existing(&other).unwrap().unwrap_err();
    assert!(
        difference.contains("front_timeout is 60 here, 61 in the record"),
        "{difference}"
    );
    let moved = RequestType::AddHttpFrontend(frontend(8080, "app.test", "db")).into();
    let difference = state.existing(&moved).unwrap().unwrap_err();
    assert!(difference.contains("cluster_id"), "{difference}");
    let kind = RequestType::AddTcpListener(TcpListenerConfig {
        address: address(8080),
        ..Default::default()
    })
    .into();
    assert!(
        state
            .existing(&kind)
            .unwrap()
            .unwrap_err()
            .contains("HTTP listener")
    );
    let new = RequestType::AddHttpFrontend(frontend(8080, "new.test", "app")).into();
    assert_eq!(state.existing(&new), None);
}
