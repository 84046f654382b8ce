//! Whatever text a configuration file holds, loading it never panics: it
//! either builds a `Config` or returns a `ConfigError`.

use std::path::PathBuf;

use proptest::prelude::*;
use sozu_command::config::Config;

fn fixture_dir() -> PathBuf {
    sozu_command::fixtures_dir().join("sozu-2.3")
}

fn fixture_config() -> String {
    std::fs::read_to_string(fixture_dir().join("config.toml")).unwrap()
}

/// A folder with the fixture certificate and key, so that mutated configs
/// that still name them get as far as certificate checks.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["cert.pem", "key.pem"] {
        std::fs::copy(fixture_dir().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// One edit of the text: replace, insert or delete bytes at a position.
#[derive(Clone, Debug)]
enum Edit {
    Replace(usize, String),
    Insert(usize, String),
    Delete(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Fragments that keep the text close to TOML, so edits reach the later
    // stages (keys, values, addresses, files) rather than stopping at syntax.
    let fragment = prop_oneof![
        Just(String::new()),
        Just("\"".to_owned()),
        Just("]".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999".to_owned()),
        Just("\"tcp\"".to_owned()),
        Just("\"https\"".to_owned()),
        Just("[::1]:0".to_owned()),
        Just("true".to_owned()),
        Just("{}".to_owned()),
        Just("\nfrontends = []\n".to_owned()),
        Just("\n[[listeners]]\nprotocol = \"https\"\naddress = \"127.0.0.1:28443\"\n".to_owned()),
        ".{0,8}",
    ];
    prop_oneof![
        (any::<usize>(), fragment.clone()).prop_map(|(at, text)| Edit::Replace(at, text)),
        (any::<usize>(), fragment).prop_map(|(at, text)| Edit::Insert(at, text)),
        (any::<usize>(), 1usize..40).prop_map(|(at, length)| Edit::Delete(at, length)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        let at = |position: usize| position % (bytes.len() + 1);
        match edit {
            Edit::Replace(position, fragment) => {
                let start = at(*position);
                let end = (start + fragment.len().max(1)).min(bytes.len());
                bytes.splice(start..end, fragment.bytes());
            }
            Edit::Insert(position, fragment) => {
                let start = at(*position);
                bytes.splice(start..start, fragment.bytes());
            }
            Edit::Delete(position, length) => {
                let start = at(*position);
                let end = (start + length).min(bytes.len());
                bytes.drain(start..end);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_text_never_panics(text in ".{0,400}") {
        let dir = folder();
        let _ = Config::from_toml(&text, &dir.path().join("config.toml"));
    }

    #[test]
    fn mutated_fixture_never_panics(edits in proptest::collection::vec(edit(), 1..6)) {
        let dir = folder();
        let text = apply(&fixture_config(), &edits);
        if let Ok(config) = Config::from_toml(&text, &dir.path().join("config.toml")) {
            // Whatever loads also generates requests and a worker config.
            let _ = config.requests();
            let _ = config.server_config();
        }
    }
}

#[test]
fn the_unmutated_fixture_loads() {
    let dir = folder();
    Config::from_toml(&fixture_config(), &dir.path().join("config.toml")).unwrap();
}
