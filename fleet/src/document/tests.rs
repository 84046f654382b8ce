use super::*;

fn write(folder: &Path, name: &str, text: &str) -> PathBuf {
    let path = folder.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const SHARED: &str = r#"
[[listeners]]
protocol = "http"
address = "127.0.0.1:18080"

[clusters.app]
protocol = "http"
frontends = [{ address = "127.0.0.1:18080", hostname = "app.example.com" }]
backends = [{ address = "127.0.0.1:9001" }]
"#;

#[test]
fn a_document_rebuilds_the_state_of_its_file_elsewhere() {
    let folder = tempfile::tempdir().unwrap();
    let fixtures = sozu_command::fixtures_dir().join("sozu-2.3");
    // The fixture configuration names certificate files next to it.
    let document = Document::read(&fixtures.join("config.toml")).unwrap();
    assert!(
        !document.files.is_empty(),
        "the fixture's certificates are carried"
    );
    assert!(document.files.keys().all(|name| name.starts_with("files/")));
    let decoded = Document::decode(&document.encode()).unwrap();
    assert_eq!(decoded, document);
    let expected = Config::load(fixtures.join("config.toml"))
        .unwrap()
        .initial_state(|_| Ok(()))
        .unwrap()
        .state;
    assert_eq!(decoded.state().unwrap(), expected);
    // Nothing of the original folder is needed any more.
    let copy = write(folder.path(), "c.toml", SHARED);
    assert!(Document::read(&copy).unwrap().files.is_empty());
}

#[test]
fn an_override_moves_addresses_and_replaces_values() {
    let folder = tempfile::tempdir().unwrap();
    let shared = Document::read(&write(folder.path(), "shared.toml", SHARED)).unwrap();
    let over = Document::read(&write(
        folder.path(),
        "node.toml",
        "[fleet.addresses]\n\"127.0.0.1:18080\" = \"127.0.0.2:18080\"\n\n[clusters.app]\nload_balancing = \"RANDOM\"\n",
    ))
    .unwrap();
    over.check_override().unwrap();
    let merged = merge(&shared, Some(&over)).unwrap();
    let state = merged.state().unwrap();
    let address: std::net::SocketAddr = "127.0.0.2:18080".parse().unwrap();
    assert!(state.http_listeners.contains_key(&address), "{merged:?}");
    assert_eq!(state.http_frontends.len(), 1);
    assert!(
        state
            .http_frontends
            .values()
            .all(|frontend| frontend.address.to_socket_addr() == address)
    );
    // The cluster kept its other settings and took the new one.
    assert!(state.clusters["app"].load_balancing != 0);
    assert_eq!(merge(&shared, None).unwrap(), shared);
}

#[test]
fn an_override_names_its_wrong_keys() {
    let folder = tempfile::tempdir().unwrap();
    for (text, expected) in [
        ("[fleet]\nnodes = 3\n", "fleet.nodes: unknown key"),
        (
            "[fleet.addresses]\n\"x\" = \"127.0.0.1:1\"\n",
            "x is not an IP:PORT",
        ),
        (
            "[fleet.addresses]\n\"127.0.0.1:1\" = 5\n",
            "expected an address string",
        ),
    ] {
        let over = Document::read(&write(folder.path(), "o.toml", text)).unwrap();
        let error = over.check_override().unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn a_bad_configuration_is_named() {
    let folder = tempfile::tempdir().unwrap();
    let path = write(
        folder.path(),
        "bad.toml",
        "[clusters.app]\nprotocol = \"gopher\"\n",
    );
    let document = Document::read(&path).unwrap();
    let error = document.state().unwrap_err().to_string();
    assert!(error.contains("bad.toml"), "{error}");
    assert!(
        Document::decode(b"not gzip")
            .unwrap_err()
            .to_string()
            .contains("gzip")
    );
}

/// The benchmark's 5,000 clusters (one frontend and two backends each, as
/// bench/make-state.py makes) fit in one etcd value once compressed.
#[test]
fn five_thousand_clusters_fit_in_one_etcd_value() {
    let mut text =
        String::from("[[listeners]]\nprotocol = \"http\"\naddress = \"127.0.0.1:8080\"\n");
    for index in 0..5000 {
        text.push_str(&format!(
            "\n[clusters.cluster-{index}]\nprotocol = \"http\"\n\
             frontends = [{{ address = \"127.0.0.1:8080\", hostname = \"cluster-{index}.example.com\" }}]\n\
             backends = [{{ address = \"127.0.{}.{}:8000\" }}, {{ address = \"127.0.{}.{}:8001\" }}]\n",
            index / 250,
            index % 250 + 1,
            index / 250,
            index % 250 + 1
        ));
    }
    let folder = tempfile::tempdir().unwrap();
    let document = Document::read(&write(folder.path(), "big.toml", &text)).unwrap();
    let encoded = document.encode();
    assert!(
        encoded.len() < crate::store::DEFAULT_MAX_CONTENT / 4,
        "{} bytes compressed from {}",
        encoded.len(),
        text.len()
    );
    assert_eq!(document.state().unwrap().clusters.len(), 5000);
}
