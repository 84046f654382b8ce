//! The real `sozu` binary against a fake daemon: the bytes it writes for the
//! commands recorded from Sozu 2.3.3's command line equal the recorded
//! bytes, and it prints and exits as promised for the recorded answers and
//! for dead, stuck and broken daemons.

use crate::harness;

use std::time::{Duration, Instant};

use harness::fake::{Behaviour, FakeDaemon, encode, frames, wire};
use harness::{Daemon, code, fixtures, sozu, stdout_json};
use serde_json::{Value, json};
use sozu_command::proto::command::{Response, request::RequestType};

/// Each recording and the command line that produced it.
const RECORDED: [(&str, &[&str]); 8] = [
    ("status", &["status"]),
    ("listener-list", &["listener", "list"]),
    (
        "cluster-add",
        &[
            "cluster",
            "add",
            "-i",
            "newapp",
            "--load-balancing-policy",
            "round_robin",
        ],
    ),
    (
        "frontend-add",
        &[
            "frontend",
            "http",
            "add",
            "-a",
            "127.0.0.1:28080",
            "--hostname",
            "new.example.com",
            "-p",
            "/x",
            "id",
            "newapp",
        ],
    ),
    (
        "backend-add",
        &[
            "backend",
            "add",
            "-i",
            "newapp",
            "--backend-id",
            "nb1",
            "-a",
            "127.0.0.1:9101",
        ],
    ),
    ("cluster-list-newapp", &["cluster", "list", "-i", "newapp"]),
    (
        "backend-add-bad",
        &[
            "backend",
            "add",
            "-i",
            "nosuchcluster",
            "--backend-id",
            "b1",
            "-a",
            "127.0.0.1:9999",
        ],
    ),
    ("events", &["events"]),
];

/// The JSON a successful recorded exchange must print: the final answer's
/// content in Sozu's shape.
fn expected_json(name: &str) -> Value {
    let answers: Vec<Response> = frames(&wire(&format!("{name}.server.bin")));
    let last = answers.last().unwrap();
    match last.content.as_ref().and_then(|c| c.content_type.as_ref()) {
        Some(content) => serde_json::to_value(content).unwrap(),
        None => json!({}),
    }
}

#[test]
fn requests_equal_the_recorded_bytes_for_every_recorded_command() {
    for (name, arguments) in RECORDED {
        for json in [false, true] {
            let daemon = FakeDaemon::start(Behaviour::Answer(wire(&format!("{name}.server.bin"))));
            let mut all = arguments.to_vec();
            if json {
                all.insert(0, "--json");
            }
            let output = daemon.sozu(&all);
            assert_eq!(
                daemon.request_bytes(),
                wire(&format!("{name}.client.bin")),
                "{name}: the request bytes differ from Sozu's"
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            match name {
                "backend-add-bad" => {
                    assert_eq!(code(&output), 1, "{name}: {stderr}");
                    if json {
                        let error = stdout_json(&output);
                        assert_eq!(error["error"]["kind"], "failure");
                        let message = error["error"]["message"].as_str().unwrap();
                        assert!(message.contains("does not exist"), "{message}");
                    } else {
                        assert!(stderr.contains("does not exist"), "{stderr}");
                    }
                }
                // The fake daemon closes the stream after the first event.
                "events" => {
                    assert_eq!(code(&output), 5, "{name}: {stderr}");
                    let stdout = String::from_utf8_lossy(&output.stdout);
                    let first = stdout.lines().next().unwrap_or_default();
                    if json {
                        let event: Value = serde_json::from_str(first).unwrap();
                        assert_eq!(event["EVENT"]["kind"], 26);
                        assert_eq!(event["worker"], "main");
                        let error: Value =
                            serde_json::from_str(stdout.lines().nth(1).unwrap()).unwrap();
                        assert_eq!(error["error"]["kind"], "io");
                    } else {
                        assert_eq!(first, "main: EVENTS_SUBSCRIBED");
                    }
                }
                _ => {
                    assert_eq!(code(&output), 0, "{name}: {stderr}");
                    if json {
                        assert_eq!(stdout_json(&output), expected_json(name), "{name}");
                    } else {
                        assert!(!output.stdout.is_empty(), "{name}: nothing printed");
                    }
                }
            }
        }
    }
}

#[test]
fn recorded_json_answers_match_the_sozu_json_fixtures() {
    // `status.json` was printed by Sozu's own `--json` for a daemon like the
    // one recorded in `status.server.bin`: same shape, other pids.
    let daemon = FakeDaemon::start(Behaviour::Answer(wire("status.server.bin")));
    let ours = stdout_json(&daemon.sozu(&["status", "-j"]));
    let theirs: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("status.json")).unwrap())
            .unwrap();
    let shape = |value: &Value| {
        let mut workers: Vec<(u64, u64)> = value["WORKERS"]["vec"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| (w["id"].as_u64().unwrap(), w["run_state"].as_u64().unwrap()))
            .collect();
        workers.sort();
        workers
    };
    assert_eq!(shape(&ours), shape(&theirs));
    let daemon = FakeDaemon::start(Behaviour::Answer(wire("listener-list.server.bin")));
    let ours = stdout_json(&daemon.sozu(&["listener", "list", "--json"]));
    let theirs: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("listener-list.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(ours, theirs);
}

