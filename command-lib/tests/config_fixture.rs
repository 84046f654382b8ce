//! The strongest compatibility check of the configuration module: the
//! requests generated from the Sozu 2.3.3 fixture configuration must be,
//! as a multiset, exactly the records Sozu 2.3.3 saved for it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use sozu_command::config::{Config, FrontendConfig, ListenerConfig};
use sozu_command::proto::command::{Request, WorkerRequest, request::RequestType};

fn fixture_dir() -> PathBuf {
    sozu_command::fixtures_dir().join("sozu-2.3")
}

/// The fixture config with its certificate and key, copied to a temporary
/// folder (the config names them relative to its own folder).
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.toml", "cert.pem", "key.pem"] {
        std::fs::copy(fixture_dir().join(name), dir.path().join(name)).unwrap();
    }
    let config = dir.path().join("config.toml");
    (dir, config)
}

/// Records of a state file: JSON `WorkerRequest`s separated by `\n\0`.
fn saved_requests() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture_dir().join("state.txt")).unwrap();
    text.split("\n\0")
        .filter(|record| !record.trim().is_empty())
        .map(|record| {
            let request: WorkerRequest = serde_json::from_str(record)
                .unwrap_or_else(|error| panic!("record {record} does not decode: {error}"));
            serde_json::to_value(&request.content).unwrap()
        })
        .collect()
}

/// What the daemon's state holds after applying `requests`, as far as the
/// shape of each record goes: an `ActivateListener` turns its listener's
/// `active` to true (Sozu saves listeners as they are after activation).
fn as_saved(requests: &[Request]) -> Vec<Value> {
    let activated: Vec<(String, i32)> = requests
        .iter()
        .filter_map(|request| match &request.request_type {
            Some(RequestType::ActivateListener(activate)) => {
                Some((activate.address.to_string(), activate.proxy))
            }
            _ => None,
        })
        .collect();
    requests
        .iter()
        .map(|request| {
            let mut request = request.clone();
            match &mut request.request_type {
                Some(RequestType::AddHttpListener(listener)) => {
                    listener.active = activated.contains(&(listener.address.to_string(), 0));
                }
                Some(RequestType::AddHttpsListener(listener)) => {
                    listener.active = activated.contains(&(listener.address.to_string(), 1));
                }
                Some(RequestType::AddTcpListener(listener)) => {
                    listener.active = activated.contains(&(listener.address.to_string(), 2));
                }
                _ => {}
            }
            serde_json::to_value(&request).unwrap()
        })
        .collect()
}

/// The variant name of a request's JSON form.
fn kind(value: &Value) -> String {
    value["request_type"]
        .as_object()
        .and_then(|object| object.keys().next().cloned())
        .unwrap_or_default()
}

/// Every path where two JSON values differ, with both sides.
fn differences(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(left), Value::Object(right)) => {
            let keys: std::collections::BTreeSet<&String> =
                left.keys().chain(right.keys()).collect();
            for key in keys {
                let missing = Value::String("<absent>".into());
                differences(
                    &format!("{path}.{key}"),
                    left.get(key).unwrap_or(&missing),
                    right.get(key).unwrap_or(&missing),
                    out,
                );
            }
        }
        (Value::Array(left), Value::Array(right)) if left.len() == right.len() => {
            for (index, (left, right)) in left.iter().zip(right).enumerate() {
                differences(&format!("{path}[{index}]"), left, right, out);
            }
        }
        _ if expected != actual => out.push(format!(
            "  {path}: Sozu saved {expected}, we generate {actual}"
        )),
        _ => {}
    }
}

/// Compares two multisets of JSON values; on a mismatch, a report that
/// pairs leftovers of the same kind and lists their differing fields.
fn multiset_diff(expected: &[Value], actual: &[Value]) -> Option<String> {
    let count = |values: &[Value]| {
        let mut counts: BTreeMap<String, (usize, Value)> = BTreeMap::new();
        for value in values {
            counts
                .entry(serde_json::to_string(value).unwrap())
                .or_insert((0, value.clone()))
                .0 += 1;
        }
        counts
    };
    let expected_counts = count(expected);
    let actual_counts = count(actual);
    let mut only_expected = Vec::new();
    let mut only_actual = Vec::new();
    for (key, (number, value)) in &expected_counts {
        let other = actual_counts.get(key).map_or(0, |entry| entry.0);
        only_expected.extend(std::iter::repeat_n(
            value.clone(),
            number.saturating_sub(other),
        ));
    }
    for (key, (number, value)) in &actual_counts {
        let other = expected_counts.get(key).map_or(0, |entry| entry.0);
        only_actual.extend(std::iter::repeat_n(
            value.clone(),
            number.saturating_sub(other),
        ));
    }
    if only_expected.is_empty() && only_actual.is_empty() {
        return None;
    }

    let mut report = format!(
        "{} saved record(s) not generated, {} generated request(s) not saved\n",
        only_expected.len(),
        only_actual.len()
    );
    for saved in &only_expected {
        let kind = kind(saved);
        let closest = only_actual
            .iter()
            .filter(|generated| self::kind(generated) == kind)
            .map(|generated| {
                let mut out = Vec::new();
                differences("", saved, generated, &mut out);
                out
            })
            .min_by_key(Vec::len);
        match closest {
            Some(fields) => {
                report.push_str(&format!(
                    "- {kind}, closest generated request differs in:\n"
                ));
                for field in fields {
                    report.push_str(&field);
                    report.push('\n');
                }
            }
            None => report.push_str(&format!(
                "- {kind} saved but nothing of that kind generated:\n{}\n",
                serde_json::to_string_pretty(saved).unwrap()
            )),
        }
    }
    for generated in &only_actual {
        let kind = kind(generated);
        if !only_expected.iter().any(|saved| self::kind(saved) == kind) {
            report.push_str(&format!(
                "+ {kind} generated but nothing of that kind saved:\n{}\n",
                serde_json::to_string_pretty(generated).unwrap()
            ));
        }
    }
    Some(report)
}

