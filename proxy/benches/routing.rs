//! Routing lookups on large tables: 10,000 exact hostnames, 10,000
//! wildcards, and exact hostnames behind a list of PRE regex rules.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sozu_command::proto::command::{
    PathRule, PathRuleKind, RequestHttpFrontend, RulePosition, SocketAddress,
};
use sozu_proxy::bench::Router;

const HOSTS: usize = 10_000;

fn frontend(
    position: RulePosition,
    hostname: &str,
    kind: PathRuleKind,
    path: &str,
    cluster: &str,
) -> RequestHttpFrontend {
    RequestHttpFrontend {
        cluster_id: Some(cluster.to_owned()),
        address: SocketAddress::from("127.0.0.1:8080".parse::<SocketAddr>().unwrap()),
        hostname: hostname.to_owned(),
        path: PathRule {
            kind: kind as i32,
            value: path.to_owned(),
        },
        position: position as i32,
        ..Default::default()
    }
}

/// 10,000 exact hostnames, each with a root rule and an `/api` rule.
fn exact_hosts(router: &mut Router) {
    for i in 0..HOSTS {
        let host = format!("app{i}.customer{}.example.com", i % 100);
        let cluster = format!("cluster{i}");
        for (kind, path) in [(PathRuleKind::Prefix, "/"), (PathRuleKind::Prefix, "/api")] {
            router
                .add_frontend(&frontend(RulePosition::Tree, &host, kind, path, &cluster))
                .unwrap();
        }
    }
}

fn routing(c: &mut Criterion) {
    let mut exact = Router::new();
    exact_hosts(&mut exact);
    c.bench_function("lookup 10k exact hosts, hit", |b| {
        b.iter(|| {
            exact.lookup(
                black_box("app4242.customer42.example.com"),
                black_box("/api/users/42?page=2"),
                black_box("GET"),
            )
        })
    });
    c.bench_function("lookup 10k exact hosts, mixed case and port", |b| {
        b.iter(|| {
            exact.lookup(
                black_box("App4242.Customer42.Example.com:8080"),
                black_box("/index.html"),
                black_box("GET"),
            )
        })
    });
    c.bench_function("lookup 10k exact hosts, miss", |b| {
        b.iter(|| {
            exact.lookup(
                black_box("unknown.customer42.example.com"),
                black_box("/"),
                black_box("GET"),
            )
        })
    });

    let mut wildcards = Router::new();
    for i in 0..HOSTS {
        wildcards
            .add_frontend(&frontend(
                RulePosition::Tree,
                &format!("*.tenant{i}.example.com"),
                PathRuleKind::Prefix,
                "/",
                &format!("cluster{i}"),
            ))
            .unwrap();
    }
    c.bench_function("lookup 10k wildcards, hit", |b| {
        b.iter(|| {
            wildcards.lookup(
                black_box("www.tenant4242.example.com"),
                black_box("/static/app.js"),
                black_box("GET"),
            )
        })
    });

    let mut mixed = Router::new();
    for i in 0..20 {
        mixed
            .add_frontend(&frontend(
                RulePosition::Pre,
                "*",
                PathRuleKind::Regex,
                &format!("/internal/v{i}/[a-z]+/[0-9]+"),
                "internal",
            ))
            .unwrap();
    }
    mixed
        .add_frontend(&frontend(
            RulePosition::Tree,
            "/api[0-9]+/.example.com",
            PathRuleKind::Regex,
            "/users/[0-9]+",
            "regex-hosts",
        ))
        .unwrap();
    exact_hosts(&mut mixed);
    c.bench_function("lookup 20 PRE regexes then 10k exact hosts", |b| {
        b.iter(|| {
            mixed.lookup(
                black_box("app4242.customer42.example.com"),
                black_box("/api/users/42"),
                black_box("GET"),
            )
        })
    });
    c.bench_function("lookup 20 PRE regexes, hit on the last", |b| {
        b.iter(|| {
            mixed.lookup(
                black_box("app4242.customer42.example.com"),
                black_box("/internal/v19/orders/42"),
                black_box("GET"),
            )
        })
    });
    c.bench_function("lookup 20 PRE regexes then a regex host label", |b| {
        b.iter(|| {
            mixed.lookup(
                black_box("api7.example.com"),
                black_box("/users/42"),
                black_box("GET"),
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = routing
}
criterion_main!(benches);
