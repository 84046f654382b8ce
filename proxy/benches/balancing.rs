//! Choosing a backend among 100, for each policy.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sozu_command::proto::command::{
    AddBackend, LoadBalancingAlgorithms, LoadBalancingParams, LoadMetric, SocketAddress,
};
use sozu_proxy::bench::Balancer;

const BACKENDS: u16 = 100;

/// 100 backends with varied weights, connections, requests and connect
/// times, and 5 backups that are never needed.
fn cluster(algorithm: LoadBalancingAlgorithms, metric: Option<LoadMetric>) -> Balancer {
    let now = Instant::now();
    let mut balancer = Balancer::with_seed("app", 1);
    balancer.set_policy(algorithm, metric).unwrap();
    for port in 0..BACKENDS + 5 {
        let backend = balancer
            .add_backend(&AddBackend {
                cluster_id: "app".to_owned(),
                backend_id: format!("backend{port}"),
                address: SocketAddress::from(SocketAddr::from(([10, 0, 0, 1], 8000 + port))),
                sticky_id: None,
                load_balancing_parameters: Some(LoadBalancingParams {
                    weight: i32::from(port % 7) * 50,
                }),
                backup: Some(port >= BACKENDS),
                unix_path: None,
            })
            .unwrap();
        for _ in 0..port % 13 {
            backend.connection_opened();
        }
        for _ in 0..port % 5 {
            backend.request_started();
        }
        balancer.connect_succeeded(
            &backend,
            now,
            Duration::from_micros(200 + u64::from(port % 17) * 30),
        );
    }
    balancer
}

fn balancing(c: &mut Criterion) {
    let now = Instant::now();
    let policies = [
        ("round robin", LoadBalancingAlgorithms::RoundRobin, None),
        ("random weighted", LoadBalancingAlgorithms::Random, None),
        (
            "least loaded (connections)",
            LoadBalancingAlgorithms::LeastLoaded,
            Some(LoadMetric::Connections),
        ),
        (
            "least loaded (requests)",
            LoadBalancingAlgorithms::LeastLoaded,
            Some(LoadMetric::Requests),
        ),
        (
            "least loaded (connect time)",
            LoadBalancingAlgorithms::LeastLoaded,
            Some(LoadMetric::ConnectionTime),
        ),
        (
            "power of two (connections)",
            LoadBalancingAlgorithms::PowerOfTwo,
            Some(LoadMetric::Connections),
        ),
    ];
    for (name, algorithm, metric) in policies {
        let mut balancer = cluster(algorithm, metric);
        c.bench_function(&format!("choose among 100: {name}"), |b| {
            b.iter(|| balancer.choose(black_box(now), None, &[]))
        });
    }
    let mut balancer = cluster(LoadBalancingAlgorithms::RoundRobin, None);
    c.bench_function("choose among 100: sticky hit", |b| {
        b.iter(|| balancer.choose(black_box(now), black_box(Some("backend57")), &[]))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = balancing
}
criterion_main!(benches);
