//! Every way a configuration file can be wrong gives a message that names
//! the file, the key and the problem.

use std::path::PathBuf;

use sozu_command::certificate::CertificateError;
use sozu_command::config::{Config, ConfigError};

fn fixture_dir() -> PathBuf {
    sozu_command::fixtures_dir().join("sozu-2.3")
}

/// A temporary folder holding the fixture certificate and key, and a
/// `config.toml` with `text`.
fn folder_with(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["cert.pem", "key.pem"] {
        std::fs::copy(fixture_dir().join(name), dir.path().join(name)).unwrap();
    }
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn load_error(text: &str) -> (ConfigError, String) {
    let (_dir, path) = folder_with(text);
    let error = Config::load(&path).expect_err("the configuration must be refused");
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "the message names the file: {message}"
    );
    (error, message)
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} should mention {part:?}"
        );
    }
}

const HTTPS_CLUSTER: &str = r#"
[clusters.web]
protocol = "http"
frontends = [
  { address = "127.0.0.1:8080", hostname = "a.example.com" },
  { address = "127.0.0.1:8443", hostname = "secure.example.com", certificate = "CERT", key = "KEY" },
]
backends = [ { address = "127.0.0.1:9000" } ]
"#;

fn https_cluster(certificate: &str, key: &str) -> String {
    HTTPS_CLUSTER
        .replace("CERT", certificate)
        .replace("KEY", key)
}

#[test]
fn the_config_file_itself_missing() {
    let error = Config::load("/nonexistent/sozu/config.toml").unwrap_err();
    assert!(matches!(error, ConfigError::ReadConfig { .. }));
    assert_mentions(
        &error.to_string(),
        &["/nonexistent/sozu/config.toml", "No such file"],
    );
}

#[test]
fn invalid_toml_gives_line_and_column() {
    let (error, message) = load_error("worker_count = 2\nlog_level = \n");
    assert!(
        matches!(
            error,
            ConfigError::Syntax {
                position: Some(_),
                ..
            }
        ),
        "{error:?}"
    );
    assert_mentions(&message, &["config.toml:2:", "invalid TOML"]);
}

#[test]
fn wrong_type_names_the_key_and_position() {
    let (error, message) = load_error("log_level = \"info\"\nworker_count = \"two\"\n");
    assert_eq!(error.key(), Some("worker_count"));
    assert_mentions(&message, &["config.toml:2:16", "worker_count", "string"]);
}

#[test]
fn a_typo_in_a_nested_key_is_named_with_its_path() {
    let text = r#"
[clusters.web]
protocol = "http"
frontends = [
  { address = "127.0.0.1:8080", hostname = "a.example.com" },
  { address = "127.0.0.1:8080", hostname = "b.example.com", path_typ = "REGEX" },
]
"#;
    let (error, message) = load_error(text);
    assert!(matches!(error, ConfigError::Key { .. }), "{error:?}");
    assert_mentions(
        &message,
        &["clusters.web.frontends[1]", "path_typ", "config.toml:6:"],
    );
}

#[test]
fn a_wrong_enum_value_lists_the_valid_ones() {
    let text = r#"
[clusters.web]
protocol = "http"
frontends = [
  { address = "127.0.0.1:8080", hostname = "a.example.com" },
  { address = "127.0.0.1:8080", hostname = "b.example.com", path = "/x", path_type = "GLOB" },
]
"#;
    let (error, message) = load_error(text);
    assert_eq!(error.key(), Some("clusters.web.frontends[1].path_type"));
    assert_mentions(&message, &["GLOB", "PREFIX", "REGEX", "EQUALS"]);
}

#[test]
fn unknown_top_level_keys_are_refused() {
    let (_, message) = load_error("worker_cout = 3\n");
    assert_mentions(&message, &["worker_cout", "unknown field"]);
}

#[test]
fn unknown_protocol_is_named() {
    let text = "[[listeners]]\nprotocol = \"htp\"\naddress = \"127.0.0.1:80\"\n";
    let (error, message) = load_error(text);
    assert_eq!(error.key(), Some("listeners[0].protocol"));
    assert_mentions(&message, &["htp", "http", "https", "tcp", "config.toml:2:"]);

    let text = "[clusters.a]\nprotocol = \"udp\"\n";
    let (error, message) = load_error(text);
    assert_eq!(error.key(), Some("clusters.a.protocol"));
    assert_mentions(&message, &["udp"]);
}

