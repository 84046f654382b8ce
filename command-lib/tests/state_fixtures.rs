//! The state against what Sozu itself recorded: state files written by Sozu
//! 2.3.3 and 2.1.0, and the JSON of its listing commands.

use std::path::PathBuf;

use serde_json::Value;
use sozu_command::proto::command::{
    CertificatesWithFingerprints, FrontendFilters, QueryCertificatesFilters,
    response_content::ContentType,
};
use sozu_command::state::{ConfigState, file};

fn fixture(version: &str, name: &str) -> PathBuf {
    sozu_command::fixtures_dir().join(version).join(name)
}

fn read_fixture(version: &str, name: &str) -> Vec<u8> {
    let path = fixture(version, name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&read_fixture("sozu-2.3", name)).unwrap()
}

fn load_fixture_state(version: &str) -> ConfigState {
    let mut state = ConfigState::new();
    let report = file::load(&mut state, &read_fixture(version, "state.txt"));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.applied, 18);
    state
}

/// Sorts every array so that list order does not matter.
fn without_order(value: Value) -> Value {
    match value {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.into_iter().map(without_order).collect();
            items.sort_by_key(|item| item.to_string());
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (key, without_order(value)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn saving_the_loaded_2_3_state_writes_the_same_bytes() {
    let state = load_fixture_state("sozu-2.3");
    let saved = file::to_bytes(&state);
    let expected = read_fixture("sozu-2.3", "state.txt");
    assert_eq!(
        String::from_utf8_lossy(&saved),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn save_then_load_round_trips() {
    let state = load_fixture_state("sozu-2.3");
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("state.txt");
    assert_eq!(file::save(&state, &path).unwrap(), 18);
    let mut reloaded = ConfigState::new();
    let report = file::load(&mut reloaded, &std::fs::read(&path).unwrap());
    assert!(report.errors.is_empty());
    assert_eq!(reloaded, state);
}

#[test]
fn listener_list_matches_sozu_json() {
    let state = load_fixture_state("sozu-2.3");
    let ours = serde_json::to_value(ContentType::ListenersList(state.list_listeners())).unwrap();
    assert_eq!(
        without_order(ours),
        without_order(json_fixture("listener-list.json"))
    );
}

#[test]
fn frontend_list_matches_sozu_json() {
    let state = load_fixture_state("sozu-2.3");
    let all = FrontendFilters::default();
    let ours = serde_json::to_value(ContentType::FrontendList(state.list_frontends(&all))).unwrap();
    assert_eq!(
        without_order(ours),
        without_order(json_fixture("frontend-list.json"))
    );
}

#[test]
fn certificate_list_matches_sozu_json() {
    let state = load_fixture_state("sozu-2.3");
    let certs = state.certificates(&QueryCertificatesFilters::default());
    let ours = serde_json::to_value(ContentType::CertificatesWithFingerprints(
        CertificatesWithFingerprints { certs },
    ))
    .unwrap();
    assert_eq!(ours, json_fixture("certificate-list.json"));
}

/// Removes from `newer` every object member that `older` lacks, recursively.
fn keep_members_of(newer: Value, older: &Value) -> Value {
    match (newer, older) {
        (Value::Object(newer), Value::Object(older)) => Value::Object(
            newer
                .into_iter()
                .filter_map(|(key, value)| {
                    let old_value = older.get(&key)?;
                    Some((key, keep_members_of(value, old_value)))
                })
                .collect(),
        ),
        (Value::Array(newer), Value::Array(older)) => Value::Array(
            newer
                .into_iter()
                .zip(older.iter())
                .map(|(value, old_value)| keep_members_of(value, old_value))
                .collect(),
        ),
        (newer, _) => newer,
    }
}

#[test]
fn a_2_1_state_file_loads_into_the_same_state() {
    let old = load_fixture_state("sozu-2.1");
    let new = load_fixture_state("sozu-2.3");
    let old_requests = old.generate_requests();
    let new_requests = new.generate_requests();
    assert_eq!(old_requests.len(), new_requests.len());
    // The 2.1 file lacks the members 2.1 did not know; everything both know
    // must be equal, with the same records in the same order.
    let raw_old: Vec<Value> = read_fixture("sozu-2.1", "state.txt")
        .split(|b| *b == 0)
        .filter(|r| !r.trim_ascii().is_empty())
        .map(|r| serde_json::from_slice::<Value>(r).unwrap()["content"].clone())
        .collect();
    for ((old_request, new_request), raw) in old_requests.iter().zip(&new_requests).zip(&raw_old) {
        let new_value = serde_json::to_value(new_request).unwrap();
        let old_value = serde_json::to_value(old_request).unwrap();
        assert_eq!(
            keep_members_of(new_value, raw),
            keep_members_of(old_value, raw),
            "{}",
            new_request.kind_name()
        );
    }
}

#[test]
fn the_state_file_equals_the_state_built_from_the_config() {
    let folder = tempfile::tempdir().unwrap();
    for name in ["config.toml", "cert.pem", "key.pem"] {
        std::fs::copy(fixture("sozu-2.3", name), folder.path().join(name)).unwrap();
    }
    let config = sozu_command::config::Config::load(folder.path().join("config.toml")).unwrap();
    let mut built = ConfigState::new();
    for request in config.requests() {
        if ConfigState::changes_state(&request) {
            built
                .dispatch(&request)
                .unwrap_or_else(|e| panic!("{} refused: {e}", request.kind_name()));
        }
    }
    assert_eq!(built, load_fixture_state("sozu-2.3"));
}

#[test]
fn cluster_hashes_hash_each_clusters_whole_view() {
    use prost::Message;
    use std::hash::{DefaultHasher, Hash, Hasher};

    let mut state = load_fixture_state("sozu-2.3");
    let hashes = state.cluster_hashes();
    assert_eq!(hashes.keys().collect::<Vec<_>>(), ["db", "web"]);
    for (cluster_id, hash) in &hashes {
        let information = state.cluster_information(cluster_id).unwrap();
        let mut hasher = DefaultHasher::new();
        information.encode_to_vec().hash(&mut hasher);
        assert_eq!(*hash, hasher.finish(), "{cluster_id}");
    }
    // A frontend of `web` changes: only `web`'s hash moves.
    let front = state.http_frontends.values_mut().next().unwrap();
    front.tags.insert("changed".into(), "yes".into());
    let after = state.cluster_hashes();
    assert_ne!(after["web"], hashes["web"]);
    assert_eq!(after["db"], hashes["db"]);
}
