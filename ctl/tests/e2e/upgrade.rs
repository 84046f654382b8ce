//! Zero-downtime upgrades under steady traffic.

use crate::harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use harness::backend::Backend;
use harness::{Daemon, basic_config, client, free_port, local};
use sozu_command::proto::command::{
    AddBackend, Cluster, PathRule, RequestHttpFrontend, ResponseStatus, RulePosition,
    request::RequestType, response_content::ContentType,
};

/// The wall clock in milliseconds, to place a failure among the upgrade's
/// steps in a failure message.
fn millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Sends requests on fresh connections until told to stop; counts them and
/// the ones that failed in any way (refused, reset, not a 200).
fn steady_traffic(
    port: u16,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut failures = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            sent.fetch_add(1, Ordering::SeqCst);
            let request = b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";
            match client::raw(port, request) {
                Ok(bytes) => match client::parse(&bytes) {
                    Some(answer) if answer.status == 200 => {}
                    other => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        failures.push(format!("{other:?} at {}", millis()));
                    }
                },
                Err(error) => {
                    failed.fetch_add(1, Ordering::SeqCst);
                    failures.push(format!("{error} at {}", millis()));
                }
            }
        }
        failures
    })
}

#[test]
fn workers_and_main_upgrade_without_a_failed_connection() {
    let port = free_port();
    let daemon = Daemon::start(&basic_config(port, ""));
    let backend = Backend::start("up");
    daemon.ok(RequestType::AddCluster(Cluster {
        cluster_id: "app".into(),
        ..Default::default()
    }));
    daemon.ok(RequestType::AddHttpFrontend(RequestHttpFrontend {
        cluster_id: Some("app".into()),
        address: local(port),
        hostname: "app.test".into(),
        path: PathRule::default(),
        position: RulePosition::Tree as i32,
        ..Default::default()
    }));
    daemon.ok(RequestType::AddBackend(AddBackend {
        cluster_id: "app".into(),
        backend_id: "up".into(),
        address: backend.address.into(),
        ..Default::default()
    }));
    let main_pid = daemon.child.as_ref().unwrap().id() as i32;
    let before = daemon.worker_pids();

    let (stop, sent, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let traffic: Vec<_> = (0..4)
        .map(|_| steady_traffic(port, stop.clone(), sent.clone(), failed.clone()))
        .collect();
    harness::wait_until(Duration::from_secs(10), || sent.load(Ordering::SeqCst) > 50);

    for id in 0..2u32 {
        eprintln!("upgrade of worker {id} asked at {}", millis());
        let (progress, answer) = daemon.exchange(RequestType::UpgradeWorker(id));
        eprintln!("upgrade of worker {id} answered at {}", millis());
        assert_eq!(
            answer.status,
            ResponseStatus::Ok as i32,
            "worker {id}: {}",
            answer.message
        );
        assert!(!progress.is_empty());
        let at = sent.load(Ordering::SeqCst);
        harness::wait_until(Duration::from_secs(10), || {
            sent.load(Ordering::SeqCst) > at + 50
        });
    }
    let after_workers = daemon.worker_pids();
    assert_eq!(after_workers.len(), 2);
    for pid in &before {
        assert!(
            !after_workers.contains(pid),
            "worker {pid} was not replaced"
        );
    }

    eprintln!("upgrade of the main process asked at {}", millis());
    let (_, answer) = daemon.exchange(RequestType::UpgradeMain(Default::default()));
    eprintln!("upgrade of the main process answered at {}", millis());
    assert_eq!(
        answer.status,
        ResponseStatus::Ok as i32,
        "{}",
        answer.message
    );
    assert!(
        answer.message.contains(&main_pid.to_string()),
        "{}",
        answer.message
    );
    let at = sent.load(Ordering::SeqCst);
    harness::wait_until(Duration::from_secs(10), || {
        sent.load(Ordering::SeqCst) > at + 50
    });

    stop.store(true, Ordering::SeqCst);
    let failures: Vec<String> = traffic
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}\ndaemon log:\n{}",
        failures.len(),
        sent.load(Ordering::SeqCst),
        &failures[..failures.len().min(5)],
        daemon.stderr_text()
    );
    assert!(sent.load(Ordering::SeqCst) > 150);

    // The upgraded main process still knows everything and still commands
    // the same workers.
    assert_eq!(daemon.worker_pids(), after_workers);
    let answer = daemon.ok(RequestType::QueryClusterById("app".into()));
    let Some(ContentType::WorkerResponses(responses)) = answer.content.and_then(|c| c.content_type)
    else {
        panic!()
    };
    assert_eq!(responses.map.len(), 3);
    for content in responses.map.values() {
        let Some(ContentType::Clusters(clusters)) = &content.content_type else {
            panic!()
        };
        assert_eq!(clusters.vec[0].backends.len(), 1);
    }
    daemon.ok(RequestType::AddCluster(Cluster {
        cluster_id: "after".into(),
        ..Default::default()
    }));
    assert_eq!(daemon.child.as_ref().unwrap().id() as i32, main_pid);
}