#[test]
fn missing_required_keys_are_named() {
    let (error, message) = load_error("[[listeners]]\naddress = \"127.0.0.1:80\"\n");
    assert_eq!(error.key(), Some("listeners[0]"));
    assert_mentions(&message, &["protocol"]);
}

#[test]
fn bad_addresses_show_the_expected_form() {
    let text = "[[listeners]]\nprotocol = \"http\"\naddress = \"127.0.0.1\"\n";
    let (error, message) = load_error(text);
    assert_eq!(error.key(), Some("listeners[0].address"));
    assert_mentions(
        &message,
        &["\"127.0.0.1\"", "127.0.0.1:8080", "config.toml:3:"],
    );

    let text = r#"
[clusters.db]
protocol = "tcp"
backends = [ { address = "127.0.0.1:5432" }, { address = "::1:5432" } ]
"#;
    let (error, message) = load_error(text);
    assert_eq!(error.key(), Some("clusters.db.backends[1].address"));
    assert_mentions(&message, &["::1:5432", "brackets"]);

    let text = r#"
[clusters.db]
protocol = "tcp"
backends = [ { address = "010.0.0.1:5432" } ]
"#;
    let (_, message) = load_error(text);
    assert_mentions(&message, &["clusters.db.backends[0].address", "010.0.0.1"]);
}

