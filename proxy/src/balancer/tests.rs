//! Choice distributions, tiers, stickiness, failures and events.

use std::collections::HashMap;
use std::net::SocketAddr;

use sozu_command::proto::command::{LoadBalancingParams, SocketAddress};

use super::*;

const CLUSTER: &str = "app";

fn address(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn add_backend(id: &str, port: u16) -> AddBackend {
    AddBackend {
        cluster_id: CLUSTER.to_owned(),
        backend_id: id.to_owned(),
        address: SocketAddress::from(address(port)),
        ..Default::default()
    }
}

fn add(balancer: &mut Balancer, id: &str, port: u16) -> Arc<Backend> {
    balancer.add_backend(&add_backend(id, port)).unwrap()
}

fn add_with(
    balancer: &mut Balancer,
    edit: impl FnOnce(&mut AddBackend),
    id: &str,
    port: u16,
) -> Arc<Backend> {
    let mut request = add_backend(id, port);
    edit(&mut request);
    balancer.add_backend(&request).unwrap()
}

fn balancer(policy: LoadBalancingAlgorithms, metric: Option<LoadMetric>) -> Balancer {
    let mut balancer = Balancer::with_seed(CLUSTER, 7);
    balancer.set_policy(policy, metric).unwrap();
    balancer
}

/// How many times each backend id is chosen in `picks` choices.
fn tally(balancer: &mut Balancer, now: Instant, picks: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..picks {
        let backend = balancer.choose(now, None, &[]).unwrap();
        *counts.entry(backend.id().to_owned()).or_default() += 1;
    }
    counts
}

fn chosen(balancer: &mut Balancer, now: Instant) -> Option<String> {
    balancer.choose(now, None, &[]).map(|b| b.id().to_owned())
}

fn open(backend: &Backend, connections: usize) {
    for _ in 0..connections {
        backend.connection_opened();
    }
}

#[test]
fn round_robin_is_exact_and_in_order() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::RoundRobin, None);
    for (id, port) in [("a", 1), ("b", 2), ("c", 3)] {
        add(&mut b, id, port);
    }
    let sequence: Vec<_> = (0..7).map(|_| chosen(&mut b, now).unwrap()).collect();
    assert_eq!(sequence, ["a", "b", "c", "a", "b", "c", "a"]);
    let counts = tally(&mut b, now, 299);
    assert_eq!(
        counts
            .values()
            .copied()
            .collect::<Vec<_>>()
            .iter()
            .sum::<usize>(),
        299
    );
    assert!(counts.values().all(|&n| n == 99 || n == 100), "{counts:?}");
}

#[test]
fn round_robin_skips_non_candidates_and_survives_removal() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::RoundRobin, None);
    let a = add(&mut b, "a", 1);
    add(&mut b, "b", 2);
    add(&mut b, "c", 3);
    assert!(b.set_health(&a, Health::Unhealthy));
    let sequence: Vec<_> = (0..4).map(|_| chosen(&mut b, now).unwrap()).collect();
    assert_eq!(sequence, ["b", "c", "b", "c"]);
    b.set_health(&a, Health::Healthy);
    assert_eq!(chosen(&mut b, now).as_deref(), Some("a"));
    // b is next; removing a, before it, keeps b next.
    b.remove_backend("a", address(1)).unwrap();
    let sequence: Vec<_> = (0..3).map(|_| chosen(&mut b, now).unwrap()).collect();
    assert_eq!(sequence, ["b", "c", "b"]);
}

#[test]
fn random_respects_weights() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::Random, None);
    // Unset weight and weight 0 both mean 100.
    add(&mut b, "unset", 1);
    add_with(
        &mut b,
        |r| r.load_balancing_parameters = Some(LoadBalancingParams { weight: 300 }),
        "heavy",
        2,
    );
    add_with(
        &mut b,
        |r| r.load_balancing_parameters = Some(LoadBalancingParams { weight: 0 }),
        "zero",
        3,
    );
    let picks = 50_000;
    let counts = tally(&mut b, now, picks);
    let share = |id: &str| counts[id] as f64 / picks as f64;
    assert!((share("heavy") - 0.6).abs() < 0.02, "{counts:?}");
    assert!((share("unset") - 0.2).abs() < 0.02, "{counts:?}");
    assert!((share("zero") - 0.2).abs() < 0.02, "{counts:?}");
}