#[test]
fn json_documents_are_byte_for_byte_sozus() {
    // Fields in their declaration order, Sozu's indentation: the very text
    // Sozu's command line printed for the same answer.
    let daemon = FakeDaemon::start(Behaviour::Answer(wire("listener-list.server.bin")));
    let output = daemon.sozu(&["--json", "listener", "list"]);
    let ours = String::from_utf8(output.stdout).unwrap();
    let theirs = std::fs::read_to_string(fixtures().join("listener-list.json")).unwrap();
    assert_eq!(ours.trim_end(), theirs.trim_end());
}

#[test]
fn a_missing_daemon_is_a_connect_error() {
    let folder = tempfile::tempdir().unwrap();
    let output = sozu(
        folder.path(),
        &["--socket", "/nonexistent/sozu.sock", "status", "-j"],
    );
    assert_eq!(code(&output), 3);
    let error = stdout_json(&output);
    assert_eq!(error["error"]["kind"], "connect");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/sozu.sock")
    );
    // Without a socket or configuration, every default place is named.
    let output = sozu(folder.path(), &["status"]);
    assert_eq!(code(&output), 3);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("./sozu.sock") && stderr.contains("/run/sozu/sozu.sock"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_silent_daemon_is_a_timeout() {
    let daemon = FakeDaemon::start(Behaviour::Silent(Duration::from_secs(10)));
    let started = Instant::now();
    let output = daemon.sozu(&["-t", "300", "status", "--json"]);
    assert_eq!(code(&output), 4);
    assert_eq!(stdout_json(&output)["error"]["kind"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn progress_answers_restart_the_wait_and_zero_waits_forever() {
    let processing = encode(&Response::processing("working"));
    let done = encode(&Response::ok("done", None));
    // Five progress answers 150 ms apart, then the final one: 900 ms in all,
    // never more than 150 ms between answers.
    let mut chunks: Vec<(Duration, Vec<u8>)> = (0..5)
        .map(|_| (Duration::from_millis(150), processing.clone()))
        .collect();
    chunks.push((Duration::from_millis(150), done.clone()));
    let daemon = FakeDaemon::start(Behaviour::Paced(chunks));
    let output = daemon.sozu(&["-t", "400", "status", "--json"]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(stdout_json(&output), json!({}));

    // One slow answer: over the default 1000 ms, fine with -t 0.
    let slow = vec![(Duration::from_millis(1500), done.clone())];
    let daemon = FakeDaemon::start(Behaviour::Paced(slow.clone()));
    assert_eq!(code(&daemon.sozu(&["status"])), 4);
    let daemon = FakeDaemon::start(Behaviour::Paced(slow));
    assert_eq!(code(&daemon.sozu(&["-t", "0", "status"])), 0);
}

#[test]
fn garbage_and_hang_ups_are_protocol_and_io_errors() {
    let daemon = FakeDaemon::start(Behaviour::Answer(
        b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
    ));
    let output = daemon.sozu(&["status", "--json"]);
    assert_eq!(code(&output), 5);
    assert_eq!(stdout_json(&output)["error"]["kind"], "protocol");

    // A well-framed payload that is not a Response.
    let mut frame = 12u64.to_le_bytes().to_vec();
    frame.extend([0xff, 0xff, 0xff, 0xff]);
    let daemon = FakeDaemon::start(Behaviour::Answer(frame));
    let output = daemon.sozu(&["status", "--json"]);
    assert_eq!(code(&output), 5);
    assert_eq!(stdout_json(&output)["error"]["kind"], "protocol");

    let daemon = FakeDaemon::start(Behaviour::Answer(Vec::new()));
    let output = daemon.sozu(&["status", "--json"]);
    assert_eq!(code(&output), 5);
    assert_eq!(stdout_json(&output)["error"]["kind"], "io");
}

#[test]
fn usage_errors_send_nothing() {
    let cases: [&[&str]; 5] = [
        &[
            "backend",
            "add",
            "-i",
            "c",
            "--backend-id",
            "b",
            "-a",
            "not-an-address",
        ],
        &[
            "cluster",
            "add",
            "-i",
            "c",
            "--load-balancing-policy",
            "fastest",
        ],
        &["nosuchcommand"],
        &[
            "certificate",
            "add",
            "-a",
            "127.0.0.1:443",
            "--certificate",
            "/nonexistent.pem",
            "--certificate-chain",
            "/nonexistent.pem",
            "--key",
            "/nonexistent.pem",
        ],
        &[
            "frontend",
            "http",
            "add",
            "-a",
            "127.0.0.1:80",
            "--hostname",
            "x",
            "--tags",
            "k",
            "deny",
        ],
    ];
    for arguments in cases {
        let daemon = FakeDaemon::start(Behaviour::Answer(encode(&Response::ok("", None))));
        let mut all = vec!["--json"];
        all.extend_from_slice(arguments);
        let output = daemon.sozu(&all);
        assert_eq!(code(&output), 2, "{arguments:?}");
        let error = stdout_json(&output);
        assert_eq!(error["error"]["kind"], "usage", "{arguments:?}");
        assert!(!daemon.got_request(), "{arguments:?} sent a request");
    }
    // Without --json, clap's own message goes to stderr and stdout stays empty.
    let folder = tempfile::tempdir().unwrap();
    let output = sozu(folder.path(), &["backend", "add", "-a", "x"]);
    assert_eq!(code(&output), 2);
    assert!(output.stdout.is_empty());
}

#[test]
fn bad_certificate_files_name_their_flag() {
    let folder = tempfile::tempdir().unwrap();
    let cert = fixtures().join("cert.pem");
    let key = fixtures().join("key.pem");
    let output = sozu(
        folder.path(),
        &[
            "--socket",
            "/nonexistent",
            "--json",
            "certificate",
            "add",
            "-a",
            "127.0.0.1:443",
            "--certificate",
            cert.to_str().unwrap(),
            "--certificate-chain",
            cert.to_str().unwrap(),
            "--key",
            cert.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&output), 2);
    let message = stdout_json(&output)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.starts_with("--key: "), "{message}");
    // With a readable pair it gets as far as connecting.
    let output = sozu(
        folder.path(),
        &[
            "--socket",
            "/nonexistent",
            "--json",
            "certificate",
            "add",
            "-a",
            "127.0.0.1:443",
            "--certificate",
            cert.to_str().unwrap(),
            "--certificate-chain",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&output), 3);
}

#[test]
fn state_paths_are_made_absolute_against_the_working_directory() {
    let ok = encode(&Response::ok("saved", None));
    let daemon = FakeDaemon::start(Behaviour::Answer(ok.clone()));
    let output = daemon.sozu(&["state", "save", "-f", "saved.state"]);
    assert_eq!(code(&output), 0);
    let expected = daemon.folder.path().join("saved.state");
    assert_eq!(
        daemon.request().request_type,
        Some(RequestType::SaveState(
            expected.to_str().unwrap().to_owned()
        ))
    );

    let daemon = FakeDaemon::start(Behaviour::Answer(ok));
    std::fs::copy(
        fixtures().join("state.txt"),
        daemon.folder.path().join("in.state"),
    )
    .unwrap();
    let output = daemon.sozu(&["state", "load", "-f", "in.state", "--json"]);
    assert_eq!(code(&output), 0);
    let expected = daemon.folder.path().join("in.state");
    assert_eq!(
        daemon.request().request_type,
        Some(RequestType::LoadState(
            expected.to_str().unwrap().to_owned()
        ))
    );
    // A file that does not exist is refused before sending.
    let daemon = FakeDaemon::start(Behaviour::Answer(Vec::new()));
    let output = daemon.sozu(&["state", "load", "-f", "missing.state"]);
    assert_eq!(code(&output), 2);
    assert!(!daemon.got_request());
}

#[test]
fn configuration_gives_socket_and_timeout() {
    let daemon = Daemon::prepare_fixture();
    // No daemon: the error names the configured socket.
    let output = daemon.sozu(&["status", "--json"]);
    assert_eq!(code(&output), 3);
    let message = stdout_json(&output)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains(daemon.socket.to_str().unwrap()),
        "{message}"
    );

    // `config check` loads everything and lists the requests.
    let output = daemon.sozu(&["config", "check", "--json"]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let report = stdout_json(&output);
    assert_eq!(report["valid"], true);
    assert!(report["requests"].as_array().unwrap().len() > 10);
    std::fs::write(daemon.path().join("bad.toml"), "worker_count = [").unwrap();
    let output = sozu(daemon.path(), &["-c", "bad.toml", "config", "check"]);
    assert_eq!(code(&output), 2);
    let output = sozu(daemon.path(), &["config", "check", "-j"]);
    assert_eq!(code(&output), 2);
}

#[test]
fn completions_man_and_top() {
    let folder = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let output = sozu(folder.path(), &["completions", shell]);
        assert_eq!(code(&output), 0);
        assert!(String::from_utf8_lossy(&output.stdout).contains("sozu"));
    }
    let output = sozu(folder.path(), &["man"]);
    assert_eq!(code(&output), 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains(".TH"));
    let output = sozu(folder.path(), &["top"]);
    assert_eq!(code(&output), 2);
}
