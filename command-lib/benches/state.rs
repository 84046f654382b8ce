//! The cost of holding a large configuration: applying 20,000 requests
//! (5,000 clusters, each with a frontend and two backends), writing that
//! state as a state file, and loading the file back into an empty state.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sozu_command::proto::command::{
    AddBackend, Cluster, HttpListenerConfig, LoadBalancingParams, PathRule, Request,
    RequestHttpFrontend, request::RequestType,
};
use sozu_command::state::{ConfigState, file};

const CLUSTERS: usize = 5_000;

fn requests() -> Vec<Request> {
    let listener: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let mut requests: Vec<Request> = vec![
        RequestType::AddHttpListener(HttpListenerConfig {
            address: listener.into(),
            sticky_name: "SOZUBALANCEID".into(),
            ..Default::default()
        })
        .into(),
    ];
    for index in 0..CLUSTERS {
        let cluster_id = format!("cluster-{index}");
        requests.push(
            RequestType::AddCluster(Cluster {
                cluster_id: cluster_id.clone(),
                ..Default::default()
            })
            .into(),
        );
        requests.push(
            RequestType::AddHttpFrontend(RequestHttpFrontend {
                cluster_id: Some(cluster_id.clone()),
                address: listener.into(),
                hostname: format!("app{index}.example.com"),
                path: PathRule::default(),
                ..Default::default()
            })
            .into(),
        );
        for backend in 0..2u16 {
            let address = SocketAddr::from((
                [10, (index / 250) as u8, (index % 250) as u8, 1],
                8000 + backend,
            ));
            requests.push(
                RequestType::AddBackend(AddBackend {
                    cluster_id: cluster_id.clone(),
                    backend_id: format!("{cluster_id}-{backend}"),
                    address: address.into(),
                    load_balancing_parameters: Some(LoadBalancingParams { weight: 100 }),
                    ..Default::default()
                })
                .into(),
            );
        }
    }
    requests
}

fn apply(requests: &[Request]) -> ConfigState {
    let mut state = ConfigState::new();
    for request in requests {
        state.dispatch(request).unwrap();
    }
    state
}

fn bench_state(c: &mut Criterion) {
    let requests = requests();
    let state = apply(&requests);
    let bytes = file::to_bytes(&state);

    let mut group = c.benchmark_group("state_5000_clusters");
    group.sample_size(20);
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_function("apply_20001_requests", |b| {
        b.iter(|| apply(black_box(&requests)))
    });
    group.bench_function("save_to_bytes", |b| {
        b.iter(|| file::to_bytes(black_box(&state)))
    });
    group.bench_function("parse_records_only", |b| {
        b.iter(|| file::parse_records(black_box(&bytes)))
    });
    group.bench_function("load_from_bytes", |b| {
        b.iter_batched(
            ConfigState::new,
            |mut empty| {
                let report = file::load(&mut empty, black_box(&bytes));
                assert!(report.errors.is_empty());
                empty
            },
            BatchSize::LargeInput,
        )
    });
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("state.txt");
    group.bench_function("save_to_disk_atomically", |b| {
        b.iter(|| file::save(black_box(&state), &path).unwrap())
    });
    group.finish();
    eprintln!(
        "state file for {} requests: {} bytes",
        requests.len(),
        bytes.len()
    );
}

criterion_group!(benches, bench_state);
criterion_main!(benches);