#[test]
fn fixture_config_generates_what_sozu_saved() {
    let (_dir, path) = fixture_copy();
    let config = Config::load(&path).unwrap_or_else(|error| panic!("{error}"));
    let generated = as_saved(&config.requests());
    let saved = saved_requests();
    assert_eq!(saved.len(), 18, "the fixture holds 18 records");
    if let Some(report) = multiset_diff(&saved, &generated) {
        panic!("generated requests differ from Sozu's state file:\n{report}");
    }
}

#[test]
fn fixture_requests_come_in_sozus_order() {
    let (_dir, path) = fixture_copy();
    let config = Config::load(&path).unwrap();
    let kinds: Vec<String> = config
        .requests()
        .iter()
        .map(|request| request.kind_name())
        .collect();
    assert_eq!(
        kinds,
        [
            "ADD_HTTP_LISTENER",
            "ADD_HTTPS_LISTENER",
            "ADD_TCP_LISTENER",
            // clusters by id: db, then web
            "ADD_CLUSTER",
            "ADD_TCP_FRONTEND",
            "ADD_BACKEND",
            "ADD_CLUSTER",
            "ADD_HTTP_FRONTEND",
            "ADD_HTTP_FRONTEND",
            "ADD_HTTP_FRONTEND",
            "ADD_CERTIFICATE",
            "ADD_HTTPS_FRONTEND",
            "ADD_BACKEND",
            "ADD_BACKEND",
            "ADD_BACKEND",
            "ACTIVATE_LISTENER",
            "ACTIVATE_LISTENER",
            "ACTIVATE_LISTENER",
        ]
    );
    let ids: Vec<String> = config.worker_requests().into_iter().map(|r| r.id).collect();
    assert_eq!(ids.first().map(String::as_str), Some("CONFIG-0"));
    assert_eq!(ids.last().map(String::as_str), Some("CONFIG-17"));
}

#[test]
fn fixture_top_level_settings_are_resolved() {
    let (dir, path) = fixture_copy();
    let config = Config::load(&path).unwrap();
    // Relative to the config file's folder, not to the working directory.
    assert_eq!(
        config.command_socket,
        std::path::absolute(dir.path()).unwrap().join("sozu.sock")
    );
    assert_eq!(config.worker_count, 2);
    assert_eq!(config.log_level, "error");
    assert_eq!(config.log_target, "stdout");
    assert!(config.activate_listeners);
    assert_eq!(config.command_buffer_size, 1_000_000);
    assert_eq!(config.max_command_buffer_size, 2_000_000);
    assert_eq!(config.buffer_size, 16_393);
    assert_eq!(config.max_connections, 10_000);
    assert_eq!(config.worker_timeout, 10);
    assert!(config.worker_automatic_restart);
    assert_eq!(config.ctl_command_timeout, 1_000);
    assert_eq!(config.saved_state, None);
    assert!(!config.automatic_state_save);
    assert_eq!(config.max_connection_attempts, 5);
    assert_eq!(config.command_allowed_uids, None);
    assert_eq!(config.listeners.len(), 3);
    assert!(matches!(config.listeners[1], ListenerConfig::Https(_)));

    let web = &config.clusters["web"];
    let certificate = web
        .frontends
        .iter()
        .find_map(|frontend| match frontend {
            FrontendConfig::Https { certificate, .. } => certificate.clone(),
            _ => None,
        })
        .unwrap();
    assert!(certificate.fingerprint.to_string().starts_with("a5ca0ce0"));

    let server = config.server_config();
    assert_eq!(server.log_level, "error");
    assert_eq!(server.buffer_size, 16_393);
    assert_eq!(server.max_connections, 10_000);
    assert_eq!(server.max_connection_attempts, Some(5));
}

#[test]
fn the_diff_report_names_the_differing_field() {
    let saved = serde_json::json!({"request_type": {"ADD_CLUSTER": {"cluster_id": "a", "https_redirect": true}}});
    let generated = serde_json::json!({"request_type": {"ADD_CLUSTER": {"cluster_id": "a", "https_redirect": false}}});
    assert!(multiset_diff(std::slice::from_ref(&saved), std::slice::from_ref(&saved)).is_none());
    let report = multiset_diff(&[saved.clone(), saved.clone()], &[saved, generated]).unwrap();
    assert!(
        report.contains(
            ".request_type.ADD_CLUSTER.https_redirect: Sozu saved true, we generate false"
        ),
        "{report}"
    );
}
