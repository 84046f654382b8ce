//! Refused requests: each names what was wrong and leaves the state as it was.

use std::net::SocketAddr;

use sozu_command::proto::command::{
    AddBackend, AddCertificate, CertificateAndKey, Cluster, HttpListenerConfig,
    HttpsListenerConfig, ListenerType, PathRule, RemoveBackend, RemoveCertificate, RemoveListener,
    Request, RequestHttpFrontend, RequestTcpFrontend, SocketAddress, TcpListenerConfig,
    request::RequestType,
};
use sozu_command::state::ConfigState;

fn address(port: u16) -> SocketAddress {
    SocketAddr::from(([127, 0, 0, 1], port)).into()
}

fn http_listener(port: u16) -> Request {
    RequestType::AddHttpListener(HttpListenerConfig {
        address: address(port),
        ..Default::default()
    })
    .into()
}

fn cluster(id: &str) -> Request {
    RequestType::AddCluster(Cluster {
        cluster_id: id.into(),
        ..Default::default()
    })
    .into()
}

fn frontend(port: u16, cluster: &str) -> RequestHttpFrontend {
    RequestHttpFrontend {
        cluster_id: Some(cluster.into()),
        address: address(port),
        hostname: "example.com".into(),
        path: PathRule::default(),
        ..Default::default()
    }
}

fn base() -> ConfigState {
    let mut state = ConfigState::new();
    for request in [http_listener(8080), cluster("app")] {
        state.dispatch(&request).unwrap();
    }
    state
        .dispatch(&RequestType::AddHttpFrontend(frontend(8080, "app")).into())
        .unwrap();
    state
}

/// Dispatches `request` into the base state, expects a refusal whose message
/// contains every `words`, and checks nothing changed.
fn refused(request: Request, words: &[&str]) {
    let mut state = base();
    let before = state.clone();
    let error = state.dispatch(&request).unwrap_err().to_string();
    for word in words {
        assert!(error.contains(word), "'{error}' does not mention '{word}'");
    }
    assert_eq!(state, before, "a refused request changed the state");
}

#[test]
fn a_backend_for_an_unknown_cluster_is_refused() {
    refused(
        RequestType::AddBackend(AddBackend {
            cluster_id: "nosuchcluster".into(),
            backend_id: "b1".into(),
            address: address(9999),
            ..Default::default()
        })
        .into(),
        &["nosuchcluster", "does not exist"],
    );
}

#[test]
fn a_frontend_on_an_unknown_listener_is_refused() {
    refused(
        RequestType::AddHttpFrontend(frontend(9090, "app")).into(),
        &["no HTTP listener", "127.0.0.1:9090"],
    );
    // An HTTP listener does not take HTTPS frontends.
    refused(
        RequestType::AddHttpsFrontend(frontend(8080, "app")).into(),
        &["no HTTPS listener", "127.0.0.1:8080"],
    );
}

#[test]
fn a_frontend_for_an_unknown_cluster_is_refused() {
    refused(
        RequestType::AddHttpFrontend(RequestHttpFrontend {
            hostname: "other.com".into(),
            ..frontend(8080, "ghost")
        })
        .into(),
        &["ghost", "does not exist"],
    );
}

#[test]
fn a_duplicate_frontend_is_refused() {
    refused(
        RequestType::AddHttpFrontend(frontend(8080, "app")).into(),
        &["already exists", "example.com"],
    );
}

#[test]
fn a_duplicate_listener_address_is_refused_whatever_its_kind() {
    refused(http_listener(8080), &["already exists on 127.0.0.1:8080"]);
    refused(
        RequestType::AddTcpListener(TcpListenerConfig {
            address: address(8080),
            ..Default::default()
        })
        .into(),
        &["HTTP listener already exists on 127.0.0.1:8080"],
    );
}

#[test]
fn a_listener_in_use_cannot_be_removed() {
    refused(
        RequestType::RemoveListener(RemoveListener {
            address: address(8080),
            proxy: ListenerType::Http as i32,
            interface: None,
        })
        .into(),
        &["1 frontend(s)", "remove them first"],
    );
}