#[test]
fn least_loaded_by_connections_is_the_default_metric() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::LeastLoaded, None);
    assert_eq!(b.policy(), Policy::LeastLoaded(LoadMetric::Connections));
    let a = add(&mut b, "a", 1);
    let c = add(&mut b, "c", 3);
    let d = add(&mut b, "d", 4);
    open(&a, 3);
    open(&c, 1);
    open(&d, 2);
    for _ in 0..100 {
        assert_eq!(chosen(&mut b, now).as_deref(), Some("c"));
    }
    // Follows the load as it changes.
    open(&c, 5);
    assert_eq!(chosen(&mut b, now).as_deref(), Some("d"));
}

#[test]
fn least_loaded_breaks_ties_at_random() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::LeastLoaded, None);
    let busy = add(&mut b, "busy", 1);
    add(&mut b, "x", 2);
    add(&mut b, "y", 3);
    add(&mut b, "z", 4);
    open(&busy, 1);
    let counts = tally(&mut b, now, 30_000);
    assert!(!counts.contains_key("busy"));
    for id in ["x", "y", "z"] {
        assert!(
            (counts[id] as f64 / 30_000.0 - 1.0 / 3.0).abs() < 0.02,
            "{counts:?}"
        );
    }
}

#[test]
fn least_loaded_by_requests() {
    let now = Instant::now();
    let mut b = balancer(
        LoadBalancingAlgorithms::LeastLoaded,
        Some(LoadMetric::Requests),
    );
    let a = add(&mut b, "a", 1);
    let c = add(&mut b, "c", 2);
    // Many connections but idle ones: requests decide.
    open(&a, 10);
    c.request_started();
    c.request_started();
    a.request_started();
    assert_eq!(chosen(&mut b, now).as_deref(), Some("a"));
    a.request_finished();
    a.request_started();
    a.request_started();
    c.request_finished();
    c.request_finished();
    assert_eq!(chosen(&mut b, now).as_deref(), Some("c"));
}

#[test]
fn least_loaded_by_peak_ewma_connect_time() {
    let now = Instant::now();
    let mut b = balancer(
        LoadBalancingAlgorithms::LeastLoaded,
        Some(LoadMetric::ConnectionTime),
    );
    let slow = add(&mut b, "slow", 1);
    let fast = add(&mut b, "fast", 2);
    b.connect_succeeded(&slow, now, Duration::from_millis(20));
    // Never measured: tried first, so that it gets measured.
    assert_eq!(chosen(&mut b, now).as_deref(), Some("fast"));
    b.connect_succeeded(&fast, now, Duration::from_millis(2));
    assert_eq!(chosen(&mut b, now).as_deref(), Some("fast"));
    // Load scales the estimate: 2 ms x 11 connections > 20 ms x 1.
    open(&fast, 10);
    assert_eq!(chosen(&mut b, now).as_deref(), Some("slow"));
    // A slow sample is adopted at once (peak).
    let mut b = balancer(
        LoadBalancingAlgorithms::LeastLoaded,
        Some(LoadMetric::ConnectionTime),
    );
    let x = add(&mut b, "x", 1);
    let y = add(&mut b, "y", 2);
    b.connect_succeeded(&x, now, Duration::from_millis(5));
    b.connect_succeeded(&y, now, Duration::from_millis(10));
    b.connect_succeeded(
        &x,
        now + Duration::from_millis(1),
        Duration::from_millis(50),
    );
    assert_eq!(chosen(&mut b, now).as_deref(), Some("y"));
    assert_eq!(
        b.status(&x).unwrap().connect_time,
        Some(Duration::from_millis(50))
    );
    // A fast sample long after pulls the estimate most of the way down.
    b.connect_succeeded(&x, now + Duration::from_secs(60), Duration::from_millis(1));
    let estimate = b.status(&x).unwrap().connect_time.unwrap();
    assert!(estimate < Duration::from_millis(2), "{estimate:?}");
    assert_eq!(chosen(&mut b, now).as_deref(), Some("x"));
    // A fast sample right after barely moves it.
    b.connect_succeeded(&y, now + Duration::from_millis(2), Duration::from_millis(1));
    let estimate = b.status(&y).unwrap().connect_time.unwrap();
    assert!(estimate > Duration::from_millis(9), "{estimate:?}");
}

