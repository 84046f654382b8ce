//! Multi-request commands (`upgrade`, `metrics get -r`) with the real binary
//! against a scripted daemon.

use crate::harness;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::fake::serve;
use harness::{code, sozu};
use serde_json::Value;
use sozu_command::proto::command::{
    AggregatedMetrics, Response, RunState, WorkerInfo, WorkerInfos, request::RequestType,
    response_content::ContentType,
};

fn worker(id: u32, state: RunState) -> WorkerInfo {
    WorkerInfo {
        id,
        pid: 1000 + id as i32,
        run_state: state as i32,
    }
}

#[test]
fn upgrade_replaces_running_workers_and_fails_if_one_fails() {
    let folder = tempfile::tempdir().unwrap();
    let socket = folder.path().join("sozu.sock");
    let received = serve(&socket, |request| match &request.request_type {
        Some(RequestType::UpgradeMain(_)) => vec![
            Response::processing("forking the new main process"),
            Response::ok("main process upgraded", None),
        ],
        Some(RequestType::ListWorkers(_)) => vec![Response::ok(
            "",
            Some(ContentType::Workers(WorkerInfos {
                vec: vec![
                    worker(0, RunState::Running),
                    worker(1, RunState::Running),
                    worker(2, RunState::Stopping),
                ],
            })),
        )],
        Some(RequestType::UpgradeWorker(1)) => vec![Response::failure("worker 1 did not answer")],
        Some(RequestType::UpgradeWorker(_)) => vec![Response::ok("upgraded", None)],
        _ => vec![Response::failure("unexpected")],
    });
    let socket = socket.to_str().unwrap();
    let output = sozu(folder.path(), &["--socket", socket, "--json", "upgrade"]);
    assert_eq!(
        code(&output),
        1,
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let error: Value = serde_json::from_slice(&output.stdout).unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("worker 1: worker 1 did not answer"),
        "{message}"
    );
    let kinds: Vec<RequestType> = received
        .lock()
        .unwrap()
        .iter()
        .filter_map(|request| request.request_type.clone())
        .collect();
    assert_eq!(
        kinds,
        [
            RequestType::UpgradeMain(Default::default()),
            RequestType::ListWorkers(Default::default()),
            RequestType::UpgradeWorker(0),
            RequestType::UpgradeWorker(1),
        ],
        "the stopping worker is left alone, the others are all tried"
    );

    // One worker only.
    let output = sozu(
        folder.path(),
        &["--socket", socket, "upgrade", "--worker", "0"],
    );
    assert_eq!(code(&output), 0);
}

#[test]
fn metrics_refresh_prints_one_json_document_per_line() {
    let folder = tempfile::tempdir().unwrap();
    let socket = folder.path().join("sozu.sock");
    serve(&socket, |_| {
        vec![Response::ok(
            "",
            Some(ContentType::Metrics(AggregatedMetrics::default())),
        )]
    });
    let mut child = harness::sozu_command()
        .args([
            "--socket",
            socket.to_str().unwrap(),
            "-j",
            "metrics",
            "get",
            "-r",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        let document: Value = serde_json::from_str(&line).unwrap();
        assert!(document.get("METRICS").is_some(), "{line}");
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    child.kill().ok();
    child.wait().ok();
}
