//! Load balancing through the real daemon: how requests spread over a
//! cluster's backends under each policy, sticky sessions, backups, and what
//! happens when backends die, leave, or refuse connections.

use crate::harness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::backend::Backend;
use harness::{Daemon, Site, backend, client, cluster, config, free_port, frontend, wait_until};
use sozu_command::proto::command::{
    AddBackend, Cluster, EventKind, LoadBalancingAlgorithms, LoadBalancingParams, LoadMetric,
    RemoveBackend, request::RequestType,
};

/// A site with one worker (so that one balancer sees every request) and
/// the cluster `app` on `app.test`, configured by `configure`.
fn site_with(configure: impl FnOnce(&mut Cluster)) -> Site {
    let site = Site::start(1, "");
    let mut app = cluster("app");
    configure(&mut app);
    site.daemon.add_cluster(app);
    site.daemon
        .add_frontend(frontend(site.port, "app.test", Some("app")));
    site
}

fn add(site: &Site, backend: &Backend) {
    site.daemon
        .add_backend(harness::backend("app", &backend.name, backend.address));
}

fn dead_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[test]
fn round_robin_takes_each_backend_in_turn() {
    let site = site_with(|_| {});
    let backends = [
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    ];
    for backend in &backends {
        add(&site, backend);
    }
    let order: Vec<String> = (0..30)
        .map(|_| client::get(site.port, "app.test", "/").text())
        .collect();
    let expected: Vec<String> = ["a", "b", "c"]
        .iter()
        .cycle()
        .take(30)
        .map(|name| (*name).to_owned())
        .collect();
    assert_eq!(order, expected);
}

#[test]
fn random_follows_the_weights() {
    let site = site_with(|cluster| cluster.load_balancing = LoadBalancingAlgorithms::Random as i32);
    let light = Backend::start("light");
    let heavy = Backend::start("heavy");
    for (backend, weight) in [(&light, 25), (&heavy, 75)] {
        site.daemon.add_backend(AddBackend {
            load_balancing_parameters: Some(LoadBalancingParams { weight }),
            ..harness::backend("app", &backend.name, backend.address)
        });
    }
    for _ in 0..400 {
        assert_eq!(client::get(site.port, "app.test", "/").status, 200);
    }
    // Expected 100 and 300; the bounds are more than four standard
    // deviations away.
    let light_share = light.served();
    assert_eq!(light_share + heavy.served(), 400);
    assert!(
        (60..=140).contains(&light_share),
        "light got {light_share} of 400"
    );
}