#[test]
fn power_of_two_never_picks_the_most_loaded() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::PowerOfTwo, None);
    assert_eq!(b.policy(), Policy::PowerOfTwo(LoadMetric::Connections));
    for (index, id) in ["l0", "l1", "l2", "l3", "l4"].into_iter().enumerate() {
        let backend = add(&mut b, id, index as u16 + 1);
        open(&backend, index);
    }
    let counts = tally(&mut b, now, 20_000);
    assert!(!counts.contains_key("l4"), "{counts:?}");
    // Picking 2 of 5 distinct: l0 wins whenever drawn, 2/5 of the time;
    // l3 only when drawn with l4, 1/10 of the time.
    let share = |id: &str| counts.get(id).copied().unwrap_or(0) as f64 / 20_000.0;
    assert!((share("l0") - 0.4).abs() < 0.02, "{counts:?}");
    assert!((share("l1") - 0.3).abs() < 0.02, "{counts:?}");
    assert!((share("l2") - 0.2).abs() < 0.02, "{counts:?}");
    assert!((share("l3") - 0.1).abs() < 0.02, "{counts:?}");
}

#[test]
fn power_of_two_draws_two_distinct_backends() {
    // With two candidates, two distinct draws always include the less
    // loaded one; drawing the same one twice would not.
    let now = Instant::now();
    let mut b = balancer(
        LoadBalancingAlgorithms::PowerOfTwo,
        Some(LoadMetric::Requests),
    );
    let idle = add(&mut b, "idle", 1);
    let busy = add(&mut b, "busy", 2);
    busy.request_started();
    for _ in 0..1_000 {
        assert_eq!(chosen(&mut b, now).as_deref(), Some("idle"));
    }
    // One candidate: that one.
    b.set_health(&idle, Health::Unhealthy);
    assert_eq!(chosen(&mut b, now).as_deref(), Some("busy"));
}

#[test]
fn hrw_and_maglev_are_refused_by_name() {
    let mut b = Balancer::with_seed(CLUSTER, 1);
    for (algorithm, name) in [
        (LoadBalancingAlgorithms::Hrw, "HRW"),
        (LoadBalancingAlgorithms::Maglev, "MAGLEV"),
    ] {
        let error = b.set_policy(algorithm, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cluster app: load balancing algorithm {name} is not supported \
                 (use ROUND_ROBIN, RANDOM, LEAST_LOADED or POWER_OF_TWO)"
            )
        );
    }
    assert_eq!(b.policy(), Policy::RoundRobin);
}

#[test]
fn configured_from_the_cluster() {
    let cluster = Cluster {
        cluster_id: CLUSTER.to_owned(),
        load_balancing: LoadBalancingAlgorithms::LeastLoaded as i32,
        load_metric: Some(LoadMetric::ConnectionTime as i32),
        ..Default::default()
    };
    let b = Balancer::for_cluster(&cluster).unwrap();
    assert_eq!(b.policy(), Policy::LeastLoaded(LoadMetric::ConnectionTime));
    assert_eq!(b.cluster_id(), CLUSTER);

    let maglev = Cluster {
        load_balancing: LoadBalancingAlgorithms::Maglev as i32,
        ..cluster.clone()
    };
    assert!(matches!(
        Balancer::for_cluster(&maglev),
        Err(BalancerError::UnsupportedAlgorithm {
            algorithm: "MAGLEV",
            ..
        })
    ));
    let unknown = Cluster {
        load_balancing: 40,
        ..cluster.clone()
    };
    assert_eq!(
        Balancer::for_cluster(&unknown).unwrap_err().to_string(),
        "cluster app: unknown load balancing algorithm 40"
    );
    let unknown_metric = Cluster {
        load_metric: Some(9),
        ..cluster
    };
    assert!(Balancer::for_cluster(&unknown_metric).is_err());
}

