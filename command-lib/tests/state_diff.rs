//! `diff(a, b)` applied to `a` yields `b`, for generated states.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use proptest::prelude::*;
use sozu_command::proto::command::{
    ActivateListener, AddBackend, AddCertificate, CertificateAndKey, Cluster, DeactivateListener,
    HealthCheckConfig, HttpListenerConfig, HttpsListenerConfig, ListenerType, LoadBalancingParams,
    PathRule, Request, RequestHttpFrontend, RequestTcpFrontend, SetHealthCheck, TcpListenerConfig,
    request::RequestType,
};
use sozu_command::state::{ConfigState, diff::diff};

const CERTIFICATES: [(&str, &str); 2] = [
    (
        include_str!("data/secure-cert.pem"),
        include_str!("data/secure-key.pem"),
    ),
    (
        include_str!("data/other-cert.pem"),
        include_str!("data/other-key.pem"),
    ),
];

fn address(port_index: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8000 + u16::from(port_index)))
}

/// One step towards a random state; many of them are refused by the state
/// (unknown cluster, duplicate…), which is fine: refused steps change nothing.
#[derive(Debug, Clone)]
enum Step {
    Listener {
        port: u8,
        kind: u8,
        variant: u8,
    },
    Activate {
        port: u8,
        kind: u8,
        on: bool,
    },
    Cluster {
        id: u8,
        variant: u8,
    },
    HealthCheck {
        id: u8,
        interval: u32,
    },
    HttpFrontend {
        https: bool,
        port: u8,
        host: u8,
        path: u8,
        cluster: Option<u8>,
        tag: u8,
    },
    TcpFrontend {
        port: u8,
        cluster: u8,
        tag: u8,
    },
    Backend {
        cluster: u8,
        id: u8,
        port: u8,
        weight: i32,
    },
    Certificate {
        port: u8,
        which: u8,
        named: bool,
    },
    RemoveCluster {
        id: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..4u8, 0..3u8, 0..3u8).prop_map(|(port, kind, variant)| Step::Listener {
            port,
            kind,
            variant
        }),
        (0..4u8, 0..3u8, any::<bool>()).prop_map(|(port, kind, on)| Step::Activate {
            port,
            kind,
            on
        }),
        (0..4u8, 0..4u8).prop_map(|(id, variant)| Step::Cluster { id, variant }),
        (0..4u8, 1..3u32).prop_map(|(id, interval)| Step::HealthCheck { id, interval }),
        (
            any::<bool>(),
            0..4u8,
            0..3u8,
            0..3u8,
            proptest::option::of(0..4u8),
            0..2u8
        )
            .prop_map(
                |(https, port, host, path, cluster, tag)| Step::HttpFrontend {
                    https,
                    port,
                    host,
                    path,
                    cluster,
                    tag
                }
            ),
        (0..4u8, 0..4u8, 0..2u8).prop_map(|(port, cluster, tag)| Step::TcpFrontend {
            port,
            cluster,
            tag
        }),
        (0..4u8, 0..3u8, 0..3u8, 0..3i32).prop_map(|(cluster, id, port, weight)| Step::Backend {
            cluster,
            id,
            port,
            weight: weight * 50
        }),
        (0..4u8, 0..2u8, any::<bool>()).prop_map(|(port, which, named)| Step::Certificate {
            port,
            which,
            named
        }),
        (0..4u8).prop_map(|id| Step::RemoveCluster { id }),
    ]
}

fn listener_type(kind: u8) -> ListenerType {
    match kind {
        0 => ListenerType::Http,
        1 => ListenerType::Https,
        _ => ListenerType::Tcp,
    }
}