/// Starts `count` requests to `app.test` that the slow backend holds, and
/// returns once it has read them all.
fn hold_requests(
    site: &Site,
    count: usize,
    seen: &mpsc::Receiver<harness::backend::SeenRequest>,
) -> Vec<std::thread::JoinHandle<client::Answer>> {
    let held: Vec<_> = (0..count)
        .map(|_| {
            let port = site.port;
            std::thread::spawn(move || client::get(port, "app.test", "/held"))
        })
        .collect();
    for _ in 0..count {
        seen.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    held
}

fn least_loaded_avoids_the_busy_backend(metric: Option<LoadMetric>) {
    let site = site_with(|cluster| {
        cluster.load_balancing = LoadBalancingAlgorithms::LeastLoaded as i32;
        cluster.load_metric = metric.map(|metric| metric as i32);
    });
    let (seen_tx, seen) = mpsc::channel();
    let busy = Backend::start_with("busy", Duration::from_secs(3), Some(seen_tx));
    add(&site, &busy);
    let held = hold_requests(&site, 2, &seen);
    let idle = Backend::start("idle");
    add(&site, &idle);
    for _ in 0..20 {
        assert_eq!(client::get(site.port, "app.test", "/").text(), "idle");
    }
    for request in held {
        assert_eq!(request.join().unwrap().text(), "busy");
    }
    assert!(seen.try_recv().is_err(), "the busy backend got more");
}

#[test]
fn least_loaded_by_connections_avoids_the_busy_backend() {
    least_loaded_avoids_the_busy_backend(None);
}

#[test]
fn least_loaded_by_requests_avoids_the_busy_backend() {
    least_loaded_avoids_the_busy_backend(Some(LoadMetric::Requests));
}

#[test]
fn power_of_two_never_picks_the_busier_of_two() {
    let site = site_with(|cluster| {
        cluster.load_balancing = LoadBalancingAlgorithms::PowerOfTwo as i32;
    });
    let (seen_tx, seen) = mpsc::channel();
    let busy = Backend::start_with("busy", Duration::from_secs(3), Some(seen_tx));
    add(&site, &busy);
    let held = hold_requests(&site, 2, &seen);
    let (left, right) = (Backend::start("left"), Backend::start("right"));
    add(&site, &left);
    add(&site, &right);
    // Two distinct random picks: the busy backend is always compared with
    // an idle one and loses. Random choice would send it a third.
    for _ in 0..60 {
        assert_eq!(client::get(site.port, "app.test", "/").status, 200);
    }
    assert!(seen.try_recv().is_err(), "the busy backend got more");
    assert_eq!(left.served() + right.served(), 60);
    assert!(
        left.served() >= 12 && right.served() >= 12,
        "left {} right {}",
        left.served(),
        right.served()
    );
    for request in held {
        assert_eq!(request.join().unwrap().status, 200);
    }
}

#[test]
fn sticky_sessions_set_honour_and_replace_the_cookie() {
    let (site, one, _two, seen) = Site::sticky();

    // No cookie: balanced, and told where it went.
    let first = client::get(site.port, "app.test", "/");
    assert_eq!(first.text(), "one");
    assert_eq!(first.header("set-cookie"), Some("LB=s1; Path=/"));
    seen.recv().unwrap();

    // The cookie is honoured, removed from what the backend sees, and not
    // set again while it does not change.
    for _ in 0..10 {
        let answer = client::get_with(
            site.port,
            "app.test",
            "/",
            &[("Cookie", "LB=s1; theme=dark")],
        );
        assert_eq!(answer.text(), "one");
        assert_eq!(answer.header("set-cookie"), None);
        let request = seen.recv().unwrap();
        assert_eq!(request.header("cookie"), Some("theme=dark"));
    }
    // A backend without sticky id is found by its backend id.
    let answer = client::get_with(site.port, "app.test", "/", &[("Cookie", "LB=two")]);
    assert_eq!(answer.text(), "two");
    assert_eq!(answer.header("set-cookie"), None);
    assert_eq!(seen.recv().unwrap().header("cookie"), None);

    // An unknown value: normal balancing and a new cookie.
    let answer = client::get_with(site.port, "app.test", "/", &[("Cookie", "LB=gone")]);
    let expected = if answer.text() == "one" {
        "LB=s1; Path=/"
    } else {
        "LB=two; Path=/"
    };
    assert_eq!(answer.header("set-cookie"), Some(expected));

    // The sticky backend leaves: the next backend takes over, with a new
    // cookie.
    site.daemon.ok(RequestType::RemoveBackend(RemoveBackend {
        cluster_id: "app".into(),
        backend_id: "one".into(),
        address: one.address.into(),
    }));
    for _ in 0..3 {
        let answer = client::get_with(site.port, "app.test", "/", &[("Cookie", "LB=s1")]);
        assert_eq!(answer.text(), "two");
        assert_eq!(answer.header("set-cookie"), Some("LB=two; Path=/"));
    }
}

#[test]
fn backups_serve_only_when_the_primaries_fail() {
    let site = site_with(|_| {});
    let primary_address = dead_address();
    let primary = Backend::start_at(primary_address, "primary", Duration::ZERO, None);
    let other = Backend::start("other");
    let spare = Backend::start("spare");
    add(&site, &primary);
    add(&site, &other);
    site.daemon.add_backend(AddBackend {
        backup: Some(true),
        ..harness::backend("app", "spare", spare.address)
    });

    for _ in 0..20 {
        assert_eq!(client::get(site.port, "app.test", "/").status, 200);
    }
    assert_eq!(spare.served(), 0);
    assert_eq!(primary.served() + other.served(), 20);

    // Every primary dies: the backup takes every request, none is lost.
    primary.kill();
    other.kill();
    drop((primary, other));
    for _ in 0..10 {
        assert_eq!(client::get(site.port, "app.test", "/").text(), "spare");
    }

    // A primary comes back: once its wait is over it gets the traffic
    // again, and the backup none.
    let revived = Backend::start_at(primary_address, "primary", Duration::ZERO, None);
    assert!(wait_until(Duration::from_secs(20), || {
        client::get(site.port, "app.test", "/").text() == "primary"
    }));
    let before = spare.served();
    for _ in 0..5 {
        assert_eq!(client::get(site.port, "app.test", "/").text(), "primary");
    }
    assert_eq!(spare.served(), before);
    assert!(revived.served() >= 6);
}

#[test]
fn a_backend_killed_mid_traffic_loses_only_what_it_had_in_flight() {
    let port = free_port();
    let daemon = Daemon::start(&config(port, 2, "", ""));
    let backends = [
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    ];
    daemon.serve(
        port,
        "app.test",
        "app",
        &backends.iter().collect::<Vec<_>>(),
    );

    const CLIENTS: usize = 4;
    const TOTAL: usize = 600;
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (done, failures) = (done.clone(), failures.clone());
            std::thread::spawn(move || {
                while done.fetch_add(1, Ordering::SeqCst) < TOTAL {
                    if client::try_get(port, "app.test", "/") != Some(200) {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(30), || {
        done.load(Ordering::SeqCst) >= TOTAL / 3
    }));
    backends[1].kill();
    let served_at_kill = backends[1].served();
    for client in clients {
        client.join().unwrap();
    }
    let failures = failures.load(Ordering::SeqCst);
    assert!(
        failures <= CLIENTS,
        "{failures} requests failed; at most {CLIENTS} were in flight"
    );
    assert!(backends[1].served() <= served_at_kill + CLIENTS);
    assert!(backends[0].served() > backends[1].served());
    assert!(backends[2].served() > backends[1].served());
}

#[test]
fn a_removed_backend_finishes_its_slow_request() {
    let site = site_with(|_| {});
    let mut events = site.daemon.subscribe();
    let (seen_tx, seen) = mpsc::channel();
    let slow = Backend::start_with("slow", Duration::from_secs(1), Some(seen_tx));
    let other = Backend::start("other");
    add(&site, &slow);
    add(&site, &other);

    let port = site.port;
    let running = std::thread::spawn(move || client::get(port, "app.test", "/slow"));
    seen.recv_timeout(Duration::from_secs(10)).unwrap();
    site.daemon.ok(RequestType::RemoveBackend(RemoveBackend {
        cluster_id: "app".into(),
        backend_id: "slow".into(),
        address: slow.address.into(),
    }));
    // New requests go elsewhere at once.
    assert_eq!(client::get(port, "app.test", "/").text(), "other");
    // The running one completes.
    let answer = running.join().unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "slow");
    // And its connection closes: the backend is drained.
    let drained = events.wait_for(Duration::from_secs(10), |event| {
        event.kind == EventKind::RemovedBackendHasNoConnections as i32
            && event.backend_id.as_deref() == Some("slow")
    });
    assert!(drained.is_some(), "events: {:?}", events.seen);
    assert_eq!(slow.served(), 1);
}

/// A cluster on its own host whose backends all refuse connections.
fn refusing_cluster(
    daemon: &Daemon,
    port: u16,
    id: &str,
    attempts: Option<u32>,
    backends: usize,
) -> Vec<SocketAddr> {
    daemon.add_cluster(Cluster {
        max_connection_attempts: attempts,
        ..cluster(id)
    });
    daemon.add_frontend(frontend(port, &format!("{id}.test"), Some(id)));
    (0..backends)
        .map(|index| {
            let address = dead_address();
            daemon.add_backend(backend(id, &format!("{id}-{index}"), address));
            address
        })
        .collect()
}

fn unavailable(events: &harness::Events, cluster: &str) -> usize {
    events
        .seen
        .iter()
        .filter(|event| {
            event.kind == EventKind::NoAvailableBackends as i32
                && event.cluster_id.as_deref() == Some(cluster)
        })
        .count()
}

#[test]
fn connection_attempts_are_bounded_and_availability_is_reported() {
    let port = free_port();
    // One attempt per request unless the cluster says otherwise.
    let daemon = Daemon::start(&config(port, 1, "max_connection_attempts = 1", ""));
    let mut events = daemon.subscribe();
    let global = refusing_cluster(&daemon, port, "global", None, 2);
    let two = refusing_cluster(&daemon, port, "two", Some(2), 2);

    // Two attempts reach both refusing backends: nothing is left.
    assert_eq!(client::get(port, "two.test", "/").status, 503);
    // One attempt reaches only one of them.
    assert_eq!(client::get(port, "global.test", "/").status, 503);
    // Events the worker raised before it answered this query have reached
    // the subscribers by the time the answer arrives.
    daemon.metrics();
    events.drain(Duration::from_millis(200));
    assert_eq!(unavailable(&events, "two"), 1, "{:?}", events.seen);
    assert_eq!(unavailable(&events, "global"), 0, "{:?}", events.seen);
    // The next request tries the other backend: nothing is left while the
    // first still waits (1 s; on a very busy machine, a later try).
    let started = Instant::now();
    let mut left_without = None;
    while left_without.is_none() && started.elapsed() < Duration::from_secs(10) {
        assert_eq!(client::get(port, "global.test", "/").status, 503);
        left_without = events.wait_for(Duration::from_millis(100), |event| {
            event.kind == EventKind::NoAvailableBackends as i32
                && event.cluster_id.as_deref() == Some("global")
        });
    }
    assert!(left_without.is_some(), "{:?}", events.seen);
    // Raised once, not for every refused request.
    assert_eq!(client::get(port, "two.test", "/").status, 503);
    daemon.metrics();
    events.drain(Duration::from_millis(200));
    assert_eq!(unavailable(&events, "two"), 1, "{:?}", events.seen);

    // A backend comes back: once its wait is over, requests reach it and
    // the cluster has recovered.
    let revived = Backend::start_at(two[1], "revived", Duration::ZERO, None);
    assert!(wait_until(Duration::from_secs(20), || {
        client::get(port, "two.test", "/").status == 200
    }));
    let recovered = events.wait_for(Duration::from_secs(10), |event| {
        event.kind == EventKind::ClusterRecovered as i32
            && event.cluster_id.as_deref() == Some("two")
    });
    assert!(recovered.is_some(), "{:?}", events.seen);
    assert!(revived.served() >= 1);
    let _ = global;
}

#[test]
fn a_backend_that_keeps_refusing_goes_down() {
    let port = free_port();
    // Each worker counts failures on its own: with four, the first to
    // reach six ends the test sooner.
    let daemon = Daemon::start(&config(port, 4, "", ""));
    let mut events = daemon.subscribe();
    refusing_cluster(&daemon, port, "down", None, 1);
    // Requests keep coming; the backend is tried again after each wait
    // (1 s, 1 s, then random waits of up to 3, 7 and 15 s) and is down
    // after its sixth counted failure.
    let started = Instant::now();
    let mut down = None;
    while down.is_none() && started.elapsed() < Duration::from_secs(45) {
        assert_eq!(client::get(port, "down.test", "/").status, 503);
        down = events.wait_for(Duration::from_millis(50), |event| {
            event.kind == EventKind::BackendDown as i32
        });
    }
    let down = down.unwrap_or_else(|| panic!("no BACKEND_DOWN; events: {:?}", events.seen));
    assert_eq!(down.cluster_id.as_deref(), Some("down"));
    assert_eq!(down.backend_id.as_deref(), Some("down-0"));
    // The first failure already left the cluster without backends.
    assert!(unavailable(&events, "down") >= 1);
    // It could not have gone down before five waits of at least a second.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}