#[test]
fn backups_only_when_no_primary_can_be_tried() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::RoundRobin, None);
    let p1 = add(&mut b, "p1", 1);
    let p2 = add(&mut b, "p2", 2);
    let backup = add_with(&mut b, |r| r.backup = Some(true), "backup", 3);
    let counts = tally(&mut b, now, 100);
    assert!(!counts.contains_key("backup"), "{counts:?}");

    // One primary unhealthy, the other waiting out a failure.
    b.set_health(&p1, Health::Unhealthy);
    assert_eq!(chosen(&mut b, now).as_deref(), Some("p2"));
    b.connect_failed(&p2, now);
    assert_eq!(chosen(&mut b, now).as_deref(), Some("backup"));
    // Once p2's wait is over, it is a candidate again.
    assert_eq!(
        chosen(&mut b, now + Duration::from_secs(1)).as_deref(),
        Some("p2")
    );

    // An unhealthy backup is no better than an unhealthy primary:
    // fail-open over every backend not waiting.
    b.set_health(&backup, Health::Unhealthy);
    let counts = tally(&mut b, now, 100);
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(
        counts.contains_key("p1") && counts.contains_key("backup"),
        "{counts:?}"
    );
    assert!(!counts.contains_key("p2"));
}

#[test]
fn fail_open_when_everything_is_unhealthy() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::RoundRobin, None);
    let a = add(&mut b, "a", 1);
    let c = add(&mut b, "c", 2);
    let backup = add_with(&mut b, |r| r.backup = Some(true), "backup", 3);
    for backend in [&a, &c, &backup] {
        b.set_health(backend, Health::Unhealthy);
    }
    let counts = tally(&mut b, now, 300);
    assert_eq!(counts.len(), 3, "{counts:?}");
    // Waiting beats fail-open: nothing waiting is ever tried.
    for backend in [&a, &c, &backup] {
        b.connect_failed(backend, now);
    }
    assert_eq!(chosen(&mut b, now), None);
    assert_eq!(b.available(now), 0);
    assert_eq!(b.available(now + Duration::from_secs(1)), 3);
}

#[test]
fn empty_cluster_chooses_nothing() {
    let mut b = Balancer::with_seed(CLUSTER, 1);
    assert!(b.is_empty());
    assert!(b.choose(Instant::now(), Some("a"), &[]).is_none());
}

#[test]
fn sticky_value_picks_its_backend_when_it_is_a_candidate() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::RoundRobin, None);
    let a = add_with(
        &mut b,
        |r| r.sticky_id = Some("sticky-a".to_owned()),
        "a",
        1,
    );
    let c = add(&mut b, "c", 2);
    let backup = add_with(&mut b, |r| r.backup = Some(true), "backup", 3);
    assert_eq!(&*a.settings().sticky_value, "sticky-a");
    // Without sticky_id, the backend id is the sticky value.
    assert_eq!(&*c.settings().sticky_value, "c");

    for _ in 0..5 {
        assert_eq!(b.choose(now, Some("sticky-a"), &[]).unwrap().id(), "a");
        assert_eq!(b.choose(now, Some("c"), &[]).unwrap().id(), "c");
    }
    // The backend id is not the sticky value when sticky_id is set.
    let counts: Vec<_> = (0..4)
        .map(|_| b.choose(now, Some("a"), &[]).unwrap().id().to_owned())
        .collect();
    assert!(counts.contains(&"c".to_owned()));

    // Unknown value: normal balancing.
    let picks: Vec<_> = (0..4)
        .map(|_| b.choose(now, Some("gone"), &[]).unwrap().id().to_owned())
        .collect();
    assert!(picks.contains(&"a".to_owned()) && picks.contains(&"c".to_owned()));

    // Not a candidate (unhealthy while c is fine): fallback.
    b.set_health(&a, Health::Unhealthy);
    assert_eq!(b.choose(now, Some("sticky-a"), &[]).unwrap().id(), "c");
    // Waiting: fallback.
    b.set_health(&a, Health::Healthy);
    b.connect_failed(&a, now);
    assert_eq!(b.choose(now, Some("sticky-a"), &[]).unwrap().id(), "c");
    // Excluded by the request: fallback.
    let later = now + Duration::from_secs(1);
    assert_eq!(
        b.choose(later, Some("sticky-a"), &[Arc::clone(&a)])
            .unwrap()
            .id(),
        "c"
    );
    assert_eq!(b.choose(later, Some("sticky-a"), &[]).unwrap().id(), "a");
    // A backup is not a candidate while primaries are.
    assert_ne!(b.choose(later, Some("backup"), &[]).unwrap().id(), "backup");
    // ... and is when they are not.
    b.set_health(&a, Health::Unhealthy);
    b.set_health(&c, Health::Unhealthy);
    assert_eq!(b.choose(later, Some("backup"), &[]).unwrap().id(), "backup");
    assert!(Arc::ptr_eq(&b.choose(later, None, &[]).unwrap(), &backup));
}