#[test]
fn a_missing_certificate_file_names_the_file_and_the_os_error() {
    let (error, message) = load_error(&https_cluster("missing.pem", "key.pem"));
    let ConfigError::File { file, key, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(key, "clusters.web.frontends[1].certificate");
    assert!(file.ends_with("missing.pem"));
    assert_mentions(&message, &["missing.pem", "No such file", key]);
}

#[test]
fn unreadable_pem_is_refused_with_the_certificate_error() {
    let (dir, path) = folder_with("");
    std::fs::write(dir.path().join("garbage.pem"), "hello").unwrap();
    std::fs::write(&path, https_cluster("garbage.pem", "key.pem")).unwrap();
    let error = Config::load(&path).unwrap_err();
    let ConfigError::Certificate { key, source, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(key, "clusters.web.frontends[1].certificate");
    assert!(matches!(source, CertificateError::NotPem { .. }));
    assert_mentions(&error.to_string(), &["garbage.pem", "not PEM"]);

    std::fs::write(dir.path().join("garbage.pem"), "hello").unwrap();
    std::fs::write(&path, https_cluster("cert.pem", "garbage.pem")).unwrap();
    let error = Config::load(&path).unwrap_err();
    assert_eq!(error.key(), Some("clusters.web.frontends[1].key"));
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let (dir, path) = folder_with("");
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("other.key"), other.serialize_pem()).unwrap();
    std::fs::write(&path, https_cluster("cert.pem", "other.key")).unwrap();
    let error = Config::load(&path).unwrap_err();
    let ConfigError::Certificate {
        key, source, file, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(key, "clusters.web.frontends[1].key");
    assert!(file.ends_with("other.key"));
    assert!(matches!(source, CertificateError::KeyMismatch));
    assert_mentions(&error.to_string(), &["does not match"]);
}

#[test]
fn a_certificate_without_key_is_refused() {
    let text = HTTPS_CLUSTER
        .replace(", key = \"KEY\"", "")
        .replace("CERT", "cert.pem");
    let (_, message) = load_error(&text);
    assert_mentions(&message, &["clusters.web.frontends[1].key", "missing"]);
}

#[test]
fn frontends_must_fit_their_listener() {
    let text = r#"
[[listeners]]
protocol = "tcp"
address = "127.0.0.1:8080"

[clusters.web]
protocol = "http"
frontends = [ { address = "127.0.0.1:8080", hostname = "a.example.com" } ]
"#;
    let (_, message) = load_error(text);
    assert_mentions(
        &message,
        &["clusters.web.frontends[0].address", "tcp listener"],
    );

    let text = r#"
[[listeners]]
protocol = "http"
address = "127.0.0.1:8080"

[clusters.web]
protocol = "http"
frontends = [ { address = "127.0.0.1:8080", hostname = "a.example.com", certificate = "cert.pem", key = "key.pem" } ]
"#;
    let (_, message) = load_error(text);
    assert_mentions(
        &message,
        &["clusters.web.frontends[0].certificate", "http listener"],
    );

    let text = r#"
[clusters.web]
protocol = "http"
frontends = [ { address = "127.0.0.1:8080" } ]
"#;
    let (_, message) = load_error(text);
    assert_mentions(&message, &["clusters.web.frontends[0].hostname"]);

    let text = r#"
[clusters.db]
protocol = "tcp"
frontends = [ { address = "127.0.0.1:8080", path = "/" } ]
"#;
    let (_, message) = load_error(text);
    assert_mentions(
        &message,
        &["clusters.db.frontends[0].path", "http clusters"],
    );
}

#[test]
fn listener_rules_are_checked() {
    let duplicate = r#"
[[listeners]]
protocol = "http"
address = "127.0.0.1:8080"
[[listeners]]
protocol = "https"
address = "127.0.0.1:8080"
"#;
    let (_, message) = load_error(duplicate);
    assert_mentions(&message, &["listeners[1].address", "already declared"]);

    let alpn = r#"
[[listeners]]
protocol = "https"
address = "127.0.0.1:8443"
alpn_protocols = ["h3"]
"#;
    let (_, message) = load_error(alpn);
    assert_mentions(&message, &["listeners[0].alpn_protocols[0]", "h3"]);

    let hsts = r#"
[[listeners]]
protocol = "http"
address = "127.0.0.1:8080"
hsts = { enabled = true }
"#;
    let (_, message) = load_error(hsts);
    assert_mentions(&message, &["listeners[0].hsts", "HTTPS only"]);

    let floor = r#"
[[listeners]]
protocol = "https"
address = "127.0.0.1:8443"
h2_max_concurrent_streams = 0
"#;
    let (_, message) = load_error(floor);
    assert_mentions(
        &message,
        &["listeners[0].h2_max_concurrent_streams", "minimum"],
    );
}

#[test]
fn global_rules_are_checked() {
    let (_, message) = load_error("automatic_state_save = true\n");
    assert_mentions(&message, &["automatic_state_save", "saved_state"]);
    let (_, message) = load_error("command_buffer_size = 3000000\n");
    assert_mentions(
        &message,
        &["command_buffer_size", "max_command_buffer_size"],
    );
    let (_, message) = load_error("max_connection_attempts = 0\n");
    assert_mentions(&message, &["max_connection_attempts", "1 to 255"]);
    let (_, message) = load_error("command_socket_mode = \"0400\"\n");
    assert_mentions(&message, &["command_socket_mode", "0600"]);
    let (_, message) = load_error("subnet_ipv4_prefix = 33\n");
    assert_mentions(&message, &["subnet_ipv4_prefix", "33"]);
    let text =
        "buffer_size = 4096\n[[listeners]]\nprotocol = \"https\"\naddress = \"127.0.0.1:8443\"\n";
    let (_, message) = load_error(text);
    assert_mentions(&message, &["buffer_size", "HTTP/2"]);
}

#[test]
fn cluster_rules_are_checked() {
    let text = r#"
[clusters.db]
protocol = "tcp"
affinity_header = "X-User"
"#;
    let (_, message) = load_error(text);
    assert_mentions(&message, &["clusters.db.affinity_header", "tcp cluster"]);

    let text = r#"
[clusters.web]
protocol = "http"
health_check = { uri = "health" }
"#;
    let (_, message) = load_error(text);
    assert_mentions(&message, &["clusters.web.health_check.uri", "'/'"]);

    let text = r#"
[clusters.web]
protocol = "http"
backends = [ { address = "127.0.0.1:9000", weight = 300 } ]
"#;
    let (_, message) = load_error(text);
    assert_mentions(&message, &["clusters.web.backends[0].weight", "300"]);

    let text = r#"
[clusters.web]
protocol = "http"
answer_503 = "no-such-503.html"
"#;
    let (_, message) = load_error(text);
    assert_mentions(
        &message,
        &[
            "clusters.web.answer_503",
            "no-such-503.html",
            "No such file",
        ],
    );
}
