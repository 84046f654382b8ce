//! Every `--json` output Sozu recorded deserializes into our types and
//! serializes back to the same JSON value: our serde shape is Sozu's.

use std::path::PathBuf;

use serde_json::Value;
use sozu_command::proto::command::response_content::ContentType;

fn fixtures(version: &str) -> Vec<PathBuf> {
    let folder = sozu_command::fixtures_dir().join(version);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_2_3_json_fixture_round_trips() {
    let files = fixtures("sozu-2.3");
    assert!(files.len() >= 8, "{files:?}");
    for path in files {
        let recorded: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let content: ContentType = serde_json::from_value(recorded.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let again = serde_json::to_value(&content).unwrap();
        assert_eq!(again, recorded, "{}", path.display());
    }
}

/// Removes `null` members, which the 2.1 files lack and ours write.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| (key, without_nulls(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Keeps in `ours` only the members `recorded` has (2.1 knew fewer fields).
fn only_known(ours: Value, recorded: &Value) -> Value {
    match (ours, recorded) {
        (Value::Object(map), Value::Object(known)) => Value::Object(
            map.into_iter()
                .filter_map(|(key, value)| {
                    let known_value = known.get(&key)?;
                    Some((key, only_known(value, known_value)))
                })
                .collect(),
        ),
        (Value::Array(items), Value::Array(known)) => Value::Array(
            items
                .into_iter()
                .zip(known)
                .map(|(value, known_value)| only_known(value, known_value))
                .collect(),
        ),
        (value, _) => value,
    }
}

#[test]
fn every_2_1_json_fixture_reads_and_keeps_what_it_says() {
    let files = fixtures("sozu-2.1");
    assert!(files.len() >= 6, "{files:?}");
    for path in files {
        let recorded: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let content: ContentType = serde_json::from_value(recorded.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let again = only_known(serde_json::to_value(&content).unwrap(), &recorded);
        assert_eq!(
            without_nulls(again),
            without_nulls(recorded),
            "{}",
            path.display()
        );
    }
}