#[test]
fn sticky_value_shared_by_several_addresses_balances_among_them() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::RoundRobin, None);
    add(&mut b, "web", 1);
    add(&mut b, "other", 2);
    add(&mut b, "web", 3);
    let ports: Vec<_> = (0..4)
        .map(|_| b.choose(now, Some("web"), &[]).unwrap().address().port())
        .collect();
    assert!(
        ports.contains(&1) && ports.contains(&3) && !ports.contains(&2),
        "{ports:?}"
    );
}

#[test]
fn excluded_backends_are_not_chosen() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::LeastLoaded, None);
    let a = add(&mut b, "a", 1);
    let c = add(&mut b, "c", 2);
    let backup = add_with(&mut b, |r| r.backup = Some(true), "backup", 3);
    open(&c, 3);
    assert!(Arc::ptr_eq(&b.choose(now, None, &[]).unwrap(), &a));
    assert!(Arc::ptr_eq(
        &b.choose(now, None, std::slice::from_ref(&a)).unwrap(),
        &c
    ));
    // Every primary tried: the backup.
    assert!(Arc::ptr_eq(
        &b.choose(now, None, &[a.clone(), c.clone()]).unwrap(),
        &backup
    ));
    assert!(b.choose(now, None, &[a, c, backup]).is_none());
}

#[test]
fn backoff_schedule() {
    // Over many seeds: 1 s after the first failure, then 1 to below
    // 2^(n-1) seconds after the n-th, at most 63 s once failures stop
    // counting (Sozu's ExponentialBackoffPolicy).
    let mut seen: Vec<std::collections::BTreeSet<u64>> = vec![Default::default(); 9];
    for seed in 0..300 {
        let mut b = Balancer::with_seed(CLUSTER, seed);
        let backend = add(&mut b, "a", 1);
        let mut now = Instant::now();
        for failure in 1..=8u32 {
            b.connect_failed(&backend, now);
            let status = b.status(&backend).unwrap();
            assert_eq!(status.failures, failure.min(6));
            let wait = status.retry_at.unwrap().duration_since(now);
            assert_eq!(wait.subsec_nanos(), 0, "whole seconds");
            let wait = wait.as_secs();
            let bound = 1u64 << (failure - 1).min(6);
            assert!(
                (1..bound.max(2)).contains(&wait),
                "failure {failure}: {wait}s"
            );
            if failure == 1 {
                assert_eq!(wait, 1);
            }
            seen[failure as usize].insert(wait);
            now = status.retry_at.unwrap();
        }
    }
    // The waits are random: every allowed value shows up.
    assert_eq!(seen[2].len(), 1);
    assert_eq!(seen[3].len(), 3);
    assert_eq!(seen[4].len(), 7);
    assert_eq!(*seen[6].iter().max().unwrap(), 31);
    assert_eq!(*seen[7].iter().max().unwrap(), 63);
    assert_eq!(*seen[8].iter().max().unwrap(), 63);
}

#[test]
fn failures_while_waiting_are_not_counted() {
    let now = Instant::now();
    let mut b = Balancer::with_seed(CLUSTER, 3);
    let a = add(&mut b, "a", 1);
    add(&mut b, "c", 2);
    b.connect_failed(&a, now);
    let first = b.status(&a).unwrap();
    for _ in 0..10 {
        assert!(
            b.connect_failed(&a, now + Duration::from_millis(500))
                .is_empty()
        );
    }
    assert_eq!(b.status(&a).unwrap(), first);
    assert_eq!(first.failures, 1);
    // Counted again once the wait is over.
    b.connect_failed(&a, now + Duration::from_secs(1));
    assert_eq!(b.status(&a).unwrap().failures, 2);
}