#[test]
fn removing_what_does_not_exist_is_refused() {
    refused(
        RequestType::RemoveCluster("ghost".into()).into(),
        &["ghost"],
    );
    refused(
        RequestType::RemoveBackend(RemoveBackend {
            cluster_id: "app".into(),
            backend_id: "b9".into(),
            address: address(9000),
        })
        .into(),
        &["no backend 'b9'", "127.0.0.1:9000", "'app'"],
    );
    refused(
        RequestType::RemoveCertificate(RemoveCertificate {
            address: address(8443),
            fingerprint: "ab".into(),
        })
        .into(),
        &["fingerprint ab", "127.0.0.1:8443"],
    );
    refused(
        RequestType::RemoveTcpFrontend(RequestTcpFrontend {
            cluster_id: "app".into(),
            address: address(7000),
            ..Default::default()
        })
        .into(),
        &["no tcp frontend"],
    );
}

#[test]
fn bad_addresses_and_enums_are_named() {
    let mut bad = address(80);
    bad.port = 70_000;
    refused(
        RequestType::AddHttpListener(HttpListenerConfig {
            address: bad,
            ..Default::default()
        })
        .into(),
        &["invalid address", "70000"],
    );
    refused(
        RequestType::AddCluster(Cluster {
            cluster_id: "x".into(),
            load_balancing: 42,
            ..Default::default()
        })
        .into(),
        &["load_balancing", "42"],
    );
    refused(Request::default(), &["empty"]);
    refused(
        RequestType::Status(Default::default()).into(),
        &["STATUS does not change the configuration state"],
    );
}

#[test]
fn certificates_need_an_https_listener_and_valid_material() {
    let certificate = CertificateAndKey {
        certificate: include_str!("data/secure-cert.pem").into(),
        key: include_str!("data/secure-key.pem").into(),
        ..Default::default()
    };
    refused(
        RequestType::AddCertificate(AddCertificate {
            address: address(8080),
            certificate: certificate.clone(),
            expired_at: None,
        })
        .into(),
        &["no HTTPS listener on 127.0.0.1:8080"],
    );

    let mut state = base();
    state
        .dispatch(
            &RequestType::AddHttpsListener(HttpsListenerConfig {
                address: address(8443),
                ..Default::default()
            })
            .into(),
        )
        .unwrap();
    let before = state.clone();
    let garbage = CertificateAndKey {
        certificate: "not a certificate".into(),
        ..certificate.clone()
    };
    let error = state
        .dispatch(
            &RequestType::AddCertificate(AddCertificate {
                address: address(8443),
                certificate: garbage,
                expired_at: None,
            })
            .into(),
        )
        .unwrap_err();
    assert!(error.to_string().contains("certificate refused"), "{error}");
    assert_eq!(state, before);

    let add: Request = RequestType::AddCertificate(AddCertificate {
        address: address(8443),
        certificate,
        expired_at: None,
    })
    .into();
    state.dispatch(&add).unwrap();
    // The same certificate again changes nothing and is not an error.
    let after_first = state.clone();
    state.dispatch(&add).unwrap();
    assert_eq!(state, after_first);
}

#[test]
fn removing_a_cluster_takes_its_frontends_and_backends() {
    let mut state = base();
    state
        .dispatch(
            &RequestType::AddBackend(AddBackend {
                cluster_id: "app".into(),
                backend_id: "b1".into(),
                address: address(9000),
                ..Default::default()
            })
            .into(),
        )
        .unwrap();
    state
        .dispatch(&RequestType::RemoveCluster("app".into()).into())
        .unwrap();
    assert!(state.http_frontends.is_empty());
    assert!(state.backends.is_empty());
    assert_eq!(state.http_listeners.len(), 1);
}

#[test]
fn a_certificate_whose_key_does_not_match_is_refused() {
    let mut state = base();
    state
        .dispatch(
            &RequestType::AddHttpsListener(HttpsListenerConfig {
                address: address(8443),
                ..Default::default()
            })
            .into(),
        )
        .unwrap();
    let before = state.clone();
    let mismatched = CertificateAndKey {
        certificate: include_str!("data/secure-cert.pem").into(),
        key: include_str!("data/other-key.pem").into(),
        ..Default::default()
    };
    let error = state
        .dispatch(
            &RequestType::AddCertificate(AddCertificate {
                address: address(8443),
                certificate: mismatched,
                expired_at: None,
            })
            .into(),
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("certificate refused"), "{error}");
    assert!(error.to_lowercase().contains("match"), "{error}");
    assert_eq!(state, before);
}
