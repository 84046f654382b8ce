//! `apply` and `diff` with the real binary against a small in-test daemon
//! that keeps a `ConfigState` and answers the listing requests from it, as
//! Sozu's main process does: the live state is rebuilt, the plan is sent
//! step by step, and a second apply sends nothing.

use crate::harness;

use std::path::Path;
use std::sync::{Arc, Mutex};

use harness::{Daemon, code, stdout_json};
use serde_json::Value;
use sozu_command::config::Config;
use sozu_command::proto::command::{
    CertificateSummary, CertificatesByAddress, CertificatesWithFingerprints, ClusterHashes,
    ClusterInformations, ListOfCertificatesByAddress, Request, Response, WorkerResponses,
    request::RequestType, response_content::ContentType,
};
use sozu_command::state::ConfigState;

/// Answers one request from the state, as the main process would.
fn answer(state: &mut ConfigState, request: &Request) -> Response {
    let per_worker = |content: ContentType| {
        ContentType::WorkerResponses(WorkerResponses {
            map: [
                ("main".to_owned(), content.clone().into()),
                ("0".to_owned(), content.into()),
            ]
            .into_iter()
            .collect(),
        })
    };
    let content = match &request.request_type {
        Some(RequestType::ListListeners(_)) => ContentType::ListenersList(state.list_listeners()),
        Some(RequestType::ListFrontends(filters)) => {
            ContentType::FrontendList(state.list_frontends(filters))
        }
        Some(RequestType::QueryClustersHashes(_)) => {
            per_worker(ContentType::ClusterHashes(ClusterHashes {
                map: state.cluster_hashes(),
            }))
        }
        Some(RequestType::QueryClusterById(id)) => {
            per_worker(ContentType::Clusters(ClusterInformations {
                vec: state.cluster_information(id).into_iter().collect(),
            }))
        }
        Some(RequestType::QueryCertificatesFromTheState(filters)) => {
            ContentType::CertificatesWithFingerprints(CertificatesWithFingerprints {
                certs: state.certificates(filters),
            })
        }
        Some(RequestType::QueryCertificatesFromWorkers(_)) => per_worker(
            ContentType::CertificatesByAddress(ListOfCertificatesByAddress {
                certificates: state
                    .certificates
                    .iter()
                    .map(|(address, by_fingerprint)| CertificatesByAddress {
                        address: (*address).into(),
                        certificate_summaries: by_fingerprint
                            .iter()
                            .map(|(fingerprint, certificate)| CertificateSummary {
                                domain: certificate.names.join(","),
                                fingerprint: fingerprint.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            }),
        ),
        _ => {
            return match state.dispatch(request) {
                Ok(()) => Response::ok("applied", None),
                Err(error) => Response::failure(error.to_string()),
            };
        }
    };
    Response::ok("", Some(content))
}

/// A daemon on `socket` serving `state` until the test ends.
fn serve(socket: &Path, state: Arc<Mutex<ConfigState>>) {
    harness::fake::serve(socket, move |request| {
        vec![answer(&mut state.lock().unwrap(), request)]
    });
}

fn state_of(config: &Path) -> ConfigState {
    let mut state = ConfigState::new();
    for request in Config::load(config).unwrap().requests() {
        if ConfigState::changes_state(&request) {
            state.dispatch(&request).unwrap();
        }
    }
    state
}

fn plan_size(value: &Value) -> u64 {
    ["add", "change", "remove"]
        .iter()
        .map(|key| value["summary"][key].as_u64().unwrap())
        .sum()
}

#[test]
fn apply_converges_and_is_idempotent() {
    let daemon = Daemon::prepare_fixture();
    let state = Arc::new(Mutex::new(state_of(&daemon.config)));
    serve(&daemon.socket, Arc::clone(&state));
    let run = |arguments: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(arguments);
        daemon.sozu(&all)
    };
    let config_file = daemon.config.to_str().unwrap();

    // The daemon runs this very file: nothing to do.
    let output = run(&["diff", "-f", config_file]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        plan_size(&stdout_json(&output)),
        0,
        "{}",
        stdout_json(&output)
    );

    // A new cluster with a frontend and a backend: three additions, sent.
    let desired = daemon.path().join("desired.toml");
    let http_port = {
        let text = std::fs::read_to_string(&daemon.config).unwrap();
        let start = text.find("address = \"127.0.0.1:").unwrap() + "address = \"127.0.0.1:".len();
        text[start..start + 5].to_owned()
    };
    let mut text = std::fs::read_to_string(&daemon.config).unwrap();
    text.push_str(&format!(
        "\n[clusters.extra]\nprotocol = \"http\"\nfrontends = [ {{ address = \"127.0.0.1:{http_port}\", hostname = \"extra.example.com\" }} ]\nbackends = [ {{ address = \"127.0.0.1:9201\" }} ]\n"
    ));
    text = text.replace("weight = 50", "weight = 60");
    std::fs::write(&desired, &text).unwrap();
    let desired = desired.to_str().unwrap();

    let dry = stdout_json(&run(&["apply", "--dry-run", "-f", desired]));
    assert_eq!(plan_size(&dry), 4, "{dry}");
    assert_eq!(dry["applied"], 0);
    assert!(!state.lock().unwrap().clusters.contains_key("extra"));

    let output = run(&["apply", "-f", desired]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let applied = stdout_json(&output);
    assert_eq!(applied["applied"], 4, "{applied}");
    assert_eq!(*state.lock().unwrap(), state_of(Path::new(desired)));

    let again = stdout_json(&run(&["apply", "-f", desired]));
    assert_eq!(plan_size(&again), 0, "{again}");

    // Back to the original file: without --prune the extra cluster stays,
    // only the changed weight goes back.
    let back = stdout_json(&run(&["apply", "-f", config_file]));
    assert_eq!(plan_size(&back), 1, "{back}");
    assert!(back["summary"]["kept"].as_u64().unwrap() >= 1, "{back}");
    assert!(state.lock().unwrap().clusters.contains_key("extra"));
    let pruned = stdout_json(&run(&["apply", "--prune", "-f", config_file]));
    assert!(plan_size(&pruned) >= 1, "{pruned}");
    assert_eq!(*state.lock().unwrap(), state_of(&daemon.config));

    // A desired file that does not load is a usage error.
    let output = daemon.sozu(&["apply", "-f", "/nonexistent.toml"]);
    assert_eq!(code(&output), 2);
}

#[test]
fn human_plans_are_tables() {
    let daemon = Daemon::prepare_fixture();
    let state = Arc::new(Mutex::new(ConfigState::new()));
    serve(&daemon.socket, state);
    let output = daemon.sozu(&["diff", "-f", daemon.config.to_str().unwrap()]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("plan: "), "{text}");
    assert!(text.contains("cluster web") && text.contains("┌"), "{text}");
}