#[test]
fn down_up_no_available_recovered_sequence() {
    let mut b = Balancer::with_seed(CLUSTER, 11);
    let a = add(&mut b, "a", 1);
    let kinds =
        |events: Vec<BalancerEvent>| events.iter().map(BalancerEvent::kind).collect::<Vec<_>>();
    let mut now = Instant::now();

    // The only backend fails: nothing is left, said once.
    assert_eq!(
        kinds(b.connect_failed(&a, now)),
        [EventKind::NoAvailableBackends]
    );
    assert!(b.choose(now, None, &[]).is_none());
    for failure in 2..=8 {
        now = b.status(&a).unwrap().retry_at.unwrap();
        // Still retried after each wait, even when down.
        assert!(Arc::ptr_eq(&b.choose(now, None, &[]).unwrap(), &a));
        let events = kinds(b.connect_failed(&a, now));
        if failure == 6 {
            assert_eq!(events, [EventKind::BackendDown]);
            assert!(b.status(&a).unwrap().down);
        } else {
            assert!(events.is_empty(), "failure {failure}: {events:?}");
        }
    }
    now = b.status(&a).unwrap().retry_at.unwrap();
    let events = b.connect_succeeded(&a, now, Duration::from_millis(1));
    assert_eq!(
        kinds(events.clone()),
        [EventKind::BackendUp, EventKind::ClusterRecovered]
    );
    let status = b.status(&a).unwrap();
    assert_eq!(
        (status.failures, status.retry_at, status.down),
        (0, None, false)
    );

    // The protocol events carry the cluster and the backend.
    let up = events[0].to_event();
    assert_eq!(up.kind, EventKind::BackendUp as i32);
    assert_eq!(up.cluster_id.as_deref(), Some(CLUSTER));
    assert_eq!(up.backend_id.as_deref(), Some("a"));
    assert_eq!(up.address.unwrap().to_socket_addr(), address(1));
    let recovered = events[1].to_event();
    assert_eq!(recovered.kind, EventKind::ClusterRecovered as i32);
    assert_eq!(recovered.backend_id, None);

    // Recovered: the next outage is reported again; successes say nothing.
    assert!(
        b.connect_succeeded(&a, now, Duration::from_millis(1))
            .is_empty()
    );
    assert_eq!(
        kinds(b.connect_failed(&a, now)),
        [EventKind::NoAvailableBackends]
    );
}

#[test]
fn no_available_backends_only_when_every_backend_waits() {
    let now = Instant::now();
    let mut b = Balancer::with_seed(CLUSTER, 5);
    let a = add(&mut b, "a", 1);
    let c = add_with(&mut b, |r| r.backup = Some(true), "c", 2);
    // Unhealthy is not "nothing left": fail-open still tries it.
    b.set_health(&c, Health::Unhealthy);
    assert!(b.connect_failed(&a, now).is_empty());
    let events = b.connect_failed(&c, now);
    assert_eq!(
        events,
        [BalancerEvent::NoAvailableBackends {
            cluster_id: CLUSTER.to_owned()
        }]
    );
    // A failure of a backend that is not down does not raise BackendUp on
    // success, only the recovery.
    let events = b.connect_succeeded(&c, now + Duration::from_secs(1), Duration::ZERO);
    assert_eq!(
        events,
        [BalancerEvent::ClusterRecovered {
            cluster_id: CLUSTER.to_owned()
        }]
    );
}

#[test]
fn removed_backend_keeps_working_through_its_handle() {
    let now = Instant::now();
    let mut b = balancer(LoadBalancingAlgorithms::RoundRobin, None);
    let a = add(&mut b, "a", 1);
    add(&mut b, "c", 2);
    a.connection_opened();
    a.connection_opened();
    a.request_started();

    let removed = b.remove_backend("a", address(1)).unwrap();
    assert!(Arc::ptr_eq(&removed, &a));
    assert!(a.is_removed());
    assert!(b.remove_backend("a", address(1)).is_none());
    assert_eq!(b.len(), 1);
    assert!(b.backend("a", address(1)).is_none());
    // Never chosen again, even by its sticky value.
    for _ in 0..10 {
        assert_eq!(b.choose(now, Some("a"), &[]).unwrap().id(), "c");
    }
    // Reports about it are harmless.
    assert!(b.connect_failed(&a, now).is_empty());
    assert!(b.connect_succeeded(&a, now, Duration::ZERO).is_empty());
    assert!(!b.set_health(&a, Health::Healthy));
    assert!(b.status(&a).is_none());
    // Its counters still count, and its last connection says it drained.
    assert_eq!(
        (a.address(), a.id(), a.cluster_id()),
        (address(1), "a", CLUSTER)
    );
    assert_eq!(a.drained_event(), None);
    a.request_finished();
    assert_eq!(a.requests(), 0);
    assert_eq!(a.connection_closed(), None);
    assert_eq!(
        a.connection_closed(),
        Some(BalancerEvent::RemovedBackendHasNoConnections {
            cluster_id: CLUSTER.to_owned(),
            backend_id: "a".to_owned(),
            address: address(1),
        })
    );
    // Once only, and counters never go below zero.
    assert_eq!(a.drained_event(), None);
    assert_eq!(a.connection_closed(), None);
    assert_eq!(a.connections(), 0);

    // Removed while idle: drained at once.
    let idle = b.remove_backend("c", address(2)).unwrap();
    assert_eq!(
        idle.drained_event().map(|event| event.kind()),
        Some(EventKind::RemovedBackendHasNoConnections)
    );
    assert!(b.choose(now, None, &[]).is_none());
}