fn request(step: &Step) -> Request {
    let cluster_id = |id: u8| format!("cluster-{id}");
    match step.clone() {
        Step::Listener {
            port,
            kind,
            variant,
        } => {
            let address = address(port).into();
            match listener_type(kind) {
                ListenerType::Http => RequestType::AddHttpListener(HttpListenerConfig {
                    address,
                    sticky_name: "SOZUBALANCEID".into(),
                    front_timeout: 60 + u32::from(variant),
                    answers: if variant == 2 {
                        BTreeMap::from([("503".to_owned(), "HTTP/1.1 503 x\r\n\r\n".to_owned())])
                    } else {
                        BTreeMap::new()
                    },
                    ..Default::default()
                }),
                ListenerType::Https => RequestType::AddHttpsListener(HttpsListenerConfig {
                    address,
                    sticky_name: "SOZUBALANCEID".into(),
                    versions: if variant == 1 { vec![5] } else { vec![4, 5] },
                    request_timeout: 10 + u32::from(variant),
                    ..Default::default()
                }),
                _ => RequestType::AddTcpListener(TcpListenerConfig {
                    address,
                    back_timeout: 30 + u32::from(variant),
                    ..Default::default()
                }),
            }
        }
        Step::Activate { port, kind, on } => {
            let address = address(port).into();
            let proxy = listener_type(kind) as i32;
            if on {
                RequestType::ActivateListener(ActivateListener {
                    address,
                    proxy,
                    from_scm: false,
                    interface: None,
                })
            } else {
                RequestType::DeactivateListener(DeactivateListener {
                    address,
                    proxy,
                    to_scm: false,
                    interface: None,
                })
            }
        }
        Step::Cluster { id, variant } => RequestType::AddCluster(Cluster {
            cluster_id: cluster_id(id),
            sticky_session: variant % 2 == 1,
            load_balancing: i32::from(variant % 3),
            ..Default::default()
        }),
        Step::HealthCheck { id, interval } => RequestType::SetHealthCheck(SetHealthCheck {
            cluster_id: cluster_id(id),
            config: HealthCheckConfig {
                uri: "/health".into(),
                interval,
                timeout: 1,
                ..Default::default()
            },
        }),
        Step::HttpFrontend {
            https,
            port,
            host,
            path,
            cluster,
            tag,
        } => {
            let frontend = RequestHttpFrontend {
                cluster_id: cluster.map(cluster_id),
                address: address(port).into(),
                hostname: ["example.com", "*.example.com", "other.org"][usize::from(host)].into(),
                path: PathRule {
                    kind: i32::from(path % 3),
                    value: format!("/p{path}"),
                },
                tags: BTreeMap::from([("tag".to_owned(), tag.to_string())]),
                ..Default::default()
            };
            if https {
                RequestType::AddHttpsFrontend(frontend)
            } else {
                RequestType::AddHttpFrontend(frontend)
            }
        }
        Step::TcpFrontend { port, cluster, tag } => {
            RequestType::AddTcpFrontend(RequestTcpFrontend {
                cluster_id: cluster_id(cluster),
                address: address(port).into(),
                tags: BTreeMap::from([("tag".to_owned(), tag.to_string())]),
                ..Default::default()
            })
        }
        Step::Backend {
            cluster,
            id,
            port,
            weight,
        } => RequestType::AddBackend(AddBackend {
            cluster_id: cluster_id(cluster),
            backend_id: format!("backend-{id}"),
            address: SocketAddr::from(([127, 0, 0, 2], 9000 + u16::from(port))).into(),
            load_balancing_parameters: Some(LoadBalancingParams { weight }),
            ..Default::default()
        }),
        Step::Certificate { port, which, named } => {
            let (certificate, key) = CERTIFICATES[usize::from(which)];
            RequestType::AddCertificate(AddCertificate {
                address: address(port).into(),
                certificate: CertificateAndKey {
                    certificate: certificate.into(),
                    key: key.into(),
                    names: if named {
                        vec!["named.example.com".into()]
                    } else {
                        vec![]
                    },
                    ..Default::default()
                },
                expired_at: None,
            })
        }
        Step::RemoveCluster { id } => RequestType::RemoveCluster(cluster_id(id)),
    }
    .into()
}

fn build(steps: &[Step]) -> ConfigState {
    let mut state = ConfigState::new();
    for step in steps {
        let _ = state.dispatch(&request(step));
    }
    state
}

fn apply(state: &ConfigState, requests: &[Request]) -> ConfigState {
    let mut state = state.clone();
    for (index, request) in requests.iter().enumerate() {
        if let Err(error) = state.dispatch(request) {
            panic!(
                "diff request {index} ({}) refused: {error}\n{requests:#?}",
                request.kind_name()
            );
        }
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn diff_applied_to_a_yields_b(a in prop::collection::vec(step(), 0..40), b in prop::collection::vec(step(), 0..40)) {
        let a = build(&a);
        let b = build(&b);
        let requests = diff(&a, &b);
        let reached = apply(&a, &requests);
        prop_assert_eq!(&reached, &b);
        prop_assert!(diff(&reached, &b).is_empty());
    }

    #[test]
    fn diff_of_a_state_with_itself_is_empty(a in prop::collection::vec(step(), 0..40)) {
        let a = build(&a);
        prop_assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn generated_requests_rebuild_the_state(a in prop::collection::vec(step(), 0..40)) {
        let a = build(&a);
        let rebuilt = apply(&ConfigState::new(), &a.generate_requests());
        prop_assert_eq!(rebuilt, a);
    }
}

/// A small change set, checked request by request: the order adds before it
/// removes, and a removed cluster takes its frontends and backends with it.
#[test]
fn additions_come_before_removals() {
    let a = build(&[
        Step::Listener {
            port: 0,
            kind: 0,
            variant: 0,
        },
        Step::Cluster { id: 0, variant: 0 },
        Step::HttpFrontend {
            https: false,
            port: 0,
            host: 0,
            path: 0,
            cluster: Some(0),
            tag: 0,
        },
        Step::Backend {
            cluster: 0,
            id: 0,
            port: 0,
            weight: 100,
        },
    ]);
    let b = build(&[
        Step::Listener {
            port: 0,
            kind: 0,
            variant: 0,
        },
        Step::Cluster { id: 1, variant: 0 },
        Step::HttpFrontend {
            https: false,
            port: 0,
            host: 1,
            path: 0,
            cluster: Some(1),
            tag: 0,
        },
        Step::Backend {
            cluster: 1,
            id: 0,
            port: 1,
            weight: 100,
        },
    ]);
    let kinds: Vec<String> = diff(&a, &b).iter().map(Request::kind_name).collect();
    assert_eq!(
        kinds,
        [
            "ADD_CLUSTER",
            "ADD_BACKEND",
            "ADD_HTTP_FRONTEND",
            "REMOVE_CLUSTER"
        ]
    );
}