#[test]
fn readding_after_removal_makes_a_new_backend() {
    let mut b = Balancer::with_seed(CLUSTER, 1);
    let old = add(&mut b, "a", 1);
    old.connection_opened();
    b.remove_backend("a", address(1));
    let new = add(&mut b, "a", 1);
    assert!(!Arc::ptr_eq(&old, &new));
    assert_eq!(new.connections(), 0);
    // Reports on the old handle do not touch the new backend.
    b.connect_failed(&old, Instant::now());
    assert_eq!(b.status(&new).unwrap().failures, 0);
}

#[test]
fn same_id_and_address_updates_in_place() {
    let now = Instant::now();
    let mut b = Balancer::with_seed(CLUSTER, 1);
    let a = add(&mut b, "a", 1);
    a.connection_opened();
    b.connect_failed(&a, now);
    let updated = add_with(
        &mut b,
        |r| {
            r.sticky_id = Some("s".to_owned());
            r.load_balancing_parameters = Some(LoadBalancingParams { weight: 5 });
            r.backup = Some(true);
            r.unix_path = Some("/run/a.sock".to_owned());
        },
        "a",
        1,
    );
    assert!(Arc::ptr_eq(&a, &updated));
    assert_eq!(b.len(), 1);
    assert_eq!(a.connections(), 1);
    assert_eq!(b.status(&a).unwrap().failures, 1);
    assert_eq!(
        *a.settings(),
        BackendSettings {
            sticky_value: "s".to_owned(),
            weight: 5,
            backup: true,
            unix_path: Some("/run/a.sock".to_owned()),
        }
    );
    // The choice uses the new settings.
    let later = now + Duration::from_secs(1);
    assert!(Arc::ptr_eq(&b.choose(later, Some("s"), &[]).unwrap(), &a));
    // Same id, other address: another backend.
    add(&mut b, "a", 2);
    assert_eq!(b.len(), 2);
}

#[test]
fn invalid_backends_are_refused() {
    let mut b = Balancer::with_seed(CLUSTER, 1);
    let mut other_cluster = add_backend("a", 1);
    other_cluster.cluster_id = "other".to_owned();
    assert_eq!(
        b.add_backend(&other_cluster).unwrap_err().to_string(),
        "cluster app: backend a: it belongs to cluster other, not this one"
    );
    let mut negative = add_backend("a", 1);
    negative.load_balancing_parameters = Some(LoadBalancingParams { weight: -3 });
    assert!(
        b.add_backend(&negative)
            .unwrap_err()
            .to_string()
            .contains("weight -3 is negative")
    );
    let mut no_ip = add_backend("a", 1);
    no_ip.address.ip.inner = None;
    assert!(
        b.add_backend(&no_ip)
            .unwrap_err()
            .to_string()
            .contains("invalid address")
    );
    assert!(b.is_empty());
}

#[test]
fn same_seed_same_choices() {
    let now = Instant::now();
    let run = |seed| {
        let mut b = Balancer::with_seed(CLUSTER, seed);
        b.set_policy(LoadBalancingAlgorithms::Random, None).unwrap();
        for port in 1..=10 {
            add(&mut b, &format!("b{port}"), port);
        }
        (0..50)
            .map(|_| chosen(&mut b, now).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
    // The OS-seeded constructor works too.
    let mut b = Balancer::new(CLUSTER);
    add(&mut b, "a", 1);
    assert!(b.choose(now, None, &[]).is_some());
}
